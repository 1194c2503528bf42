"""NetFlow v5/v9 and IPFIX for ``topfib decode``: one FlowDecoder for the whole run.

``topfib.controller.cli.decode`` asks :func:`netflow_handlers` for fresh handlers at the start of each
run, so templates and sampler options learned from one file decode the data of the next (files
are decoded in the order given), and nothing leaks between runs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from topfib.collector.netflow.decoder import FlowDecodeError, FlowDecoder

if TYPE_CHECKING:
    from topfib.controller.cli.decode import DecodeStats

NetflowHandler = Callable[[str, bytes, TextIO, "DecodeStats"], None]


def netflow_handlers(decoder: FlowDecoder | None = None) -> dict[str, NetflowHandler]:
    """Handlers for the protocols ``sniff_protocol`` names netflow5, netflow9 and ipfix."""
    shared = decoder if decoder is not None else FlowDecoder()

    def handle(exporter: str, payload: bytes, out: TextIO, stats: DecodeStats) -> None:
        try:
            records = shared.decode(payload, exporter)
        except FlowDecodeError as exc:
            stats.malformed[exc.reason] += 1
            print(f"malformed NetFlow/IPFIX datagram from {exporter or 'file'}: {exc}", file=sys.stderr)
            return
        stats.flow_samples += len(records)
        for record in records:
            line = record.to_json()
            line["exporter"] = exporter or None
            out.write(json.dumps(line) + "\n")

    return {"netflow5": handle, "netflow9": handle, "ipfix": handle}
