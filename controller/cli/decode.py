"""`topfib decode FILE...`: print one JSON object per flow sample, and a summary line to stderr.

Files are pcap/pcapng captures (every UDP datagram in them is decoded) or raw payload files
(.bin/.dat/.dump: the whole file is one datagram). Each datagram goes to the decoder registered
(:mod:`topfib.controller.cli.decoders.registry`) for the protocol its first bytes name; adding a
protocol means a sniff rule there and a module that registers its handler in :func:`decoder_registry`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, TextIO

import typer

from topfib.collector.common.pcap import PcapError, is_capture, udp_payloads
from topfib.controller.cli.decoders.registry import DecoderRegistry, DecodeStats, sniff_protocol

RAW_PAYLOAD_SUFFIXES = frozenset((".bin", ".dat", ".dump"))


def decoder_registry() -> DecoderRegistry:
    """sFlow and NetFlow/IPFIX, imported here so the other commands start without the decoders."""
    from topfib.controller.cli.decoders import netflow, sflow

    registry = DecoderRegistry()
    sflow.register(registry)
    netflow.register(registry)
    return registry


def _datagrams(path: Path, data: bytes) -> Iterator[tuple[str, bytes]]:
    if path.suffix.lower() in RAW_PAYLOAD_SUFFIXES or not is_capture(data):
        yield "", data
    else:
        yield from udp_payloads(data)


def decode_files(files: list[Path], out: TextIO, stats: DecodeStats) -> None:
    # one set of handlers per run: NetFlow/IPFIX templates in one file decode data in the next
    handlers = decoder_registry().handlers()
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


def decode_command(
    files: Annotated[list[Path], typer.Argument(help="pcap/pcapng or raw payload files")],
) -> None:
    """Decode flow datagrams and print one JSON object per flow sample."""
    raise typer.Exit(run_decode(files))
