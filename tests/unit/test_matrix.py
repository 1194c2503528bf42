"""The traffic matrix: per-key sums, the row bound, interval alignment and closing."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Hashable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from topfib.collector.common.metrics import Registry
from topfib.collector.matrix.traffic_matrix import MatrixInterval, MatrixRow, TrafficMatrix

HOPS = ["192.0.2.1", "192.0.2.2", "2001:db8::1"]
Sample = tuple[int, int, int, int, int]  # input_if, next-hop id, peer ASN, bytes, packets

samples_st = st.lists(
    st.tuples(
        st.sampled_from([0, 1, 2, 7, 2**32 - 1]),
        st.integers(-1, len(HOPS) - 1),
        st.sampled_from([0, 64496, 65551, 2**32 - 1]),
        st.integers(0, 10**9),
        st.integers(1, 10**4),
    ),
    min_size=1,
    max_size=300,
)


def make(max_rows: int = 10_000, interval_s: int = 60, keep_intervals: int = 10,
         registry: Registry | None = None) -> TrafficMatrix:
    return TrafficMatrix(interval_s=interval_s, max_rows=max_rows, keep_intervals=keep_intervals,
                         close_delay_s=2.0, registry=registry or Registry())


def feed(matrix: TrafficMatrix, switch: str, samples: list[Sample], now: float) -> None:
    columns: list[tuple[int, ...]] = list(zip(*samples, strict=True)) if samples else [()] * 5
    matrix.add(
        switch,
        np.array(columns[0], np.uint32),
        np.array(columns[1], np.int64),
        HOPS,
        np.array(columns[2], np.uint32),
        np.array(columns[3], np.float64),
        np.array(columns[4], np.float64),
        now,
    )


def metric(registry: Registry, name: str) -> float:
    found = registry.get(name)
    assert found is not None
    return found.value(switch="edge1")


def sums_by(items: list[tuple[Hashable, float]]) -> dict[Hashable, float]:
    out: dict[Hashable, float] = defaultdict(float)
    for key, value in items:
        out[key] += value
    return dict(out)


def hop(hop_id: int) -> str | None:
    return HOPS[hop_id] if hop_id >= 0 else None


KEYS: dict[str, tuple[Callable[[Sample], Hashable], Callable[[MatrixRow], Hashable]]] = {
    "input_if": (lambda s: s[0], lambda r: r.input_if),
    "next_hop": (lambda s: hop(s[1]), lambda r: r.next_hop),
    "peer_asn": (lambda s: s[2], lambda r: r.peer_asn),
    "cell": (lambda s: (s[0], hop(s[1]), s[2]), lambda r: (r.input_if, r.next_hop, r.peer_asn)),
}


@settings(max_examples=60, deadline=None)
@given(samples=samples_st, cut=st.integers(0, 300))
def test_totals_by_any_key_equal_the_sums_of_the_inputs(samples: list[Sample], cut: int) -> None:
    matrix = make()
    feed(matrix, "edge1", samples[:cut], 1000.0)  # two batches: sums carry across adds
    feed(matrix, "edge1", samples[cut:], 1010.0)
    (interval,) = matrix.flush(1015.0)
    assert all(not row.other for row in interval.rows)
    for sample_key, row_key in KEYS.values():
        for field, index in (("bytes", 3), ("packets", 4)):
            expected = sums_by([(sample_key(s), s[index]) for s in samples])
            got = sums_by([(row_key(r), getattr(r, field)) for r in interval.rows])
            assert got == pytest.approx(expected)
    cells = [(r.input_if, r.next_hop, r.peer_asn) for r in interval.rows]
    assert len(cells) == len(set(cells))
    assert sum(r.samples for r in interval.rows) == len(samples)
    assert [r.bytes for r in interval.rows] == sorted((r.bytes for r in interval.rows), reverse=True)


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(samples_st, min_size=1, max_size=4), max_rows=st.integers(1, 8))
def test_rows_are_bounded_and_other_keeps_the_totals(batches: list[list[Sample]], max_rows: int) -> None:
    registry = Registry()
    matrix = make(max_rows=max_rows, registry=registry)
    for batch in batches:
        feed(matrix, "edge1", batch, 1000.0)
    (interval,) = matrix.flush(1015.0)
    samples = [s for batch in batches for s in batch]
    assert len(interval.rows) <= max_rows
    assert sum(r.bytes for r in interval.rows) == pytest.approx(sum(s[3] for s in samples))
    assert sum(r.packets for r in interval.rows) == pytest.approx(sum(s[4] for s in samples))
    assert sum(r.samples for r in interval.rows) == len(samples)
    true_bytes = sums_by([((s[0], hop(s[1]), s[2]), s[3]) for s in samples])
    for row in interval.rows:
        if row.other:
            assert row is interval.rows[-1]
            assert (row.input_if, row.next_hop, row.peer_asn) == (None, None, None)
        else:  # a key folded into "other" and seen again restarts: never more than its true sum
            assert row.bytes <= true_bytes[(row.input_if, row.next_hop, row.peer_asn)] + 1e-6
    other = [r.samples for r in interval.rows if r.other]
    assert metric(registry, "topfib_matrix_other_samples_total") == sum(other)
    if len(true_bytes) <= max_rows:
        assert not other


def test_a_key_heavy_late_in_the_interval_still_gets_a_row() -> None:
    matrix = make(max_rows=2)
    feed(matrix, "edge1", [(i, 0, 0, 10, 1) for i in range(1, 5)], 1000.0)  # fills the 4 tracked keys
    feed(matrix, "edge1", [(99, 1, 64496, 10**6, 100)], 1001.0)
    (interval,) = matrix.flush(1015.0)
    assert interval.rows[0] == MatrixRow("edge1", 99, HOPS[1], 64496, 1e6, 100.0, 1)
    assert interval.rows[1].other and interval.rows[1].bytes == 40 and interval.rows[1].samples == 4


def test_unrouted_and_unknown_asn_keep_their_own_row() -> None:
    matrix = make()
    feed(matrix, "edge1", [(3, -1, 0, 500, 1), (3, 0, 64496, 100, 1)], 1000.0)
    (interval,) = matrix.flush(1015.0)
    assert interval.rows == (MatrixRow("edge1", 3, None, 0, 500.0, 1.0, 1),
                             MatrixRow("edge1", 3, HOPS[0], 64496, 100.0, 1.0, 1))


def test_switches_are_kept_apart() -> None:
    matrix = make()
    feed(matrix, "edge2", [(1, 0, 1, 5, 1)], 1000.0)
    feed(matrix, "edge1", [(1, 0, 1, 7, 1)], 1000.0)
    (interval,) = matrix.flush(1015.0)
    assert [(r.switch, r.bytes) for r in interval.rows] == [("edge1", 7.0), ("edge2", 5.0)]
    assert [r.bytes for r in interval.switch_rows("edge2")] == [5.0]


def test_intervals_align_to_wall_clock_multiples_and_close_after_the_delay() -> None:
    registry = Registry()
    matrix = make(registry=registry)
    assert matrix.roll(1000.0) == []  # the first call starts the clock: 960 is being seen part-way
    feed(matrix, "edge1", [(1, 0, 1, 10, 1)], 1019.0)
    feed(matrix, "edge1", [(1, 0, 1, 20, 1)], 1020.0)  # a boundary belongs to the interval it starts
    assert matrix.seconds_until_next_roll(1000.0) == pytest.approx(22.0)
    assert matrix.roll(1021.9) == []
    (first,) = matrix.roll(1022.0)
    assert (first.start, first.end, first.complete, first.rows[0].bytes) == (960, 1020, False, 10.0)
    feed(matrix, "edge1", [(1, 0, 1, 40, 1)], 1070.0)
    assert matrix.seconds_until_next_roll(1070.0) == pytest.approx(12.0)
    (second,) = matrix.roll(1082.5)
    assert (second.start, second.complete, second.rows[0].bytes) == (1020, True, 60.0)
    assert matrix.roll(1090.0) == []
    assert [i.start for i in matrix.closed()] == [960, 1020]
    assert metric(registry, "topfib_matrix_rows") == 1


def test_quiet_intervals_are_closed_empty_but_no_more_than_are_kept() -> None:
    matrix = make(keep_intervals=3)
    matrix.roll(960.0)
    feed(matrix, "edge1", [(1, 0, 1, 10, 1)], 970.0)
    closed = matrix.roll(1203.0)  # 960 .. 1140 due: 960 had traffic, 1020/1080/1140 were quiet
    assert [(i.start, len(i.rows)) for i in closed] == [(960, 1), (1020, 0), (1080, 0), (1140, 0)]
    closed = matrix.roll(60_000.0)  # a long gap (or a clock step): only the kept number of empties
    assert [i.start for i in closed] == [59_760, 59_820, 59_880]
    assert [i.start for i in matrix.closed()] == [59_760, 59_820, 59_880]


def test_a_late_batch_is_counted_in_the_oldest_open_interval() -> None:
    registry = Registry()
    matrix = make(registry=registry)
    matrix.roll(1000.0)
    matrix.roll(1022.5)  # closes 960 .. 1020
    feed(matrix, "edge1", [(1, 0, 1, 10, 1)] * 3, 1019.0)  # stamped in a closed interval
    (interval,) = matrix.flush(1030.0)
    assert (interval.start, interval.complete, interval.rows[0].bytes) == (1020, False, 30.0)
    assert metric(registry, "topfib_matrix_late_samples_total") == 3


def test_current_is_a_snapshot_that_changes_nothing() -> None:
    matrix = make(max_rows=1)
    feed(matrix, "edge1", [(1, 0, 1, 10, 1), (2, 0, 1, 20, 1)], 1000.0)
    snapshot = matrix.current(1001.0)
    assert (snapshot.start, snapshot.complete, [r.bytes for r in snapshot.rows]) == (960, False, [30.0])
    feed(matrix, "edge1", [(1, 0, 1, 100, 1)], 1002.0)
    (interval,) = matrix.flush(1003.0)
    assert [r.bytes for r in interval.rows] == [130.0] and interval.rows[0].other


def test_to_wall_converts_the_callers_clock() -> None:
    matrix = TrafficMatrix(interval_s=60, to_wall=lambda now: now + 1_700_000_000.0, registry=Registry())
    feed(matrix, "edge1", [(1, 0, 1, 10, 1)], 5.0)
    (interval,) = matrix.flush(6.0)
    assert interval.start == 1_699_999_980  # 1_700_000_005 aligned down to a minute


def test_bad_batches_are_refused() -> None:
    matrix = make()
    with pytest.raises(ValueError, match="differ in length"):
        matrix.add("edge1", np.zeros(2, np.uint32), np.zeros(1, np.int64), HOPS, np.zeros(2, np.uint32),
                   np.zeros(2), np.zeros(2), 1000.0)
    for bad_id in (3, -2):
        with pytest.raises(ValueError, match=r"next-hop ids must lie in -1 \.\. 2"):
            feed(matrix, "edge1", [(1, bad_id, 1, 10, 1)], 1000.0)
    feed(matrix, "edge1", [], 1000.0)  # an empty batch is fine and opens nothing
    assert matrix.flush(1001.0) == [MatrixInterval(960, 1020, False, ())]


def test_adds_from_another_thread_while_rolling_lose_nothing() -> None:
    matrix = make(interval_s=1, keep_intervals=10_000)
    batch = [(i % 5, i % 3 - 1, i % 2, 100, 1) for i in range(200)]
    times = [1000.0 + i * 0.01 for i in range(300)]

    def account() -> None:
        for now in times:
            feed(matrix, "edge1", batch, now)

    closed: list[MatrixInterval] = []
    worker = threading.Thread(target=account)
    worker.start()
    now = 1000.0
    while worker.is_alive():
        closed.extend(matrix.roll(now))
        now = min(now + 0.05, 1002.5)
    worker.join()
    closed.extend(matrix.flush(1010.0))
    assert sum(r.bytes for i in closed for r in i.rows) == 100 * 200 * len(times)
    starts = [i.start for i in closed]
    assert starts == sorted(set(starts))


def test_large_sparse_batches_take_the_sorting_paths_with_the_same_sums() -> None:
    """Next-hop tables far larger than the batch, and pairs × next-hops past the dense span."""
    rng = np.random.default_rng(3)
    count = 3000
    hops = [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(50_000)]
    input_if = rng.integers(0, 2**32, count, dtype=np.uint64).astype(np.uint32)
    hop_ids = rng.integers(-1, len(hops), count).astype(np.int64)
    peer_asn = rng.integers(0, 2**32, count, dtype=np.uint64).astype(np.uint32)
    nbytes = rng.integers(1, 1000, count).astype(np.float64)
    matrix = make()
    for half in (slice(0, count // 2), slice(count // 2, count)):
        matrix.add("edge1", input_if[half], hop_ids[half], hops, peer_asn[half], nbytes[half],
                   np.ones(count)[half], 1000.0)
    (interval,) = matrix.flush(1001.0)
    expected: dict[Hashable, float] = defaultdict(float)
    columns = (input_if.tolist(), hop_ids.tolist(), peer_asn.tolist(), nbytes.tolist())
    for i, h, a, b in zip(*columns, strict=True):
        expected[(i, hops[h] if h >= 0 else None, a)] += b
    assert {(r.input_if, r.next_hop, r.peer_asn): r.bytes for r in interval.rows} == expected
