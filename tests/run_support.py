"""A real ``topfib run`` for tests that need no root: in-memory store, RIB preloaded from a small
pfx2as file, API and sFlow on free loopback ports, its ExaBGP dialling a loopback port where no
switch listens. Started in its own session and stopped by its PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from topfib.api.tokens import hash_token

# not documentation space (198.51.100.0/24, 2001:db8::/32, …): special-use filters may refuse it
PFX2AS = "185.10.20.0\t24\t64500\n185.10.21.0\t24\t64501\n2a0b:4000:1::\t48\t64502\n"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def topfib_command() -> list[str]:
    script = Path(sys.executable).parent / "topfib"
    return [str(script)] if script.exists() else [sys.executable, "-m", "topfib.controller.cli.app"]


@dataclass
class Running:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def write_config(work: Path, tokens: dict[str, tuple[str, str]]) -> tuple[Path, str]:
    """The config file and the API's base URL; ``tokens``: token → (name, role)."""
    (work / "rib.pfx2as").write_text(PFX2AS)
    api_port = free_port()
    entries = "".join(f'[[token]]\nname = "{name}"\nrole = "{role}"\nsha256 = "{hash_token(token)}"\n'
                      for token, (name, role) in tokens.items())
    config = work / "topfib.toml"
    config.write_text(f"""
[api]
listen = "127.0.0.1:{api_port}"
[collector]
sflow_listen = ["127.0.0.1:{free_port(socket.SOCK_DGRAM)}"]
[store]
url = "memory://"
[exabgp]
runtime_dir = "{work / 'run'}"
[[switch]]
name = "edge1"
neighbor = "127.0.0.2"
local_address = "127.0.0.1"
bgp_port = {free_port()}
local_as = 65000
peer_as = 65000
fib_cap_ipv4 = 1000
fib_cap_ipv6 = 100
loop_period_s = 0.2
rib_file = "{work / 'rib.pfx2as'}"
{entries}""")
    return config, f"http://127.0.0.1:{api_port}"


@contextmanager
def running_topfib(work: Path, tokens: dict[str, tuple[str, str]], *args: str) -> Iterator[Running]:
    """``topfib run --config … ARGS`` until the context ends (SIGTERM, then SIGKILL to its group)."""
    config, url = write_config(work, tokens)
    log = work / "topfib.log"
    with log.open("wb") as out:
        process = subprocess.Popen([*topfib_command(), "run", "--config", str(config), *args],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    running = Running(url, process, log)
    try:
        _wait_ready(running)
        yield running
    finally:
        stop(running)


def stop(running: Running) -> None:
    process = running.process
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _wait_ready(running: Running, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert running.process.poll() is None, running.log.read_text()[-2000:]
        try:
            with urllib.request.urlopen(f"{running.url}/readyz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"topfib not ready: {running.log.read_text()[-2000:]}")
