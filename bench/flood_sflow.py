"""sFlow flood: the collector at (well) above its zero-loss rate, then accounting checked again.

The real listener + pipeline with the full table (``bench.collector_sink``, pinned to one core),
the sender on the other core. Steps, all in one run:

1. warm-up stream, then a calibration stream at ``--calib-rate``: must be lossless; its per-prefix
   byte deltas are the reference;
2. a short ladder finds the zero-loss rate (highest rate of the ladder with nothing lost);
3. the flood: the same datagrams, unpaced, for ``--seconds``; the achieved rate must be ≥ 2× the
   zero-loss rate (else the figure is reported as not a valid flood). Counted: datagrams sent,
   received, dropped by the kernel (the listener's counter) and the collector's sequence-gap count;
   resident memory of the collector before and after;
4. the calibration stream again, right after the backlog drained: its per-prefix byte deltas must
   equal the reference exactly (accounting is correct as soon as the flood stops).

Half-lives are 10⁹ s, so byte sums are plain totals and per-prefix deltas compare exactly.

    .venv/bin/python -m bench.flood_sflow [--seconds 60] [--samples 300000] [--calib-rate 100000]

Exit status 1 if the calibration after the flood differs from the reference, the collector died,
or resident memory grew by more than 10 %.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.bench_collector import WORKDIR, send, sender_ceiling
from bench.bench_tables import bench_table, load_traffic
from bench.daemon_cpu import free_udp_port
from bench.topfib_daemons import TopfibSink
from topfib.collector.flow.replay import sample_count


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.POINTER(_Iovec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


_LIBC = ctypes.CDLL(None, use_errno=True)
BATCH = 1024
SEND_BUFFER = 256 << 20


class MmsgSender:
    """Sends a list of datagrams on a connected UDP socket with sendmmsg(2), 1,024 per system call:
    a Python sender with one ``send`` per datagram cannot reach twice the collector's rate."""

    def __init__(self, sock: socket.socket, datagrams: Sequence[bytes]) -> None:
        # On loopback a datagram stays charged to the sender's buffer until the receiver reads it:
        # with a send buffer smaller than the receiver's, the sender is throttled to the receiver's
        # pace and nothing is ever dropped. A larger one (root: SO_SNDBUFFORCE) lets it overrun.
        try:
            sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_SNDBUFFORCE", 32), SEND_BUFFER)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        self.sock = sock
        self.count = len(datagrams)
        self.samples = sum(sample_count(d) for d in datagrams)
        self._buffers = [ctypes.create_string_buffer(d, len(d)) for d in datagrams]
        self._iovecs = (_Iovec * self.count)()
        self._vector = (_Mmsghdr * self.count)()
        for i, buffer in enumerate(self._buffers):
            self._iovecs[i].iov_base = ctypes.addressof(buffer)
            self._iovecs[i].iov_len = len(datagrams[i])
            self._vector[i].msg_hdr.msg_iov = ctypes.pointer(self._iovecs[i])
            self._vector[i].msg_hdr.msg_iovlen = 1

    def send_all(self, rate: float = 0.0) -> int:
        """Every datagram once, paced per batch to ``rate`` samples/s (0: unpaced); the number the
        kernel took (the rest: ENOBUFS, counted as not sent)."""
        fd, done, taken = self.sock.fileno(), 0, 0
        size = ctypes.sizeof(_Mmsghdr)
        base = ctypes.addressof(self._vector)
        per_datagram = self.samples / self.count
        started = time.monotonic()
        while done < self.count:
            if rate > 0:
                ahead = done * per_datagram / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            batch = min(BATCH // 8 if rate > 0 else BATCH, self.count - done)
            sent = _LIBC.sendmmsg(fd, ctypes.c_void_p(base + done * size), batch, 0)
            if sent < 0:
                if ctypes.get_errno() not in (errno.ENOBUFS, errno.EAGAIN):
                    raise OSError(ctypes.get_errno(), "sendmmsg")
                done += batch
                continue
            taken += sent
            done += max(sent, 1)
        return taken


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def deltas(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {p: v - before.get(p, 0.0) for p, v in after.items() if v - before.get(p, 0.0) > 0.5}


def compare(reference: dict[str, float], measured: dict[str, float]) -> tuple[int, int, float]:
    """(prefixes in the reference, prefixes whose bytes differ, worst relative difference). Differ: by
    more than float rounding of the decayed sums (10⁻⁶ relative, 0.5 byte absolute)."""
    keys = reference.keys() | measured.keys()
    differing = [p for p in keys if abs(reference.get(p, 0.0) - measured.get(p, 0.0))
                 >= max(0.5, 1e-6 * reference.get(p, 0.0))]
    worst = max((abs(reference.get(p, 0.0) - measured.get(p, 0.0)) / max(reference.get(p, 1.0), 1.0)
                 for p in differing), default=0.0)
    return len(reference), len(differing), worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="flood duration")
    parser.add_argument("--samples", type=int, default=300_000, help="samples in the stream")
    parser.add_argument("--calib-rate", type=float, default=100_000.0)
    parser.add_argument("--ladder", default="100000,200000,300000,400000,500000,600000,800000")
    parser.add_argument("--receive-buffer", type=int, default=32 * 1024 * 1024)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    WORKDIR.mkdir(parents=True, exist_ok=True)
    # The sender on core 0 at high priority, the collector on core 1 (as bench_collector does):
    # unpinned, the scheduler may put the sender on the collector's core and starve it.
    os.sched_setaffinity(0, {0})
    os.nice(-15)

    table = bench_table(WORKDIR, 0)
    traffic = load_traffic(WORKDIR, table, args.samples, args.seed)
    ceiling = sender_ceiling(traffic)
    print(f"stream: {args.samples} samples in {len(traffic.datagrams)} datagrams; "
          f"paced sender ceiling {ceiling:,.0f} samples/s", flush=True)
    port = free_udp_port()
    sink = TopfibSink(port, args.receive_buffer, core=1, tables=(table.v4_pfx2as, table.v6_pfx2as))
    ok = True
    try:
        print(f"collector: {sink.ready['prefixes']} prefixes loaded in {sink.ready['load_s']} s; "
              f"RSS {rss_kib(sink.pid) / 1024:.0f} MiB", flush=True)
        begun = sink.begin()
        send(traffic, port, args.calib_rate)  # warm-up: every prefix seen once
        sink.finish(begun)
        base = sink.dump(WORKDIR / "flood-0.tsv")
        begun = sink.begin()
        sent, achieved = send(traffic, port, args.calib_rate)
        calib = sink.finish(begun)
        reference = deltas(base, sink.dump(WORKDIR / "flood-1.tsv"))
        print(f"calibration at {achieved:,.0f} samples/s: sent {sent}, counted {calib.samples}, "
              f"socket drops {calib.socket_drops}; {len(reference)} prefixes", flush=True)
        ok &= calib.socket_drops == 0

        zero_loss = 0.0
        for rate in (float(r) for r in args.ladder.split(",")):
            begun = sink.begin()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.connect(("127.0.0.1", port))
                paced = MmsgSender(sock, traffic.datagrams)
                t0 = time.monotonic()
                sent = round(paced.send_all(rate) * paced.samples / paced.count)
                achieved = sent / (time.monotonic() - t0)
            count = sink.finish(begun)
            lossless = count.socket_drops == 0 and count.samples == sent
            print(f"ladder {rate:,.0f}: achieved {achieved:,.0f}, drops {count.socket_drops}, "
                  f"{'lossless' if lossless else 'LOSS'}", flush=True)
            if not lossless:
                break
            zero_loss = max(zero_loss, achieved)

        rss_before = rss_kib(sink.pid)
        begun = sink.begin()
        flood_sent = datagrams = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("127.0.0.1", port))
            sender = MmsgSender(sock, traffic.datagrams)
            per_datagram = sender.samples / sender.count
            started = time.monotonic()
            while time.monotonic() - started < args.seconds:
                taken = sender.send_all()
                datagrams += taken
                flood_sent += round(taken * per_datagram)
        flood_s = time.monotonic() - started
        snapshot_flood_end = sink.command("snapshot")
        flood = sink.finish(begun)
        drained_s = time.monotonic() - started - flood_s
        rss_after = rss_kib(sink.pid)
        flood_rate = flood_sent / flood_s
        counted = flood.samples or 0.0
        ratio = flood_rate / zero_loss if zero_loss else float("inf")
        print(f"flood: {flood_s:.0f} s at {flood_rate:,.0f} samples/s ({ratio:.1f}× the zero-loss rate "
              f"{zero_loss:,.0f}); {datagrams} datagrams, {flood_sent} samples sent, {counted:.0f} counted "
              f"({100 * (1 - counted / flood_sent):.1f} % lost), kernel socket drops counted "
              f"{flood.socket_drops} datagrams, sequence gaps counted "
              f"{snapshot_flood_end['lost_datagrams']}; "
              f"backlog drained {drained_s:.1f} s after the flood", flush=True)
        print(f"collector RSS before {rss_before / 1024:.0f} MiB, after {rss_after / 1024:.0f} MiB "
              f"({100 * (rss_after - rss_before) / rss_before:+.1f} %)", flush=True)
        if ratio < 2:
            print("NOTE: the sender did not reach 2× the zero-loss rate: not a valid flood figure")
        ok &= rss_after <= rss_before * 1.10 and (flood.socket_drops or 0) > 0

        after_flood = sink.dump(WORKDIR / "flood-2.tsv")
        begun = sink.begin()
        sent, achieved = send(traffic, port, args.calib_rate)
        count = sink.finish(begun)
        measured = deltas(after_flood, sink.dump(WORKDIR / "flood-3.tsv"))
        prefixes, differing, worst = compare(reference, measured)
        print(f"calibration after the flood: sent {sent}, counted {count.samples}, "
              f"drops {count.socket_drops}; "
              f"{prefixes} prefixes, {differing} differ from the reference (worst {worst:.2e})", flush=True)
        ok &= differing == 0 and count.socket_drops == 0
        ok &= sink.process.poll() is None
    finally:
        sink.stop()
    print("RESULT", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
