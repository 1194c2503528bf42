"""sFlow v5 for ``topfib decode``: each flow sample as one JSON object."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import TextIO

from topfib.collector.sflow.decoder import decode_datagram
from topfib.collector.sflow.records import SflowError
from topfib.controller.cli.decoders.registry import DecoderRegistry, DecodeStats, Handler


def decode_sflow(exporter: str, payload: bytes, out: TextIO, stats: DecodeStats) -> None:
    try:
        datagram = decode_datagram(payload)
    except SflowError as exc:
        stats.malformed[exc.reason] += 1
        if stats.should_report(f"sflow:{exc.reason}"):
            print(f"malformed sFlow datagram from {exporter or 'file'}: {exc}", file=sys.stderr)
        return
    stats.flow_samples += len(datagram.flow_samples)
    stats.counter_samples += len(datagram.counter_samples)
    stats.discard_samples += len(datagram.discard_samples)
    for sample in datagram.flow_samples:
        record = asdict(sample)
        record["exporter"] = exporter or None
        out.write(json.dumps(record) + "\n")


def _stateless() -> Handler:
    return decode_sflow


def register(registry: DecoderRegistry) -> None:
    registry.register(("sflow5",), _stateless)
