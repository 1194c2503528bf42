"""fast_admissions (controller/switch/fast_request.py) on a small fake RIB: what a new request may take
at once."""

from __future__ import annotations

import ipaddress

from topfib.collector.rib.paths import BgpPath
from topfib.controller.selection.model import OnDemandRequest, SelectedRoute, SelectionPolicy
from topfib.controller.switch.fast_request import FastAdmission, FastPlan, fast_admissions

NH = "192.0.2.1"
NOW = 1_000.0


class FakeRib:
    def __init__(self, prefixes: dict[str, str]) -> None:
        self.prefixes = prefixes  # prefix → next hop

    def best(self, prefix: str) -> BgpPath | None:
        next_hop = self.prefixes.get(prefix)
        return BgpPath(next_hop=next_hop) if next_hop is not None else None

    def longest_match(self, ip: str) -> str | None:
        address = ipaddress.ip_address(ip)
        found = [p for p in self.prefixes if address in ipaddress.ip_network(p)]
        return max(found, key=lambda p: ipaddress.ip_network(p).prefixlen, default=None)

    def more_specifics(self, prefix: str) -> list[str]:
        network = ipaddress.ip_network(prefix)
        return sorted(p for p in self.prefixes
                      if p != prefix and ipaddress.ip_network(p).subnet_of(network))  # type: ignore[arg-type]


def _route(prefix: str, reason: str, score: float = 0.0, since: float = 0.0) -> SelectedRoute:
    return SelectedRoute(prefix, NH, reason, since, score)  # type: ignore[arg-type]


def _request(ip: str, created_at: float = NOW - 1, expires_at: float = NOW + 60) -> OnDemandRequest:
    return OnDemandRequest(ip=ip, expires_at=expires_at, created_at=created_at)


def _plan(rib: FakeRib, routes: list[SelectedRoute], requests: list[OnDemandRequest], cap: int,
          min_dwell_s: float = 0.0, held: set[str] | None = None, answered: tuple[str, ...] = (),
          installed: set[str] | None = None) -> FastPlan:
    by_prefix = {route.prefix: route for route in routes}
    policy = SelectionPolicy(cap_ipv4=cap, cap_ipv6=1, min_dwell_s=min_dwell_s)
    return fast_admissions(requests, by_prefix, set(by_prefix) if held is None else held, rib, policy, NOW,
                           unusable={"0.0.0.0"}, answered=answered, installed=installed)


def _admit(rib: FakeRib, routes: list[SelectedRoute], requests: list[OnDemandRequest], cap: int,
           min_dwell_s: float = 0.0, held: set[str] | None = None) -> list[FastAdmission]:
    return _plan(rib, routes, requests, cap, min_dwell_s, held).admitted


RIB = FakeRib({f"10.0.{i}.0/24": NH for i in range(8)} | {"10.1.0.0/16": NH, "10.1.5.0/24": "192.0.2.9",
                                                         "10.2.0.0/16": "0.0.0.0"})


def test_room_under_the_cap_takes_nothing_from_anyone() -> None:
    routes = [_route("10.0.0.0/24", "pinned")]
    assert _admit(RIB, routes, [_request("10.0.3.1")], cap=2) == [FastAdmission("10.0.3.0/24", NH, None)]


def test_a_full_table_gives_up_the_topn_route_the_selection_drops_first() -> None:
    routes = [_route("10.0.0.0/24", "pinned"), _route("10.0.1.0/24", "request"),
              _route("10.0.2.0/24", "topn", score=1.0, since=NOW - 1),  # dwelling: dropped last
              _route("10.0.3.0/24", "topn", score=5.0), _route("10.0.4.0/24", "topn", score=3.0),
              _route("10.0.5.0/24", "dependency")]
    admitted = _admit(RIB, routes, [_request("10.0.6.1"), _request("10.0.7.1", created_at=NOW - 2)],
                      cap=6, min_dwell_s=60.0)
    assert admitted == [FastAdmission("10.0.6.0/24", NH, "10.0.4.0/24"),  # newest first, lowest score
                        FastAdmission("10.0.7.0/24", NH, "10.0.3.0/24")]
    # and with only pins, requests and dependencies left nothing is displaced
    assert _admit(RIB, [r for r in routes if r.reason != "topn"], [_request("10.0.6.1")], cap=3) == []


def test_what_would_hide_or_be_hidden_is_left_to_the_full_selection() -> None:
    routes = [_route("10.1.0.0/16", "topn", score=1.0)]
    assert _admit(RIB, routes, [_request("10.1.200.1")], cap=5) == []  # already selected
    assert _admit(RIB, [], [_request("10.1.200.1")], cap=5) == []  # the /16 has a more-specific
    assert _admit(RIB, [], [_request("10.2.0.1")], cap=5) == []  # no usable next hop
    # a TopN route with a more-specific in the RIB (a possible dependency) is not displaced
    assert _admit(RIB, routes, [_request("10.0.6.1")], cap=1) == []
    # nor one inside another selected route: its traffic would follow the cover
    covered = [_route("10.0.0.0/16", "pinned"), _route("10.0.2.0/24", "topn", score=0.1),
               _route("10.1.5.0/24", "topn", score=9.0)]
    rib = FakeRib(RIB.prefixes | {"10.0.0.0/16": NH})
    assert _admit(rib, covered, [_request("10.9.0.1")], cap=3) == []  # no route at all
    assert _admit(FakeRib(rib.prefixes | {"10.9.0.0/24": NH}), covered, [_request("10.9.0.1")], cap=3) == [
        FastAdmission("10.9.0.0/24", NH, "10.1.5.0/24")]


def test_expired_requests_and_a_stale_held_prefix() -> None:
    assert _admit(RIB, [], [_request("10.0.6.1", expires_at=NOW)], cap=5) == []
    # held from an earlier session (stale): announced in place, no room needed
    assert _admit(RIB, [_route("10.0.3.0/24", "topn")], [_request("10.0.6.1")], cap=2,
                  held={"10.0.3.0/24", "10.0.6.0/24"}) == [FastAdmission("10.0.6.0/24", NH, None)]


def test_a_new_request_the_fast_path_cannot_take_is_left_to_the_selection_at_once() -> None:
    routes = [_route("10.0.0.0/24", "pinned"), _route("10.0.1.0/24", "topn", score=1.0)]
    assert not _plan(RIB, routes, [_request("10.0.6.1")], cap=2).left_to_selection  # displaces the TopN
    assert _plan(RIB, routes, [_request("10.1.200.1")], cap=5).left_to_selection  # more-specifics
    assert _plan(RIB, routes, [_request("10.9.0.1")], cap=5).left_to_selection  # no route: to answer
    assert _plan(RIB, [routes[0]], [_request("10.0.6.1")], cap=1).left_to_selection  # nothing to displace
    # ...unless the last selection answered it already (no-route, rejected): the period's is enough
    answered = _plan(RIB, [routes[0]], [_request("10.0.6.1")], cap=1, answered=("10.0.6.1",))
    assert not answered.left_to_selection
    assert not _plan(RIB, routes, [_request("10.0.0.1")], cap=1).left_to_selection  # its prefix is in


def test_inside_another_by_integer_masks_agrees_with_ipaddress_and_the_index_follows_admissions() -> None:
    import random

    from topfib.controller.switch.fast_request import _inside_another, _RoutesIndex

    rng = random.Random(7)
    prefixes: set[str] = set()
    while len(prefixes) < 300:  # from a small space, so that many nest
        if rng.random() < 0.7:
            length = rng.choice((8, 12, 14, 16, 20, 24, 32))
            address = (16 << 24) | (rng.randrange(4) << 16) | rng.getrandbits(16)
            prefixes.add(str(ipaddress.ip_network((address >> (32 - length) << (32 - length), length))))
        else:
            length = rng.choice((32, 40, 48, 64, 128))
            address = (0x2001 << 112) | (rng.getrandbits(16) << 96) | rng.getrandbits(64)
            prefixes.add(str(ipaddress.ip_network((address >> (128 - length) << (128 - length), length))))
    ordered = sorted(prefixes)
    routes = {p: _route(p, "topn") for p in ordered[:150]}
    index = _RoutesIndex()
    inside = 0
    for prefix in ordered:
        network = ipaddress.ip_network(prefix)
        expected = any(str(network.supernet(new_prefix=n)) in routes for n in range(network.prefixlen))
        assert _inside_another(prefix, index.of(routes).keys) == expected, prefix
        inside += expected
    assert 20 < inside < len(ordered) - 20  # both answers were tested
    # an admission replaces one route by another: the kept keys are those of a rebuild
    removed, added = ordered[3], ordered[200]
    moved = {p: r for p, r in routes.items() if p != removed} | {added: _route(added, "request")}
    index.follow(routes, moved, {removed}, [added])
    rebuilt = _RoutesIndex().of(moved)
    assert index.of(moved).keys == rebuilt.keys and index.topn_by_score == rebuilt.topn_by_score
    # a second admission with room (nothing removed): the room counts follow as well (a generator
    # of the added prefixes was spent by the keys before the counts saw it: each fast admission went
    # uncounted until the next selection, and the next one found room the switch did not have)
    grown = moved | {ordered[201]: _route(ordered[201], "request")}
    index.follow(moved, grown, set(), [ordered[201]])
    policy = SelectionPolicy(cap_ipv4=1000, cap_ipv6=1000)
    assert index.of(grown).used(policy) == _RoutesIndex().of(grown).used(policy)
    assert sum(index.used(policy).values()) == len(grown)
    # a selection made during the admission's awaits placed the request itself and dropped the
    # victim: the admission's routes are not that selection's less a victim plus a request, and the
    # index must not count them as if they were (it is rebuilt)
    victim, request = ordered[5], ordered[202]
    selected = {p: r for p, r in grown.items() if p != victim} | {request: _route(request, "request")}
    index.of(selected)
    admitted = dict(selected) | {request: _route(request, "request")}
    index.follow(selected, admitted, {victim}, [request])
    assert index.of(admitted).used(policy) == _RoutesIndex().of(admitted).used(policy)
    assert index.topn_by_score == _RoutesIndex().of(admitted).topn_by_score



def test_the_drop_order_lowest_score_outside_dwell_first_ties_last_prefix_first() -> None:
    from topfib.controller.switch.fast_request import _drop_order, _RoutesIndex

    routes = [_route("10.0.1.0/24", "topn", 5.0), _route("10.0.2.0/24", "topn", 1.0, since=NOW - 1),
              _route("10.0.3.0/24", "topn", 1.0), _route("10.0.4.0/24", "topn", 1.0),
              _route("10.0.5.0/24", "request"), _route("10.0.6.0/24", "topn", 0.5)]
    by_prefix = {route.prefix: route for route in routes}
    # 10.0.6.0/24 is not installed yet (a programming run under way): it may go all the same
    policy = SelectionPolicy(cap_ipv4=9, cap_ipv6=1, min_dwell_s=10.0)
    order = _drop_order(_RoutesIndex().of(by_prefix), policy, NOW)
    assert [r.prefix for r in order] == ["10.0.6.0/24", "10.0.4.0/24", "10.0.3.0/24", "10.0.1.0/24",
                                         "10.0.2.0/24"]


def test_a_full_switch_makes_room_only_by_a_victim_it_holds() -> None:
    # the selection wants the pin and two TopN routes, the lowest (10.0.2.0/24) not yet installed;
    # the switch holds the pin, 10.0.1.0/24 and 10.1.0.0/16 (dropped, its withdraw still to come;
    # with more-specifics in the RIB, not one the fast path may withdraw early)
    routes = [_route("10.0.0.0/24", "pinned"), _route("10.0.1.0/24", "topn", score=2.0),
              _route("10.0.2.0/24", "topn", score=1.0)]
    installed = {"10.0.0.0/24", "10.0.1.0/24", "10.1.0.0/16"}
    # withdrawing 10.0.2.0/24 frees nothing on the switch: the announce would be trimmed to the cap
    assert _admit_with(routes, [_request("10.0.6.1")], held=installed, installed=installed) == [
        FastAdmission("10.0.6.0/24", NH, "10.0.1.0/24")]
    # a second request finds no victim the switch holds: left to the selection
    plan = _plan(RIB, routes, [_request("10.0.6.1"), _request("10.0.7.1", created_at=NOW - 2)], cap=3,
                 held=installed, installed=installed)
    assert plan.admitted == [FastAdmission("10.0.6.0/24", NH, "10.0.1.0/24")] and plan.left_to_selection
    # a stale prefix counts on the switch but a withdraw does not remove it
    stale = {"10.0.0.0/24", "10.0.1.0/24", "10.0.5.0/24"}
    assert _admit_with(routes, [_request("10.0.6.1")], held=stale, installed={"10.0.0.0/24"}) == []
    # with a free slot on the switch the selection's first drop goes, installed or not; then the
    # switch is full and the next request takes the installed one
    held = {"10.0.0.0/24", "10.0.1.0/24"}
    assert _admit_with(routes, [_request("10.0.6.1"), _request("10.0.7.1", created_at=NOW - 2)],
                       held=held, installed=held) == [FastAdmission("10.0.6.0/24", NH, "10.0.2.0/24"),
                                                      FastAdmission("10.0.7.0/24", NH, "10.0.1.0/24")]


def _admit_with(routes: list[SelectedRoute], requests: list[OnDemandRequest], *, held: set[str],
                installed: set[str]) -> list[FastAdmission]:
    return _plan(RIB, routes, requests, cap=3, held=held, installed=installed).admitted


def test_a_topn_route_a_new_request_is_served_by_is_no_victim_in_this_call_nor_the_next() -> None:
    routes = [_route("10.0.0.0/24", "pinned"), _route("10.0.1.0/24", "topn", score=1.0),
              _route("10.0.2.0/24", "topn", score=5.0)]
    # the newest request is inside the lowest TopN route, an older one needs room
    both = _plan(RIB, routes, [_request("10.0.1.9"), _request("10.0.6.1", created_at=NOW - 2)], cap=3)
    assert both.admitted == [FastAdmission("10.0.6.0/24", NH, "10.0.2.0/24")]
    assert both.protected == {"10.0.1.0/24"}
    # in the other order too: the victim is chosen before the request for it is looked at
    older = _plan(RIB, routes, [_request("10.0.6.1"), _request("10.0.1.9", created_at=NOW - 2)], cap=3)
    assert older.admitted == [FastAdmission("10.0.6.0/24", NH, "10.0.2.0/24")]
    # the first call's plan protects it; the caller makes it a request route (RequestFastPath._commit)
    first = _plan(RIB, routes, [_request("10.0.1.9")], cap=3)
    assert first.admitted == [] and not first.left_to_selection and first.protected == {"10.0.1.0/24"}
    retagged = [r._replace(reason="request") if r.prefix in first.protected else r for r in routes]
    second = _plan(RIB, retagged, [_request("10.0.6.1")], cap=3)
    assert second.admitted == [FastAdmission("10.0.6.0/24", NH, "10.0.2.0/24")]
    # a pin or request route is no victim anyway: nothing to protect
    assert _plan(RIB, routes, [_request("10.0.0.9")], cap=3).protected == frozenset()


def test_a_full_switch_withdraws_a_route_the_selection_dropped_before_a_wanted_one() -> None:
    dropped = "10.0.5.0/24"  # installed, no longer selected: awaiting the next run's withdraw
    routes = [_route("10.0.0.0/24", "pinned"), _route("10.0.1.0/24", "topn", score=1.0),
              _route("10.0.2.0/24", "topn", score=5.0)]
    on_switch = {"10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24", dropped}
    # the selection has room, only the switch has none: the dropped route makes it, no TopN is lost
    plan = _plan(RIB, routes, [_request("10.0.6.1")], cap=4, held=on_switch, installed=on_switch)
    assert plan.admitted == [FastAdmission("10.0.6.0/24", NH, None, dropped)]
    # the selection is full too, its lowest TopN route not installed yet: that one leaves the
    # selection, the dropped one the switch (not the installed 10.0.1.0/24 the selection wants)
    wanted = [*routes, _route("10.0.3.0/24", "topn", score=0.5)]
    plan = _plan(RIB, wanted, [_request("10.0.6.1")], cap=4, held=on_switch, installed=on_switch)
    assert plan.admitted == [FastAdmission("10.0.6.0/24", NH, "10.0.3.0/24", dropped)]
    # one dropped route frees one slot: a second request takes an installed TopN route
    two = _plan(RIB, routes, [_request("10.0.6.1"), _request("10.0.7.1", created_at=NOW - 2)], cap=4,
                held=on_switch, installed=on_switch)
    assert two.admitted == [FastAdmission("10.0.6.0/24", NH, None, dropped),
                            FastAdmission("10.0.7.0/24", NH, "10.0.1.0/24")]
