"""`topfib replay FILE --to HOST:PORT [--rate SAMPLES_PER_S] [--loop]`: send a capture's flow datagrams.

The sending is :mod:`topfib.collector.flow.replay`; here are the command line and its exit codes.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from topfib.collector.common.pcap import PcapError
from topfib.collector.flow.replay import ReplayStats, flow_payloads, replay


def _forever() -> Iterable[int]:
    n = 0
    while True:
        yield n
        n += 1


def parse_destination(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6; a host name is resolved) → (host, port)."""
    host, sep, port_text = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host, int(port_text)


def run_replay(file: Path, to: str, rate: float, loop: bool) -> int:
    """CLI body: 0 when sent, 1 when the file is unreadable or holds no flow datagrams, 2 for bad --to."""
    try:
        host, port = parse_destination(to)
        if rate < 0:
            raise ValueError("--rate must be >= 0")
        address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    except (ValueError, OSError) as exc:
        print(f"topfib replay: bad --to/--rate: {exc}", file=sys.stderr)
        return 2
    try:
        payloads = flow_payloads(file, file.read_bytes())
    except (OSError, PcapError) as exc:
        print(f"topfib replay: {file}: {exc}", file=sys.stderr)
        return 1
    if not payloads:
        print(f"topfib replay: {file}: no sFlow/NetFlow/IPFIX datagrams", file=sys.stderr)
        return 1
    family, _, _, _, sockaddr = address
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect(sockaddr)
        stats = ReplayStats()
        started = time.monotonic()
        try:
            replay(payloads, sock.send, rate, _forever() if loop else range(1), stats=stats)
        except KeyboardInterrupt:
            stats.seconds = time.monotonic() - started
            print("topfib replay: interrupted", file=sys.stderr)
    print(f"topfib replay: {file} -> {to}: {stats.summary()}", file=sys.stderr)
    return 0


def replay_command(
    file: Annotated[Path, typer.Argument(help="capture or raw payload file")],
    to: Annotated[str, typer.Option("--to", help="HOST:PORT to send to")],
    rate: Annotated[float, typer.Option("--rate", help="samples per second (0: as fast as possible)")] = 0.0,
    loop: Annotated[bool, typer.Option("--loop", help="repeat until interrupted")] = False,
) -> None:
    """Send a capture's sFlow payloads over UDP."""
    raise typer.Exit(run_replay(file, to, rate, loop))
