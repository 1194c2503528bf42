"""topfib's sFlow collector against pmacct's sfacctd, side by side on the same datagrams.

Both daemons hold the full table (~1M IPv4 + IPv6 prefixes) and run pinned to one core with
taskset (at nice -15, as is the sender, so other work on a shared machine does not starve them);
this process sends over loopback UDP from another core, at the same effective receive buffer for
both (sfacctd cannot exceed net.core.rmem_max).

- sfacctd: aggregate ``dst_net, dst_mask`` over the same prefixes (``networks_file``),
  ``sfacctd_renormalize: true``, print plugin (CSV written at exit; the memory plugin lost data at
  10⁵ samples/s here and burnt more CPU, so print is the stronger baseline), 64 KB plugin buffer,
  64 MB plugin pipe. Started afresh for every stream. Its core passes records to the plugin in
  64 KB buffers, so after each stream marker datagrams (to 192.0.2.0/24, a prefix only its
  networks_file has) push the last partial buffer through; the marker row proves it.
- topfib: ``bench.collector_sink``, the real listener + pipeline in a subprocess, kept running;
  its first stream (the warm-up) meets every prefix for the first time.

Per stream: sent vs counted (scaled packets, so loss anywhere in the daemon shows, not only socket
drops) and CPU seconds (utime+stime of all the daemon's processes and threads, from /proc) per
million samples. Per-prefix IPv4 byte totals of both are compared on the first stream both count
without loss (IPv6 is not compared: sfacctd's IPv6 networks_file is broken, pmacct#577).

    .venv/bin/python -m bench.bench_collector [--samples 1000000] [--rates 200000,400000,...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench.gen_traffic import V4_TABLE, V6_TABLE, Traffic, generate, load_pfx2as
from collector.replay import replay
from collector.sflow_encode import FlowSampleSpec, encode_datagram

WORKDIR = Path("/tmp/topfib-bench")
MARKER_PREFIX = "192.0.2.0/24"
MARKER_AGENT = "198.51.100.250"
CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- process helpers


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc/PID/task/*/children)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(child) for child in children.read().split())
        except OSError:
            continue
    return pids


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its descendants (all threads), in seconds."""
    ticks = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / CLK_TCK


NICE = -15  # both daemons and the sender: other work on a shared CI machine must not starve them


def pinned(core: int) -> list[str]:
    """Command prefix: run on ``core`` only, at a high scheduling priority (we are root)."""
    return ["nice", "-n", str(NICE), "taskset", "-c", str(core)]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(step)


def wait_cpu_idle(pid: int, timeout: float = 120.0, quiet_s: float = 0.5) -> None:
    """Until the process tree stops burning CPU (start-up table loading done)."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = cpu_seconds(pid)
        if now - last < 0.02:
            return
        last = now
    raise TimeoutError("daemon never went idle")


def stop_process(process: subprocess.Popen[Any], sig: int = signal.SIGINT) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ----------------------------------------------------------------------------- the two daemons


@dataclass
class Count:
    """What a daemon counted for one stream."""

    packets: float  # scaled by sampling rate
    bytes: float
    cpu_s: float
    samples: float | None = None  # exact sample count where the daemon reports one
    socket_drops: int | None = None  # kernel receive-queue drops, where known


class Sfacctd:
    """One sfacctd process per stream, print plugin: it writes its totals when it exits.

    (The memory plugin, which could be queried live, lost data at 10⁵ samples/s here and burnt
    more CPU per sample; the print plugin is the stronger baseline.)
    """

    def __init__(self, networks_file: Path, receive_buffer: int, core: int) -> None:
        self.networks_file = networks_file
        self.receive_buffer = receive_buffer
        self.core = core
        self.log = WORKDIR / "sfacctd.log"
        self.output = WORKDIR / "sfacctd.csv"
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

    def run(self, traffic: Traffic, rate: float) -> tuple[Count, dict[str, tuple[int, int]], int, float]:
        """Start, send the stream, push it through, stop: (count, table, samples sent, achieved rate)."""
        port = free_udp_port()
        conf = WORKDIR / "sfacctd.conf"
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
            cpu_before = cpu_seconds(process.pid)
            sent, achieved = send(traffic, port, rate)
            push_markers(port)
            wait_cpu_idle(process.pid)
            cpu = cpu_seconds(process.pid) - cpu_before
        finally:
            stop_process(process)
        table = self._read_output()
        if table.pop(MARKER_PREFIX, None) is None:
            raise RuntimeError("sfacctd's output lacks the marker prefix: its last buffer was not flushed")
        packets = sum(p for p, _ in table.values())
        nbytes = sum(b for _, b in table.values())
        return Count(packets, nbytes, cpu), table, sent, achieved

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


class TopfibSink:
    def __init__(self, port: int, receive_buffer: int, core: int, flow_gate: bool = True) -> None:
        self.port = port
        self.process = subprocess.Popen(
            [
                *pinned(core),
                sys.executable,
                "-m",
                "bench.collector_sink",
                "--listen",
                f"127.0.0.1:{port}",
                "--receive-buffer",
                str(receive_buffer),
                *([] if flow_gate else ["--no-flow-gate"]),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        line = self._stdout().readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"collector_sink did not start: {line!r}")
        self.ready = json.loads(line[6:])
        self.pid = int(self.ready["pid"])
        wait_cpu_idle(self.pid)

    def _stdout(self) -> IO[str]:
        assert self.process.stdout is not None
        return self.process.stdout

    def command(self, text: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self._stdout().readline())
        return answer

    def begin(self) -> tuple[float, dict[str, Any]]:
        return cpu_seconds(self.pid), self.command("snapshot")

    def finish(self, begun: tuple[float, dict[str, Any]]) -> Count:
        cpu_before, before = begun
        last: dict[str, Any] = {}
        stable = 0
        for _ in range(600):  # up to ~60 s for the backlog to drain
            current = self.command("snapshot")
            settled = current["datagrams"] == last.get("datagrams") and current["received"] == last.get(
                "received"
            )
            stable = stable + 1 if settled else 0
            if stable >= 3:
                break
            last = current
            time.sleep(0.1)
        cpu = cpu_seconds(self.pid) - cpu_before
        samples = sum(
            current[k] - before[k] for k in ("flow_samples", "unknown_agent_samples", "non_ip_samples")
        )
        return Count(
            current["packets"] - before["packets"],
            current["bytes"] - before["bytes"],
            cpu,
            samples,
            current["socket_drops"] - before["socket_drops"],
        )

    def dump(self, path: Path) -> dict[str, float]:
        self.command(f"dump {path}")
        sums: dict[str, float] = {}
        for line in path.read_text().splitlines():
            prefix, value = line.split("\t")
            sums[prefix] = float(value)
        return sums

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stop_process(self.process, signal.SIGKILL)


# ----------------------------------------------------------------------------- the run


def send(traffic: Traffic, port: int, rate: float) -> tuple[int, float]:
    """Send the whole stream at ``rate`` samples/s; returns (samples sent, achieved rate)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        sock.connect(("127.0.0.1", port))
        stats = replay(traffic.datagrams, sock.send, rate, range(1))
    return stats.samples, stats.samples / stats.seconds if stats.seconds else 0.0


def sender_ceiling(traffic: Traffic) -> float:
    """Samples/s this process can send unpaced to a socket nobody reads (the ladder's ceiling)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        return send(traffic, int(sink.getsockname()[1]), 0.0)[1]


@dataclass
class Trial:
    daemon: str
    target: float
    achieved: float
    sent_samples: int
    expected_packets: int
    count: Count

    @property
    def counted_samples(self) -> float:
        if self.count.samples is not None:
            return self.count.samples
        return self.sent_samples * self.count.packets / self.expected_packets

    @property
    def lossless(self) -> bool:
        return round(self.count.packets) == self.expected_packets

    @property
    def loss_pct(self) -> float:
        return 100.0 * (1.0 - self.count.packets / self.expected_packets)

    @property
    def cpu_per_million(self) -> float:
        return self.count.cpu_s / (self.counted_samples / 1e6) if self.counted_samples else float("inf")


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


def write_networks_file(path: Path) -> int:
    v4 = load_pfx2as(V4_TABLE, 4).prefix_strings(4)
    v6 = load_pfx2as(V6_TABLE, 6).prefix_strings(6)
    path.write_text("\n".join([*v4, *v6, MARKER_PREFIX]) + "\n")
    return len(v4) + len(v6)


def load_traffic(samples: int, seed: int) -> Traffic:
    cache = WORKDIR / f"traffic-{samples}-{seed}.npz"
    if cache.exists():
        return Traffic.load(cache)
    print(f"generating {samples} samples (cached in {cache}) ...", flush=True)
    traffic = generate(samples, seed=seed)
    traffic.save(cache)
    return traffic


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rates", default="250000,500000,750000,1000000,1250000")
    parser.add_argument("--warmup-rate", type=float, default=100_000)
    parser.add_argument("--daemon-core", type=int, default=1)
    parser.add_argument("--sender-core", type=int, default=0)
    parser.add_argument("--no-flow-gate", action="store_true", help="topfib accepts any source")
    args = parser.parse_args()
    if shutil.which("sfacctd") is None or shutil.which("pmacct") is None:
        print("sfacctd/pmacct not installed (Debian package pmacct)", file=sys.stderr)
        return 2
    WORKDIR.mkdir(parents=True, exist_ok=True)
    os.sched_setaffinity(0, {args.sender_core})
    os.nice(NICE)
    rates = [float(r) for r in args.rates.split(",")]

    traffic = load_traffic(args.samples, args.seed)
    sender_alone = sender_ceiling(traffic)
    expected_packets = int(traffic.scaled_packets.sum())
    n_prefixes = write_networks_file(WORKDIR / "networks.txt")
    # same effective receive buffer for both: sfacctd cannot exceed net.core.rmem_max
    receive_buffer = int(Path("/proc/sys/net/core/rmem_max").read_text())
    print(
        f"stream: {len(traffic.datagrams)} datagrams, {int(traffic.samples.sum())} samples; table "
        f"{n_prefixes} prefixes; receive buffer {receive_buffer} B each; daemons on core "
        f"{args.daemon_core}, sender on core {args.sender_core}",
        flush=True,
    )

    sfacctd = Sfacctd(WORKDIR / "networks.txt", receive_buffer, args.daemon_core)
    started = time.monotonic()
    topfib = TopfibSink(free_udp_port(), receive_buffer, args.daemon_core, flow_gate=not args.no_flow_gate)
    print(f"topfib sink ready in {time.monotonic() - started:.1f} s ({topfib.ready})", flush=True)
    print("sfacctd is started afresh for every stream; topfib's sink keeps running", flush=True)
    trials: list[Trial] = []
    try:
        # 1. warm-up (topfib's first pass is cold: every prefix is new to it)
        compared = False
        rounds = [("warm-up", args.warmup_rate)] + [("rate", rate) for rate in rates]
        for kind, rate in rounds:
            sf_count, sf_table, sent, achieved = sfacctd.run(traffic, rate)
            sf_trial = Trial("sfacctd", rate, achieved, sent, expected_packets, sf_count)
            before = {} if compared else topfib.dump(WORKDIR / "topfib-sums.tsv")
            begun = topfib.begin()
            sent, achieved_tf = send(traffic, topfib.port, rate)
            tf_trial = Trial("topfib", rate, achieved_tf, sent, expected_packets, topfib.finish(begun))
            if kind == "rate":
                trials += [sf_trial, tf_trial]
            for trial in (sf_trial, tf_trial):
                drops = (
                    "" if trial.count.socket_drops is None else f" (socket drops {trial.count.socket_drops})"
                )
                print(
                    f"{kind:7s} {trial.daemon:8s} target {trial.target:>9.0f}/s "
                    f"sent {trial.achieved:>9.0f}/s "
                    f"loss {trial.loss_pct:7.3f} %{drops} CPU {trial.count.cpu_s:6.2f} s = "
                    f"{trial.cpu_per_million:5.2f} CPU-s per 1M samples",
                    flush=True,
                )
            # 2. per-prefix totals, on the first stream both counted without loss
            if not compared and sf_trial.lossless and tf_trial.lossless:
                after = topfib.dump(WORKDIR / "topfib-sums.tsv")
                stream = {p: v - before.get(p, 0.0) for p, v in after.items()}
                print(compare_prefixes(sf_table, stream), flush=True)
                compared = True
        if not compared:
            print("per-prefix comparison skipped: no stream was counted without loss by both", flush=True)
    finally:
        topfib.stop()

    print("\nsummary (rates are what the sender achieved, not the targets)")
    print(f"  sender alone (unpaced, nobody reading): {sender_alone:,.0f} samples/s", flush=True)
    best: dict[str, float] = {}
    for daemon in ("sfacctd", "topfib"):
        ok = [t.achieved for t in trials if t.daemon == daemon and t.lossless]
        best[daemon] = max(ok, default=0.0)
        most = max((t.achieved for t in trials if t.daemon == daemon), default=0.0)
        print(
            f"  {daemon}: highest rate with zero loss {best[daemon]:,.0f} samples/s "
            f"(highest rate the sender reached towards it: {most:,.0f})"
        )
    ratios = []
    for rate in rates:
        pair = {t.daemon: t for t in trials if t.target == rate}
        sf, tf = pair["sfacctd"], pair["topfib"]
        ratio = tf.cpu_per_million / sf.cpu_per_million
        if sf.lossless and tf.lossless:
            ratios.append(ratio)
        print(
            f"  CPU-s per 1M samples topfib {tf.cpu_per_million:.2f} at {tf.achieved:>9,.0f}/s / sfacctd "
            f"{sf.cpu_per_million:.2f} at {sf.achieved:>9,.0f}/s = {ratio:.2f}"
            f"  (loss topfib {tf.loss_pct:.3f} %, sfacctd {sf.loss_pct:.3f} %)"
        )
    if ratios:
        ratios.sort()
        median = ratios[len(ratios) // 2]
        verdict = "meets" if max(ratios) <= 1.0 else "misses"
        print(
            f"  bar: topfib CPU per sample <= sfacctd's, full table: ratio median {median:.2f}, worst "
            f"{max(ratios):.2f} over {len(ratios)} streams both counted without loss: {verdict}"
        )
    if best["sfacctd"]:
        print(f"  zero-loss rate topfib / sfacctd = {best['topfib'] / best['sfacctd']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
