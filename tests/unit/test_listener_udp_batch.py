"""recvmmsg batch receive: payloads, source addresses of both families, truncation, empty queue;
each with the messages unpacked in C and in Python."""

from __future__ import annotations

import socket

import pytest

import topfib.collector.flow.udp_batch as udp_batch
from topfib.collector.flow.udp_batch import batch_receiver


@pytest.fixture(autouse=True, params=["c", "python"])
def unpacking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(udp_batch, "_unpack_mmsg", None)
    elif udp_batch._unpack_mmsg is None:
        pytest.skip("the C extension is not built")
    return str(request.param)


def bound(family: socket.AddressFamily, host: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


@pytest.mark.parametrize(("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_receives_payloads_and_sources_in_batches(family: socket.AddressFamily, host: str) -> None:
    with bound(family, host) as server, socket.socket(family, socket.SOCK_DGRAM) as client:
        receiver = batch_receiver(server, batch=8, max_datagram=2048)
        if receiver is None:
            pytest.skip("recvmmsg not available on this platform")
        assert receiver.receive() == []
        payloads = [bytes([i]) * (i * 97 % 1500 + 1) for i in range(20)]
        for payload in payloads:
            client.sendto(payload, server.getsockname()[:2])
        got: list[tuple[bytes, str]] = []
        for _ in range(10):
            batch = receiver.receive()
            assert len(batch) <= 8
            got += batch
        assert [payload for payload, _ in got] == payloads
        assert {source for _, source in got} == {host}


def test_datagrams_longer_than_the_buffer_are_counted_and_skipped() -> None:
    with (
        bound(socket.AF_INET, "127.0.0.1") as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client,
    ):
        receiver = batch_receiver(server, batch=4, max_datagram=100)
        if receiver is None:
            pytest.skip("recvmmsg not available on this platform")
        for payload in (b"a" * 50, b"b" * 101, b"c" * 100):
            client.sendto(payload, server.getsockname())
        assert [p for p, _ in receiver.receive()] == [b"a" * 50, b"c" * 100]
        assert receiver.truncated == 1


def test_a_closed_socket_raises_oserror() -> None:
    server = bound(socket.AF_INET, "127.0.0.1")
    receiver = batch_receiver(server)
    if receiver is None:
        pytest.skip("recvmmsg not available on this platform")
    server.close()
    with pytest.raises(OSError):
        receiver.receive()


def test_sources_keep_their_order_and_one_text_object_each() -> None:
    with (
        bound(socket.AF_INET, "127.0.0.1") as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second,
    ):
        first.bind(("127.0.0.2", 0))
        second.bind(("127.0.0.3", 0))
        receiver = batch_receiver(server, batch=16, max_datagram=64)
        if receiver is None:
            pytest.skip("recvmmsg not available on this platform")
        for i, client in enumerate([first, first, second, first, second, second]):
            client.sendto(b"%d" % i, server.getsockname())
        got = receiver.receive()
        first.sendto(b"again", server.getsockname())
        got += receiver.receive()
    assert got == [(b"0", "127.0.0.2"), (b"1", "127.0.0.2"), (b"2", "127.0.0.3"), (b"3", "127.0.0.2"),
                   (b"4", "127.0.0.3"), (b"5", "127.0.0.3"), (b"again", "127.0.0.2")]
    assert len({id(source) for _, source in got}) == 2  # interned: the flow gate compares by identity
