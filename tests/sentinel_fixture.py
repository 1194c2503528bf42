"""A real Redis Sentinel deployment on loopback ports: one master, one replica, three sentinels.

Debian's ``redis-server`` and ``redis-sentinel`` (``redis-server --sentinel`` where the latter is
missing). The sentinels declare the master down after ``DOWN_AFTER_MS`` so a failover takes about
two seconds. Every process is started and ended by PID only; nothing persists to disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.redis_fixture import free_loopback_port

SERVICE = "topfib"
DOWN_AFTER_MS = 500
_READY_TIMEOUT_S = 20.0


def _executables() -> tuple[str, list[str]]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    sentinel = shutil.which("redis-sentinel")
    return server, [sentinel] if sentinel else [server, "--sentinel"]


def _ask(port: int, *command: str) -> object:
    with redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, decode_responses=True) as client:
        return client.execute_command(*command)


class SentinelDeployment:
    """Start with :meth:`start`, end with :meth:`stop`; :meth:`kill_master` fails the master."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.server, self.sentinel_command = _executables()
        self.ports = {"a": free_loopback_port(), "b": free_loopback_port()}
        self.sentinel_ports = [free_loopback_port() for _ in range(3)]
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.initial_master = "a"

    @property
    def url(self) -> str:
        sentinels = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{sentinels}/{SERVICE}/0"

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.directory / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def start_server(self, name: str, replica_of: int | None = None) -> None:
        data = self.directory / name
        data.mkdir(exist_ok=True)
        argv = [self.server, "--port", str(self.ports[name]), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(data), "--repl-diskless-sync-delay", "0"]
        if replica_of is not None:
            argv += ["--replicaof", "127.0.0.1", str(replica_of)]
        self._spawn(name, argv)

    def _start_sentinel(self, index: int) -> None:
        config = self.directory / f"sentinel{index}.conf"  # sentinels rewrite their config file
        config.write_text(
            f"port {self.sentinel_ports[index]}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.ports[self.initial_master]} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} 5000\n")
        self._spawn(f"sentinel{index}", [*self.sentinel_command, str(config)])

    def start(self) -> None:
        self.start_server("a")
        self.start_server("b", replica_of=self.ports["a"])
        # The replica first: a sentinel learns of replicas from the master's INFO, which it asks at
        # once and then every 10 s; started before the replica is linked it would wait those 10 s.
        replica_linked = self._wait(self._replica_linked, _READY_TIMEOUT_S)
        for index in range(3):
            self._start_sentinel(index)
        if not replica_linked or not self._wait(self._ready, _READY_TIMEOUT_S):
            self.stop()
            raise RuntimeError(f"sentinel deployment not ready; logs in {self.directory}")

    def _wait(self, condition: object, timeout_s: float) -> bool:
        assert callable(condition)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError, OSError):
                if condition():
                    return True
            time.sleep(0.05)
        return False

    def _replica_linked(self) -> bool:
        info = _ask(self.ports["b"], "INFO", "replication")
        return isinstance(info, dict) and info.get("master_link_status") == "up"

    def _ready(self) -> bool:
        if not self._replica_linked():
            return False
        for port in self.sentinel_ports:
            state = _ask(port, "SENTINEL", "MASTER", SERVICE)
            assert isinstance(state, dict)
            if int(state["num-slaves"]) < 1 or int(state["num-other-sentinels"]) < 2:
                return False
        return True

    def master_port(self) -> int | None:
        """The master's port as the first sentinel that answers reports it."""
        for port in self.sentinel_ports:
            with contextlib.suppress(redis.RedisError, OSError):
                address = _ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                if isinstance(address, list) and address:
                    return int(address[1])
        return None

    def name_of(self, port: int | None) -> str | None:
        return next((name for name, p in self.ports.items() if p == port), None)

    def kill_master(self) -> str:
        """SIGKILL the current master's process (by PID); its name."""
        name = self.name_of(self.master_port())
        assert name is not None, "no master known to the sentinels"
        process = self.processes.pop(name)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
        return name

    def wait_master_other_than(self, name: str, timeout_s: float) -> str | None:
        """The promoted server's name once a sentinel reports a master other than ``name``."""
        promoted: list[str] = []

        def changed() -> bool:
            now = self.name_of(self.master_port())
            if now is not None and now != name:
                promoted.append(now)
                return True
            return False

        return promoted[0] if self._wait(changed, timeout_s) else None

    def role(self, name: str) -> str:
        reply = _ask(self.ports[name], "ROLE")
        assert isinstance(reply, list)
        return str(reply[0])

    def wait_role(self, name: str, role: str, timeout_s: float) -> bool:
        return self._wait(lambda: self.role(name) == role, timeout_s)

    def pause(self, name: str) -> None:
        os.kill(self.processes[name].pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        os.kill(self.processes[name].pid, signal.SIGCONT)

    def stop(self) -> None:
        # the sentinels first: a server stopping must not start a failover
        in_order = sorted(self.processes.items(), key=lambda item: not item[0].startswith("sentinel"))
        for name, process in in_order:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGCONT)
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            del self.processes[name]


@pytest.fixture
def sentinel_deployment(tmp_path: Path) -> Iterator[SentinelDeployment]:
    deployment = SentinelDeployment(tmp_path)
    deployment.start()
    try:
        yield deployment
    finally:
        deployment.stop()
