"""NetFlow v5/v9 and IPFIX for ``topfib decode``: one FlowDecoder for the whole run.

The registry makes fresh handlers at the start of each run, so templates and sampler options
learned from one file decode the data of the next (files are decoded in the order given), and
nothing leaks between runs.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from topfib.collector.netflow.decoder import FlowDecodeError, FlowDecoder
from topfib.controller.cli.decoders.registry import DecoderRegistry, DecodeStats, Handler

PROTOCOLS = ("netflow5", "netflow9", "ipfix")


def netflow_handler(decoder: FlowDecoder | None = None) -> Handler:
    """One handler for the protocols ``sniff_protocol`` names netflow5, netflow9 and ipfix."""
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

    return handle


def register(registry: DecoderRegistry) -> None:
    registry.register(PROTOCOLS, netflow_handler)
