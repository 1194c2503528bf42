"""topfib.api.transport.server in process, over loopback: TCP_NODELAY, the request deadline,
api.max_connections.

A tiny ASGI app stands in for topfib's (what is under test is the transport); the clients are
real sockets. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from starlette.types import Receive, Scope, Send

from topfib.api.metrics import ACCEPT_PAUSES, CONNECTIONS_DROPPED
from topfib.api.transport.server import ApiServer
from topfib.collector.common.log_budget import LogBudgetFilter
from topfib.controller.config import ApiConfig

REQUEST = b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n"
BIG_ANSWER_BYTES = 8 * 1024 * 1024


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    if scope["path"] == "/slow":
        await asyncio.sleep(0.6)  # longer than the tests' request deadline: the app's time is not counted
    if scope["path"] == "/echo":  # reads the whole body first, as topfib's POST routes do
        while (await receive()).get("more_body", False):
            pass
    if scope["path"] == "/big":  # more than loopback's socket buffers hold
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(BIG_ANSWER_BYTES).encode())]})
        await send({"type": "http.response.body", "body": b"x" * BIG_ANSWER_BYTES})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@asynccontextmanager
async def serving(max_connections: int = 100, read_timeout_s: float = 0.3) -> AsyncIterator[ApiServer]:
    # protocol 0, as the socket that hid the bug: asyncio sets TCP_NODELAY only on IPPROTO_TCP ones
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    api = ApiConfig(listen=f"127.0.0.1:{sock.getsockname()[1]}", request_read_timeout_s=read_timeout_s)
    server = ApiServer(app, api, None, max_connections)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield server
    finally:
        server.request_exit()
        await asyncio.wait_for(task, 10)


def port_of(server: ApiServer) -> int:
    assert server.acceptor is not None
    return int(server.acceptor._sock.getsockname()[1])


async def connect(server: ApiServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port_of(server))


async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes = REQUEST) -> bytes:
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    body = await asyncio.wait_for(reader.readexactly(2), 5)
    return head + body


async def closed_within(reader: asyncio.StreamReader, timeout_s: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), timeout_s) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


def test_accepted_connections_have_tcp_nodelay() -> None:
    async def body() -> None:
        async with serving() as server:
            reader, writer = await connect(server)
            assert (await ask(reader, writer)).endswith(b"ok")
            sockets = [c.transport.get_extra_info("socket") for c in server.server_state.connections]
            assert sockets and all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)
            writer.close()
    run(body)


def test_an_idle_server_ticks_once_a_second_and_exits_at_once_when_asked() -> None:
    async def body() -> None:
        async with serving() as server:
            ticks = 0
            on_tick = server.on_tick

            async def counted(counter: int) -> bool:
                nonlocal ticks
                ticks += 1
                return await on_tick(counter)

            server.on_tick = counted  # type: ignore[method-assign]
            await asyncio.sleep(2.5)
            assert 1 <= ticks <= 4  # uvicorn's own loop ticks 25 times in 2.5 s
            date = dict(server.server_state.default_headers)[b"date"]
            assert date  # the Date header is still kept fresh
            asked = asyncio.get_running_loop().time()
        # serving()'s exit calls request_exit() and waits for serve() to return
        assert asyncio.get_running_loop().time() - asked < 0.5
    run(body)


def test_a_client_trickling_its_request_is_closed_at_the_deadline() -> None:
    async def body() -> None:
        before = CONNECTIONS_DROPPED.value(reason="request_timeout")
        async with serving(read_timeout_s=0.3) as server:
            reader, writer = await connect(server)
            for byte in REQUEST[:4]:  # a byte every 50 ms: each would restart an idle timer
                writer.write(bytes([byte]))
                await asyncio.sleep(0.05)
            assert await closed_within(reader, 2.0)
            writer.close()
            assert server.acceptor is not None
            for _ in range(100):
                if server.acceptor.open_connections == 0:
                    break
                await asyncio.sleep(0.01)
            assert server.acceptor.open_connections == 0
        assert CONNECTIONS_DROPPED.value(reason="request_timeout") == before + 1
    run(body)


def test_the_deadline_spares_kept_alive_clients_and_slow_answers() -> None:
    async def body() -> None:
        async with serving(read_timeout_s=0.3) as server:
            reader, writer = await connect(server)
            for _ in range(3):  # each request well within the deadline, the connection older than it
                assert (await ask(reader, writer)).endswith(b"ok")
                await asyncio.sleep(0.2)
            slow = await ask(reader, writer, b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            assert slow.startswith(b"HTTP/1.1 200")
            assert (await ask(reader, writer)).endswith(b"ok")
            assert await closed_within(reader, 2.0)  # then silence: closed
            writer.close()
    run(body)


def test_pipelined_requests_are_all_answered_though_the_app_outlasts_the_deadline() -> None:
    async def body() -> None:
        async with serving(read_timeout_s=0.3) as server:
            reader, writer = await connect(server)
            slow = b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"
            writer.write(slow + REQUEST + slow)  # all at once: answered in turn, 1.2 s of app time
            for _ in range(3):
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                assert head.startswith(b"HTTP/1.1 200")
                assert await asyncio.wait_for(reader.readexactly(2), 5) == b"ok"
            writer.close()
    run(body)


def test_max_connections_pauses_accept_until_one_closes() -> None:
    async def body() -> None:
        before = ACCEPT_PAUSES.value(reason="max_connections")
        async with serving(max_connections=2, read_timeout_s=5.0) as server:
            held = [await connect(server) for _ in range(2)]
            for reader, writer in held:
                assert (await ask(reader, writer)).endswith(b"ok")
            reader, writer = await connect(server)  # completes in the kernel's backlog
            writer.write(REQUEST)
            try:
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.5)
                raise AssertionError("a third connection was served with api.max_connections = 2")
            except TimeoutError:
                pass
            assert server.acceptor is not None and server.acceptor.open_connections == 2
            held[0][1].close()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200")
            for _, w in (held[1], (reader, writer)):
                w.close()
        assert ACCEPT_PAUSES.value(reason="max_connections") > before
    run(body)


def test_log_budget_passes_one_line_per_message_and_interval() -> None:
    now = [0.0]
    budget = LogBudgetFilter(interval_s=60, budget=1, clock=lambda: now[0])

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", logging.WARNING, __file__, 1, msg, None, None)

    assert budget.filter(record("Invalid HTTP request received."))
    assert not any(budget.filter(record("Invalid HTTP request received.")) for _ in range(1000))
    assert budget.filter(record("another message"))
    now[0] = 61
    later = record("Invalid HTTP request received.")
    assert budget.filter(later)
    assert "1000 similar suppressed" in str(later.msg)


CHILD = """
import asyncio, logging, resource, socket, sys
from topfib.api.transport.server import ApiServer
from topfib.controller.config import ApiConfig
from tests.unit.test_api_server import app
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
api = ApiConfig(request_read_timeout_s=30.0)
asyncio.run(ApiServer(app, api, None, max_connections=100_000).serve(sockets=[sock]))
"""


def test_out_of_file_descriptors_pauses_accept_with_few_log_lines_and_recovers() -> None:
    """An open-file limit of 64 and 300 idle clients: accept fails with EMFILE. The server must
    not log per failed accept (asyncio's own loop wrote one traceback per pending connection per
    wake-up) and must serve again once clients leave."""
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    clients: list[socket.socket] = []
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # bound before listening: wait for serve() to listen
            try:
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        for _ in range(299):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(3.0)  # the server keeps failing to accept the ones past its limit meanwhile
        assert child.poll() is None, "the server died"
        for client in clients:
            client.close()
        clients.clear()
        deadline = time.monotonic() + 10
        answer = b""
        while time.monotonic() < deadline and not answer.startswith(b"HTTP/1.1 200"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as probe:
                probe.sendall(REQUEST)
                try:
                    answer = probe.recv(100)
                except OSError:
                    answer = b""
        assert answer.startswith(b"HTTP/1.1 200"), "not serving again after the clients left"
    finally:
        for client in clients:
            client.close()
        child.terminate()
        _, stderr = child.communicate(timeout=10)
    lines = stderr.splitlines()
    assert any("EMFILE" in line for line in lines), stderr[-2000:]
    assert len(lines) < 40, f"{len(lines)} log lines: {stderr[-2000:]}"


def test_the_open_file_limit_is_raised_to_the_hard_limit_and_bounds_max_connections() -> None:
    """In a child (limits are per process): soft 256 under hard 4096 is raised as far as 1024
    connections need; under a hard 256, api.max_connections 1024 becomes 256 less the reserve."""
    import subprocess
    import sys

    script = """
import resource, sys
from topfib.api.transport.server import RESERVED_FDS, connection_limit
resource.setrlimit(resource.RLIMIT_NOFILE, (256, int(sys.argv[1])))
limit = connection_limit(1024)
print(limit, resource.getrlimit(resource.RLIMIT_NOFILE)[0], RESERVED_FDS)
"""

    def run_child(hard: int) -> list[int]:
        out = subprocess.run([sys.executable, "-c", script, str(hard)], capture_output=True, text=True,
                             check=True, timeout=30).stdout
        return [int(word) for word in out.split()]

    limit, soft, reserved = run_child(4096)
    assert (limit, soft) == (1024, 1024 + reserved)
    limit, soft, reserved = run_child(256)
    assert (limit, soft) == (256 - reserved, 256)


def test_malformed_requests_do_not_write_a_log_line_each(caplog: pytest.LogCaptureFixture) -> None:
    """uvicorn warns once per unparsable request: a client could fill the disk with them."""
    caplog.set_level(logging.WARNING)  # uvicorn's loggers propagate: the server keeps log_config=None

    async def body() -> None:
        async with serving() as server:
            for _ in range(50):
                reader, writer = await connect(server)
                writer.write(b"NOT HTTP AT ALL\r\n\r\n")
                answer = await asyncio.wait_for(reader.read(), 5.0)  # to EOF: 400, then closed
                assert answer.startswith(b"HTTP/1.1 400")
                writer.close()

    run(body)
    invalid = [r for r in caplog.records if "Invalid HTTP request" in r.getMessage()]
    assert len(invalid) <= 1, len(invalid)
