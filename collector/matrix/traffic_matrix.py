"""The traffic matrix: bytes and packets per interval by (switch, input interface, BGP next-hop,
peer destination ASN), like pmacct's print plugin keyed on ``peer_src_ip, in_iface, peer_dst_ip,
dst_as``.

The collector's accounting thread calls :meth:`TrafficMatrix.add` once per switch and batch; the
service calls :meth:`TrafficMatrix.roll` every interval (and :meth:`TrafficMatrix.flush` on
shutdown) to close finished intervals, which it hands to ``topfib.collector.matrix.writer``; the API reads
the last ``keep_intervals`` closed ones. Intervals are aligned to wall-clock multiples of
``interval_s``; an interval closes ``close_delay_s`` after its end, so a batch stamped just before a
boundary but accounted just after still lands in its own interval. A batch later than that is
counted in the oldest open interval (``topfib_matrix_late_samples_total``) so totals still add up.

Each switch's table in an interval (``topfib.collector.matrix.table``) tracks a bounded number of keys;
traffic of further keys goes to an ``other`` row, and when an interval closes its smallest rows are
folded into ``other`` too, so a closed interval has at most ``max_rows`` rows per switch, "other"
included.

Metrics:

- ``topfib_matrix_intervals_closed_total``: intervals closed (empty ones included)
- ``topfib_matrix_other_samples_total{switch}``: flow samples counted in an "other" row
- ``topfib_matrix_late_samples_total{switch}``: flow samples that arrived after their interval closed
- ``topfib_matrix_rows{switch}``: rows of the switch in the last closed interval
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from topfib.collector.common.metrics import REGISTRY, Registry
from topfib.collector.matrix.table import CellTable, group_batch


@dataclass(frozen=True, slots=True)
class MatrixRow:
    """One cell of the matrix. The ``other`` row has no key: its fields are None."""

    switch: str
    input_if: int | None
    next_hop: str | None  # None: unrouted (no BGP path) or the "other" row
    peer_asn: int | None
    bytes: float
    packets: float
    samples: int
    other: bool = False


@dataclass(frozen=True, slots=True)
class MatrixInterval:
    """A closed interval ``[start, end)`` (Unix seconds, UTC); ``complete`` is False when the
    matrix did not see all of it (started or was flushed part-way through)."""

    start: int
    end: int
    complete: bool
    rows: tuple[MatrixRow, ...]

    def switch_rows(self, switch: str) -> tuple[MatrixRow, ...]:
        return tuple(row for row in self.rows if row.switch == switch)


def monotonic_to_wall(now: float) -> float:
    """``time.monotonic()`` reading → Unix time (follows wall-clock steps as they happen)."""
    return now + (time.time() - time.monotonic())


def _identity(now: float) -> float:
    return now


def _table_rows(table: CellTable, switch: str) -> list[MatrixRow]:
    """A table's cells, largest first, at most ``max_rows`` with the "other" row (no change made)."""
    order = table.order()
    other_bytes, other_packets, other_samples = table.other_bytes, table.other_packets, table.other_samples
    if other_samples or len(order) > table.max_rows:
        order, folded = order[: table.max_rows - 1], order[table.max_rows - 1:]
        other_bytes += float(table.bytes[folded].sum())
        other_packets += float(table.packets[folded].sum())
        other_samples += int(table.samples[folded].sum())
    rows = []
    for row, nbytes, packets, samples in zip(order.tolist(), table.bytes[order].tolist(),
                                             table.packets[order].tolist(), table.samples[order].tolist(),
                                             strict=True):
        input_if, next_hop, peer_asn = table.key(row)
        rows.append(MatrixRow(switch, input_if, next_hop, peer_asn, nbytes, packets, samples))
    if other_samples:
        rows.append(MatrixRow(switch, None, None, None, other_bytes, other_packets, other_samples, True))
    return rows


class TrafficMatrix:
    """Per-interval traffic by (switch, input interface, next-hop, peer ASN). Thread-safe.

    ``to_wall`` turns the ``now`` passed to :meth:`add`, :meth:`roll` and :meth:`flush` into Unix
    time (:func:`monotonic_to_wall` when those are ``time.monotonic()`` readings).
    """

    def __init__(
        self,
        interval_s: int = 60,
        max_rows: int = 10_000,
        keep_intervals: int = 60,
        close_delay_s: float = 2.0,
        to_wall: Callable[[float], float] = _identity,
        registry: Registry = REGISTRY,
    ) -> None:
        if interval_s < 1 or max_rows < 1 or keep_intervals < 1 or close_delay_s < 0:
            raise ValueError("interval_s, max_rows and keep_intervals must be positive, close_delay_s >= 0")
        self.interval_s = interval_s
        self.max_rows = max_rows
        self.keep_intervals = keep_intervals
        self.close_delay_s = close_delay_s
        self._to_wall = to_wall
        self._lock = threading.Lock()
        self._open: dict[int, dict[str, CellTable]] = {}
        self._closed: deque[MatrixInterval] = deque(maxlen=keep_intervals)
        self._closed_until: int | None = None  # intervals starting before this are closed
        self._first_seen: float | None = None  # wall time of the first add/roll: earlier is unseen
        self._gauged_switches: set[str] = set()
        self._m_closed = registry.counter("topfib_matrix_intervals_closed_total",
                                          "Traffic matrix intervals closed (empty ones included).")
        self._m_other = registry.counter(
            "topfib_matrix_other_samples_total",
            "Flow samples counted in a traffic matrix 'other' row (matrix.max_rows reached), by switch.",
            ("switch",),
        )
        self._m_late = registry.counter(
            "topfib_matrix_late_samples_total",
            "Flow samples accounted after their traffic matrix interval had closed (counted in the "
            "oldest open one), by switch.",
            ("switch",),
        )
        self._m_rows = registry.gauge("topfib_matrix_rows",
                                      "Rows of the switch in the last closed traffic matrix interval.",
                                      ("switch",))

    def align(self, wall: float) -> int:
        """Start of the interval holding Unix time ``wall``."""
        return math.floor(wall / self.interval_s) * self.interval_s

    def add(
        self,
        switch: str,
        input_if: NDArray[np.uint32],
        next_hop_ids: NDArray[np.int64],
        next_hops: Sequence[str],
        peer_asn: NDArray[np.uint32],
        nbytes: NDArray[np.float64],
        packets: NDArray[np.float64],
        now: float,
    ) -> None:
        """Account one batch of one switch: arrays per sample; ``next_hop_ids`` index ``next_hops``
        (-1: unrouted); ``peer_asn`` 0: unknown; bytes and packets already scaled by sampling."""
        count = len(nbytes)
        if not (len(input_if) == len(next_hop_ids) == len(peer_asn) == len(packets) == count):
            raise ValueError("matrix.add: per-sample arrays differ in length")
        if not count:
            return
        cells = group_batch(input_if, next_hop_ids, next_hops, peer_asn, nbytes, packets)
        wall = self._to_wall(now)
        start = self.align(wall)
        with self._lock:
            if self._first_seen is None:
                self._first_seen = wall
            if self._closed_until is not None and start < self._closed_until:
                start = self._closed_until
                self._m_late.inc(count, switch=switch)
            tables = self._open.setdefault(start, {})
            table = tables.get(switch)
            if table is None:
                table = tables[switch] = CellTable(self.max_rows)
            table.add(cells)

    def roll(self, now: float) -> list[MatrixInterval]:
        """Close the intervals that ended ``close_delay_s`` or more ago; returns them, oldest first
        (empty intervals included, at most ``keep_intervals`` of them after a long gap)."""
        wall = self._to_wall(now)
        return self._close_before(self.align(wall - self.close_delay_s), wall)

    def flush(self, now: float) -> list[MatrixInterval]:
        """Close everything, the running interval included (marked incomplete): for shutdown."""
        wall = self._to_wall(now)
        return self._close_before(self.align(wall) + self.interval_s, wall)

    def seconds_until_next_roll(self, now: float) -> float:
        """How long until :meth:`roll` has another interval to close."""
        wall = self._to_wall(now)
        due = self.align(wall - self.close_delay_s) + self.interval_s + self.close_delay_s
        return max(0.0, due - wall)

    def closed(self) -> list[MatrixInterval]:
        """The closed intervals kept in memory, oldest first."""
        with self._lock:
            return list(self._closed)

    def last_closed(self) -> MatrixInterval | None:
        with self._lock:
            return self._closed[-1] if self._closed else None

    def closed_at(self, start: int) -> MatrixInterval | None:
        with self._lock:
            return next((interval for interval in self._closed if interval.start == start), None)

    def current(self, now: float) -> MatrixInterval:
        """A snapshot of the running interval so far (incomplete)."""
        wall = self._to_wall(now)
        start = self.align(wall)
        with self._lock:
            if self._closed_until is not None:
                start = max(start, self._closed_until)
            tables = self._open.get(start, {})
            rows = [row for switch in sorted(tables) for row in _table_rows(tables[switch], switch)]
        return MatrixInterval(start, start + self.interval_s, False, tuple(rows))

    def _close_before(self, boundary: int, wall: float) -> list[MatrixInterval]:
        with self._lock:
            if self._first_seen is None:
                self._first_seen = wall
            if self._closed_until is None:
                self._closed_until = min([self.align(self._first_seen), *self._open])
            if boundary <= self._closed_until:
                return []
            detached = {start: tables for start, tables in self._open.items() if start < boundary}
            for start in detached:
                del self._open[start]
            # Every interval since the last close, empty ones too (a time series without holes),
            # but no more empty ones than are kept, after a long gap or a clock step.
            earliest = max(self._closed_until, boundary - self.keep_intervals * self.interval_s)
            starts = sorted(set(range(earliest, boundary, self.interval_s)) | set(detached))
            first_seen = self._first_seen
            self._closed_until = boundary
        closed = [self._build(start, detached.get(start, {}), first_seen, wall) for start in starts]
        with self._lock:
            self._closed.extend(closed)
        self._m_closed.inc(len(closed))
        self._set_row_gauges(closed[-1])
        return closed

    def _set_row_gauges(self, last: MatrixInterval) -> None:
        counts: dict[str, int] = {}
        for row in last.rows:
            counts[row.switch] = counts.get(row.switch, 0) + 1
        self._gauged_switches.update(counts)
        for switch in self._gauged_switches:
            self._m_rows.set(counts.get(switch, 0), switch=switch)

    def _build(self, start: int, tables: dict[str, CellTable], first_seen: float,
               wall: float) -> MatrixInterval:
        end = start + self.interval_s
        rows: list[MatrixRow] = []
        for switch in sorted(tables):
            switch_rows = _table_rows(tables[switch], switch)
            if switch_rows and switch_rows[-1].other:
                self._m_other.inc(switch_rows[-1].samples, switch=switch)
            rows.extend(switch_rows)
        return MatrixInterval(start, end, start >= first_seen and end <= wall, tuple(rows))
