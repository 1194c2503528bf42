"""Selection rules on small hand-built RIBs: one example per rule, with the exact expected FIB."""

from __future__ import annotations

import pytest

from topfib.collector.rib.paths import BgpPath
from topfib.controller.config import SwitchConfig
from topfib.controller.selection.closure import unit_of
from topfib.controller.selection.select import OnDemandRequest, SelectedRoute, SelectionPolicy, select
from topfib.controller.selection.static_rib import StaticRib

A, B, C = "192.0.2.1", "192.0.2.2", "192.0.2.3"
V6_NH = "2001:db8::1"


def rib_of(routes: dict[str, str]) -> StaticRib:
    return StaticRib({prefix: [BgpPath(next_hop=nh, peer=nh)] for prefix, nh in routes.items()})


def policy(
    cap4: int = 10, cap6: int = 10, cap24: int = 0, margin: float = 0.0, dwell: float = 0.0, gain: float = 0.0
) -> SelectionPolicy:
    return SelectionPolicy(
        cap_ipv4=cap4, cap_ipv6=cap6, cap_ipv4_24=cap24, margin=margin, min_dwell_s=dwell, min_swap_gain=gain
    )


def chosen(selection: object) -> dict[str, tuple[str, str]]:
    routes = selection.routes  # type: ignore[attr-defined]
    return {p: (r.next_hop, r.reason) for p, r in routes.items()}


def test_topn_takes_the_highest_scores_up_to_the_cap() -> None:
    rib = rib_of({"10.0.0.0/24": A, "10.0.1.0/24": B, "10.0.2.0/24": A, "2001:db8::/32": V6_NH})
    scores = {"10.0.0.0/24": 5.0, "10.0.1.0/24": 9.0, "10.0.2.0/24": 1.0, "2001:db8::/32": 3.0}
    selection = select(scores=scores, rib=rib, policy=policy(cap4=2, cap6=1), now=0.0)
    assert chosen(selection) == {
        "10.0.1.0/24": (B, "topn"),
        "10.0.0.0/24": (A, "topn"),
        "2001:db8::/32": (V6_NH, "topn"),
    }
    assert selection.usage == {"ipv4": 2, "ipv6": 1}


def test_ties_break_by_prefix_order_not_by_string_or_mapping_order() -> None:
    rib = rib_of({"9.0.0.0/24": A, "10.0.0.0/24": A, "100.0.0.0/24": A})
    scores = {"100.0.0.0/24": 1.0, "10.0.0.0/24": 1.0, "9.0.0.0/24": 1.0}
    selection = select(scores=scores, rib=rib, policy=policy(cap4=2), now=0.0)
    assert list(selection.routes) == ["9.0.0.0/24", "10.0.0.0/24"]


def test_prefixes_without_a_live_path_or_traffic_are_never_chosen() -> None:
    rib = rib_of({"10.0.0.0/24": A})
    scores = {"10.9.0.0/24": 100.0, "10.0.0.0/24": 0.0}
    assert select(scores=scores, rib=rib, policy=policy(), now=0.0).routes == {}


def test_more_specific_with_another_exit_comes_along_as_dependency() -> None:
    rib = rib_of({"10.0.0.0/16": A, "10.0.1.0/24": B, "10.0.2.0/24": A})
    selection = select(scores={"10.0.0.0/16": 10.0}, rib=rib, policy=policy(), now=0.0)
    assert chosen(selection) == {"10.0.0.0/16": (A, "topn"), "10.0.1.0/24": (B, "dependency")}


def test_closure_is_recursive_and_skips_what_an_installed_more_specific_already_forwards() -> None:
    # P(A) ⊃ Q(B) ⊃ R(A): R differs from Q, its closest member → in.
    # P(A) ⊃ Q2(B) ⊃ R2(B): R2 follows Q2 correctly → out.
    hops = {"10.0.1.0/24": B, "10.0.1.0/25": A, "10.0.2.0/24": B, "10.0.2.0/25": B}
    unit = unit_of("10.0.0.0/16", A, list(hops), hops.get)
    assert unit == {"10.0.0.0/16": A, "10.0.1.0/24": B, "10.0.1.0/25": A, "10.0.2.0/24": B}


def test_a_unit_that_does_not_fit_is_skipped_whole_and_smaller_ones_fill_in() -> None:
    rib = rib_of({"10.0.0.0/16": A, "10.0.1.0/24": B, "10.0.2.0/24": C, "10.1.0.0/24": A})
    scores = {"10.0.0.0/16": 10.0, "10.1.0.0/24": 1.0}
    selection = select(scores=scores, rib=rib, policy=policy(cap4=2), now=0.0)
    assert chosen(selection) == {"10.1.0.0/24": (A, "topn")}


def test_unit_cost_is_weighed_against_its_size() -> None:
    # the /16 needs 3 slots for 10/s (3.3 per slot); two singles at 4/s each are worth more
    rib = rib_of({"10.0.0.0/16": A, "10.0.1.0/24": B, "10.0.2.0/24": C, "10.1.0.0/24": A, "10.2.0.0/24": A})
    scores = {"10.0.0.0/16": 10.0, "10.1.0.0/24": 4.0, "10.2.0.0/24": 4.0}
    selection = select(scores=scores, rib=rib, policy=policy(cap4=3), now=0.0)
    assert set(selection.routes) == {"10.1.0.0/24", "10.2.0.0/24"}


def test_separate_slash24_table_has_its_own_cap() -> None:
    rib = rib_of({"10.0.0.0/24": A, "10.0.1.0/24": A, "10.0.2.0/24": A, "10.1.0.0/23": A, "10.2.0.0/22": A})
    scores = {
        "10.0.0.0/24": 9.0,
        "10.0.1.0/24": 8.0,
        "10.0.2.0/24": 7.0,
        "10.1.0.0/23": 2.0,
        "10.2.0.0/22": 1.0,
    }
    selection = select(scores=scores, rib=rib, policy=policy(cap4=1, cap24=2), now=0.0)
    assert set(selection.routes) == {"10.0.0.0/24", "10.0.1.0/24", "10.1.0.0/23"}
    assert selection.usage == {"ipv4": 1, "ipv4/24": 2, "ipv6": 0}


def test_pins_then_requests_newest_first_then_topn() -> None:
    rib = rib_of({"10.0.0.0/24": A, "10.0.1.0/24": A, "10.0.2.0/24": A, "10.0.3.0/24": A})
    requests = [
        OnDemandRequest("10.0.1.7", expires_at=100.0, created_at=1.0, request_id="old"),
        OnDemandRequest("10.0.2.7", expires_at=100.0, created_at=2.0, request_id="new"),
        OnDemandRequest("10.9.9.9", expires_at=100.0, created_at=3.0, request_id="nowhere"),
        OnDemandRequest("10.0.3.7", expires_at=5.0, created_at=0.0, request_id="expired"),
    ]
    selection = select(
        scores={"10.0.3.0/24": 1000.0},
        rib=rib,
        policy=policy(cap4=2),
        now=10.0,
        requests=requests,
        pins=["10.0.0.0/24"],
    )
    assert chosen(selection) == {"10.0.0.0/24": (A, "pinned"), "10.0.2.0/24": (A, "request")}
    answers = {a.request_id: (a.status, a.prefix) for a in selection.requests}
    assert answers == {
        "old": ("rejected", "10.0.1.0/24"),
        "new": ("installed", "10.0.2.0/24"),
        "nowhere": ("no-route", None),
        "expired": ("expired", None),
    }
    rejected = next(a for a in selection.requests if a.request_id == "old")
    assert rejected.reason == "ipv4 table full: needs 1 route(s), 0 of 2 free"
    assert [a.request_id for a in selection.requests] == ["old", "new", "nowhere", "expired"]


def test_pin_without_a_path_answers_no_route_and_one_that_does_not_fit_is_rejected() -> None:
    rib = rib_of({"10.0.0.0/24": A, "10.0.1.0/24": A})
    selection = select(
        scores={}, rib=rib, policy=policy(cap4=1), now=0.0, pins=["10.0.1.0/24", "10.0.0.0/24", "10.5.0.0/24"]
    )
    statuses = {a.prefix: a.status for a in selection.pins}
    assert statuses == {"10.0.0.0/24": "installed", "10.0.1.0/24": "rejected", "10.5.0.0/24": "no-route"}


def test_challenger_must_beat_incumbent_by_the_margin() -> None:
    rib = rib_of({"10.0.0.0/24": A, "10.0.1.0/24": A})
    first = select(scores={"10.0.0.0/24": 10.0}, rib=rib, policy=policy(cap4=1, margin=0.2), now=0.0)
    close = {"10.0.0.0/24": 10.0, "10.0.1.0/24": 11.9}
    kept = select(scores=close, rib=rib, policy=policy(cap4=1, margin=0.2), now=1.0, incumbents=first.routes)
    assert set(kept.routes) == {"10.0.0.0/24"}
    assert kept.routes["10.0.0.0/24"].since == 0.0
    clear = {"10.0.0.0/24": 10.0, "10.0.1.0/24": 12.1}
    beaten = select(
        scores=clear, rib=rib, policy=policy(cap4=1, margin=0.2), now=1.0, incumbents=first.routes
    )
    assert set(beaten.routes) == {"10.0.1.0/24"}
    assert beaten.routes["10.0.1.0/24"].since == 1.0


def test_challenger_must_also_gain_a_share_of_the_average_incumbent() -> None:
    """Incumbents average (10 + 990) / 2 = 500: with min_swap_gain 0.01 a challenger must score
    above 10 × 1.2 + 5 to take the weak incumbent's slot, the margin alone is not enough."""
    rib = rib_of({"10.0.0.0/24": A, "10.0.1.0/24": A, "10.0.2.0/24": A})
    held = {"10.0.0.0/24": 10.0, "10.0.2.0/24": 990.0}
    gaining = policy(cap4=2, margin=0.2, gain=0.01)
    first = select(scores=held, rib=rib, policy=gaining, now=0.0)
    assert set(first.routes) == set(held)
    for challenger, wins in ((16.9, False), (17.1, True)):
        scores = {**held, "10.0.1.0/24": challenger}
        after = select(scores=scores, rib=rib, policy=gaining, now=1.0, incumbents=first.routes)
        assert ("10.0.1.0/24" in after.routes) is wins, challenger
        assert "10.0.2.0/24" in after.routes
    # without the floor the margin alone decides
    scores = {**held, "10.0.1.0/24": 12.1}
    margin_only = policy(cap4=2, margin=0.2)
    after = select(scores=scores, rib=rib, policy=margin_only, now=1.0, incumbents=first.routes)
    assert "10.0.1.0/24" in after.routes


def test_the_config_default_swap_gain_is_the_policys() -> None:
    from topfib.controller.config import SwitchConfig
    from topfib.controller.selection.model import DEFAULT_MIN_SWAP_GAIN

    assert SwitchConfig.model_fields["min_swap_gain"].default == DEFAULT_MIN_SWAP_GAIN
    assert SelectionPolicy(cap_ipv4=1, cap_ipv6=1).min_swap_gain == DEFAULT_MIN_SWAP_GAIN


def test_incumbent_stays_for_the_minimum_dwell_even_without_traffic() -> None:
    rib = rib_of({"10.0.0.0/24": A, "10.0.1.0/24": A})
    first = select(scores={"10.0.0.0/24": 10.0}, rib=rib, policy=policy(cap4=1, dwell=300.0), now=0.0)
    scores = {"10.0.1.0/24": 1000.0}
    during = select(
        scores=scores, rib=rib, policy=policy(cap4=1, dwell=300.0), now=299.0, incumbents=first.routes
    )
    assert set(during.routes) == {"10.0.0.0/24"}
    after = select(
        scores=scores, rib=rib, policy=policy(cap4=1, dwell=300.0), now=300.0, incumbents=during.routes
    )
    assert set(after.routes) == {"10.0.1.0/24"}


def test_requests_displace_dwelling_topn_routes() -> None:
    rib = rib_of({"10.0.0.0/24": A, "10.0.1.0/24": A})
    first = select(scores={"10.0.0.0/24": 10.0}, rib=rib, policy=policy(cap4=1, dwell=300.0), now=0.0)
    request = OnDemandRequest("10.0.1.1", expires_at=100.0)
    later = select(
        scores={},
        rib=rib,
        policy=policy(cap4=1, dwell=300.0),
        now=1.0,
        incumbents=first.routes,
        requests=[request],
    )
    assert chosen(later) == {"10.0.1.0/24": (A, "request")}


def test_incumbent_whose_path_vanished_is_dropped_despite_dwell_and_pin() -> None:
    incumbents = {"10.0.0.0/24": SelectedRoute("10.0.0.0/24", A, "pinned", since=0.0, score=5.0)}
    selection = select(
        scores={"10.0.0.0/24": 5.0},
        rib=rib_of({}),
        policy=policy(dwell=300.0),
        now=1.0,
        incumbents=incumbents,
        pins=["10.0.0.0/24"],
    )
    assert selection.routes == {}
    assert selection.pins[0].status == "no-route"


def test_next_hop_follows_the_current_best_path() -> None:
    incumbents = {"10.0.0.0/24": SelectedRoute("10.0.0.0/24", A, "topn", since=0.0, score=5.0)}
    selection = select(
        scores={"10.0.0.0/24": 5.0},
        rib=rib_of({"10.0.0.0/24": B}),
        policy=policy(),
        now=1.0,
        incumbents=incumbents,
    )
    assert chosen(selection) == {"10.0.0.0/24": (B, "topn")}
    assert selection.routes["10.0.0.0/24"].since == 0.0


def test_policy_from_switch_config_and_serialisation() -> None:
    switch = SwitchConfig(
        name="sw1",
        neighbor="10.0.0.2",
        local_address="10.0.0.1",
        local_as=65000,
        peer_as=65001,
        fib_cap_ipv4=16000,
        fib_cap_ipv6=2000,
        fib_cap_ipv4_24=100000,
        margin=0.3,
        min_dwell_s=60.0,
    )
    assert SelectionPolicy.from_switch(switch) == SelectionPolicy(16000, 2000, 100000, 0.3, 60.0)
    rib = rib_of({"10.0.0.0/24": A})
    selection = select(scores={"10.0.0.0/24": 2.0}, rib=rib, policy=policy(), now=7.0)
    assert selection.to_dict() == {
        "routes": [{"prefix": "10.0.0.0/24", "next_hop": A, "reason": "topn", "since": 7.0, "score": 2.0}],
        "requests": [],
        "pins": [],
        "usage": {"ipv4": 1, "ipv6": 0},
        "caps": {"ipv4": 10, "ipv6": 10},
    }
    assert selection.desired() == {"10.0.0.0/24": A}


def test_policy_rejects_negative_values() -> None:
    with pytest.raises(ValueError):
        SelectionPolicy(cap_ipv4=-1, cap_ipv6=1)
    with pytest.raises(ValueError):
        SelectionPolicy(cap_ipv4=1, cap_ipv6=1, margin=-0.1)


def test_static_rib_lookups() -> None:
    rib = rib_of(
        {"10.0.0.0/8": A, "10.1.0.0/16": B, "10.1.2.0/24": A, "11.0.0.0/8": A, "2001:db8::/32": V6_NH}
    )
    assert rib.longest_match("10.1.2.3") == "10.1.2.0/24"
    assert rib.longest_match("10.2.0.1") == "10.0.0.0/8"
    assert rib.longest_match("12.0.0.1") is None
    assert rib.longest_match("2001:db8::5") == "2001:db8::/32"
    assert rib.more_specifics("10.0.0.0/8") == ["10.1.0.0/16", "10.1.2.0/24"]
    assert rib.more_specifics("10.1.2.0/24") == []
    assert rib.more_specifics("0.0.0.0/0") == ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "11.0.0.0/8"]
    assert list(rib)[-1] == "2001:db8::/32"


def test_malformed_requests_and_pins_are_answered_not_raised() -> None:
    rib = rib_of({"10.0.0.0/24": A})
    selection = select(
        scores={"not-a-prefix": 5.0, "10.0.0.0/24": 5.0},
        rib=rib,
        policy=policy(),
        now=0.0,
        requests=[OnDemandRequest("10.0.0.300", expires_at=10.0, request_id="bad")],
        pins=["10.0.0.0/33", "10.0.0.0/24"],
    )
    assert [(a.status, a.reason) for a in selection.requests] == [("rejected", "invalid address")]
    assert {a.prefix: a.status for a in selection.pins} == {
        "10.0.0.0/33": "rejected",
        "10.0.0.0/24": "installed",
    }
    assert set(selection.routes) == {"10.0.0.0/24"}


def test_with_evidence_sampling_noise_alone_does_not_swap_routes() -> None:
    rib = rib_of({"10.0.0.0/24": A, "10.0.1.0/24": A})
    strict = policy(cap4=1, margin=0.2)
    first = select(scores={"10.0.0.0/24": 10.0}, rib=rib, policy=strict, now=0.0)
    scores = {"10.0.0.0/24": 10.0, "10.0.1.0/24": 20.0}  # twice the incumbent: beyond the margin
    # 9 samples each: ±65 %; the challenger's 7.0 lower bound is under the incumbent's 19.8 upper bound
    few = {"10.0.0.0/24": 9.0, "10.0.1.0/24": 9.0}
    kept = select(scores=scores, rib=rib, policy=strict, now=1.0, incumbents=first.routes, evidence=few)
    assert set(kept.routes) == {"10.0.0.0/24"}
    many = {"10.0.0.0/24": 10_000.0, "10.0.1.0/24": 10_000.0}  # ±2 %: the lead is real
    beaten = select(scores=scores, rib=rib, policy=strict, now=1.0, incumbents=first.routes, evidence=many)
    assert set(beaten.routes) == {"10.0.1.0/24"}
    assert set(select(scores=scores, rib=rib, policy=strict, now=1.0, incumbents=first.routes).routes) == {
        "10.0.1.0/24"
    }


def test_with_evidence_a_challenger_needs_the_minimum_samples_to_displace() -> None:
    rib = rib_of({"10.0.0.0/24": A, "10.0.1.0/24": A})
    strict = SelectionPolicy(cap_ipv4=1, cap_ipv6=1, margin=0.2, min_dwell_s=0.0, evidence_min_samples=30.0)
    first = select(scores={"10.0.0.0/24": 10.0}, rib=rib, policy=strict, now=0.0)
    scores = {"10.0.0.0/24": 10.0, "10.0.1.0/24": 1000.0}  # far ahead, whatever the intervals
    for samples, winner in ((29.0, "10.0.0.0/24"), (30.0, "10.0.1.0/24")):
        evidence = {"10.0.0.0/24": 1e6, "10.0.1.0/24": samples}
        selection = select(
            scores=scores, rib=rib, policy=strict, now=1.0, incumbents=first.routes, evidence=evidence
        )
        assert set(selection.routes) == {winner}


def test_with_evidence_free_room_still_goes_to_thin_evidence_after_idle_incumbents() -> None:
    rib = rib_of({"10.0.0.0/24": A, "10.0.1.0/24": A, "10.0.2.0/24": A, "10.0.3.0/24": A})
    room = policy(cap4=3)
    first = select(scores={"10.0.0.0/24": 5.0}, rib=rib, policy=room, now=0.0)
    # the incumbent lost its traffic; three newcomers with one sample each: none could displace
    # anyone, but nobody holds the two free slots, so the best two by score take them
    scores = {"10.0.1.0/24": 3.0, "10.0.2.0/24": 2.0, "10.0.3.0/24": 1.0}
    evidence = dict.fromkeys(scores, 1.0)
    selection = select(
        scores=scores, rib=rib, policy=room, now=1.0, incumbents=first.routes, evidence=evidence
    )
    assert list(selection.routes) == ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]
    assert selection.routes["10.0.0.0/24"].since == 0.0
    # without evidence scores alone rank them: the idle incumbent leaves
    assert set(select(scores=scores, rib=rib, policy=room, now=1.0, incumbents=first.routes).routes) == set(
        scores
    )


@pytest.mark.parametrize("gain", [0.0, 0.03])
def test_with_evidence_an_ended_request_without_traffic_leaves_even_with_free_room(gain: float) -> None:
    rib = rib_of({"10.0.0.0/24": A, "10.0.1.0/24": A, "10.0.2.0/24": A})
    room = policy(cap4=3, gain=gain)
    asked = select(scores={"10.0.2.0/24": 50.0}, rib=rib, policy=room, now=0.0,
                   requests=[OnDemandRequest("10.0.0.7", expires_at=10.0, request_id="r1")])
    assert asked.routes["10.0.0.0/24"].reason == "request"
    # the swap-gain floor (here 0.03 × the incumbents' average) is for incumbents with traffic
    scores = {"10.0.1.0/24": 1.0, "10.0.2.0/24": 50.0}
    after = select(scores=scores, rib=rib, policy=room, now=1.0, incumbents=asked.routes,
                   evidence=dict.fromkeys(scores, 1.0))
    assert set(after.routes) == {"10.0.1.0/24", "10.0.2.0/24"}
