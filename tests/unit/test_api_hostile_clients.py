"""Hostile clients against topfib.api.transport.server over loopback: slow or endless heads and bodies,
pipelining,
request smuggling framings. Real sockets, the transport under test, every wait bounded."""

from __future__ import annotations

import asyncio
import socket

from tests.unit.test_api_server import REQUEST, ask, closed_within, connect, port_of, run, serving
from topfib.api.metrics import CONNECTIONS_DROPPED
from topfib.api.transport.http_protocol import MAX_HEAD_BYTES, MAX_PIPELINED


async def head_of_answer(reader: asyncio.StreamReader, timeout_s: float = 2.0) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout_s)


async def until_closed(reader: asyncio.StreamReader, timeout_s: float = 2.0) -> bytes:
    """Everything the server sends until it closes or resets (a timeout fails the test)."""
    data = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), timeout_s):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_an_endless_header_gets_431_and_the_connection_is_closed_long_before_the_deadline() -> None:
    async def body() -> None:
        before = CONNECTIONS_DROPPED.value(reason="head_too_large")
        async with serving(read_timeout_s=10.0) as server:
            reader, writer = await connect(server)
            writer.write(b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Pad: ")
            writer.write(b"a" * (MAX_HEAD_BYTES + 16 * 1024))  # never terminated
            answer = await until_closed(reader)
            assert answer.startswith(b"HTTP/1.1 431 ") and answer.count(b"HTTP/1.1") == 1
            writer.close()
        assert CONNECTIONS_DROPPED.value(reason="head_too_large") == before + 1
    run(body)


def test_many_small_headers_are_bounded_by_the_same_cap() -> None:
    async def body() -> None:
        async with serving(read_timeout_s=10.0) as server:
            reader, writer = await connect(server)
            count = MAX_HEAD_BYTES // 6 + 100
            writer.write(b"GET /ok HTTP/1.1\r\nHost: t\r\n" + b"a: b\r\n" * count)
            assert (await head_of_answer(reader)).startswith(b"HTTP/1.1 431 ")
            writer.close()
    run(body)


def test_a_big_head_under_the_cap_is_answered_even_in_small_reads() -> None:
    async def body() -> None:
        async with serving(read_timeout_s=10.0) as server:
            reader, writer = await connect(server)
            request = b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"a" * (MAX_HEAD_BYTES - 1024) + b"\r\n\r\n"
            for start in range(0, len(request), 3000):
                writer.write(request[start:start + 3000])
                await writer.drain()
                await asyncio.sleep(0.001)
            assert (await head_of_answer(reader)).startswith(b"HTTP/1.1 200 ")
            assert await asyncio.wait_for(reader.readexactly(2), 2) == b"ok"
            # and a request right after it, with a pipelined body in the same read, is unaffected
            big_body = b"x" * 60_000
            writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 60000\r\n\r\n"
                         + big_body + REQUEST)
            for _ in range(2):
                assert (await head_of_answer(reader)).startswith(b"HTTP/1.1 200 ")
                assert await asyncio.wait_for(reader.readexactly(2), 2) == b"ok"
            writer.close()
    run(body)


def test_a_slow_body_after_fast_headers_is_closed_at_the_deadline() -> None:
    async def body() -> None:
        async with serving(read_timeout_s=0.3) as server:
            reader, writer = await connect(server)
            writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n")
            for _ in range(4):  # a body byte every 100 ms
                writer.write(b"x")
                await asyncio.sleep(0.1)
            assert await closed_within(reader, 2.0)
            writer.close()
    run(body)


def test_a_chunked_body_that_never_ends_is_closed_at_the_deadline() -> None:
    async def body() -> None:
        async with serving(read_timeout_s=0.3) as server:
            reader, writer = await connect(server)
            writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(4):  # a valid one-byte chunk every 100 ms, never the last chunk
                writer.write(b"1\r\nx\r\n")
                await asyncio.sleep(0.1)
            assert await closed_within(reader, 2.0)
            writer.close()
    run(body)


def test_a_body_trickled_after_an_early_answer_does_not_stop_the_deadline() -> None:
    # uvicorn's idle timer is cancelled by every byte; the request deadline used to stop when the
    # body of a request already answered (401, 413 do not read it) completed: idle forever after
    async def body() -> None:
        async with serving(read_timeout_s=0.3) as server:
            reader, writer = await connect(server)
            writer.write(b"POST /ok HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n")
            assert (await head_of_answer(reader)).startswith(b"HTTP/1.1 200 ")
            assert await asyncio.wait_for(reader.readexactly(2), 2) == b"ok"
            writer.write(b"0123456789")  # the body nobody read; then nothing
            assert await closed_within(reader, 2.0)
            writer.close()
    run(body)


def test_a_pipelined_request_whose_body_never_comes_is_closed_at_the_deadline() -> None:
    async def body() -> None:
        async with serving(read_timeout_s=0.3) as server:
            reader, writer = await connect(server)
            writer.write(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"
                         b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n")
            assert (await head_of_answer(reader)).startswith(b"HTTP/1.1 200 ")
            assert await asyncio.wait_for(reader.readexactly(2), 2) == b"ok"
            assert await closed_within(reader, 2.0)
            writer.close()
    run(body)


def test_a_deep_pipeline_is_aborted_and_a_moderate_one_answered_in_full() -> None:
    # uvicorn queued every request parsed from a read: 12,000 tiny GETs in one 256 KiB write
    # held ~17 MB per connection
    slow = b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"

    async def body() -> None:
        before = CONNECTIONS_DROPPED.value(reason="pipeline_too_deep")
        async with serving(read_timeout_s=5.0) as server:
            reader, writer = await connect(server)
            writer.write(slow + REQUEST * MAX_PIPELINED)
            answers = b""
            while answers.count(b"HTTP/1.1 200 ") < MAX_PIPELINED + 1:
                answers += await asyncio.wait_for(reader.read(65536), 3)
            writer.close()
            reader, writer = await connect(server)
            writer.write(slow + REQUEST * 12_000)
            assert (await until_closed(reader)).count(b"HTTP/1.1 200 ") <= 1  # aborted, not queued
            writer.close()
        assert CONNECTIONS_DROPPED.value(reason="pipeline_too_deep") == before + 1
    run(body)


def test_a_client_that_never_reads_its_answer_is_closed_at_the_deadline() -> None:
    # the answer is queued in the transport, the response completes, the next request's deadline runs
    async def body() -> None:
        async with serving(read_timeout_s=0.3) as server:
            assert server.acceptor is not None
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port_of(server)))
            sock.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            for _ in range(150):
                await asyncio.sleep(0.02)
                if server.acceptor.open_connections == 0:
                    break
            assert server.acceptor.open_connections == 0
            sock.close()
    run(body)


def test_expect_100_continue_gets_the_interim_answer_then_the_final_one() -> None:
    async def body() -> None:
        async with serving(read_timeout_s=2.0) as server:
            reader, writer = await connect(server)
            writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                         b"Expect: 100-continue\r\n\r\n")
            assert (await head_of_answer(reader)).startswith(b"HTTP/1.1 100 ")
            writer.write(b"abcd")
            assert (await head_of_answer(reader)).startswith(b"HTTP/1.1 200 ")
            writer.close()
    run(body)


def test_http_1_0_without_keep_alive_is_answered_then_closed() -> None:
    async def body() -> None:
        async with serving(read_timeout_s=5.0) as server:
            reader, writer = await connect(server)
            answer = await ask(reader, writer, b"GET /ok HTTP/1.0\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"ok")
            assert await closed_within(reader, 1.0)
            writer.close()
    run(body)


SMUGGLING = [
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\nGET /ok HTTP/1.1\r\nHost: t\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +4\r\n\r\nabcd",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4;\x00\r\nabcd\r\n0\r\n\r\n",
    b"GET /ok HTTP/1.1\nHost: t\r\n\r\n\rGET /ok HTTP/1.1\r\n\r\n",
]


def test_ambiguous_framings_get_one_400_and_nothing_smuggled_behind_them() -> None:
    # llhttp (httptools) is strict: CL with TE, two lengths, a signed length, an unknown coding,
    # whitespace before the colon, NUL in a chunk extension, bare LF/CR all end the connection
    async def body() -> None:
        async with serving(read_timeout_s=5.0) as server:
            for attack in SMUGGLING:
                reader, writer = await connect(server)
                writer.write(attack)
                answers = (await until_closed(reader)).split(b"HTTP/1.1 ")[1:]
                assert len(answers) == 1 and answers[0].startswith(b"400 "), (attack, answers)
                writer.close()
    run(body)
