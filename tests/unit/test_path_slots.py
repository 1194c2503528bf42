"""Per-path accounting through the slot caches equals a plain per-path sum, bit for bit."""

from __future__ import annotations

import numpy as np

from topfib.collector.accounting.decayed_rates import Decay
from topfib.collector.accounting.path_rates import PathRates
from topfib.collector.accounting.path_slots import SwitchPaths

HOPS = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]


def prefix_of_id(prefix_id: int) -> str:
    return f"10.{prefix_id >> 8 & 255}.{prefix_id & 255}.0/24"


def reference_add(
    sums: dict[tuple[str, str], np.ndarray], ids: np.ndarray, hops: np.ndarray, nbytes: np.ndarray,
    packets: np.ndarray, weight: float,
) -> dict[tuple[str, str], np.ndarray]:
    """What a batch adds per path: its samples summed in arrival order, then weighted."""
    batch: dict[tuple[str, str], list[float]] = {}
    columns = (ids.tolist(), hops.tolist(), nbytes.tolist(), packets.tolist())
    for prefix_id, hop, b, p in zip(*columns, strict=True):
        if prefix_id < 0 or hop < 0:
            continue
        row = batch.setdefault((prefix_of_id(prefix_id), HOPS[hop]), [0.0, 0.0, 0.0])
        row[0] += b
        row[1] += p
        row[2] += 1.0
    added = {path: np.array(row) * weight for path, row in batch.items()}
    for path, contribution in added.items():
        sums[path] = sums[path] + contribution if path in sums else contribution
    return added
    for path, row in batch.items():
        sums[path] = sums.get(path, np.zeros(3)) + np.array(row) * weight


def test_sums_match_the_reference_through_new_paths_other_hops_prunes_and_evictions() -> None:
    rng = np.random.default_rng(3)
    rates = PathRates(1e9, 1e9, max_paths=60)
    expected: dict[tuple[str, str], np.ndarray] = {}
    naming = object()
    for step in range(40):
        count = 300
        ids = rng.integers(-1, 80, count)
        # mostly each prefix's own next hop, sometimes another (a prefix's second path)
        hops = np.where(rng.random(count) < 0.8, ids % 3, rng.integers(-1, 3, count))
        nbytes = rng.random(count) * 1e6
        packets = rng.random(count) * 1e3
        if step == 20:
            naming = object()  # a new naming: the id caches start over, the sums stay
        rates.add_batch("sw", ids, hops, prefix_of_id, HOPS, nbytes, packets, 0.0, naming)
        added = reference_add(expected, ids, hops, nbytes, packets, 1.0)
        if step % 7 == 6:
            rates.forget("sw", prefix_of_id(int(ids[0]) if ids[0] >= 0 else 0))
        # the reference drops what was dropped (pruned, evicted, forgotten)
        rows = rates.export_paths("sw", 0.0, {prefix for prefix, _ in expected})
        kept = {(row.prefix, row.next_hop): row for row in rows}
        expected = {path: sums for path, sums in expected.items() if path in kept}
        for path, sums in expected.items():
            got = kept[path].fast
            if path in added and got == tuple(added[path].tolist()) != tuple(sums.tolist()):
                expected[path] = added[path]  # evicted to make room in this batch, then taken again
                continue
            assert got == tuple(sums.tolist()), path
    assert rates.evicted > 0  # the cap was reached: evictions happened under the caches
    assert len(expected) > 20


def test_group_numbers_distinct_slots_whatever_the_duplicates() -> None:
    paths = SwitchPaths(Decay(1.0, 16), Decay(2.0, 16), first_seen=0.0)
    slots = np.array([5, 3, 5, 5, 0, 3, 15], np.int64)
    distinct, inverse = paths.group(slots)
    assert sorted(distinct.tolist()) == [0, 3, 5, 15]
    assert (distinct[inverse] == slots).all()
