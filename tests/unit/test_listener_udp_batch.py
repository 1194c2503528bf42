"""recvmmsg batch receive: payloads, source addresses of both families, truncation, empty queue."""

from __future__ import annotations

import socket

import pytest

from topfib.collector.flow.udp_batch import batch_receiver


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
