"""Helpers for the fault tests: a FIB watcher that remembers its peak, ``topfib run`` as a
subprocess against the lab, and a redis-server that keeps its data across a restart.

Everything started here is ended by PID (or process group) only, never by name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.integration.lab import FibWatcher, Lab

AP_TOKEN = "tfb_fault-ap-token"
OPERATOR_TOKEN = "tfb_fault-operator-token"
VIEWER_TOKEN = "tfb_fault-viewer-token"
TOKENS = {AP_TOKEN: ("ap1", "ap"), OPERATOR_TOKEN: ("ops", "operator"), VIEWER_TOKEN: ("viewer", "viewer")}
AGENT = "192.0.2.200"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scale(default: int, env: str = "TOPFIB_FAULT_ROUTES") -> int:
    """Route count for a fault test: small in CI, full scale with e.g. TOPFIB_FAULT_ROUTES=30000."""
    return int(os.environ.get(env, default))


# --- the switch's FIB, with its peak ------------------------------------------------------------


class PeakWatcher(FibWatcher):
    """A :class:`FibWatcher` that also remembers the largest FIB per family it ever saw.

    Counts per family are kept as routes come and go (recounting 30k routes on each event would
    make the watcher itself the busiest process in a burst)."""

    def __init__(self, routes: dict[str, str]) -> None:
        super().__init__(routes)
        self.peak_v4 = 0
        self.peak_v6 = 0
        self.events = 0
        self._v6 = 0
        self.reset(routes)

    def reset(self, routes: dict[str, str]) -> None:
        super().reset(routes)
        self._v6 = sum(1 for prefix in routes if ":" in prefix)
        self._note()

    def _note(self) -> None:
        self.peak_v4 = max(self.peak_v4, len(self.routes) - self._v6)
        self.peak_v6 = max(self.peak_v6, self._v6)

    def apply(self, line: str) -> None:
        before = len(self.routes)
        prefix = super().apply(line)
        after = len(self.routes)
        if after == before or prefix is None:
            return
        self.events += 1
        if ":" in prefix:
            self._v6 += after - before
        if after > before:
            self._note()

    def count(self, family: int) -> int:
        return self._v6 if family == 6 else len(self.routes) - self._v6


def watch_fib_peak(lab: Lab) -> contextlib.AbstractAsyncContextManager[PeakWatcher]:
    """``lab.watch_fib`` (``ip monitor route`` in sw) with a peak per family: every route the kernel
    adds is counted at once, so a cap overshoot of even one route for a moment is seen."""
    return lab.watch_fib(PeakWatcher)


# --- redis-server that survives a restart with its data -----------------------------------------


class PersistentRedis:
    """redis-server with an append-only file fsynced on every write, as production runs it: a restart
    keeps what was acknowledged. stop() is SIGTERM by PID; start() reuses port and directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed")
        self._process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- topfib run as a subprocess -------------------------------------------------------------------


def topfib_executable() -> list[str]:
    script = Path(sys.executable).parent / "topfib"
    return [str(script)] if script.exists() else [sys.executable, "-m", "topfib.controller.cli.app"]


def write_config(lab: Lab, path: Path, *, cap_v4: int, cap_v6: int, store_url: str = "memory://",
                 runtime_dir: Path, loop_period_s: float = 0.2, api_port: int | None = None,
                 sflow_port: int | None = None, extra: str = "") -> Path:
    tokens = "".join(
        f'[[token]]\nname = "{name}"\nrole = "{role}"\nsha256 = "{hashlib.sha256(t.encode()).hexdigest()}"\n'
        for t, (name, role) in TOKENS.items())
    switch = lab.switch_config(fib_cap_ipv4=cap_v4, fib_cap_ipv6=cap_v6)
    path.write_text(f"""
[api]
listen = "127.0.0.1:{api_port or free_port()}"
rate_limit_per_s = 10000.0
rate_limit_burst = 10000
[collector]
sflow_listen = ["127.0.0.1:{sflow_port or free_port(socket.SOCK_DGRAM)}"]
receive_buffer_bytes = 1048576
[store]
url = "{store_url}"
[special_use]
documentation = false
[exabgp]
netns = "{lab.ctl}"
runtime_dir = "{runtime_dir}"
[[switch]]
name = "{switch.name}"
neighbor = "{switch.neighbor}"
local_address = "{switch.local_address}"
local_as = {switch.local_as}
peer_as = {switch.peer_as}
fib_cap_ipv4 = {cap_v4}
fib_cap_ipv6 = {cap_v6}
sflow_agents = ["{AGENT}"]
loop_period_s = {loop_period_s}
min_dwell_s = 0.0
max_requests_per_ap = 100000
{extra}
{tokens}""")
    return path


class TopfibProcess:
    """``topfib run --config FILE`` in the root namespace (its ExaBGP in the lab's ctl)."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        text = config_path.read_text()
        listen = text.split("[api]", 1)[1].split('listen = "', 1)[1].split('"', 1)[0]
        self.base_url = f"http://{listen}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*topfib_executable(), "run", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"topfib exited: {self.log()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"topfib API not up after {timeout_s} s: {self.log()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL topfib itself only (not its group): whatever else dies must die by itself."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=auth(token), timeout=10)


def host_in(prefix: str) -> str:
    """An address inside a lab /24 or /48 (or its covering /16 or /32)."""
    network = prefix.split("/")[0]
    if ":" in network:
        return network.rstrip(":") + "::99" if network.endswith("::") else network + "99"
    a, b, c, _ = network.split(".")
    return f"{a}.{b}.{c}.99"


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found
