"""pmacct's sfacctd as the collector benchmarks' baseline: one process per stream, print plugin.

Aggregate ``dst_net, dst_mask`` over the same prefixes topfib holds (``networks_file``),
``sfacctd_renormalize: true``, print plugin (CSV written at exit; the memory plugin lost data at
10⁵ samples/s here and burnt more CPU per sample, so print is the stronger baseline), 64 KB plugin
buffer, 64 MB plugin pipe. Its core passes records to the plugin in 64 KB buffers, so after each
stream marker datagrams (to 192.0.2.0/24, a prefix only its networks_file has) push the last
partial buffer through; the marker row proves it.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.daemon_cpu import cpu_seconds, free_udp_port, pinned, stop_process, wait_cpu_idle, wait_until
from topfib.collector.sflow.encode import FlowSampleSpec, encode_datagram

MARKER_PREFIX = "192.0.2.0/24"
MARKER_AGENT = "198.51.100.250"


@dataclass
class Count:
    """What a daemon counted for one stream."""

    packets: float | None  # scaled by sampling rate, where the daemon reports them
    bytes: float | None
    cpu_s: float
    samples: float | None = None  # exact sample count where the daemon reports one
    socket_drops: int | None = None  # kernel receive-queue drops, where known
    backlog_drops: int | None = None  # samples dropped inside the daemon (accounting behind), where known
    wall_s: float = 0.0  # the measured window: stream sent and accounted


class Sfacctd:
    """One sfacctd process per stream: the print plugin writes its totals when it exits."""

    def __init__(self, networks_file: Path, receive_buffer: int, core: int, workdir: Path) -> None:
        self.networks_file = networks_file
        self.receive_buffer = receive_buffer
        self.core = core
        self.workdir = workdir
        self.log = workdir / "sfacctd.log"
        self.output = workdir / "sfacctd.csv"
        self.startup_s = 0.0

    def _config(self, port: int) -> str:
        return "\n".join(
            [
                "daemonize: false",
                "sfacctd_ip: 127.0.0.1",
                f"sfacctd_port: {port}",
                "sfacctd_renormalize: true",
                "sfacctd_net: file",
                f"networks_file: {self.networks_file}",
                "aggregate: dst_net, dst_mask",
                "plugins: print",
                "print_output: csv",
                f"print_output_file: {self.output}",
                "print_output_file_append: true",  # an early purge (cache full) must not overwrite
                "print_refresh_time: 86400",
                "print_cache_entries: 262147",
                "plugin_buffer_size: 65536",
                "plugin_pipe_size: 67108864",
                f"sfacctd_pipe_size: {self.receive_buffer}",
                f"logfile: {self.log}",
                "",
            ]
        )

    def run(self, send: Callable[[int], object]) -> tuple[Count, dict[str, tuple[int, int]]]:
        """Start, ``send(port)`` the stream, push it through, stop: (count, prefix → (packets, bytes))."""
        port = free_udp_port()
        conf = self.workdir / "sfacctd.conf"
        conf.write_text(self._config(port))
        for stale in (self.log, self.output):
            stale.unlink(missing_ok=True)
        started = time.monotonic()
        process = subprocess.Popen([*pinned(self.core), "sfacctd", "-f", str(conf)])
        try:
            wait_until(
                lambda: (
                    self.log.exists() and "waiting for sFlow data" in self.log.read_text(errors="replace")
                ),
                120,
                "sfacctd start",
            )
            wait_cpu_idle(process.pid)
            self.startup_s = time.monotonic() - started
            cpu_before, window_start = cpu_seconds(process.pid), time.monotonic()
            send(port)
            push_markers(port)
            wait_cpu_idle(process.pid)
            cpu = cpu_seconds(process.pid) - cpu_before
            wall = time.monotonic() - window_start
        finally:
            stop_process(process)
        table = self._read_output()
        if table.pop(MARKER_PREFIX, None) is None:
            raise RuntimeError("sfacctd's output lacks the marker prefix: its last buffer was not flushed")
        packets = sum(p for p, _ in table.values())
        nbytes = sum(b for _, b in table.values())
        return Count(packets, nbytes, cpu, wall_s=wall), table

    def _read_output(self) -> dict[str, tuple[int, int]]:
        """prefix → (packets, bytes), summed over every purge written to the file."""
        table: dict[str, tuple[int, int]] = {}
        for line in self.output.read_text().splitlines():
            parts = line.split(",")
            if len(parts) != 4 or not parts[2].isdigit():
                continue  # header lines
            prefix = f"{parts[0]}/{parts[1]}"
            packets, nbytes = table.get(prefix, (0, 0))
            table[prefix] = (packets + int(parts[2]), nbytes + int(parts[3]))
        return table


def push_markers(port: int, datagrams: int = 400) -> None:
    """Marker samples behind the stream: they fill and push out sfacctd's last 64 KB buffer."""
    spec = FlowSampleSpec(src="198.51.100.1", dst="192.0.2.77", frame_length=100, sampling_rate=1)
    datagram = encode_datagram(MARKER_AGENT, 0, 1, 1, [spec] * 7)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for sent in range(datagrams):
            sock.sendto(datagram, ("127.0.0.1", port))
            if sent % 50 == 49:
                time.sleep(0.01)  # gently: these must not be dropped


def compare_prefixes(sfacctd: dict[str, tuple[int, int]], topfib: dict[str, float]) -> str:
    """Per-prefix IPv4 byte totals: how many agree exactly, the worst relative difference."""
    v4_sf = {p: b for p, (_, b) in sfacctd.items() if ":" not in p and p != "0.0.0.0/0"}
    v4_tf = {p: b for p, b in topfib.items() if ":" not in p and p != "unrouted"}
    both = v4_sf.keys() & v4_tf.keys()
    equal = sum(1 for p in both if abs(v4_sf[p] - v4_tf[p]) < 0.5)
    worst = max((abs(v4_sf[p] - v4_tf[p]) / max(v4_sf[p], 1) for p in both), default=0.0)
    only_sf, only_tf = len(v4_sf.keys() - both), len(v4_tf.keys() - both)
    total_sf, total_tf = sum(v4_sf.values()), sum(v4_tf.values())
    return (
        f"IPv4 prefixes: sfacctd {len(v4_sf)}, topfib {len(v4_tf)}, in both {len(both)}, "
        f"equal bytes {equal} ({100.0 * equal / max(len(both), 1):.2f} %), worst relative difference "
        f"{worst:.2e}, only in sfacctd {only_sf}, only in topfib {only_tf}; routed IPv4 bytes "
        f"sfacctd/topfib = {total_sf / max(total_tf, 1):.6f}"
    )
