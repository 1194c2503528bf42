"""Warm state: snapshots of rates and the desired FIB, checked on the way in, restored decayed."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from tests.unit.test_switch_controller import _controller
from topfib.collector.accounting.path_rates import PathRates
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.collector.accounting.prefix_slots import UNROUTED
from topfib.controller.config import TopfibConfig
from topfib.controller.selection.model import SelectedRoute, SelectionPolicy, new_route
from topfib.controller.service.warm_keeper import WarmKeeper, _m_restores
from topfib.controller.state.store import MemoryStore
from topfib.controller.state.warm_state import MAX_SNAPSHOT_BYTES, SnapshotRefused, WarmState, decode
from topfib.controller.switch.controller import SwitchController

HALVES = (30.0, 3600.0)
WALL = 2_000_000.0


def _rates_with_traffic(now: float = 500.0) -> PrefixRates:
    rates = PrefixRates(*HALVES)
    for second in range(100):
        t = now - 100 + second
        rates.add("sw1", "10.0.0.0/16", 9000.0, 6.0, t, samples=3)
        rates.add("sw1", "192.0.2.0/24", 3000.0, 2.0, t)
        rates.add("sw1", "2001:db8::/32", 1500.0, 1.0, t)
        rates.add("sw1", None, 500.0, 1.0, t)
    return rates


@dataclass
class StandIn:
    """What WarmKeeper asks of a controller."""

    name: str = "sw1"
    active: bool = True
    policy: SelectionPolicy = field(default_factory=lambda: SelectionPolicy(cap_ipv4=2, cap_ipv6=1))
    routes: dict[str, SelectedRoute] = field(default_factory=dict)
    carried: dict[str, SelectedRoute] | None = None
    held: list[str] = field(default_factory=list)
    rib_lock: threading.Lock = field(default_factory=threading.Lock)

    def continuity_routes(self) -> dict[str, SelectedRoute]:
        return self.routes

    desired_at: float = WALL
    lost_at: float | None = None

    def continuity_at(self) -> float:
        return self.desired_at

    def carry_incumbents(self, routes: dict[str, SelectedRoute], held: Iterable[str] = (), *,
                         desired_at: float | None = None, lost_at: float | None = None) -> None:
        self.carried = routes
        self.held = list(held)
        self.desired_at, self.lost_at = desired_at or WALL, lost_at

    def held_prefixes(self) -> list[str]:
        return sorted(self.routes)

    def held_to_hand_on(self) -> list[str]:
        return self.held_prefixes()

    def session_lost_at(self) -> float | None:
        return self.lost_at


def _keeper(rates: PrefixRates, directory: Path | None, wall: list[float], mono: list[float],
            path_rates: PathRates | None = None, **state: Any) -> WarmKeeper:
    config = TopfibConfig.model_validate({
        "state": {"directory": str(directory) if directory else None, **state},
        "switch": [{"name": "sw1", "neighbor": "10.99.0.2", "local_address": "10.99.0.1",
                    "local_as": 65000, "peer_as": 65000, "fib_cap_ipv4": 2, "fib_cap_ipv6": 1}],
    })
    return WarmKeeper(config, rates, MemoryStore(), path_rates=path_rates, wall_clock=lambda: wall[0],
                      clock=lambda: mono[0])


def _ctl(stand_in: StandIn) -> SwitchController:
    return cast(SwitchController, stand_in)


ROUTE = new_route("10.0.0.0/16", "10.99.0.9", "topn", 1234.0, 0.0)


def test_a_snapshot_round_trip_restores_scores_evidence_and_the_desired_fib(tmp_path: Path) -> None:
    rates = _rates_with_traffic()
    wall, mono = [WALL], [500.0]
    keeper = _keeper(rates, tmp_path / "state", wall, mono)
    keeper.prepare()
    stand_in = StandIn(routes={ROUTE.prefix: ROUTE})
    assert asyncio.run(keeper.save(_ctl(stand_in)))

    fresh = PrefixRates(*HALVES)
    restarted = _keeper(fresh, tmp_path / "state", wall, [7.0])  # a new process: another monotonic clock
    assert asyncio.run(restarted.restore(_ctl(stand_in)))
    before = rates.selection_inputs("sw1", 500.0)
    after = fresh.selection_inputs("sw1", 7.0)
    assert after.scores == pytest.approx(before.scores, rel=1e-9)
    assert after.evidence == pytest.approx(before.evidence, rel=1e-9)
    assert fresh.unrouted("sw1", 7.0).slow_bps == pytest.approx(rates.unrouted("sw1", 500.0).slow_bps)
    assert stand_in.carried == {ROUTE.prefix: ROUTE}
    assert stand_in.held == [ROUTE.prefix]  # what the switch held: graceful restart counts it


def test_a_snapshot_without_held_prefixes_still_reads() -> None:
    doc = _valid_doc()
    del doc["held"]
    assert decode(json.dumps(doc), "sw1", HALVES).held == []


def _path_rates_with_traffic(now: float = 500.0) -> PathRates:
    names = ["10.0.0.0/16", "192.0.2.0/24"]
    hops = ["10.99.0.5", "10.99.0.6"]
    path_rates = PathRates(*HALVES)
    for second in range(100):
        # 10/16 mostly via .5, 192.0.2/24 via .6
        prefix_ids, hop_ids = np.array([0, 0, 0, 1], np.int64), np.array([0, 0, 1, 1], np.int64)
        path_rates.add_batch("sw1", prefix_ids, hop_ids, names.__getitem__, hops, np.full(4, 1500.0),
                             np.ones(4), now - 100 + second, naming=1)
    return path_rates


def test_path_rates_come_back_with_the_prefixes_they_belong_to(tmp_path: Path) -> None:
    rates, path_rates = _rates_with_traffic(), _path_rates_with_traffic()
    wall = [WALL]
    keeper = _keeper(rates, tmp_path, wall, [500.0], path_rates)
    assert asyncio.run(keeper.save(_ctl(StandIn())))
    fresh_rates, fresh_paths = PrefixRates(*HALVES), PathRates(*HALVES)
    assert asyncio.run(_keeper(fresh_rates, tmp_path, wall, [9.0], fresh_paths).restore(_ctl(StandIn())))
    for prefix in ("10.0.0.0/16", "192.0.2.0/24"):
        before = path_rates.paths_of("sw1", prefix, 500.0)
        after = fresh_paths.paths_of("sw1", prefix, 9.0)
        assert [p.next_hop for p in after] == [p.next_hop for p in before]
        assert [v for p in after for v in (p.slow_bps, p.samples)] == pytest.approx(
            [v for p in before for v in (p.slow_bps, p.samples)], rel=1e-9)
    assert fresh_paths.dominant_next_hops("sw1", 9.0) == path_rates.dominant_next_hops("sw1", 500.0) == {
        "10.0.0.0/16": "10.99.0.5", "192.0.2.0/24": "10.99.0.6"}


def test_restored_rates_are_decayed_for_the_snapshot_age(tmp_path: Path) -> None:
    rates = _rates_with_traffic()
    wall, mono = [WALL], [500.0]
    keeper = _keeper(rates, tmp_path, wall, mono)
    asyncio.run(keeper.save(_ctl(StandIn())))
    before = rates.rate("sw1", "10.0.0.0/16", 500.0)
    assert before is not None

    fresh = PrefixRates(*HALVES)
    wall[0] += 3600.0  # one slow half-life later (and 120 fast ones: the fast rate is gone)
    assert asyncio.run(_keeper(fresh, tmp_path, wall, [10.0]).restore(_ctl(StandIn())))
    after = fresh.rate("sw1", "10.0.0.0/16", 10.0)
    assert after is not None
    # the sums halve; the observed window grows by the gap, which the start-up correction reads
    expected = rates.byte_sums("sw1", 500.0)["10.0.0.0/16"] / 2
    assert fresh.byte_sums("sw1", 10.0)["10.0.0.0/16"] == pytest.approx(expected, rel=1e-9)
    assert after.slow_bps < before.slow_bps
    assert after.fast_bps < 1e-30


def test_a_snapshot_past_max_age_is_ignored_and_counted(tmp_path: Path) -> None:
    rates = _rates_with_traffic()
    wall, mono = [WALL], [500.0]
    asyncio.run(_keeper(rates, tmp_path, wall, mono).save(_ctl(StandIn())))
    wall[0] += 601.0
    fresh = PrefixRates(*HALVES)
    before = _m_restores.value(switch="sw1", outcome="too_old")
    stand_in = StandIn()
    assert not asyncio.run(_keeper(fresh, tmp_path, wall, [1.0], max_age_s=600).restore(_ctl(stand_in)))
    assert _m_restores.value(switch="sw1", outcome="too_old") == before + 1
    assert fresh.prefix_count("sw1") == 0 and stand_in.carried is None


def _valid_doc() -> dict[str, Any]:
    state = WarmState("sw1", WALL, 100.0, *HALVES, rows=[], desired={ROUTE.prefix: ROUTE})
    doc: dict[str, Any] = json.loads(state.encode())
    doc["rates"] = [["10.0.0.0/16", 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0], [UNROUTED, *[0.0] * 8]]
    return doc


@pytest.mark.parametrize(("change", "named"), [
    (lambda d: d.update(version=2), "version"),
    (lambda d: d.update(switch="sw2"), "switch"),
    (lambda d: d.update(half_lives_s=[60.0, 3600.0]), "half_lives_s"),
    (lambda d: d.update(taken_at=float("nan")), "taken_at"),
    (lambda d: d.update(taken_at="soon"), "taken_at"),
    (lambda d: d.update(rates={"a": 1}), "rates"),
    (lambda d: d["rates"].append(["10.0.0.1/16", *[1.0] * 8]), "rates"),  # host bits set
    (lambda d: d["rates"].append(["010.0.0.0/16", *[1.0] * 8]), "rates"),
    (lambda d: d["rates"].append(["10.1.0.0/16", -1.0, *[1.0] * 7]), "rates"),
    (lambda d: d["rates"].append(["10.1.0.0/16", True, *[1.0] * 7]), "rates"),
    (lambda d: d["rates"].append(["10.1.0.0/16", 1e300, *[1.0] * 7]), "rates"),  # would overflow
    (lambda d: d["rates"].append(["10.1.0.0/16", 1.0]), "rates"),
    (lambda d: d["desired"].append(["10.2.0.0/16", "not-an-ip", "topn", 1.0]), "desired"),
    (lambda d: d["desired"].append(["10.2.0.0/16", "10.0.0.1", "owned", 1.0]), "desired"),
    (lambda d: d["desired"].append(["10.2.0.0/16", "10.0.0.1", "topn", 1e400]), "desired"),
    (lambda d: d["paths"].append(["10.2.0.0/16", "10.0.0.1", 1.0]), "paths"),
    (lambda d: d["paths"].append(["10.2.0.0/16", "::g", *[1.0] * 6]), "paths"),
    (lambda d: d["paths"].append(["10.3.0.0/15", "10.0.0.1", *[1.0] * 6]), "paths"),
    (lambda d: d.pop("paths"), "paths"),
    (lambda d: d.update(held="10.2.0.0/16"), "held"),
    (lambda d: d.update(held=["10.2.0.1/16"]), "held"),
    (lambda d: d.update(desired_at=-1.0), "desired_at"),
    (lambda d: d.update(lost_at="earlier"), "lost_at"),
])
def test_a_malformed_snapshot_is_refused_naming_the_field(change: Any, named: str) -> None:
    doc = _valid_doc()
    decode(json.dumps(doc), "sw1", HALVES)  # the unchanged document is accepted
    change(doc)
    with pytest.raises(SnapshotRefused, match=named):
        decode(json.dumps(doc), "sw1", HALVES)


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", "null", "[" * 100_000, '{"version": 1}'])
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(SnapshotRefused):
        decode(text, "sw1", HALVES)


def test_an_oversized_snapshot_is_refused_before_parsing() -> None:
    with pytest.raises(SnapshotRefused, match="bytes"):
        decode(b" " * (MAX_SNAPSHOT_BYTES + 1), "sw1", HALVES)


def test_a_corrupt_or_hostile_file_starts_cold_counted(tmp_path: Path) -> None:
    wall, mono = [WALL], [1.0]
    fresh = PrefixRates(*HALVES)
    keeper = _keeper(fresh, tmp_path, wall, mono)
    keeper.path_of("sw1").write_bytes(b'{"version": 1, "switch": "sw1", "rates": [["::/0"')  # cut short
    before = _m_restores.value(switch="sw1", outcome="refused")
    assert not asyncio.run(keeper.restore(_ctl(StandIn())))
    assert _m_restores.value(switch="sw1", outcome="refused") == before + 1
    assert fresh.prefix_count("sw1") == 0


def test_a_symlink_in_place_of_the_snapshot_is_refused_not_followed(tmp_path: Path) -> None:
    rates = _rates_with_traffic()
    wall, mono = [WALL], [500.0]
    target = tmp_path / "elsewhere.json"
    writer = _keeper(rates, tmp_path / "real", wall, mono)
    writer.prepare()
    assert asyncio.run(writer.save(_ctl(StandIn())))
    (tmp_path / "real" / "sw1.warm.json").rename(target)
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    (state_dir / "sw1.warm.json").symlink_to(target)
    fresh = PrefixRates(*HALVES)
    before = _m_restores.value(switch="sw1", outcome="unavailable")
    assert not asyncio.run(_keeper(fresh, state_dir, wall, [1.0]).restore(_ctl(StandIn())))
    assert _m_restores.value(switch="sw1", outcome="unavailable") == before + 1
    assert fresh.prefix_count("sw1") == 0
    # writing replaces the link with a file of ours; the link's target is left alone
    assert asyncio.run(_keeper(rates, state_dir, wall, mono).save(_ctl(StandIn())))
    assert not (state_dir / "sw1.warm.json").is_symlink()
    assert decode(target.read_text(), "sw1", HALVES).taken_at == WALL


def test_snapshots_are_written_atomically_private_and_bounded_per_family(tmp_path: Path) -> None:
    rates = PrefixRates(*HALVES)
    for i in range(50):
        rates.add("sw1", f"10.{i}.0.0/16", 1000.0 + i, 1.0, 1.0)
        rates.add("sw1", f"2001:db8:{i:x}::/48", 1000.0 + i, 1.0, 1.0)
    wall, mono = [WALL], [2.0]
    keeper = _keeper(rates, tmp_path / "state", wall, mono)
    keeper.prepare()
    stand_in = StandIn()  # caps 2 (IPv4) and 1 (IPv6): 8 and 4 rows
    assert asyncio.run(keeper.save(_ctl(stand_in)))
    path = keeper.path_of("sw1")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    rows = decode(path.read_text(), "sw1", HALVES).rows
    v4 = [r.prefix for r in rows if "." in r.prefix]
    v6 = [r.prefix for r in rows if ":" in r.prefix]
    assert v4 == [f"10.{i}.0.0/16" for i in range(49, 41, -1)]  # the hottest first
    assert v6 == [f"2001:db8:{i:x}::/48" for i in range(49, 45, -1)]
    assert [r.prefix for r in rows if r.prefix == UNROUTED] == [UNROUTED]
    # a configured number per family instead of 4 × cap; the file is replaced whole, no leftovers
    capped = _keeper(rates, tmp_path / "state", wall, mono, max_entries=3)
    assert asyncio.run(capped.save(_ctl(stand_in)))
    assert len(decode(path.read_text(), "sw1", HALVES).rows) == 3 + 3 + 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["sw1.warm.json"]


def test_a_standby_writes_no_snapshot(tmp_path: Path) -> None:
    keeper = _keeper(_rates_with_traffic(), tmp_path, [WALL], [500.0])
    assert not asyncio.run(keeper.save(_ctl(StandIn(active=False))))
    assert not keeper.path_of("sw1").exists()


def test_the_redis_store_takes_snapshots_as_the_rates_kind(tmp_path: Path) -> None:
    # with a shared store the snapshot goes there (the standby reads it), not to the directory
    config = TopfibConfig.model_validate({
        "store": {"url": "redis://127.0.0.1:1/0"}, "state": {"directory": str(tmp_path)},
        "switch": [{"name": "sw1", "neighbor": "10.99.0.2", "local_address": "10.99.0.1",
                    "local_as": 65000, "peer_as": 65000, "fib_cap_ipv4": 2, "fib_cap_ipv6": 1}],
    })
    store = MemoryStore()  # stands in for Redis: same interface, same contract tests
    keeper = WarmKeeper(config, _rates_with_traffic(), store, wall_clock=lambda: WALL, clock=lambda: 500.0)
    assert keeper.directory is None
    assert asyncio.run(keeper.save(_ctl(StandIn())))
    text = asyncio.run(store.snapshot("sw1", "rates"))
    assert text is not None and decode(text, "sw1", HALVES).switch == "sw1"
    assert list(tmp_path.iterdir()) == []
    # a hostile value in the store: refused, counted, cold start
    asyncio.run(store.put_snapshot("sw1", "rates", '{"version": 1, "switch": "sw1", "rates": 7}'))
    fresh = PrefixRates(*HALVES)
    before = _m_restores.value(switch="sw1", outcome="refused")
    restarted = WarmKeeper(config, fresh, store, wall_clock=lambda: WALL, clock=lambda: 1.0)
    assert not asyncio.run(restarted.restore(_ctl(StandIn())))
    assert _m_restores.value(switch="sw1", outcome="refused") == before + 1
    assert fresh.prefix_count("sw1") == 0


def test_carried_incumbents_keep_the_previous_fib_against_a_better_challenger(tmp_path: Path) -> None:
    async def first_topn(carry: bool) -> list[str]:
        clock = [100.0]
        directory = tmp_path / ("warm" if carry else "cold")
        directory.mkdir()
        ctl = _controller(directory, MemoryStore(), clock)
        await ctl.start(active=False)
        try:
            for prefix, nbytes in (("192.0.2.0/24", 9e6), ("198.51.100.0/24", 5e6), ("10.0.2.0/24", 1.00e6),
                                   ("10.0.1.0/24", 1.02e6)):
                ctl.rates.add("sw1", prefix, nbytes, nbytes / 1500, clock[0], samples=10_000)
            if carry:
                ctl.carry_incumbents({p: new_route(p, "0.0.0.0", "topn", 0.0, 0.0)
                                      for p in ("192.0.2.0/24", "198.51.100.0/24", "10.0.2.0/24")})
            await ctl.tick()
            assert ctl.selection is not None
            return sorted(p for p, r in ctl.selection.routes.items() if r.reason == "topn" and ":" not in p)
        finally:
            await ctl.stop()

    assert asyncio.run(first_topn(carry=False)) == ["10.0.1.0/24", "192.0.2.0/24", "198.51.100.0/24"]
    assert asyncio.run(first_topn(carry=True)) == ["10.0.2.0/24", "192.0.2.0/24", "198.51.100.0/24"]


def test_run_refuses_a_world_writable_state_directory_naming_the_key(tmp_path: Path) -> None:
    from topfib.controller.config import ConfigError
    from topfib.controller.service.run import Service

    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    config = TopfibConfig.model_validate({
        "api": {"listen": "127.0.0.1:18081"}, "collector": {"sflow_listen": ["127.0.0.1:16344"]},
        "exabgp": {"runtime_dir": str(tmp_path / "run")}, "state": {"directory": str(state)},
        "switch": [{"name": "sw1", "neighbor": "10.99.0.2", "local_address": "10.99.0.1",
                    "local_as": 65000, "peer_as": 65000, "fib_cap_ipv4": 2, "fib_cap_ipv6": 1}],
    })
    expected = rf"state\.directory: cannot use {state}: directory {state} is writable by group"
    with pytest.raises(ConfigError, match=expected):
        asyncio.run(Service(config).start())


@dataclass
class ThreadRecordingStandIn(StandIn):
    """Records the threads that read the controller's parts."""

    readers: set[int] = field(default_factory=set)

    def continuity_routes(self) -> dict[str, SelectedRoute]:
        self.readers.add(threading.get_ident())
        return super().continuity_routes()

    def held_prefixes(self) -> list[str]:
        self.readers.add(threading.get_ident())
        return super().held_prefixes()


def test_save_reads_the_controller_on_the_event_loop_not_in_a_thread(tmp_path: Path) -> None:
    # the controller changes its held/stale sets on the loop: a worker thread reading them races it
    keeper = _keeper(_rates_with_traffic(), tmp_path, [WALL], [500.0])
    keeper.prepare()
    stand_in = ThreadRecordingStandIn(routes={ROUTE.prefix: ROUTE})

    async def save() -> bool:
        assert await keeper.save(_ctl(stand_in))
        return stand_in.readers == {threading.get_ident()}

    assert asyncio.run(save()), "a controller part was read outside the event loop's thread"
    state = decode(keeper.path_of("sw1").read_text(), "sw1", HALVES)
    assert state.held == [ROUTE.prefix] and set(state.desired) == {ROUTE.prefix}
