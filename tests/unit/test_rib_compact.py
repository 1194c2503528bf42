"""The compact RIB/LPM layout: id hash, per-id arrays, changed flags (memory work of issue 21)."""

from __future__ import annotations

import gc
import random
import threading
import weakref
from array import array

import numpy as np
import pytest

from topfib.collector.rib.keymap import MAX_ID, KeyIds
from topfib.collector.rib.lpm import LpmTable
from topfib.collector.rib.paths import BgpPath
from topfib.collector.rib.rib import Rib


def test_key_ids_match_a_dict_across_growth() -> None:
    rng = random.Random(4)
    networks = array("I")
    keys, truth = KeyIds(networks), dict[tuple[int, int], int]()
    for _ in range(20_000):
        length = rng.choice((8, 16, 24, 24, 24, 32))
        prefix = (rng.randrange(1 << 32) >> (32 - length) << (32 - length), length)
        if prefix not in truth:
            truth[prefix] = len(networks)
            networks.append(prefix[0])  # the owner names the id before inserting it
            keys.insert(*prefix, truth[prefix])
    assert all(keys.get(*prefix) == value for prefix, value in truth.items())
    absent = next((network, 24) for network in range(0, 1 << 32, 256) if (network, 24) not in truth)
    assert keys.get(*absent) == -1 and len(keys) == len(truth)
    with pytest.raises(OverflowError):
        keys.insert(0, 0, MAX_ID + 1)


def test_churn_keeps_ids_and_does_not_grow() -> None:
    rib = Rib()
    path = BgpPath(next_hop="192.0.2.1", as_path=(64500,), peer="192.0.2.1")
    prefixes = [f"10.{i // 256}.{i % 256}.0/24" for i in range(2000)]
    for prefix in prefixes:
        rib.announce("s", prefix, path)
    ids = [rib.lpm.id_of(p) for p in prefixes]
    sizes = (len(rib.lpm._present), len(rib._routes), len(rib.lpm._v4_ids))
    for _ in range(3):
        for prefix in prefixes:
            rib.withdraw("s", prefix, "192.0.2.1", 0)
        assert len(rib) == 0 and rib.lpm.lookup("10.0.0.1") is None
        for prefix in prefixes:
            rib.announce("s", prefix, path)
    assert [rib.lpm.id_of(p) for p in prefixes] == ids
    assert (len(rib.lpm._present), len(rib._routes), len(rib.lpm._v4_ids)) == sizes
    assert len(rib._shared) == 1 and rib.drain_changed() == set(prefixes)


def test_names_come_back_canonical_and_knows_is_strict() -> None:
    table = LpmTable(["2001:db8:0::/48", "192.0.2.0/24"])
    assert sorted(table.prefixes()) == ["192.0.2.0/24", "2001:db8::/48"]
    assert table.knows("2001:db8::/48") and not table.knows("2001:db8:0::/48")
    assert "2001:db8:0::/48" in table  # any valid spelling finds the prefix


def test_lookups_during_apply_never_see_a_torn_state() -> None:
    """One thread adds and removes (as the event loop does), another resolves prefixes and names
    ids (the reads that take no lazy state): each answer is a complete entry, never a torn one."""
    table = LpmTable(["10.0.0.0/8"])
    table.settle()
    covering = {f"10.{i}.0.0/16" for i in range(64)} | {"10.0.0.0/8"}
    stop = threading.Event()
    bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            for i in range(64):
                found = table.id_of(f"10.{i}.0.0/16")
                if found is not None and table.prefix_of_id(found) not in covering:
                    bad.append(table.prefix_of_id(found))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(30):
            for i in range(64):
                table.add(f"10.{i}.0.0/16")
            table.settle()
            for i in range(64):
                table.remove(f"10.{i}.0.0/16")
            table.settle()
    finally:
        stop.set()
        thread.join()
    assert not bad
    ids = table.lookup_v4_ids(np.array([0x0A010101], dtype=np.uint32))
    assert table.prefix_of_id(int(ids[0])) == "10.0.0.0/8"


def test_a_dropped_rib_is_freed_at_once_without_the_cyclic_collector() -> None:
    """No reference cycle inside a RIB (its LPM table, DIR-24 table, more-specifics index): a
    dropped table's memory goes back with the last reference, not at the next GC run."""
    rib = Rib()
    path = BgpPath(next_hop="192.0.2.1")
    for prefix in ("10.0.0.0/8", "10.1.0.0/16", "10.1.2.128/25", "2001:db8::/32"):
        rib.announce("s", prefix, path)
    rib.lpm.lookup_v4_ids(np.zeros(1, dtype=np.uint32))  # paint the DIR-24 table
    assert rib.more_specifics("0.0.0.0/0") == ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.128/25"]
    assert rib.more_specifics("::/0") == ["2001:db8::/32"]
    rib_ref, lpm_ref = weakref.ref(rib), weakref.ref(rib.lpm)
    gc.disable()
    try:
        del rib
        assert rib_ref() is None and lpm_ref() is None
    finally:
        gc.enable()
