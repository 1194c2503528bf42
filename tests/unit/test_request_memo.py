"""AddressMatches (longest matches kept across selections) and the desired-FIB snapshot's JSON.

A cached selection must give the answers a fresh one gives after every RIB change: a more-specific
prefix appearing takes over the addresses inside it, a covering prefix losing its last path hands
them to the next shorter one (or to none).
"""

from __future__ import annotations

import ipaddress
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from topfib.collector.rib.paths import BgpPath
from topfib.collector.rib.rib import Rib
from topfib.controller.selection.fib_draft import FibDraft
from topfib.controller.selection.model import (
    AnswerStatus,
    RequestAnswer,
    Selection,
    SelectionPolicy,
    new_route,
)
from topfib.controller.selection.request_memo import AddressMatches, Unresolvable, canonical_address
from topfib.controller.selection.select import OnDemandRequest, UnitCache, _place_requests, select
from topfib.controller.selection.snapshot_json import SelectionJson, answer_json
from topfib.controller.selection.static_rib import StaticRib

HOP = "192.0.2.1"
PATH = BgpPath(next_hop=HOP, peer=HOP)
NESTED = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25", "10.1.2.200/32", "11.0.0.0/8",
          "2001:db8::/32", "2001:db8:1::/48", "2001:db8:1:2::/64"]
ADDRESSES = ["10.1.2.3", "10.1.2.130", "10.1.2.200", "10.1.3.1", "10.9.9.9", "11.2.3.4", "12.0.0.1",
             "2001:db8::1", "2001:db8:1::1", "2001:db8:1:2::7", "2001:db9::1"]
POLICY = SelectionPolicy(cap_ipv4=3, cap_ipv6=2, margin=0.0, min_dwell_s=0.0)


def requests_for(ips: list[str]) -> list[OnDemandRequest]:
    return [OnDemandRequest(ip, expires_at=100.0, created_at=float(i % 3), request_id=str(i))
            for i, ip in enumerate(ips)]


def answers(rib: Rib, requests: list[OnDemandRequest], cache: UnitCache | None) -> tuple[RequestAnswer, ...]:
    return select(scores={}, rib=rib, policy=POLICY, now=0.0, requests=requests, cache=cache).requests


@given(st.lists(st.lists(st.tuples(st.sampled_from(NESTED), st.booleans()), min_size=1, max_size=5),
                min_size=1, max_size=6))
@settings(max_examples=80, deadline=None)
def test_cached_matches_answer_as_a_fresh_selection_after_every_rib_change(
    rounds: list[list[tuple[str, bool]]]
) -> None:
    rib, cache = Rib(), UnitCache()
    requests = requests_for(ADDRESSES)
    for changes in rounds:
        for prefix, present in changes:
            if present:
                rib.announce("s", prefix, PATH)
            else:
                rib.withdraw("s", prefix, PATH.peer, PATH.path_id)
        cache.forget(rib.drain_changed())
        assert answers(rib, requests, cache) == answers(rib, requests, None)


def test_a_new_more_specific_takes_over_the_addresses_inside_it() -> None:
    rib, cache = Rib(), UnitCache()
    rib.announce("s", "10.0.0.0/8", PATH)
    requests = requests_for(["10.1.2.3", "10.2.0.1"])
    assert [a.prefix for a in answers(rib, requests, cache)] == ["10.0.0.0/8", "10.0.0.0/8"]
    rib.announce("s", "10.1.0.0/16", PATH)
    cache.forget(rib.drain_changed())
    assert [a.prefix for a in answers(rib, requests, cache)] == ["10.1.0.0/16", "10.0.0.0/8"]


def test_a_prefix_losing_its_last_path_hands_its_addresses_to_the_next_cover() -> None:
    rib, cache = Rib(), UnitCache()
    rib.announce("s", "10.0.0.0/8", PATH)
    rib.announce("s", "10.1.0.0/16", PATH)
    requests = requests_for(["10.1.2.3"])
    assert answers(rib, requests, cache)[0].prefix == "10.1.0.0/16"
    rib.withdraw("s", "10.1.0.0/16", PATH.peer, PATH.path_id)
    cache.forget(rib.drain_changed())
    assert answers(rib, requests, cache)[0].prefix == "10.0.0.0/8"
    rib.withdraw("s", "10.0.0.0/8", PATH.peer, PATH.path_id)
    cache.forget(rib.drain_changed())
    only = answers(rib, requests, cache)[0]
    assert (only.status, only.prefix, only.reason) == ("no-route", None, "no peer path")


def test_addresses_are_remembered_until_a_change_covers_them() -> None:
    rib = Rib()
    rib.announce("s", "10.1.0.0/16", PATH)
    matches = AddressMatches()
    assert matches.resolve(rib, ["10.1.2.3", "10.2.0.1", "2001:db8::1"]) == ["10.1.0.0/16", None, None]
    assert len(matches) == 3
    matches.forget_inside(4, int(ipaddress.IPv4Address("10.1.2.0")), 24)
    assert len(matches) == 2  # 10.1.2.3 only
    matches.forget_inside(6, 0, 0)  # ::/0 covers every IPv6 address
    assert len(matches) == 1
    matches.forget_inside(4, 0, 0)
    assert len(matches) == 0


def test_other_spellings_and_garbage_are_looked_up_one_by_one_and_not_remembered() -> None:
    rib = Rib()
    rib.announce("s", "2001:db8::/32", PATH)
    rib.announce("s", "10.0.0.0/8", PATH)
    matches = AddressMatches()
    found = matches.resolve(rib, ["2001:DB8::1", "010.0.0.1", "not an address", "10.0.0.1 "])
    assert found == ["2001:db8::/32", Unresolvable.INVALID, Unresolvable.INVALID, "10.0.0.0/8"]
    assert len(matches) == 0
    request = requests_for(["bogus"])
    only = answers(rib, request, UnitCache())[0]
    assert (only.status, only.prefix, only.reason) == ("rejected", None, "invalid address")


def test_a_rib_view_without_batches_is_asked_address_by_address() -> None:
    rib = StaticRib({"10.0.0.0/8": [PATH]})
    cache = UnitCache()
    requests = requests_for(["10.1.1.1", "11.1.1.1"])
    first = select(scores={}, rib=rib, policy=POLICY, now=0.0, requests=requests, cache=cache)
    again = select(scores={}, rib=rib, policy=POLICY, now=0.0, requests=requests, cache=cache)
    assert [a.prefix for a in first.requests] == ["10.0.0.0/8", None]
    assert again.requests == first.requests
    assert len(cache.addresses) == 2


def test_addresses_no_longer_asked_for_are_dropped_in_time() -> None:
    rib, matches = Rib(), AddressMatches()
    many = [f"10.{i >> 8 & 255}.{i & 255}.1" for i in range(30_000)]
    matches.resolve(rib, many)
    matches.resolve(rib, many[:10])
    assert len(matches) == 10


@given(st.lists(st.integers(0, 2**32 - 1), max_size=40), st.lists(st.integers(0, 2**128 - 1), max_size=40))
@settings(max_examples=50, deadline=None)
def test_batch_look_ups_equal_single_ones(v4: list[int], v6: list[int]) -> None:
    rib = Rib()
    for prefix in [*NESTED, "0.0.0.0/1", "192.0.0.0/2", "2000::/3", "::/1"]:
        rib.announce("s", prefix, PATH)
    assert rib.longest_matches(4, v4) == [rib.longest_match(str(ipaddress.IPv4Address(a))) for a in v4]
    assert rib.longest_matches(6, v6) == [rib.longest_match(str(ipaddress.IPv6Address(a))) for a in v6]
    for address in v4:
        text = str(ipaddress.IPv4Address(address))
        assert canonical_address(text) == (4, address)


texts = st.text(max_size=12)


@given(st.lists(st.tuples(texts, st.sampled_from(["installed", "no-route", "rejected", "expired"]),
                          st.none() | texts, texts, texts), max_size=12), st.integers(0, 3))
@settings(max_examples=80, deadline=None)
def test_snapshot_json_is_json_dumps_of_to_dict(fields: list[tuple[str, str, str | None, str, str]],
                                                 keep: int) -> None:
    encoder = SelectionJson()
    routes = {"10.0.0.0/8": new_route("10.0.0.0/8", HOP, "request", 1.5, 0.0)}
    if keep == 3:  # more routes than one slice holds
        more = [f"11.{i >> 8}.{i & 255}.0/24" for i in range(1201)]
        routes |= {prefix: new_route(prefix, HOP, "topn", 0.5, i / 7) for i, prefix in enumerate(more)}
    for round_ in range(3):  # answers kept, dropped and new from one selection to the next
        answers_now = tuple(RequestAnswer(*f) for f in fields[round_ * keep:])  # type: ignore[arg-type]
        selection = Selection(routes=routes, requests=answers_now, usage={"ipv4": 1}, caps={"ipv4": 3})
        assert encoder.encode(selection) == json.dumps(selection.to_dict())
    for answer in (RequestAnswer(*f) for f in fields):  # type: ignore[arg-type]
        assert answer_json(answer) == json.dumps(answer.to_dict())


def test_an_address_asked_for_twice_is_remembered_once() -> None:
    rib, matches = Rib(), AddressMatches()
    rib.announce("s", "10.0.0.0/8", PATH)
    assert matches.resolve(rib, ["10.1.2.3", "10.1.2.3"]) == ["10.0.0.0/8", "10.0.0.0/8"]
    assert len(matches) == 1
    matches.forget_inside(4, int(ipaddress.IPv4Address("10.0.0.0")), 8)
    assert len(matches) == 0
    assert matches.resolve(rib, ["10.1.2.3"]) == ["10.0.0.0/8"]


def reference_place_requests(
    fib: FibDraft, requests: list[OnDemandRequest], now: float
) -> list[RequestAnswer]:
    """Placement as it was before answers were built in bulk: every active request sorted and placed."""
    answers: list[RequestAnswer | None] = [None] * len(requests)
    active = []
    for index, request in enumerate(requests):
        if request.expires_at <= now:
            answers[index] = RequestAnswer(request.ip, "expired", None, "request expired", request.request_id)
        else:
            active.append(index)
    active.sort(key=lambda i: (-requests[i].created_at, requests[i].ip, requests[i].request_id))
    for index in active:
        request = requests[index]
        try:
            prefix = fib.rib.longest_match(request.ip)
        except ValueError:
            answers[index] = RequestAnswer(
                request.ip, "rejected", None, "invalid address", request.request_id)
            continue
        if prefix is None or fib.next_hop_of(prefix) is None:
            answers[index] = RequestAnswer(request.ip, "no-route", prefix, "no peer path", request.request_id)
        else:
            installed, why_not = fib.try_install(prefix, "request")
            status: AnswerStatus = "installed" if installed else "rejected"
            answers[index] = RequestAnswer(request.ip, status, prefix, why_not, request.request_id)
    return [a for a in answers if a is not None]


request_lists = st.lists(st.builds(
    OnDemandRequest, st.sampled_from([*ADDRESSES, "bogus", "10.1.2.3"]),
    st.sampled_from([5.0, 10.0, 100.0]), st.sampled_from([0.0, 1.0, 2.0, float("nan")]),
    st.sampled_from(["", "a", "b"])), max_size=14)


@given(request_lists, st.lists(st.sampled_from(NESTED), max_size=9), st.integers(0, 3), st.integers(0, 2))
@settings(max_examples=150, deadline=None)
def test_placement_equals_placing_every_request_in_order(
    requests: list[OnDemandRequest], prefixes: list[str], cap_v4: int, cap_v6: int
) -> None:
    rib = Rib()
    for i, prefix in enumerate(prefixes):  # two exits: some units of more than one prefix
        hop = HOP if i % 2 else "192.0.2.2"
        rib.announce("s", prefix, BgpPath(next_hop=hop, peer=hop))
    policy = SelectionPolicy(cap_ipv4=cap_v4, cap_ipv6=cap_v6, margin=0.0, min_dwell_s=0.0)
    drafts = [FibDraft(rib, policy, {}, {}, 10.0, UnitCache()) for _ in range(2)]
    for draft in drafts:
        draft.cache.bind(rib)
    placed = list(_place_requests(drafts[0], requests, 10.0))
    assert placed == reference_place_requests(drafts[1], requests, 10.0)
    assert list(drafts[0].routes.items()) == list(drafts[1].routes.items())
    assert drafts[0].usage == drafts[1].usage


def test_a_nan_request_time_orders_as_sorting_every_active_request_did() -> None:
    rib = Rib()
    for prefix in ("10.0.0.0/8", "11.0.0.0/8"):
        rib.announce("s", prefix, PATH)
    requests = [OnDemandRequest("10.1.1.1", 100.0, 1.0), OnDemandRequest("12.0.0.1", 100.0, float("nan")),
                OnDemandRequest("11.1.1.1", 100.0, 2.0)]  # the NaN one has no route: it is not placed
    policy = SelectionPolicy(cap_ipv4=1, cap_ipv6=1)
    drafts = [FibDraft(rib, policy, {}, {}, 10.0, UnitCache()) for _ in range(2)]
    for draft in drafts:
        draft.cache.bind(rib)
    placed = list(_place_requests(drafts[0], requests, 10.0))
    assert placed == reference_place_requests(drafts[1], requests, 10.0)
    assert list(drafts[0].routes) == list(drafts[1].routes)


def test_expired_requests_are_not_looked_up() -> None:
    asked: list[str] = []

    class CountingRib(StaticRib):
        def longest_match(self, ip: str) -> str | None:
            asked.append(ip)
            return super().longest_match(ip)

    rib = CountingRib({"10.0.0.0/8": [PATH]})
    requests = [OnDemandRequest("10.1.1.1", 5.0), OnDemandRequest("10.2.2.2", 100.0)]
    answered = select(scores={}, rib=rib, policy=POLICY, now=10.0, requests=requests).requests
    assert [(a.status, a.prefix) for a in answered] == [("expired", None), ("installed", "10.0.0.0/8")]
    assert asked == ["10.2.2.2"]
