"""``topfib run`` on loopback with a stand-in ExaBGP: for tests of the API's transport.

No lab namespaces: the API, its sockets and its limits are what is under test, so the switch's
ExaBGP is a shell that sleeps (started and stopped by topfib like the real one).
"""

from __future__ import annotations

import contextlib
import hashlib
import resource
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.integration.fault_support import TopfibProcess, free_port, topfib_executable

AP_TOKEN = "transport-ap-token"
VIEWER_TOKEN = "transport-viewer-token"


def standalone_config(tmp_path: Path, api_extra: str = "", api_port: int | None = None) -> Path:
    """A one-switch, in-memory config on a free loopback port; ``api_extra`` lines go under [api]."""
    stand_in = tmp_path / "stand-in-exabgp"
    stand_in.write_text("#!/bin/sh\nexec sleep 600\n")
    stand_in.chmod(0o755)
    tokens = "".join(
        f'[[token]]\nname = "{role}"\nrole = "{role}"\n'
        f'sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n'
        for token, role in ((AP_TOKEN, "ap"), (VIEWER_TOKEN, "viewer")))
    path = tmp_path / "topfib.toml"
    path.write_text(f"""
[api]
listen = "127.0.0.1:{api_port or free_port()}"
rate_limit_per_s = 1e9
rate_limit_burst = 1000000000
{api_extra}
[collector]
sflow_listen = ["127.0.0.1:{free_port(socket.SOCK_DGRAM)}"]
[exabgp]
executable = "{stand_in}"
runtime_dir = "{tmp_path / 'run'}"
[[switch]]
name = "edge1"
neighbor = "10.0.0.2"
local_address = "10.0.0.1"
local_as = 65000
peer_as = 65000
fib_cap_ipv4 = 16000
fib_cap_ipv6 = 4000
{tokens}""")
    return path


class LimitedTopfibProcess(TopfibProcess):
    """``topfib run`` under an open-file limit (soft and hard: it cannot raise it)."""

    def __init__(self, config_path: Path, log_path: Path, open_files: int) -> None:
        super().__init__(config_path, log_path)
        self.open_files = open_files

    def start(self) -> None:
        limit = (self.open_files, self.open_files)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*topfib_executable(), "run", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, limit))


@contextlib.contextmanager
def running_topfib(config: Path, *, healthy: bool = True,
                   open_files: int | None = None) -> Iterator[TopfibProcess]:
    """``topfib run`` with ``config``, stopped (SIGTERM by PID) on the way out."""
    log_path = config.with_suffix(".log")
    process = (TopfibProcess(config, log_path) if open_files is None
               else LimitedTopfibProcess(config, log_path, open_files))
    process.start()
    try:
        if healthy:
            process.wait_healthy()
        yield process
    finally:
        process.stop()


def api_address(process: TopfibProcess) -> tuple[str, int]:
    host, _, port = process.base_url.removeprefix("http://").rpartition(":")
    return host, int(port)
