"""CPU cost of topfib's NetFlow v9 / IPFIX fast path against pmacct's nfacctd, over loopback.

    .venv/bin/python -m bench.bench_netflow [--datagrams N] [--rate PER_S] [--next-hops N] [--no-typed]

Both collectors receive the same streams (``bench.netflow_encode``: a NetFlow v9 and an IPFIX
export, 1:1000 sampling announced in options data) from a sender process on 127.0.0.1:

* topfib: this process receives as the listener does (poll, then ``recvmmsg`` bursts), feeds
  each burst to ``FastFlowDecoder.feed_many`` and takes a ``SampleBatch`` once another 256
  datagrams have come in (decoded, scaled and ready for accounting); CPU = this process's CPU
  time.
* nfacctd: aggregating everything into one ``peer_src_ip`` bucket of the print plugin, the
  cheapest accounting it has; CPU = its core and plugin processes (utime + stime, children
  included), read from /proc.

The generated next hops (IPv4 15/18, IPv6 62/63) are random per record, a worst case for the
per-record next-hop column (topfib names at most 1024 distinct next hops per batch and gives the
rest none); ``--next-hops N`` rewrites them to N peers' addresses, as a router exports.

Each side's totals are checked against the stream (a collector that dropped datagrams is
reported, not compared). Printed: CPU-seconds per million flow records and the ratio
topfib / nfacctd (the bar is ≤ 1), plus the typed decoder, in-process, for scale.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.netflow_encode import IPFIX_V4_FIELDS, IPFIX_V6_FIELDS, V9_FIELDS, ipfix_stream, netflow_v9_stream
from topfib.collector.flow.udp_batch import BatchReceiver, batch_receiver
from topfib.collector.netflow.decoder import FlowDecoder
from topfib.collector.netflow.fast import FastFlowDecoder

LOOPBACK = "127.0.0.1"
RECEIVE_BUFFER = 4 * 1024 * 1024
TAKE_EVERY = 256
COALESCE_S = 0.005
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Stream:
    name: str
    datagrams: list[bytes]
    records: int
    packets: int  # as exported (unscaled), what nfacctd sums without renormalisation


def build_stream(name: str, datagrams: list[bytes]) -> Stream:
    decoder = FlowDecoder()
    records = [r for payload in datagrams for r in decoder.decode(payload, LOOPBACK)]
    return Stream(name, datagrams, len(records), sum(r.packets for r in records))


# sender (runs in its own process so its CPU is nobody's)


def write_stream(stream: Stream, path: Path) -> None:
    with path.open("wb") as out:
        for datagram in stream.datagrams:
            out.write(struct.pack("!H", len(datagram)) + datagram)


def send(path: Path, port: int, rate: float) -> None:
    data = path.read_bytes()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    start = time.monotonic()
    offset = sent = 0
    while offset < len(data):
        length = struct.unpack_from("!H", data, offset)[0]
        sock.sendto(data[offset + 2 : offset + 2 + length], (LOOPBACK, port))
        offset += 2 + length
        sent += 1
        if sent % 50 == 0:  # pace: never ahead of the schedule
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)


def spawn_sender(path: Path, port: int, rate: float) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "bench.bench_netflow", "--send", str(path), "--port", str(port)]
    return subprocess.Popen([*command, "--rate", str(rate)], cwd=Path(__file__).resolve().parent.parent)


# topfib


def run_topfib(stream: Stream, path: Path, rate: float) -> tuple[float, int]:
    """(CPU seconds, records decoded) receiving the stream over loopback as the listener does:
    poll, then drain with ``recvmmsg`` (``topfib.collector.flow.udp_batch``; ``recvfrom`` where missing).

    An empty datagram, sent once the sender has exited, ends the run even if datagrams were lost.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.bind((LOOPBACK, 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    receiver = batch_receiver(sock)
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    decoder = FastFlowDecoder()
    records = received = 0
    sender = spawn_sender(path, port, rate)
    watchdog = threading.Thread(target=_end_after, args=(sender, port), daemon=True)
    watchdog.start()
    start = time.process_time()  # after the fork: its page-table copy is the sender's cost
    try:
        done = False
        while not done:
            poller.poll(1000)
            # a collector can wait a few ms: fewer wakeups, bigger recvmmsg bursts
            time.sleep(COALESCE_S)
            burst = _drain(sock, receiver)
            if burst and not burst[-1][0]:  # the end marker comes last: the sender has exited
                burst.pop()
                done = True
            decoder.feed_many(burst)  # a burst at a time, as the listener feeds its collector
            before, received = received, received + len(burst)
            if received // TAKE_EVERY > before // TAKE_EVERY:
                records += decoder.take().flow_samples
        records += decoder.take().flow_samples
        cpu = time.process_time() - start
    finally:
        watchdog.join(timeout=70)
        sock.close()
    return cpu, records


def _drain(sock: socket.socket, receiver: BatchReceiver | None) -> list[tuple[bytes, str]]:
    if receiver is not None:
        return receiver.receive()
    try:
        payload, (source, _) = sock.recvfrom(65535)
    except BlockingIOError:
        return []
    return [(payload, source)]


def _end_after(sender: subprocess.Popen[bytes], port: int) -> None:
    """Wait for the sender, let the receiver drain, then tell it the stream is over."""
    sender.wait(timeout=600)
    time.sleep(1.0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as end:
        end.sendto(b"", (LOOPBACK, port))


# nfacctd


def process_group_cpu(group: int) -> float:
    """utime + stime (+ reaped children) of every live process in a process group, in seconds."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        # fields after "comm)": state ppid pgrp … utime(12) stime(13) cutime(14) cstime(15)
        if int(fields[2]) == group:
            ticks += sum(int(v) for v in fields[11:15])
    return ticks / CLOCK_TICKS


def nfacctd_totals(output: Path) -> int:
    """Packets nfacctd has written out so far (print plugin CSV; a header line per refresh)."""
    if not output.exists():
        return 0
    packets = 0
    column = None
    for line in output.read_text().splitlines():
        cells = line.split(",")
        if "PACKETS" in cells:
            column = cells.index("PACKETS")
        elif column is not None and len(cells) > column and cells[column].isdigit():
            packets += int(cells[column])
    return packets


def run_nfacctd(stream: Stream, path: Path, rate: float, workdir: Path) -> tuple[float, int] | None:
    """(CPU seconds, packets accounted) of nfacctd receiving the stream; None if it won't start."""
    port = _free_udp_port()
    output = workdir / f"nfacctd-{stream.name}.csv"
    config = workdir / f"nfacctd-{stream.name}.conf"
    log = workdir / f"nfacctd-{stream.name}.log"
    config.write_text(
        "daemonize: false\n"
        f"nfacctd_ip: {LOOPBACK}\nnfacctd_port: {port}\nnfacctd_pipe_size: {RECEIVE_BUFFER}\n"
        "plugins: print[out]\naggregate[out]: peer_src_ip\nprint_output[out]: csv\n"
        f"print_output_file[out]: {output}\nprint_output_file_append[out]: true\n"
        "print_refresh_time[out]: 1\n"
    )
    with log.open("wb") as log_file:
        daemon = subprocess.Popen(
            ["nfacctd", "-f", str(config)], stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        if not _wait_for(lambda: b"waiting for NetFlow" in log.read_bytes(), 10.0):
            return None
        time.sleep(0.5)  # plugin started
        before = process_group_cpu(daemon.pid)
        sender = spawn_sender(path, port, rate)
        sender.wait(timeout=600)
        _wait_for(lambda: nfacctd_totals(output) >= stream.packets, 10.0)
        after = process_group_cpu(daemon.pid)
        return after - before, nfacctd_totals(output)
    finally:
        _stop_group(daemon)


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _stop_group(daemon: subprocess.Popen[bytes]) -> None:
    """nfacctd's core waits on its plugins after SIGTERM: terminate, then kill, each by its PID."""
    pids = [daemon.pid, *_group_members(daemon.pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        try:
            daemon.wait(timeout=3)
            return
        except subprocess.TimeoutExpired:
            continue


def _group_members(group: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != group:
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) == group:
                    members.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    return members


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def typed_cpu_per_record(stream: Stream) -> float:
    sample = stream.datagrams[: max(1, len(stream.datagrams) // 10)]
    decoder = FlowDecoder()
    start = time.process_time()
    records = sum(len(decoder.decode(payload, LOOPBACK)) for payload in sample)
    return (time.process_time() - start) / max(records, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--datagrams", type=int, default=20_000, help="data datagrams per stream")
    parser.add_argument("--rate", type=float, default=5_000.0, help="datagrams per second sent")
    parser.add_argument("--next-hops", type=int, default=0, help="next hops: this many peers (0: random)")
    parser.add_argument("--no-typed", action="store_true", help="skip the typed decoder's row (slow)")
    parser.add_argument("--send", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send is not None:
        send(args.send, args.port, args.rate)
        return

    have_nfacctd = shutil.which("nfacctd") is not None
    v9 = list(netflow_v9_stream(args.datagrams))
    ipfix = list(ipfix_stream(args.datagrams))
    if args.next_hops > 0:
        v9 = [with_next_hops(d, 20, {256: V9_FIELDS}, args.next_hops) for d in v9]
        ipfix_fields = {256: IPFIX_V4_FIELDS, 257: IPFIX_V6_FIELDS}
        ipfix = [with_next_hops(d, 16, ipfix_fields, args.next_hops) for d in ipfix]
    streams = [build_stream("netflow-v9", v9), build_stream("ipfix", ipfix)]
    print(f"{'stream':12} {'records':>9} {'collector':28} {'CPU-s per 1M records':>21} {'vs nfacctd':>11}")
    with tempfile.TemporaryDirectory(prefix="bench_netflow_") as tmp:
        workdir = Path(tmp)
        for stream in streams:
            path = workdir / f"{stream.name}.stream"
            write_stream(stream, path)
            baseline = None
            if have_nfacctd:
                result = run_nfacctd(stream, path, args.rate, workdir)
                if result is None:
                    print(f"{stream.name:12} nfacctd did not start")
                else:
                    cpu, packets = result
                    complete = packets == stream.packets
                    baseline = cpu / stream.records * 1e6 if complete else None
                    note = "" if complete else f"accounted {packets}/{stream.packets} packets: not a baseline"
                    _row(stream, "nfacctd 1.7 (baseline)", cpu / stream.records * 1e6, baseline, note)
            cpu, records = run_topfib(stream, path, args.rate)
            note = "" if records == stream.records else f"decoded {records}/{stream.records}: datagrams lost"
            _row(stream, "topfib FastFlowDecoder", cpu / stream.records * 1e6, baseline, note)
            if not args.no_typed:
                _row(stream, "topfib FlowDecoder (typed)", typed_cpu_per_record(stream) * 1e6, baseline, "")
    if not have_nfacctd:
        print("nfacctd not installed (Debian: apt-get install pmacct): no baseline")


NEXT_HOP_ELEMENTS = {15: 4, 18: 4, 62: 16, 63: 16}


def with_next_hops(
    datagram: bytes, header_length: int, templates: dict[int, list[tuple[int, int]]], peers: int
) -> bytes:
    """``datagram`` with the next hops of its data records set to one of ``peers`` addresses
    (192.0.2.1… / 2001:db8::1…), the record's index choosing which."""
    out = bytearray(datagram)
    pos = header_length
    while pos + 4 <= len(out):
        set_id, length = struct.unpack_from("!HH", out, pos)
        fields = templates.get(set_id)
        if fields is not None and length >= 4:
            offsets, record_length = [], 0
            for element, size in fields:
                if NEXT_HOP_ELEMENTS.get(element) == size:
                    offsets.append((record_length, size))
                record_length += size
            for index, start in enumerate(range(pos + 4, pos + length - record_length + 1, record_length)):
                peer = 1 + index % peers
                for offset, size in offsets:
                    v6 = bytes.fromhex("20010db8") + bytes(11) + bytes([peer])
                    address = bytes([192, 0, 2, peer]) if size == 4 else v6
                    out[start + offset : start + offset + size] = address
        pos += max(length, 4)
    return bytes(out)


def _row(stream: Stream, collector: str, per_million: float, baseline: float | None, note: str) -> None:
    ratio = f"{per_million / baseline:.2f}x" if baseline else "n/a"
    line = f"{stream.name:12} {stream.records:9,} {collector:28} {per_million:21.3f} {ratio:>11}"
    print(f"{line}  ({note})" if note else line, flush=True)


if __name__ == "__main__":
    main()
