"""FlowReceiver over loopback UDP: batching, both families, flush triggers, failure handling."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable

import pytest

from topfib.collector.accounting.pipeline import Collector
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.collector.common.batch import SampleBatch
from topfib.collector.common.metrics import Registry
from topfib.collector.flow.receiver import (
    MAX_DATAGRAM,
    FlowReceiver,
    linger_s,
    open_udp_socket,
    parse_listen,
    set_receive_buffer,
    socket_drops,
)
from topfib.collector.flow.udp_batch import batch_receiver
from topfib.collector.rib.lpm import LpmTable


class RecordingDecoder:
    """Keeps what it is fed; each take() reports the datagrams fed since the last one."""

    def __init__(self, fail_on: bytes | None = None) -> None:
        self.fed: list[tuple[bytes, str]] = []
        self.calls: list[int] = []  # datagrams per feed_many call
        self.takes: list[int] = []
        self._since_take = 0
        self._fail_on = fail_on

    def feed(self, datagram: bytes, exporter: str) -> None:
        if datagram == self._fail_on:
            raise RuntimeError("decoder bug")
        self.fed.append((datagram, exporter))
        self._since_take += 1

    def feed_many(self, datagrams: list[tuple[bytes, str]]) -> None:
        if any(d == self._fail_on for d, _ in datagrams):
            raise RuntimeError("decoder bug")
        self.calls.append(len(datagrams))
        for datagram, exporter in datagrams:
            self.feed(datagram, exporter)

    def take(self) -> SampleBatch:
        self.takes.append(self._since_take)
        batch = SampleBatch(datagrams=self._since_take, flow_samples=self._since_take)
        self._since_take = 0
        return batch


def make_listener(
    listen: list[str], decoder: RecordingDecoder, registry: Registry, **kwargs: float
) -> FlowReceiver:
    collector = Collector(decoder, {}, lambda _: LpmTable(), PrefixRates(), registry)
    return FlowReceiver(
        collector,
        listen,
        receive_buffer_bytes=1 << 20,
        gil_switch_interval_s=None,  # leave the test process's GIL settings alone
        registry=registry,
        **kwargs,  # type: ignore[arg-type]
    )


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def send(payloads: list[bytes], host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as client:
        for payload in payloads:
            client.sendto(payload, (host, port))


@pytest.mark.parametrize("recvmmsg", [True, False])
def test_receives_ipv4_and_ipv6_and_flushes_on_stop(recvmmsg: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not recvmmsg:  # the portable recvfrom path
        monkeypatch.setattr("topfib.collector.flow.receiver.batch_receiver", lambda *args, **kwargs: None)
    decoder, registry = RecordingDecoder(), Registry()
    listener = make_listener(["127.0.0.1:0", "[::1]:0"], decoder, registry, flush_interval_s=60.0)
    listener.start()
    try:
        (v4_host, v4_port), (v6_host, v6_port) = listener.addresses
        send([b"four-%d" % i for i in range(50)], v4_host, v4_port)
        send([b"six-%d" % i for i in range(30)], v6_host, v6_port)
        wait_for(lambda: listener.received == 80)
    finally:
        listener.stop()
    assert sorted(decoder.fed) == sorted(
        [(b"four-%d" % i, "127.0.0.1") for i in range(50)] + [(b"six-%d" % i, "::1") for i in range(30)]
    )
    assert sum(decoder.takes) == 80  # everything reached accounting, the last part at stop
    assert listener.kernel_drops() == 0  # sockets closed: nothing to read
    assert listener.collector.totals.datagrams == 80
    received = registry.get("topfib_sflow_received_datagrams_total")
    assert received is not None
    assert received.value(listen="127.0.0.1:0") == 50
    assert received.value(listen="[::1]:0") == 30
    listener.stop()  # idempotent


def test_flushes_by_count_and_by_time_while_running() -> None:
    decoder = RecordingDecoder()
    listener = make_listener(["127.0.0.1:0"], decoder, Registry(), flush_interval_s=0.05, flush_datagrams=10)
    listener.start()
    try:
        host, port = listener.addresses[0]
        send([b"x"] * 3, host, port)
        wait_for(lambda: sum(decoder.takes) == 3)  # by time: 3 < 10 datagrams
        send([b"y"] * 100, host, port)
        wait_for(lambda: sum(decoder.takes) == 103)
    finally:
        listener.stop()
    assert max(decoder.takes) <= 100
    assert len([t for t in decoder.takes if t]) >= 2


def test_a_decoder_exception_is_counted_and_receiving_continues() -> None:
    decoder, registry = RecordingDecoder(fail_on=b"poison"), Registry()
    listener = make_listener(["127.0.0.1:0"], decoder, registry)
    listener.start()
    try:
        host, port = listener.addresses[0]
        send([b"ok1", b"poison", b"ok2"], host, port)
        wait_for(lambda: listener.received == 3)
    finally:
        listener.stop()
    assert [d for d, _ in decoder.fed] == [b"ok1", b"ok2"]
    errors = registry.get("topfib_sflow_internal_errors_total")
    assert errors is not None and errors.value(stage="decoder") == 1


def test_bind_failure_raises_and_leaves_nothing_running() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        listener = make_listener(["127.0.0.1:0", f"127.0.0.1:{port}"], RecordingDecoder(), Registry())
        with pytest.raises(OSError):
            listener.start()
        assert listener.addresses == []
        listener.stop()  # nothing to stop


def test_start_twice_is_an_error() -> None:
    listener = make_listener(["127.0.0.1:0"], RecordingDecoder(), Registry())
    listener.start()
    try:
        with pytest.raises(RuntimeError):
            listener.start()
    finally:
        listener.stop()


def test_constructor_is_inert_but_validates_addresses() -> None:
    listener = make_listener(["127.0.0.1:6343"], RecordingDecoder(), Registry())
    assert listener.addresses == []
    with pytest.raises(ValueError):
        make_listener(["not-an-address"], RecordingDecoder(), Registry())


def test_receive_buffer_is_granted_and_socket_drops_are_read() -> None:
    sock, granted = open_udp_socket("127.0.0.1:0", 8 << 20)
    try:
        if os.geteuid() == 0:  # SO_RCVBUFFORCE passes net.core.rmem_max
            assert granted == 8 << 20
            assert set_receive_buffer(sock, 3 << 20) == 3 << 20
        else:
            assert 0 < granted <= 8 << 20
        assert socket_drops(sock) == 0
    finally:
        sock.close()


def test_socket_drops_counts_kernel_overflows() -> None:
    sock, _ = open_udp_socket("127.0.0.1:0", 4096)  # tiny buffer, never read
    try:
        send([b"z" * 1000] * 200, *sock.getsockname()[:2])
        drops = socket_drops(sock)
        assert drops is not None and drops > 0
    finally:
        sock.close()


@pytest.mark.parametrize("value", ["127.0.0.1", "127.0.0.1:x", "[::1]:70000", "host:1", ":1"])
def test_parse_listen_rejects_bad_addresses(value: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(value)


def test_parse_listen_accepts_both_families() -> None:
    assert parse_listen("[::]:6343") == ("::", 6343)
    assert parse_listen("0.0.0.0:0") == ("0.0.0.0", 0)


class GatedCollector(Collector):
    """Accounting that waits for a gate (to back up the queue) and fails on request."""

    def __init__(self, decoder: RecordingDecoder, registry: Registry) -> None:
        super().__init__(decoder, {}, lambda _: LpmTable(), PrefixRates(), registry)
        self.gate = threading.Event()
        self.fail_next = False
        self.processed = 0

    def process(self, batch: SampleBatch, now: float) -> None:
        self.gate.wait(10.0)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("accounting bug")
        self.processed += batch.datagrams


def test_accounting_failure_is_counted_and_accounting_continues() -> None:
    registry = Registry()
    collector = GatedCollector(RecordingDecoder(), registry)
    collector.gate.set()
    collector.fail_next = True
    listener = FlowReceiver(
        collector, ["127.0.0.1:0"], flush_interval_s=0.02, gil_switch_interval_s=None, registry=registry
    )
    listener.start()
    try:
        host, port = listener.addresses[0]
        send([b"a"], host, port)
        wait_for(lambda: not collector.fail_next)
        send([b"b", b"c"], host, port)
        wait_for(lambda: collector.processed == 2)
    finally:
        listener.stop()
    errors = registry.get("topfib_sflow_internal_errors_total")
    assert errors is not None and errors.value(stage="accounting") == 1


def test_a_full_hand_over_queue_drops_batches_and_counts_them() -> None:
    registry = Registry()
    decoder = RecordingDecoder()
    collector = GatedCollector(decoder, registry)
    listener = FlowReceiver(
        collector,
        ["127.0.0.1:0"],
        flush_interval_s=0.01,
        max_queued_batches=1,
        gil_switch_interval_s=None,
        registry=registry,
    )
    listener.start()
    try:
        host, port = listener.addresses[0]
        for _ in range(6):  # six hand-overs while accounting is stuck: the queue holds one
            taken = len([t for t in decoder.takes if t])
            send([b"x"], host, port)
            wait_for(lambda taken=taken: len([t for t in decoder.takes if t]) > taken)  # type: ignore[misc]
    finally:
        collector.gate.set()
        listener.stop()
    dropped = registry.get("topfib_sflow_backlog_dropped_samples_total")
    assert dropped is not None
    assert dropped.value() >= 3  # at most two being accounted and one queued: the rest dropped
    assert collector.processed + dropped.value() == 6


def test_oversized_datagrams_are_counted_as_receive_errors() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        if batch_receiver(probe) is None:
            pytest.skip("recvmmsg not available: the recvfrom fallback takes any size")
    decoder, registry = RecordingDecoder(), Registry()
    listener = make_listener(["127.0.0.1:0"], decoder, registry)
    listener.start()
    try:
        host, port = listener.addresses[0]
        send([b"small", b"x" * (MAX_DATAGRAM + 1), b"small2"], host, port)
        wait_for(lambda: len(decoder.fed) == 2)
    finally:
        listener.stop()
    errors = registry.get("topfib_sflow_receive_errors_total")
    assert errors is not None and errors.value(listen="127.0.0.1:0") == 1
    assert [d for d, _ in decoder.fed] == [b"small", b"small2"]


def test_start_lowers_the_gil_switch_interval_only() -> None:
    original = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        collector = Collector(RecordingDecoder(), {}, lambda _: LpmTable(), PrefixRates(), Registry())
        listener = FlowReceiver(collector, ["127.0.0.1:0"], gil_switch_interval_s=0.002, registry=Registry())
        listener.start()
        listener.stop()
        assert sys.getswitchinterval() == pytest.approx(0.002)
        listener = FlowReceiver(collector, ["127.0.0.1:0"], gil_switch_interval_s=0.004, registry=Registry())
        listener.start()
        listener.stop()
        assert sys.getswitchinterval() == pytest.approx(0.002)
    finally:
        sys.setswitchinterval(original)


def test_the_linger_is_bounded_by_the_receive_buffer() -> None:
    assert linger_s(32 << 20) == linger_s(64 << 20) == 0.005  # the cap: ~700 datagrams at 10⁶ samples/s
    assert 0.003 < linger_s(4 << 20) < 0.005  # the default rmem_max: a quarter of what it holds at the peak
    assert 0 < linger_s(256 << 10) < 0.001  # a small buffer: a quarter of what it holds at the peak rate
    assert linger_s(1 << 20) == pytest.approx(4 * linger_s(256 << 10))


def test_a_wake_up_that_found_little_waits_so_the_next_reads_many(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("topfib.collector.flow.receiver.linger_s", lambda _: 0.5)
    decoder = RecordingDecoder()
    listener = make_listener(["127.0.0.1:0"], decoder, Registry())
    listener.start()
    try:
        host, port = listener.addresses[0]
        send([b"first"], host, port)
        wait_for(lambda: listener.received == 1)
        send([b"more-%d" % i for i in range(5)], host, port)  # arrive while it lingers
        wait_for(lambda: listener.received == 6)
    finally:
        listener.stop()
    assert decoder.calls == [1, 5]


def test_stop_ends_a_linger_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("topfib.collector.flow.receiver.linger_s", lambda _: 60.0)
    decoder = RecordingDecoder()
    listener = make_listener(["127.0.0.1:0"], decoder, Registry())
    listener.start()
    host, port = listener.addresses[0]
    send([b"one"], host, port)
    wait_for(lambda: listener.received == 1)
    began = time.monotonic()
    listener.stop()
    assert time.monotonic() - began < 30.0  # not the minute-long linger
    assert decoder.fed == [(b"one", "127.0.0.1")]
