"""The flow receiver: sFlow and NetFlow/IPFIX datagrams received in batches, handed to the Collector.

A receiver thread drains the sockets (non-blocking ``recvfrom`` in a loop after each poll) and
feeds the decoder (C, ~60 ns/sample); every ``flush_interval_s`` or ``flush_datagrams`` datagrams,
whichever comes first, it hands the decoded batch to an accounting thread, which does the prefix
lookups and rate updates (merging batches that queued up while it was busy, so it catches up
with bigger, cheaper batches). Threads rather than the event loop: neither a long controller step
nor a slow accounting batch may leave the socket unread (at 10⁶ samples/s a 32 MB receive
buffer holds ~0.1 s of traffic). A full hand-over queue drops the batch, counted.

The constructor does no I/O; :meth:`FlowReceiver.start` binds (raising ``OSError`` if it cannot)
and starts the thread, :meth:`FlowReceiver.stop` stops it and flushes what was received.

IPv6 sockets are bound IPV6_V6ONLY, so ``0.0.0.0:6343`` and ``[::]:6343`` can both be listed and
IPv4 agents keep their plain addresses (never ``::ffff:a.b.c.d``).

Metrics: ``topfib_sflow_received_datagrams_total{listen}``, ``topfib_sflow_receive_errors_total{listen}``,
``topfib_sflow_socket_dropped_datagrams_total{listen}`` (kernel receive-queue overflows, read from
/proc/net/udp*), ``topfib_sflow_receive_buffer_bytes{listen}`` (the buffer the kernel granted).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import queue
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from topfib.collector.accounting.pipeline import Collector
from topfib.collector.common.batch import SampleBatch, merge_batches
from topfib.collector.common.log_budget import LogLimiter
from topfib.collector.common.metrics import REGISTRY, Registry
from topfib.collector.flow.udp_batch import BatchReceiver, batch_receiver

log = logging.getLogger(__name__)

MAX_DATAGRAM = 9216  # jumbo frame; sFlow agents send ≤ 1500 bytes by default
_DRAIN_LIMIT = 4096  # datagrams per socket per wake-up, so one busy socket cannot starve a flush
_SOCKET_DROPS_PERIOD_S = 5.0
_RECV_BATCH = 1024  # datagrams per recvmmsg: 9.4 MB of buffers per socket, 4 GIL round trips per drain
_MERGE_SAMPLES = 65536  # most samples merged into one accounting call
# Hand-overs: each accounting call has a fixed cost far above its ~0.3 ms of numpy calls measured
# alone (in `topfib run` the call runs with caches the listener and the other threads cooled, and
# wakes a thread): at 10⁵ samples/s the accounting thread cost 0.55 CPU-s per 10⁶ samples with
# 50-ms batches, 0.33 with 0.2-s ones, 0.23 with 0.5-s ones, and the listener less too. Half a
# second delays nothing that matters: rates decay over 30 s, and a matrix interval (60 s by default) may get
# up to that much of the previous one's last traffic. At high rates the datagram count hands over
# first (8192 datagrams: ~57k samples, 57 ms at 10⁶ samples/s).
FLUSH_INTERVAL_S = 0.5
FLUSH_DATAGRAMS = 8192
# Wake-up coalescing: after a drain that got fewer than _LINGER_BELOW datagrams, the thread waits
# up to _MAX_LINGER_S before polling again, so that each wake-up reads tens of datagrams, not one or
# two. A wake-up costs far more in service than its ~7 µs of Python (poll, recvmmsg, decoder call):
# ~0.1 ms a wake-up of ~30 datagrams measured in `topfib run` at 10⁵ samples/s (context switches,
# GIL hand-offs, caches the other threads cooled); a 2-ms linger made ~440 wake-ups a second there,
# a 4-ms one half as many. The wait is also kept under a quarter of what the smallest receive buffer
# holds at _PEAK_QUEUE_BYTES_PER_S (10⁶ samples/s of 7-sample datagrams, each charged 2.3 kB by the
# kernel; poll rounds it up to whole milliseconds), so it cannot overflow a buffer that would not
# overflow anyway.
_LINGER_BELOW = 256
_MAX_LINGER_S = 0.005
_PEAK_QUEUE_BYTES_PER_S = 330e6


@dataclass
class _Endpoint:
    listen: str
    sock: socket.socket
    batch: BatchReceiver | None = None  # recvmmsg where available
    received: int = 0
    reported_drops: int = field(default=0)
    reported_truncated: int = 0


def parse_listen(value: str) -> tuple[str, int]:
    """``"0.0.0.0:6343"`` / ``"[::]:6343"`` → (host, port); port 0 (any free port) allowed."""
    host, sep, port_text = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
        port = int(port_text)
    except ValueError:
        port = -1
    if not sep or not 0 <= port < 65536:
        raise ValueError(f"expected IP:PORT or [IPv6]:PORT, got {value!r}")
    return host, port


def open_udp_socket(listen: str, receive_buffer_bytes: int) -> tuple[socket.socket, int]:
    """A bound, non-blocking UDP socket for ``HOST:PORT`` and the receive buffer it got."""
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        granted = set_receive_buffer(sock, receive_buffer_bytes)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock, granted


def set_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for ``size`` bytes of receive buffer; root may exceed net.core.rmem_max (SO_RCVBUFFORCE)."""
    force = getattr(socket, "SO_RCVBUFFORCE", 33)
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except OSError:  # not root: capped at net.core.rmem_max
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    # Linux reports twice the requested size (it counts its bookkeeping overhead)
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)) // 2


def socket_drops(sock: socket.socket) -> int | None:
    """The kernel's drop counter for this UDP socket (/proc/net/udp 'drops'), None if not found."""
    inode = str(os.fstat(sock.fileno()).st_ino)
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as lines:
                next(lines, None)  # header
                for line in lines:
                    fields = line.split()
                    if len(fields) >= 13 and fields[9] == inode:
                        return int(fields[12])
        except OSError:
            continue
    return None


def linger_s(receive_buffer_bytes: int) -> float:
    """How long a wake-up that found little waits for more (see _MAX_LINGER_S): bounded by what a
    quarter of the receive buffer holds at the peak rate."""
    return min(_MAX_LINGER_S, receive_buffer_bytes / _PEAK_QUEUE_BYTES_PER_S / 4)


class FlowReceiver:
    """Receives flow datagrams (sFlow, and NetFlow/IPFIX with the mux) on ``listen`` addresses and feeds
    ``collector`` from a receiver thread."""

    def __init__(
        self,
        collector: Collector,
        listen: list[str],
        receive_buffer_bytes: int = 32 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        flush_datagrams: int = FLUSH_DATAGRAMS,
        max_queued_batches: int = 64,
        gil_switch_interval_s: float | None = 0.001,
        registry: Registry = REGISTRY,
    ) -> None:
        for item in listen:
            parse_listen(item)  # fail early on a bad address, without touching the network
        self.collector = collector
        self._gil_switch_interval_s = gil_switch_interval_s
        self._listen = list(listen)
        self._receive_buffer_bytes = receive_buffer_bytes
        self._clock = clock
        self._flush_interval_s = flush_interval_s
        self._flush_datagrams = flush_datagrams
        self._endpoints: list[_Endpoint] = []
        self._thread: threading.Thread | None = None
        self._accountant: threading.Thread | None = None
        self._batches: queue.Queue[tuple[SampleBatch, float] | None] = queue.Queue(max_queued_batches)
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._linger_s = _MAX_LINGER_S
        self._log = LogLimiter()
        self._m_received = registry.counter(
            "topfib_sflow_received_datagrams_total", "UDP datagrams received on sFlow sockets.", ("listen",)
        )
        self._m_errors = registry.counter(
            "topfib_sflow_receive_errors_total",
            f"Receive errors on sFlow sockets (datagrams over {MAX_DATAGRAM} bytes included: dropped).",
            ("listen",),
        )
        self._m_socket_drops = registry.counter(
            "topfib_sflow_socket_dropped_datagrams_total",
            "Datagrams the kernel dropped because the socket's receive buffer was full.",
            ("listen",),
        )
        self._m_internal = registry.counter(
            "topfib_sflow_internal_errors_total",
            "Datagrams or batches lost to an unexpected error in decoding or accounting (a bug).",
            ("stage",),
        )
        self._m_backlog = registry.counter(
            "topfib_sflow_backlog_dropped_samples_total",
            "Decoded flow samples dropped because accounting fell too far behind.",
        )
        self._m_buffer = registry.gauge(
            "topfib_sflow_receive_buffer_bytes", "Receive buffer granted by the kernel.", ("listen",)
        )

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) actually bound, e.g. to learn the port after listening on port 0."""
        return [ep.sock.getsockname()[:2] for ep in self._endpoints]

    @property
    def received(self) -> int:
        return sum(ep.received for ep in self._endpoints)

    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped on our sockets so far (receive buffer full)."""
        return sum(socket_drops(ep.sock) or 0 for ep in self._endpoints)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("listener already started")
        granted_sizes: list[int] = []
        try:
            for listen in self._listen:
                sock, granted = open_udp_socket(listen, self._receive_buffer_bytes)
                granted_sizes.append(granted)
                self._endpoints.append(
                    _Endpoint(listen, sock, batch_receiver(sock, max_datagram=MAX_DATAGRAM))
                )
                self._m_buffer.set(granted, listen=listen)
                if granted < self._receive_buffer_bytes:
                    log.warning(
                        "sFlow socket %s: receive buffer %d bytes, asked for %d (raise net.core.rmem_max)",
                        listen,
                        granted,
                        self._receive_buffer_bytes,
                    )
        except OSError:
            self._close_sockets()
            raise
        self._linger_s = linger_s(min(granted_sizes, default=self._receive_buffer_bytes))
        if self._gil_switch_interval_s is not None and sys.getswitchinterval() > self._gil_switch_interval_s:
            # Process-wide: while accounting (or anything else) computes, the receiver waits up to
            # one switch interval for the GIL after each socket call; 5 ms is long at 10⁵ datagrams/s.
            sys.setswitchinterval(self._gil_switch_interval_s)
        self._wake_r, self._wake_w = os.pipe()
        self._stopping.clear()
        self._accountant = threading.Thread(target=self._account_loop, name="sflow-accounting", daemon=True)
        self._accountant.start()
        self._thread = threading.Thread(target=self._run, name="sflow-listener", daemon=True)
        self._thread.start()
        log.info("sFlow listener on %s", ", ".join(f"{h}:{p}" for h, p in self.addresses))

    def stop(self) -> None:
        """Stop receiving, account what was received, close the sockets. Idempotent."""
        thread, accountant = self._thread, self._accountant
        if thread is None or accountant is None:
            return
        self._stopping.set()
        os.write(self._wake_w, b"x")
        thread.join()
        self._hand_over(self._clock(), block=True)
        self._batches.put(None)
        accountant.join()
        self._thread = self._accountant = None
        self._update_socket_drops()
        self._close_sockets()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._wake_r, self._wake_w = -1, -1

    def _close_sockets(self) -> None:
        for ep in self._endpoints:
            ep.sock.close()
        self._endpoints = []

    def _run(self) -> None:
        poller = select.poll()
        by_fd = {ep.sock.fileno(): ep for ep in self._endpoints}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        stop_poller = select.poll()  # the linger: a wait that stop() still ends at once
        stop_poller.register(self._wake_r, select.POLLIN)
        linger_ms = self._linger_s * 1000.0
        pending = 0
        next_flush = self._clock() + self._flush_interval_s
        next_drops = self._clock() + _SOCKET_DROPS_PERIOD_S
        while not self._stopping.is_set():
            timeout_ms = max(0.0, (next_flush - self._clock()) * 1000.0)
            drained = 0
            # nothing pending: nothing to flush, so sleep until a datagram (or the drop counters' turn)
            idle_ms = max(timeout_ms, (next_drops - self._clock()) * 1000.0)
            for fd, _ in poller.poll(timeout_ms if pending else idle_ms):
                endpoint = by_fd.get(fd)
                if endpoint is not None:
                    drained += self._drain(endpoint)
            pending += drained
            now = self._clock()
            if pending >= self._flush_datagrams or (now >= next_flush and pending):
                self._hand_over(now)
                pending = 0
            if now >= next_flush:
                next_flush = now + self._flush_interval_s
            if now >= next_drops:
                self._update_socket_drops()
                self._log.flush(now)
                self.collector.flush_logs(now)
                next_drops = now + _SOCKET_DROPS_PERIOD_S
            if 0 < drained < _LINGER_BELOW:
                stop_poller.poll(linger_ms)  # let more datagrams queue up before the next wake-up

    def _hand_over(self, now: float, block: bool = False) -> None:
        """Pass what was decoded since the last hand-over to the accounting thread."""
        batch = self.collector.take()
        try:
            self._batches.put((batch, now), block=block)
        except queue.Full:
            self._m_backlog.inc(batch.flow_samples)
            self._log.warn("backlog", now, f"accounting behind: dropped {batch.flow_samples} samples")

    def _account_loop(self) -> None:
        while True:
            first = self._batches.get()
            if first is None:
                return
            items = [first]
            samples = first[0].flow_samples
            stopping = False
            # merge what queued up meanwhile (bigger batches are cheaper), but only up to a size
            # whose numpy calls do not hold the GIL long enough to starve the receiver
            while samples < _MERGE_SAMPLES:
                try:
                    more = self._batches.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                items.append(more)
                samples += more[0].flow_samples
            self._account(items)
            if stopping:
                return

    def _account(self, items: list[tuple[SampleBatch, float]]) -> None:
        now = items[-1][1]
        try:
            self.collector.process(merge_batches([batch for batch, _ in items]), now)
        except Exception as exc:  # a bug in accounting must not stop accounting
            self._m_internal.inc(stage="accounting")
            self._log.warn("accounting", now, f"sFlow batch accounting failed, batch dropped: {exc!r}")

    def _drain(self, endpoint: _Endpoint) -> int:
        """Read everything queued on one socket (up to a limit) and decode it; returns datagrams read."""
        received, errors = self._receive_batch(endpoint) if endpoint.batch else self._receive_each(endpoint)
        count = len(received)
        endpoint.received += count
        if count:
            self._m_received.inc(count, listen=endpoint.listen)
            self._decode(received)
        if errors:
            self._m_errors.inc(errors, listen=endpoint.listen)
        return count

    @staticmethod
    def _receive_batch(endpoint: _Endpoint) -> tuple[list[tuple[bytes, str]], int]:
        assert endpoint.batch is not None
        received: list[tuple[bytes, str]] = []
        errors = 0
        while len(received) < _DRAIN_LIMIT:
            try:
                got = endpoint.batch.receive()
            except OSError:
                errors += 1
                if errors > 16:
                    break
                continue
            received += got
            if endpoint.batch.emptied:
                break
        return received, errors

    @staticmethod
    def _receive_each(endpoint: _Endpoint) -> tuple[list[tuple[bytes, str]], int]:
        recvfrom = endpoint.sock.recvfrom
        received: list[tuple[bytes, str]] = []
        append = received.append
        errors = 0
        while len(received) < _DRAIN_LIMIT:
            try:
                data, address = recvfrom(65535)  # no truncation flag here: take any size
            except BlockingIOError:
                break
            except OSError:
                errors += 1
                if errors > 16:
                    break
                continue
            append((data, address[0]))
        return received, errors

    def _decode(self, received: list[tuple[bytes, str]]) -> None:
        try:
            self.collector.feed_many(received)
        except Exception:
            # The decoder counts bad input itself, so this is a decoder bug: retry one by one
            # to lose only the datagram that triggers it.
            for data, exporter in received:
                try:
                    self.collector.feed(data, exporter)
                except Exception as exc:
                    self._m_internal.inc(stage="decoder")
                    self._log.warn("decoder", self._clock(), f"sFlow decoder failed on {exporter}: {exc!r}")

    def _update_socket_drops(self) -> None:
        for ep in self._endpoints:
            if ep.batch is not None and ep.batch.truncated > ep.reported_truncated:
                self._m_errors.inc(ep.batch.truncated - ep.reported_truncated, listen=ep.listen)
                ep.reported_truncated = ep.batch.truncated
            drops = socket_drops(ep.sock)
            if drops is not None and drops > ep.reported_drops:
                self._m_socket_drops.inc(drops - ep.reported_drops, listen=ep.listen)
                ep.reported_drops = drops
