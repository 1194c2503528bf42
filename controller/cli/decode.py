"""`topfib decode FILE...`: print one JSON object per flow sample, and a summary line to stderr.

Files are pcap/pcapng captures (every UDP datagram in them is decoded) or raw payload files
(.bin/.dat/.dump: the whole file is one datagram). Each datagram goes to the decoder its first
bytes name; adding a protocol means adding a sniff rule and a handler to ``HANDLERS``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from topfib.collector.common.pcap import PcapError, is_capture, udp_payloads
from topfib.collector.sflow.decoder import decode_datagram
from topfib.collector.sflow.records import SflowError
from topfib.controller.cli.decode_netflow import netflow_handlers

RAW_PAYLOAD_SUFFIXES = frozenset((".bin", ".dat", ".dump"))
MAX_REPORTS_PER_KIND = 10


@dataclass
class DecodeStats:
    datagrams: int = 0
    flow_samples: int = 0
    counter_samples: int = 0
    discard_samples: int = 0
    malformed: Counter[str] = field(default_factory=Counter)  # reason -> datagrams
    unsupported: Counter[str] = field(default_factory=Counter)  # protocol -> datagrams
    unreadable_files: int = 0
    reported: Counter[str] = field(default_factory=Counter)  # messages printed per kind

    def should_report(self, kind: str) -> bool:
        """Limit error lines: the first few of each kind are printed, the rest only counted."""
        self.reported[kind] += 1
        return self.reported[kind] <= MAX_REPORTS_PER_KIND

    def summary(self) -> str:
        parts = [
            f"datagrams={self.datagrams}",
            f"flow_samples={self.flow_samples}",
            f"counter_samples={self.counter_samples}",
            f"discard_samples={self.discard_samples}",
            f"malformed={sum(self.malformed.values())}",
        ]
        parts += [f"malformed.{reason}={count}" for reason, count in sorted(self.malformed.items())]
        parts += [f"unsupported.{proto}={count}" for proto, count in sorted(self.unsupported.items())]
        if self.unreadable_files:
            parts.append(f"unreadable_files={self.unreadable_files}")
        return " ".join(parts)


# A handler decodes one datagram from `exporter`, writes its records to `out` and counts in `stats`.
Handler = Callable[[str, bytes, TextIO, DecodeStats], None]


def sniff_protocol(payload: bytes) -> str:
    """Name the flow protocol from the version field every one of them starts with."""
    if payload[:4] == b"\x00\x00\x00\x05":
        return "sflow5"
    version = payload[:2]
    if version == b"\x00\x05":
        return "netflow5"
    if version == b"\x00\x09":
        return "netflow9"
    if version == b"\x00\x0a":
        return "ipfix"
    return "unknown"


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


HANDLERS: dict[str, Handler] = {"sflow5": decode_sflow}


def _datagrams(path: Path, data: bytes) -> Iterator[tuple[str, bytes]]:
    if path.suffix.lower() in RAW_PAYLOAD_SUFFIXES or not is_capture(data):
        yield "", data
    else:
        yield from udp_payloads(data)


def decode_files(files: list[Path], out: TextIO, stats: DecodeStats) -> None:
    # one NetFlow/IPFIX decoder per run: templates in one file decode data in the next
    handlers = {**HANDLERS, **netflow_handlers()}
    for path in files:
        try:
            data = path.read_bytes()
            datagrams = list(_datagrams(path, data))
        except (OSError, PcapError) as exc:
            stats.unreadable_files += 1
            print(f"{path}: {exc}", file=sys.stderr)
            continue
        for exporter, payload in datagrams:
            stats.datagrams += 1
            protocol = sniff_protocol(payload)
            handler = handlers.get(protocol)
            if handler is None:
                stats.unsupported[protocol] += 1
            else:
                handler(exporter, payload, out, stats)


def run_decode(files: list[Path]) -> int:
    """Exit status 0, or 1 when a file could not be read as a capture or payload."""
    stats = DecodeStats()
    try:
        decode_files(files, sys.stdout, stats)
        sys.stdout.flush()
    except BrokenPipeError:  # output piped into `head` and closed: stop quietly
        sys.stderr.close()
        return 0
    print(stats.summary(), file=sys.stderr)
    return 1 if stats.unreadable_files else 0
