"""Routes per FIB table kept as they change (controller/switch/table_counts.py), and the programmer's
occupancy and cap trimming from them: always what a recount of what the switch may hold gives."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

from topfib.collector.rib.rib import Rib
from topfib.controller.config import SwitchConfig
from topfib.controller.program.plan import Action, Step
from topfib.controller.selection.model import TABLE_IPV4, TABLE_IPV4_24, SelectionPolicy
from topfib.controller.switch.programmer import Programmer
from topfib.controller.switch.table_counts import TableCounts

V4, V4_24, V6 = "10.0.0.0/16", "10.1.2.0/24", "2001:db8::/48"


def test_counts_merge_the_24s_into_ipv4_unless_they_have_a_table() -> None:
    counts = TableCounts([V4, V4_24, "10.1.3.0/24", V6])
    assert counts.under(SelectionPolicy(cap_ipv4=5, cap_ipv6=5)) == {"ipv4": 3, "ipv6": 1}
    split = SelectionPolicy(cap_ipv4=5, cap_ipv6=5, cap_ipv4_24=5)
    assert counts.under(split) == {"ipv4": 1, "ipv6": 1, TABLE_IPV4_24: 2}
    counts.remove([V4_24, V6])
    counts.add(["10.1.4.0/24"])
    assert counts.under(split) == {"ipv4": 1, "ipv6": 0, TABLE_IPV4_24: 2}


def _programmer(policy: SelectionPolicy, clock: list[float]) -> Programmer:
    switch = SwitchConfig.model_validate({
        "name": "sw1", "neighbor": "10.99.0.2", "local_address": "10.99.0.1", "local_as": 65000,
        "peer_as": 65000, "graceful_restart_s": 30, "fib_cap_ipv4": 8, "fib_cap_ipv6": 3})

    async def refresh() -> SelectionPolicy:
        return policy

    none: Any = None  # no link nor sessions (not active: nothing is sent); acks are applied below
    return Programmer("sw1", none, none, Rib(), threading.Lock(), Rib(), switch=lambda: switch,
                      policy=lambda: policy, refresh_policy=refresh, selection=lambda: None,
                      is_active=lambda: False, on_link_lost=lambda reason: None, clock=lambda: clock[0],
                      wall_clock=lambda: 0.0)


def _recount(programmer: Programmer, policy: SelectionPolicy) -> dict[str, tuple[int, int]]:
    used = dict.fromkeys(policy.caps(), 0)
    for prefix in programmer.held():
        used[policy.table_of(prefix)] += 1
    return {table: (used[table], cap) for table, cap in policy.caps().items()}


def test_occupancy_follows_acks_resets_and_stale_routes_as_a_recount_would(tmp_path: Path) -> None:
    rng = random.Random(3)
    prefixes = [f"10.{i}.0.0/16" for i in range(6)] + [f"10.9.{i}.0/24" for i in range(6)] + [
        f"2001:db8:{i}::/48" for i in range(4)]
    for policy in (SelectionPolicy(cap_ipv4=8, cap_ipv6=3),
                   SelectionPolicy(cap_ipv4=8, cap_ipv6=3, cap_ipv4_24=4)):
        clock = [0.0]
        programmer = _programmer(policy, clock)
        for _ in range(400):
            roll = rng.random()
            if roll < 0.03:
                programmer.session_changed()  # installed emptied; with graceful restart they turn stale
            elif roll < 0.06:
                clock[0] += 40.0  # past stale_until: the stale ones no longer count
                programmer.prune_stale()
            else:
                chosen = tuple(rng.sample(prefixes, rng.randint(1, 3)))
                action: Action = "withdraw" if rng.random() < 0.4 else "announce"
                family = 6 if ":" in chosen[0] else 4
                chosen = tuple(p for p in chosen if (":" in p) == (family == 6))
                step = Step(action, family, None if action == "withdraw" else
                            ("192.0.2.1" if family == 4 else "2001:db8::1"), chosen)
                programmer._apply_acks([(step, chosen)], late=False)
            assert programmer.occupancy() == _recount(programmer, policy)
        # trimming to the caps agrees with the room a recount leaves
        room = {table: cap - used for table, (used, cap) in _recount(programmer, policy).items()}
        fresh = [p for p in prefixes if p not in programmer.held() and ":" not in p]
        kept = programmer.within_caps([Step("announce", 4, "192.0.2.1", tuple(fresh))])
        kept_prefixes = [p for step in kept for p in step.prefixes]
        for table in (TABLE_IPV4, TABLE_IPV4_24):
            taken = [p for p in kept_prefixes if policy.table_of(p) == table]
            offered = [p for p in fresh if policy.table_of(p) == table]
            assert len(taken) == min(len(offered), max(room.get(table, 0), 0))


def test_trimming_decides_once_whether_stale_routes_count() -> None:
    """The clock passing the stale window's end during one trim (between what counts as held and the
    room left) must not let fresh prefixes take the room of stale ones announced back in place."""
    policy = SelectionPolicy(cap_ipv4=8, cap_ipv6=3)
    programmer = _programmer(policy, [0.0])
    installed = tuple(f"10.{i}.0.0/16" for i in range(6))
    stale = ("10.20.0.0/16", "10.21.0.0/16")
    fresh = ("10.30.0.0/16", "10.31.0.0/16")
    programmer.hold_as_stale(stale)
    programmer._apply_acks([(Step("announce", 4, "192.0.2.1", installed), installed)], late=False)
    assert programmer.stale_until is not None
    looks = iter([0.0, 0.0])  # the first two looks inside the window, the rest past it
    end = programmer.stale_until
    programmer._clock = lambda: next(looks, end)
    kept = programmer.within_caps([Step("announce", 4, "192.0.2.1", stale + fresh)])
    assert len(installed) + sum(len(step.prefixes) for step in kept) <= 8
