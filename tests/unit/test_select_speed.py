"""Selection's shortcuts give the very selection the plain rules give.

Scores, incumbents and the :class:`UnitCache` memo of name kinds and positions are matched by
object identity; every case runs with the scored names as the same objects as the incumbents'
(the shortcuts apply) and as equal copies (nothing matches by identity: every look-up by value),
with a cache kept across calls and with none, and compares the whole :class:`Selection`.
Operator pins of one slot skip building their unit: compared with placing each through
``FibDraft.try_install``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from topfib.collector.common.prefixes import PrefixError, prefix_sort_key, split_prefix
from topfib.collector.rib.paths import BgpPath
from topfib.controller.selection.fib_draft import FibDraft
from topfib.controller.selection.model import AnswerStatus
from topfib.controller.selection.name_kinds import NameKinds, table_of_kind
from topfib.controller.selection.select import (
    OnDemandRequest,
    PinAnswer,
    Selection,
    SelectionPolicy,
    UnitCache,
    _place_pins,
    select,
)
from topfib.controller.selection.static_rib import StaticRib

HOPS = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
V6_HOPS = ["2001:db8::1", "2001:db8::2"]


def assert_same(fast: Selection, slow: Selection) -> None:
    assert list(fast.routes.items()) == list(slow.routes.items())
    assert fast.requests == slow.requests
    assert fast.pins == slow.pins
    assert fast.usage == slow.usage


@dataclass
class Case:
    rib: StaticRib
    prefixes: list[str]
    before: dict[str, float]
    after: dict[str, float]
    evidence: dict[str, float] | None
    requests: list[OnDemandRequest]
    pins: list[str]
    policy: SelectionPolicy
    now: float


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Nested prefixes, mostly of one exit (units of one) with some of another (bigger units);
    scores on a coarse grid (ties) or not; some prefixes without a path or a score."""
    v4 = {
        str(ipaddress.IPv4Network(((10 << 24) | draw(st.integers(0, 2**14 - 1)) << 6, length), strict=False))
        for length in draw(
            st.lists(st.sampled_from([16, 18, 20, 22, 24, 24, 24, 26]), min_size=1, max_size=90)
        )
    }
    v6 = {f"2001:db8:{draw(st.integers(0, 40)):x}::/48" for _ in range(draw(st.integers(0, 12)))}
    prefixes = sorted(v4 | v6)
    odd_one = draw(st.sampled_from([0.0, 0.1, 0.4]))  # share of prefixes on another exit
    routes = {}
    for prefix in prefixes:
        if draw(st.integers(0, 14)) == 0:
            continue  # scored or asked for, no path
        hops = V6_HOPS if ":" in prefix else HOPS
        hop = hops[1] if draw(st.floats(0, 1)) < odd_one else hops[0]
        routes[prefix] = [BgpPath(next_hop=hop, peer=hop)]
    grid = draw(st.booleans())

    def score() -> float:
        return float(draw(st.integers(0, 6))) if grid else draw(st.floats(0, 100, allow_nan=False))

    before = {p: score() for p in prefixes if draw(st.integers(0, 3))}
    after = {p: score() for p in prefixes if draw(st.integers(0, 3))}
    evidence = (
        {p: float(draw(st.sampled_from([1, 4, 30, 100, 1e4]))) for p in after}
        if draw(st.booleans())
        else None
    )
    requests = [
        OnDemandRequest(
            ip=str(ipaddress.ip_network(draw(st.sampled_from(prefixes))).network_address),
            expires_at=100.0,
            created_at=float(i),
            request_id=str(i),
        )
        for i in range(draw(st.integers(0, 3)))
    ]
    pins = draw(st.lists(st.sampled_from(prefixes), max_size=3))
    policy = SelectionPolicy(
        cap_ipv4=draw(st.integers(1, 40)),
        cap_ipv6=draw(st.integers(1, 8)),
        cap_ipv4_24=draw(st.sampled_from([0, 0, 5])),
        margin=draw(st.sampled_from([0.0, 0.2])),
        min_dwell_s=draw(st.sampled_from([0.0, 10.0])),
    )
    return Case(
        StaticRib(routes),
        prefixes,
        before,
        after,
        evidence,
        requests,
        pins,
        policy,
        draw(st.sampled_from([5.0, 20.0])),
    )


def copied(mapping: dict[str, float] | None) -> dict[str, float] | None:
    """The same mapping with keys that are equal strings but other objects."""
    return None if mapping is None else {"".join(list(key)): value for key, value in mapping.items()}


@given(cases())
@settings(max_examples=200, deadline=None)
def test_identity_shortcuts_and_the_cache_change_nothing(case: Case) -> None:
    common = {"rib": case.rib, "policy": case.policy, "requests": case.requests, "pins": case.pins}
    cache = UnitCache()
    first = select(scores=case.before, now=0.0, cache=cache, **common)  # type: ignore[arg-type]
    assert_same(first, select(scores=copied(case.before), now=0.0, **common))  # type: ignore[arg-type]
    later = {"now": case.now, "incumbents": first.routes, **common}
    by_identity = select(scores=case.after, evidence=case.evidence, cache=cache, **later)  # type: ignore[arg-type]
    by_value = select(scores=copied(case.after), evidence=copied(case.evidence), **later)  # type: ignore[arg-type]
    assert_same(by_identity, by_value)
    again = select(scores=case.after, evidence=case.evidence, cache=cache, **later)  # type: ignore[arg-type]
    assert_same(again, by_value)


def _random_table(rng: np.random.Generator, count: int) -> tuple[StaticRib, list[str]]:
    """``count`` IPv4 prefixes in a /8, lengths 16-24 so that many nest; 3 % on another exit."""
    routes = {}
    for network, length in zip(
        rng.integers(0, 2**24, count).tolist(), rng.choice([16, 20, 22, 23, 24], count).tolist(), strict=True
    ):
        prefix = str(ipaddress.IPv4Network(((10 << 24) | network, int(length)), strict=False))
        hop = HOPS[1] if rng.random() < 0.03 else HOPS[0]
        routes[prefix] = [BgpPath(next_hop=hop, peer=hop)]
    return StaticRib(routes), sorted(routes)


@pytest.mark.parametrize("cap", [50, 700, 3000])
def test_a_big_table_selects_the_same_by_identity_and_by_value(cap: int) -> None:
    rng = np.random.default_rng(cap)
    rib, prefixes = _random_table(rng, 6000)
    scores = {p: float(v) for p, v in zip(prefixes, rng.pareto(1.0, len(prefixes)) * 100, strict=True)}
    jitter = rng.uniform(0.9, 1.1, len(scores)).tolist()
    moved = {p: s * j for (p, s), j in zip(scores.items(), jitter, strict=True)}
    policy = SelectionPolicy(cap_ipv4=cap, cap_ipv6=10, margin=0.2, min_dwell_s=300.0)
    cache = UnitCache()
    first = select(scores=scores, rib=rib, policy=policy, now=0.0, cache=cache)
    assert_same(first, select(scores=copied(scores) or {}, rib=rib, policy=policy, now=0.0))
    steady = {"rib": rib, "policy": policy, "now": 400.0, "incumbents": first.routes}
    by_identity = select(scores=moved, cache=cache, **steady)  # type: ignore[arg-type]
    assert_same(by_identity, select(scores=copied(moved) or {}, **steady))  # type: ignore[arg-type]
    assert len(by_identity.routes) == min(cap, len(prefixes))
    if cap >= 700:  # units of several slots were in play (at 50 their density loses)
        assert any(route.reason == "dependency" for route in first.routes.values())


def test_name_kinds_are_remembered_by_identity_and_read_for_new_names() -> None:
    with_24 = SelectionPolicy(cap_ipv4=1, cap_ipv6=1, cap_ipv4_24=1)
    without_24 = SelectionPolicy(cap_ipv4=1, cap_ipv6=1)
    kinds = NameKinds()
    first = ["10.0.0.0/24", "10.0.0.0/16", "2001:db8::/32", "10.1.0.0/24"]
    second = [first[3], "".join(["10.0.0.0", "/16"]), "2001:db8:1::/48", first[0], "not a prefix"]
    third = list(second)  # the same objects in the same order
    for names, policy in [
        (first, without_24),
        (first, with_24),
        (second, with_24),
        (third, without_24),
        (third, with_24),
        (first, without_24),
        (second, with_24),
    ]:
        tables = list(policy.caps())
        found = table_of_kind(tables)[kinds.kinds(names, len(tables) == 3)]
        assert [tables[i] for i in found.tolist()] == [policy.table_of(name) for name in names]


def _pins_one_by_one(fib: FibDraft, pins: list[str]) -> list[PinAnswer]:
    """The pin rule as written: prefix order, each pin's whole unit through ``try_install``."""
    answers = []
    for prefix in sorted(set(pins), key=lambda p: (prefix_sort_key(p), p)):
        try:
            split_prefix(prefix)
        except PrefixError as exc:
            answers.append(PinAnswer(prefix, "rejected", f"invalid prefix: {exc}"))
            continue
        installed, why_not = fib.try_install(prefix, "pinned")
        if installed:
            answers.append(PinAnswer(prefix, "installed"))
        else:
            status: AnswerStatus = "no-route" if fib.next_hop_of(prefix) is None else "rejected"
            answers.append(PinAnswer(prefix, status, why_not))
    return answers


@given(
    cases(), st.lists(st.sampled_from(["10.0.0.1/8", "nonsense", "10.0.0.0/33", "2001:db8::/48"]), max_size=3)
)
@settings(max_examples=150, deadline=None)
def test_pins_are_placed_as_one_by_one_try_install_places_them(case: Case, odd: list[str]) -> None:
    pins = [*case.prefixes[: len(case.prefixes) // 2], *odd]  # many: more than the caps at times
    drafts = []
    for _ in range(2):
        cache = UnitCache()
        cache.bind(case.rib)
        drafts.append(FibDraft(case.rib, case.policy, case.before, {}, 0.0, cache))
    fast, slow = drafts
    assert list(_place_pins(fast, pins)) == _pins_one_by_one(slow, pins)
    assert list(fast.routes.items()) == list(slow.routes.items())
    assert fast.usage == slow.usage
