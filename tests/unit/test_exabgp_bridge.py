"""exabgp/bridge.py as a real process: the test plays ExaBGP (pipes) and topfib (a unix
socket)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from topfib.controller.exabgp.config import BRIDGE_PATH
from topfib.controller.exabgp.link import parse_hello

TIMEOUT_S = 5.0


class Topfib:
    """A listening unix socket that accepts one bridge at a time and reads lines from it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.server.settimeout(TIMEOUT_S)
        self.conn: socket.socket | None = None
        self.buffer = b""

    def accept(self) -> str:
        self.conn, _ = self.server.accept()
        self.conn.settimeout(TIMEOUT_S)
        self.buffer = b""
        hello = self.readline()
        assert hello.startswith("#topfib-bridge "), hello
        return hello

    def readline(self) -> str:
        assert self.conn is not None
        while b"\n" not in self.buffer:
            chunk = self.conn.recv(65536)
            if not chunk:
                raise EOFError("bridge closed the socket")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()

    def send(self, text: str) -> None:
        assert self.conn is not None
        self.conn.sendall(text.encode())

    def drop(self) -> None:
        assert self.conn is not None
        self.conn.close()
        self.conn = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


def _start_bridge(sock_path: Path, buffer_bytes: int | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    if buffer_bytes is not None:
        env["TOPFIB_BRIDGE_BUFFER_BYTES"] = str(buffer_bytes)
    return subprocess.Popen([sys.executable, str(BRIDGE_PATH), str(sock_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env)


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "bridge.sock"


@pytest.fixture
def bridge(sock_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = _start_bridge(sock_path)
    yield proc
    _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


def _exabgp_says(proc: subprocess.Popen[bytes], *lines: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write("".join(line + "\n" for line in lines).encode())
    proc.stdin.flush()


def _exabgp_reads(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().decode().rstrip("\n")


def test_relays_both_ways_and_says_hello_with_its_pid(sock_path: Path,
                                                      bridge: subprocess.Popen[bytes]) -> None:
    topfib = Topfib(sock_path)
    try:
        hello = parse_hello(topfib.accept())
        assert hello == {"pid": bridge.pid, "pgid": os.getpgid(bridge.pid), "dropped": 0}
        _exabgp_says(bridge, '{"type": "state", "neighbor": {"state": "up"}}')
        assert topfib.readline() == '{"type": "state", "neighbor": {"state": "up"}}'
        topfib.send("neighbor 10.0.0.2 announce route 192.0.2.0/24 next-hop 10.0.0.9\n\n")
        assert _exabgp_reads(bridge) == "neighbor 10.0.0.2 announce route 192.0.2.0/24 next-hop 10.0.0.9"
        _exabgp_says(bridge, "done")
        assert topfib.readline() == "done"
    finally:
        topfib.close()


def test_drains_stdin_while_topfib_is_absent_and_counts_drops(sock_path: Path) -> None:
    proc = _start_bridge(sock_path, buffer_bytes=10_000)
    try:
        # 2 MB is far beyond a pipe's 64 KiB: this only returns if the bridge keeps reading.
        message = '{"type": "update", "pad": "' + "x" * 990 + '"}'
        started = time.monotonic()
        _exabgp_says(proc, *([message] * 2000))
        assert time.monotonic() - started < TIMEOUT_S
        time.sleep(0.2)
        topfib = Topfib(sock_path)
        try:
            hello = parse_hello(topfib.accept())
            kept = 10_000 // (len(message) + 1)
            assert hello["dropped"] == 2000 - kept
            assert [topfib.readline() for _ in range(kept)] == [message] * kept
            _exabgp_says(proc, '{"type": "after"}')
            assert topfib.readline() == '{"type": "after"}'
        finally:
            topfib.close()
    finally:
        _stop(proc)


def test_acks_owed_to_a_dead_connection_never_reach_the_next(sock_path: Path,
                                                           bridge: subprocess.Popen[bytes]) -> None:
    topfib = Topfib(sock_path)
    try:
        topfib.accept()
        topfib.send("cmd a1\ncmd a2\ncmd a3\n")
        assert [_exabgp_reads(bridge) for _ in range(3)] == ["cmd a1", "cmd a2", "cmd a3"]
        _exabgp_says(bridge, "done")
        assert topfib.readline() == "done"
        topfib.drop()
        topfib.accept()  # the bridge reconnects with backoff
        topfib.send("cmd b1\n")
        assert _exabgp_reads(bridge) == "cmd b1"
        # a2 and a3 are acked late, then b1: only b1's ack may reach the new connection.
        _exabgp_says(bridge, "done", "error", "error", '{"type": "marker"}')
        assert topfib.readline() == "error"
        assert topfib.readline() == '{"type": "marker"}'
    finally:
        topfib.close()


def test_unsolicited_ack_is_not_forwarded(sock_path: Path, bridge: subprocess.Popen[bytes]) -> None:
    topfib = Topfib(sock_path)
    try:
        topfib.accept()
        _exabgp_says(bridge, "done", '{"type": "marker"}')
        assert topfib.readline() == '{"type": "marker"}'
    finally:
        topfib.close()


def test_reconnects_after_topfib_restarts(sock_path: Path, bridge: subprocess.Popen[bytes]) -> None:
    first = Topfib(sock_path)
    first.accept()
    first.close()
    sock_path.unlink()
    _exabgp_says(bridge, '{"type": "while-away"}')
    time.sleep(0.3)
    second = Topfib(sock_path)
    try:
        second.accept()
        assert second.readline() == '{"type": "while-away"}'
    finally:
        second.close()


def test_exits_when_exabgp_closes_stdin(sock_path: Path, bridge: subprocess.Popen[bytes]) -> None:
    assert bridge.stdin is not None
    bridge.stdin.close()
    assert bridge.wait(timeout=TIMEOUT_S) == 0


def test_usage_error_without_socket_path() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TOPFIB_BRIDGE_SOCKET"}
    result = subprocess.run([sys.executable, str(BRIDGE_PATH)], env=env, capture_output=True,
                            timeout=TIMEOUT_S, check=False)
    assert result.returncode == 2
    assert b"usage" in result.stderr


def test_a_slow_exabgp_stdout_never_stops_the_stdin_drain(sock_path: Path,
                                                          bridge: subprocess.Popen[bytes]) -> None:
    """ExaBGP not reading our commands (full stdout pipe) must not stall its messages to topfib."""
    topfib = Topfib(sock_path)
    try:
        topfib.accept()
        assert topfib.conn is not None
        topfib.conn.setblocking(False)
        command = "neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri" + " 16.0.0.0/24" * 80
        payload = (command + "\n").encode() * 100
        sent, stalled_since = 0, None
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                sent += topfib.conn.send(payload)
                stalled_since = None
            except BlockingIOError:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 0.3:
                    break  # the bridge stopped reading commands: backpressure, not unbounded memory
                time.sleep(0.001)
        topfib.conn.settimeout(TIMEOUT_S)
        assert stalled_since is not None, "the bridge never pushed back"
        assert sent > 1024 * 1024  # it buffered well past the 64 KiB pipe before pushing back
        _exabgp_says(bridge, '{"type": "keepalive-time"}')
        assert topfib.readline() == '{"type": "keepalive-time"}'
        assert _exabgp_reads(bridge) == command  # and the commands are still all there, in order
    finally:
        topfib.close()
