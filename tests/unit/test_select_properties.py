"""Property tests of the selection rules over random RIBs (nested prefixes, several next-hops).

Each invariant is checked by brute force against the RIB, not against selection's own helpers.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cached_property

from hypothesis import given, settings
from hypothesis import strategies as st

from topfib.collector.common.prefixes import contains, prefix_sort_key
from topfib.collector.rib.paths import BgpPath
from topfib.controller.selection.select import OnDemandRequest, Selection, SelectionPolicy, select
from topfib.controller.selection.static_rib import StaticRib

NEXT_HOPS = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
SETTINGS = settings(max_examples=25, deadline=None)


@dataclass
class Case:
    routes: dict[str, list[BgpPath]]
    scores: dict[str, float]
    requests: list[OnDemandRequest]
    pins: list[str]
    policy: SelectionPolicy

    @cached_property
    def rib(self) -> StaticRib:
        return StaticRib(self.routes)


def _prefix(draw: st.DrawFn, flat: bool) -> str:
    """A prefix in a small space so that prefixes nest often (unless ``flat``: no nesting)."""
    if draw(st.integers(0, 5)) == 0:
        network = (0x20010DB8 << 96) | (draw(st.integers(0, 255)) << 88)
        length = 48 if flat else draw(st.sampled_from([32, 36, 40, 48]))
        return str(ipaddress.IPv6Network((network, length), strict=False))
    if flat:
        return str(ipaddress.IPv4Network(((10 << 24) | (draw(st.integers(0, 255)) << 8), 24)))
    address = (10 << 24) | draw(st.integers(0, 2**12 - 1))
    length = draw(st.sampled_from([16, 18, 20, 22, 24, 24, 26, 28]))
    return str(ipaddress.IPv4Network((address, length), strict=False))


@st.composite
def cases(draw: st.DrawFn, flat: bool = False) -> Case:
    prefixes = sorted({_prefix(draw, flat) for _ in range(draw(st.integers(1, 40)))})
    routes: dict[str, list[BgpPath]] = {}
    for prefix in prefixes:
        if draw(st.integers(0, 9)) == 0:
            continue  # a prefix we score or request that has no path
        hops = draw(st.lists(st.sampled_from(NEXT_HOPS), min_size=1, max_size=3))
        routes[prefix] = [
            BgpPath(next_hop=h, local_pref=draw(st.sampled_from([100, 200])), peer=h) for h in hops
        ]
    scores = {p: float(draw(st.integers(0, 50))) for p in prefixes if draw(st.booleans())}
    requests = [
        OnDemandRequest(
            ip=str(
                ipaddress.ip_network(draw(st.sampled_from(prefixes))).network_address
                + draw(st.integers(0, 3))
            ),
            expires_at=float(draw(st.integers(0, 20))),
            created_at=float(draw(st.integers(0, 5))),
            request_id=f"r{i}",
        )
        for i in range(draw(st.integers(0, 6)))
    ]
    pins = draw(st.lists(st.sampled_from(prefixes), max_size=3))
    cap24 = draw(st.sampled_from([0, 0, 2]))
    policy = SelectionPolicy(
        cap_ipv4=draw(st.integers(1, 12)),
        cap_ipv6=draw(st.integers(1, 4)),
        cap_ipv4_24=cap24,
        margin=draw(st.sampled_from([0.0, 0.2, 0.5])),
        min_dwell_s=draw(st.sampled_from([0.0, 5.0])),
    )
    return Case(routes, scores, requests, pins, policy)


def run(case: Case, now: float = 10.0, **overrides: object) -> Selection:
    arguments: dict[str, object] = {
        "scores": case.scores,
        "rib": case.rib,
        "policy": case.policy,
        "now": now,
        "requests": case.requests,
        "pins": case.pins,
    }
    arguments.update(overrides)
    return select(**arguments)  # type: ignore[arg-type]


def best_hop(case: Case, prefix: str) -> str | None:
    path = case.rib.best(prefix)
    return path.next_hop if path else None


def check_caps_are_never_exceeded(case: Case, selection: Selection) -> None:
    per_table: dict[str, int] = {}
    for prefix in selection.routes:
        table = case.policy.table_of(prefix)
        per_table[table] = per_table.get(table, 0) + 1
    for table, count in per_table.items():
        assert count <= case.policy.caps()[table]
    assert {t: n for t, n in selection.usage.items() if n} == per_table


def check_every_route_is_live_and_carries_its_best_next_hop(case: Case, selection: Selection) -> None:
    for prefix, route in selection.routes.items():
        assert route.prefix == prefix
        assert best_hop(case, prefix) is not None
        assert route.next_hop == best_hop(case, prefix)


def check_no_cache_hiding(case: Case, selection: Selection) -> None:
    """Every live RIB prefix under an installed one is forwarded as the RIB would forward it."""
    installed = list(selection.routes)
    for prefix in case.routes:
        hop = best_hop(case, prefix)
        if prefix in selection.routes or hop is None:
            continue
        covering = [p for p in installed if contains(p, prefix)]
        if covering:
            longest = max(covering, key=lambda p: int(p.split("/")[1]))
            assert selection.routes[longest].next_hop == hop, (prefix, longest)


def check_requests_are_answered_by_their_covering_prefix(case: Case, selection: Selection) -> None:
    assert [a.request_id for a in selection.requests] == [r.request_id for r in case.requests]
    for request, answer in zip(case.requests, selection.requests, strict=True):
        live = [
            p for p in case.routes if contains(p, request.ip + ("/32" if ":" not in request.ip else "/128"))
        ]
        if request.expires_at <= 10.0:
            assert answer.status == "expired"
        elif not live:
            assert answer.status == "no-route"
        else:
            longest = max(live, key=lambda p: int(p.split("/")[1]))
            assert answer.prefix == longest
            assert answer.status in ("installed", "rejected")
            assert (answer.status == "installed") == (longest in selection.routes)
            assert (answer.reason == "") == (answer.status == "installed")


@given(cases())
@settings(max_examples=60, deadline=None)
def test_core_rules_hold(case: Case) -> None:
    """Cap, live paths with their best next-hop, no cache-hiding, request answers: one case, four rules."""
    selection = run(case)
    check_caps_are_never_exceeded(case, selection)
    check_every_route_is_live_and_carries_its_best_next_hop(case, selection)
    check_no_cache_hiding(case, selection)
    check_requests_are_answered_by_their_covering_prefix(case, selection)


@given(cases())
@SETTINGS
def test_priority_pins_over_requests_over_topn(case: Case) -> None:
    full = run(case)
    without_topn = run(case, scores={})
    assert full.requests == without_topn.requests
    assert full.pins == without_topn.pins
    assert run(case, requests=[]).pins == full.pins


@given(cases(), st.randoms(use_true_random=False))
@SETTINGS
def test_same_inputs_same_output_whatever_the_order(case: Case, random: object) -> None:
    first = run(case)
    shuffled_scores = list(case.scores.items())
    random.shuffle(shuffled_scores)  # type: ignore[attr-defined]
    pins = list(reversed(case.pins))
    again = run(case, scores=dict(shuffled_scores), pins=pins)
    assert again.routes == first.routes
    assert list(again.routes) == list(first.routes)


@given(cases(flat=True))
@SETTINGS
def test_without_dependencies_topn_is_the_top_scores(case: Case) -> None:
    selection = run(case, requests=[], pins=[])
    for table, cap in case.policy.caps().items():
        live = [
            p
            for p, s in case.scores.items()
            if s > 0 and p in case.routes and case.policy.table_of(p) == table
        ]
        expected = sorted(live, key=lambda p: (-case.scores[p], prefix_sort_key(p)))[:cap]
        assert {p for p in selection.routes if case.policy.table_of(p) == table} == set(expected)


@given(cases(flat=True), st.data())
@SETTINGS
def test_a_challenger_displaces_an_incumbent_only_beyond_the_margin(case: Case, data: st.DataObject) -> None:
    previous = run(case, requests=[], pins=[], now=0.0)
    # coarse values make near-margin contests (10 vs 11, 12, 13 at margin 0.2) frequent
    levels = st.sampled_from([0.0, 10.0, 11.0, 12.0, 13.0, 15.0, 20.0])
    drawn = data.draw(st.lists(levels, min_size=len(case.routes), max_size=len(case.routes)))
    new_scores = dict(zip(case.routes, drawn, strict=True))
    selection = run(case, requests=[], pins=[], scores=new_scores, now=100.0, incumbents=previous.routes)
    for table in case.policy.caps():
        dropped = [
            p for p in previous.routes if p not in selection.routes and case.policy.table_of(p) == table
        ]
        newcomers = [
            p for p in selection.routes if p not in previous.routes and case.policy.table_of(p) == table
        ]
        for incumbent in dropped:
            for challenger in newcomers:
                assert new_scores[challenger] > new_scores.get(incumbent, 0.0) * (1 + case.policy.margin)


@given(cases())
@SETTINGS
def test_dwelling_incumbents_stay_and_keep_their_since(case: Case) -> None:
    previous = run(case, requests=[], pins=[], now=0.0)
    dwell = case.policy.min_dwell_s
    selection = run(case, requests=[], pins=[], scores={}, now=dwell / 2, incumbents=previous.routes)
    for prefix, route in previous.routes.items():
        if dwell > 0:
            assert prefix in selection.routes
        if prefix in selection.routes:
            assert selection.routes[prefix].since == route.since


@given(cases(flat=True), st.data())
@SETTINGS
def test_with_evidence_a_challenger_must_clear_both_intervals(case: Case, data: st.DataObject) -> None:
    previous = run(case, requests=[], pins=[], now=0.0)
    levels = st.sampled_from([0.0, 10.0, 11.0, 12.0, 13.0, 15.0, 20.0, 40.0])
    drawn = data.draw(st.lists(levels, min_size=len(case.routes), max_size=len(case.routes)))
    new_scores = dict(zip(case.routes, drawn, strict=True))
    counts = data.draw(
        st.lists(st.sampled_from([1.0, 4.0, 25.0, 1e4]), min_size=len(drawn), max_size=len(drawn))
    )
    evidence = dict(zip(case.routes, counts, strict=True))
    selection = run(
        case,
        requests=[],
        pins=[],
        scores=new_scores,
        now=100.0,
        incumbents=previous.routes,
        evidence=evidence,
    )
    for table in case.policy.caps():
        dropped = [
            p for p in previous.routes if p not in selection.routes and case.policy.table_of(p) == table
        ]
        newcomers = [
            p for p in selection.routes if p not in previous.routes and case.policy.table_of(p) == table
        ]
        for incumbent in dropped:
            # an incumbent below the evidence floor competes with its score, not its upper end
            thin = evidence[incumbent] < case.policy.evidence_min_samples
            spread = 0.0 if thin else 1.96 / evidence[incumbent] ** 0.5
            upper = new_scores.get(incumbent, 0.0) * (1 + spread) * (1 + case.policy.margin)
            for challenger in newcomers:
                assert new_scores[challenger] * max(0.0, 1 - 1.96 / evidence[challenger] ** 0.5) > upper
