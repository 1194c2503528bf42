"""AnswerMemo: a selection reusing the no-route answers it kept equals one from scratch.

Differential: random sequences of request arrivals, renewals and departures, RIB announcements and
withdrawals (two exits, so units come and go), cap and pin changes and time passing (requests
expire); after each step a selection with the kept cache must equal a fresh one (no cache) in
every route, answer, pin and usage. Pruning is exercised with the keep slack at zero.
The same holds with the answers of some requests worked out ahead (``answer_ahead``, the control loop's
slices before a selection) and the world changing between that and the selection.
"""

from __future__ import annotations

from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from topfib.collector.rib.paths import BgpPath
from topfib.collector.rib.rib import Rib
from topfib.controller.selection import answer_memo, request_memo
from topfib.controller.selection.model import SelectedRoute
from topfib.controller.selection.select import (
    OnDemandRequest,
    Selection,
    SelectionPolicy,
    UnitCache,
    answer_ahead,
    select,
)

HOPS = ["192.0.2.1", "192.0.2.2"]
PATHS = {hop: BgpPath(next_hop=hop, peer=hop) for hop in HOPS}
PREFIXES = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25", "10.2.0.0/16", "11.0.0.0/8",
            "12.0.0.0/8", "2001:db8::/32", "2001:db8:1::/48"]
ADDRESSES = ["10.1.2.3", "10.1.2.130", "10.1.3.1", "10.2.0.9", "10.9.9.9", "11.2.3.4", "12.0.0.1",
             "2001:db8::1", "2001:db8:1::1", "2001:db9::1", "2001:DB8::2", "bogus"]
TIMES = [0.0, 1.0, 2.0, 2.0, float("nan")]

rib_change = st.tuples(st.just("rib"), st.sampled_from(PREFIXES), st.sampled_from([*HOPS, None]))
request_change = st.tuples(st.just("request"), st.sampled_from(ADDRESSES), st.integers(0, 6),
                           st.sampled_from(TIMES), st.sampled_from(["", "a", "b"]))
leave = st.tuples(st.just("leave"), st.sampled_from(ADDRESSES))
back = st.tuples(st.just("back"), st.sampled_from(ADDRESSES))  # the very request that left, again
knob = st.tuples(st.just("knob"), st.integers(0, 3), st.integers(0, 2),
                 st.lists(st.sampled_from([*PREFIXES, "10.3.0.0/16"]), max_size=2))
tick = st.tuples(st.just("tick"), st.integers(1, 3))
steps = st.lists(st.lists(st.one_of(rib_change, request_change, request_change, leave, back, knob, tick),
                          max_size=6), min_size=2, max_size=10)


def assert_same(kept: Selection, fresh: Selection) -> None:
    assert list(kept.routes.items()) == list(fresh.routes.items())
    assert kept.requests == fresh.requests
    assert kept.pins == fresh.pins
    assert kept.usage == fresh.usage


def set_path(rib: Rib, prefix: str, hop: str | None) -> None:
    for path in rib.paths(prefix):
        rib.withdraw("s", prefix, path.peer, path.path_id)
    if hop is not None:
        rib.announce("s", prefix, PATHS[hop])


class World:
    """The inputs of one switch's selections, changed step by step."""

    def __init__(self) -> None:
        self.rib = Rib()  # empty: most requests start with no route
        self.wanted: dict[str, OnDemandRequest] = {}
        self.left: dict[str, OnDemandRequest] = {}
        self.policy = SelectionPolicy(cap_ipv4=2, cap_ipv6=1, margin=0.0, min_dwell_s=0.0)
        self.pins: list[str] = []
        self.now = 0.0

    def apply(self, change: tuple[object, ...]) -> None:
        match change:
            case ("rib", str(prefix), hop):
                set_path(self.rib, prefix, hop if isinstance(hop, str) else None)
            case ("request", str(ip), int(ttl), float(created), str(request_id)):
                self.wanted[ip] = OnDemandRequest(ip, self.now + ttl, created, request_id)
            case ("leave", str(ip)) if ip in self.wanted:
                self.left[ip] = self.wanted.pop(ip)
            case ("back", str(ip)) if ip in self.left:
                self.wanted[ip] = self.left.pop(ip)
            case ("knob", int(v4), int(v6), list(pins)):
                self.policy = SelectionPolicy(cap_ipv4=v4, cap_ipv6=v6, margin=0.0, min_dwell_s=0.0)
                self.pins = [str(pin) for pin in pins]
            case ("tick", int(seconds)):
                self.now += seconds


@given(steps, st.booleans(), st.booleans())
@settings(max_examples=500, deadline=None)
def test_kept_answers_select_as_from_scratch(
    rounds: list[list[tuple[object, ...]]], prune: bool, reorder: bool
) -> None:
    world, cache = World(), UnitCache()
    incumbents: dict[str, SelectedRoute] = {}
    scores = {prefix: float(i) for i, prefix in enumerate(PREFIXES)}
    slack = 0 if prune else request_memo.KEEP_SLACK
    with mock.patch.object(request_memo, "KEEP_SLACK", slack), \
            mock.patch.object(answer_memo, "KEEP_SLACK", slack):
        for changes in rounds:
            for change in changes:
                world.apply(change)
            cache.forget(world.rib.drain_changed())
            requests = list(world.wanted.values())
            if reorder:
                requests.reverse()
            inputs = {"scores": scores, "rib": world.rib, "policy": world.policy, "now": world.now,
                      "requests": requests, "pins": world.pins, "incumbents": incumbents}
            kept = select(**inputs, cache=cache)  # type: ignore[arg-type]
            fresh = select(**inputs)  # type: ignore[arg-type]
            assert_same(kept, fresh)
            incumbents = dict(fresh.routes)


def test_unchanged_no_route_answers_are_the_very_same_objects() -> None:
    rib, cache = Rib(), UnitCache()
    requests = [OnDemandRequest(f"198.18.0.{i}", 100.0, float(i)) for i in range(20)]
    policy = SelectionPolicy(cap_ipv4=5, cap_ipv6=5)
    first = select(scores={}, rib=rib, policy=policy, now=0.0, requests=requests, cache=cache).requests
    again = select(scores={}, rib=rib, policy=policy, now=1.0, requests=requests[5:], cache=cache).requests
    assert all(a is b for a, b in zip(first[5:], again, strict=True))
    assert len(cache.answers) == 20


def test_a_route_appearing_or_time_passing_voids_kept_answers() -> None:
    rib, cache = Rib(), UnitCache()
    requests = [OnDemandRequest("10.1.1.1", 100.0), OnDemandRequest("11.1.1.1", 50.0)]
    policy = SelectionPolicy(cap_ipv4=5, cap_ipv6=5)

    def statuses(now: float) -> list[str]:
        chosen = select(scores={}, rib=rib, policy=policy, now=now, requests=requests, cache=cache)
        return [answer.status for answer in chosen.requests]

    assert statuses(0.0) == ["no-route", "no-route"]
    rib.announce("s", "10.0.0.0/8", PATHS[HOPS[0]])
    cache.forget(rib.drain_changed())
    assert statuses(1.0) == ["installed", "no-route"]
    assert statuses(50.0) == ["installed", "expired"]
    assert len(cache.answers) == 0


def test_a_nan_time_among_the_rest_answers_every_request_afresh() -> None:
    rib, cache = Rib(), UnitCache()
    for prefix in ("10.0.0.0/8", "11.0.0.0/8"):
        rib.announce("s", prefix, PATHS[HOPS[0]])
    policy = SelectionPolicy(cap_ipv4=1, cap_ipv6=1)
    # the NaN one has no route: kept, it would leave the placed ones to the other sort
    requests = [OnDemandRequest("10.1.1.1", 100.0, 1.0), OnDemandRequest("12.0.0.1", 100.0, float("nan")),
                OnDemandRequest("11.1.1.1", 100.0, 2.0)]
    for now in (0.0, 1.0):
        kept = select(scores={}, rib=rib, policy=policy, now=now, requests=requests, cache=cache)
        assert_same(kept, select(scores={}, rib=rib, policy=policy, now=now, requests=requests))
    assert len(cache.answers) == 0


def test_an_address_pruned_then_covered_by_a_new_route_is_not_answered_from_the_memo() -> None:
    rib, cache = Rib(), UnitCache()
    policy = SelectionPolicy(cap_ipv4=5, cap_ipv6=5)
    gone = OnDemandRequest("10.1.1.1", 100.0)
    others = [OnDemandRequest(f"12.0.0.{i}", 100.0) for i in range(3)]
    with mock.patch.object(request_memo, "KEEP_SLACK", 0):  # the memo's own pruning keeps them
        select(scores={}, rib=rib, policy=policy, now=0.0, requests=[gone, *others], cache=cache)
        select(scores={}, rib=rib, policy=policy, now=0.0, requests=others[:1], cache=cache)
        assert "10.1.1.1" not in cache.addresses
        rib.announce("s", "10.0.0.0/8", PATHS[HOPS[0]])
        cache.forget(rib.drain_changed())
        answers = select(scores={}, rib=rib, policy=policy, now=0.0, requests=[gone], cache=cache).requests
    assert [a.status for a in answers] == ["installed"]


def test_a_renewed_request_replaces_its_predecessor_in_the_memo() -> None:
    rib, cache = Rib(), UnitCache()
    policy = SelectionPolicy(cap_ipv4=5, cap_ipv6=5)
    for renewal in range(5):
        request = OnDemandRequest("198.18.0.1", 100.0 + renewal, float(renewal))
        answers = select(scores={}, rib=rib, policy=policy, now=0.0, requests=[request], cache=cache).requests
        assert [a.status for a in answers] == ["no-route"]
    assert len(cache.answers) == 1


@given(steps, st.lists(st.tuples(st.integers(0, 6), st.integers(0, 12)), min_size=10, max_size=10))
@settings(max_examples=400, deadline=None)
def test_answers_worked_out_ahead_select_as_from_scratch(
    rounds: list[list[tuple[object, ...]]], slices: list[tuple[int, int]]
) -> None:
    """Per round: part of the changes, answers of a slice of the requests worked out ahead, the rest
    of the changes (RIB, requests, time), then the selection."""
    world, cache = World(), UnitCache()
    incumbents: dict[str, SelectedRoute] = {}
    scores = {prefix: float(i) for i, prefix in enumerate(PREFIXES)}
    for changes, (split, start) in zip(rounds, slices, strict=False):
        for change in changes[:split]:
            world.apply(change)
        ahead = list(world.wanted.values())
        answer_ahead(cache, world.rib, ahead[start:start + 4], world.now)
        for change in changes[split:]:
            world.apply(change)
        cache.forget(world.rib.drain_changed())
        inputs = {"scores": scores, "rib": world.rib, "policy": world.policy, "now": world.now,
                  "requests": list(world.wanted.values()), "pins": world.pins, "incumbents": incumbents}
        kept = select(**inputs, cache=cache)  # type: ignore[arg-type]
        assert_same(kept, select(**inputs))  # type: ignore[arg-type]
        incumbents = dict(kept.routes)


def test_answers_worked_out_ahead_are_the_ones_the_selection_gives() -> None:
    rib, cache = Rib(), UnitCache()
    rib.announce("s", "10.0.0.0/8", PATHS[HOPS[0]])
    requests = [OnDemandRequest(f"198.18.0.{i}", 100.0, float(i)) for i in range(10)]
    requests.append(OnDemandRequest("10.1.1.1", 100.0))  # a live route: placed by the selection only
    answer_ahead(cache, rib, requests, 0.0)
    assert len(cache.answers) == 10
    kept = list(cache.answers.lookup(requests, 0.0))
    policy = SelectionPolicy(cap_ipv4=5, cap_ipv6=5)
    answers = select(scores={}, rib=rib, policy=policy, now=0.0, requests=requests, cache=cache).requests
    assert all(a is b for a, b in zip(kept[:10], answers, strict=False))
    assert answers[-1].status == "installed"
