"""topfib as the collector benchmarks measure it: the product (``topfib run``) and, as a
breakdown, the listener + pipeline alone (``bench.collector_sink``).

``TopfibRun`` is ``topfib run`` with one switch whose ``rib_file`` is the benchmark's table, its
ExaBGP child running and trying a BGP session towards a local port where nothing listens (the
session stays down, as on a switch not yet peered). What it accounted is read from its own
``/metrics``; its CPU is that of the whole process tree, ExaBGP included.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from bench.daemon_cpu import (
    cpu_by_process,
    cpu_by_thread,
    cpu_seconds,
    difference,
    free_port,
    free_udp_port,
    pinned,
    stop_process,
    wait_cpu_idle,
    wait_until,
)
from bench.sfacctd_daemon import Count

REPO = Path(__file__).resolve().parent.parent
SWITCH = "bench"
# accounted = every flow sample topfib took in, whatever became of it (routed or not)
ACCOUNTED = (
    "topfib_sflow_samples_total",
    "topfib_sflow_unknown_agent_samples_total",
    "topfib_sflow_non_ip_samples_total",
)
SOCKET_DROPS = "topfib_sflow_socket_dropped_datagrams_total"
BACKLOG_DROPS = "topfib_sflow_backlog_dropped_samples_total"


def accounted(metrics: dict[str, float]) -> float:
    return sum(metrics.get(name, 0.0) for name in ACCOUNTED)


def taken(metrics: dict[str, float]) -> float:
    """Samples topfib is done with: accounted, or dropped because accounting fell behind."""
    return accounted(metrics) + metrics.get(BACKLOG_DROPS, 0.0)


def udp_receive_queue(port: int) -> int:
    """Bytes waiting in the receive queue of the IPv4 UDP socket bound to ``port`` (/proc/net/udp)."""
    suffix = f":{port:04X}"
    with open("/proc/net/udp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(suffix):
                return int(fields[4].split(":")[1], 16)
    return 0


def metric_sums(text: str) -> dict[str, float]:
    """Prometheus text → metric name → sum over all its label sets."""
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0]
        try:
            sums[name] = sums.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return sums


def topfib_config(
    api_listen: str,
    sflow_port: int,
    rib_file: Path,
    agents: list[str],
    receive_buffer: int,
    workdir: Path,
    settings: Sequence[str],
) -> str:
    sections: dict[str, dict[str, str]] = {
        "api": {"listen": json.dumps(api_listen)},
        "collector": {
            "sflow_listen": json.dumps([f"127.0.0.1:{sflow_port}"]),
            "receive_buffer_bytes": str(receive_buffer),
        },
        "store": {"url": '"memory://"'},
        "exabgp": {"runtime_dir": json.dumps(str(workdir / "run"))},
        "switch": {
            "name": json.dumps(SWITCH),
            "neighbor": '"127.0.0.1"',
            "local_address": '"127.0.0.1"',
            "local_as": "65001",
            "peer_as": "65000",
            "bgp_port": str(free_port(socket.SOCK_STREAM)),  # nothing listens: the session stays down
            "fib_cap_ipv4": "30000",
            "fib_cap_ipv6": "5000",
            "sflow_agents": json.dumps(agents),
            "flow_sources": '["127.0.0.1"]',  # the sender's source; else the flow gate drops it all
            "rib_file": json.dumps(str(rib_file)),
        },
    }
    for setting in settings:
        key, _, value = setting.partition("=")
        section, _, name = key.strip().partition(".")
        if not (section and name and value):
            raise ValueError(f"--topfib-set {setting!r}: expected section.key=value")
        sections.setdefault(section, {})[name] = value.strip()
    text = ""
    for name, items in sections.items():
        text += f"[[{name}]]\n" if name == "switch" else f"[{name}]\n"  # switch: an array of tables
        text += "".join(f"{key} = {value}\n" for key, value in items.items())
    return text


class TopfibRun:
    """``topfib run --config`` pinned to ``core``; stop() ends it (and its ExaBGP) by PID."""

    def __init__(
        self,
        rib_file: Path,
        agents: list[str],
        receive_buffer: int,
        core: int,
        workdir: Path,
        settings: Sequence[str] = (),
    ) -> None:
        """``settings``: ``section.key=TOML value`` lines over the benchmark's config (e.g.
        ``matrix.enabled=false``, ``switch.loop_period_s=5.0``), to see what a part costs."""
        self.sflow_port = free_udp_port()
        self.api = f"http://127.0.0.1:{free_port(socket.SOCK_STREAM)}"
        self.log_path = workdir / "topfib.log"
        self.config = workdir / "topfib.toml"
        listen = self.api.removeprefix("http://")
        config = topfib_config(listen, self.sflow_port, rib_file, agents, receive_buffer, workdir, settings)
        self.config.write_text(config)
        self.sent_total = 0  # samples sent to it so far, to tell a slow stream from a lossy one
        self.accounted_at_start: float | None = None
        self.started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*pinned(core), sys.executable, "-m", "topfib.controller.cli.app", "run",
                 "--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )
        self.pid = self.process.pid

    def wait_started(self, timeout: float = 300.0) -> float:
        """Until the API answers and the start-up work (RIB load, LPM build) is over: seconds taken."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"topfib run exited: {self.log()[-2000:]}")
            try:
                if httpx.get(f"{self.api}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"topfib API not up after {timeout} s: {self.log()[-2000:]}")
            time.sleep(0.2)
        wait_cpu_idle(self.pid, timeout=max(deadline - time.monotonic(), 10.0), quiet_s=1.0, busy_below=0.1)
        return time.monotonic() - self.started

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def metrics(self) -> dict[str, float]:
        return metric_sums(httpx.get(f"{self.api}/metrics", timeout=10).text)

    def scrape_cost(self, scrapes: int = 5) -> float:
        """CPU seconds one /metrics scrape costs the tree (each measured stream includes at most a few)."""
        before = cpu_seconds(self.pid)
        for _ in range(scrapes):
            self.metrics()
        return (cpu_seconds(self.pid) - before) / scrapes

    def idle(self, seconds: float) -> tuple[float, dict[str, float]]:
        """CPU-s per s of the whole tree over ``seconds`` without traffic, and per process."""
        before, started = cpu_by_process(self.pid), time.monotonic()
        time.sleep(seconds)
        spent = difference(cpu_by_process(self.pid), before)
        elapsed = time.monotonic() - started
        return sum(spent.values()) / elapsed, {k: v / elapsed for k, v in spent.items()}

    def begin(self) -> tuple[float, dict[str, float], dict[str, float], float]:
        """The counters, then the CPU: the scrape's own cost stays outside the window."""
        before = self.metrics()
        if self.accounted_at_start is None:
            self.accounted_at_start = taken(before)
        return cpu_seconds(self.pid), cpu_by_thread(self.pid), before, time.monotonic()

    def finish(
        self, begun: tuple[float, dict[str, float], dict[str, float], float], sent_samples: int
    ) -> tuple[Count, dict[str, float]]:
        """Once everything sent so far is accounted (or the counters stop moving for seconds): the
        count, and the CPU seconds per thread of the topfib process over the stream.

        Scrapes are few (each costs topfib CPU, see :meth:`scrape_cost`): first the kernel's
        receive queue must be empty, then /metrics is read at doubling intervals; the window ends
        at the CPU reading taken just before the scrape that shows the stream complete."""
        cpu_before, threads_before, before, window_start = begun
        self.sent_total += sent_samples
        wait_until(lambda: udp_receive_queue(self.sflow_port) == 0, 60, "topfib's socket to drain", 0.01)
        pause, previous = 0.2, -1.0
        while True:
            time.sleep(pause)
            reading = cpu_seconds(self.pid), cpu_by_thread(self.pid), time.monotonic()
            current = self.metrics()
            total = taken(current) - (self.accounted_at_start or 0.0)
            if total != previous:
                first_seen = reading  # a lossy stream's window ends when its counters stopped
            if total >= self.sent_total or (total == previous and pause >= 3.0) or pause > 30:
                break  # complete, or nothing moved for seconds: the rest is lost
            previous, pause = total, pause * 2
        cpu_end, threads_end, end = first_seen
        drops = int(current.get(SOCKET_DROPS, 0.0) - before.get(SOCKET_DROPS, 0.0))
        lost = int(current.get(BACKLOG_DROPS, 0.0) - before.get(BACKLOG_DROPS, 0.0))
        count = Count(
            None,
            None,
            cpu_end - cpu_before,
            accounted(current) - accounted(before),
            drops,
            lost,
            end - window_start,
        )
        return count, difference(threads_end, threads_before)

    def stop(self) -> None:
        """SIGTERM (topfib stops its ExaBGP), then SIGKILL of the session it leads."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait()


class TopfibSink:
    """``bench.collector_sink``: the real listener + pipeline with the table, nothing else."""

    def __init__(
        self, port: int, receive_buffer: int, core: int, tables: tuple[Path, Path] | None = None
    ) -> None:
        self.port = port
        table_args = [] if tables is None else ["--v4-table", str(tables[0]), "--v6-table", str(tables[1])]
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
                *table_args,
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

    def begin(self) -> tuple[float, dict[str, Any], float]:
        return cpu_seconds(self.pid), self.command("snapshot"), time.monotonic()

    def finish(self, begun: tuple[float, dict[str, Any], float]) -> Count:
        cpu_before, before, window_start = begun
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
            wall_s=time.monotonic() - window_start,
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
