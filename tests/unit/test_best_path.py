"""Best path by RFC 4271 §9.1.2.2 as far as topfib sees the attributes: MED only between paths
from the same neighbour AS (unless always_compare_med), lowest next hop as the stable tie-break."""

from __future__ import annotations

import itertools
from dataclasses import replace

from topfib.collector.rib.paths import BestPathRules, BgpPath, best_path, neighbor_as
from topfib.collector.rib.rib import Rib, RibChange

P = "198.51.100.0/24"
SWITCH = "10.99.0.2"


def path(next_hop: str, as_path: tuple[int, ...] = (64500,), med: int = 0, path_id: int = 0,
         **attrs: object) -> BgpPath:
    return BgpPath(next_hop=next_hop, as_path=as_path, med=med, peer=SWITCH, path_id=path_id,
                **attrs)  # type: ignore[arg-type]


def test_med_is_compared_only_between_paths_from_the_same_neighbour_as() -> None:
    high_med = path("192.0.2.1", as_path=(64501, 64600), med=100)
    low_med_other_as = path("192.0.2.2", as_path=(64502, 64600), med=0)
    # different neighbour ASes: MED does not count, the lower next hop wins
    assert best_path([low_med_other_as, high_med]) == high_med
    # same neighbour AS: the lower MED wins
    low_med_same_as = path("192.0.2.3", as_path=(64501, 64700), med=0)
    assert best_path([high_med, low_med_same_as]) == low_med_same_as
    # always_compare_med: MED between all of them
    always = BestPathRules(always_compare_med=True)
    assert best_path([high_med, low_med_other_as], always) == low_med_other_as


def test_local_pref_as_path_and_origin_come_before_med_and_the_tie_break() -> None:
    best = path("192.0.2.9", local_pref=200, med=999)
    shorter = path("192.0.2.8", as_path=(64501,), med=999)
    longer = path("192.0.2.1", as_path=(64501, 64502), med=0)
    igp = path("192.0.2.7", as_path=(64503,), origin="igp", med=50)
    incomplete = path("192.0.2.2", as_path=(64503,), origin="incomplete", med=0)
    assert best_path([longer, shorter, best]) == best
    assert best_path([longer, shorter]) == shorter
    assert best_path([incomplete, igp]) == igp


def test_full_ties_go_to_the_lowest_next_hop_not_to_the_path_id() -> None:
    # ADD-PATH ids follow arrival order at the switch and change after a flap
    first_arrived = path("192.0.2.20", path_id=1)
    lower_next_hop = path("192.0.2.3", path_id=7)
    assert best_path([first_arrived, lower_next_hop]) == lower_next_hop
    assert best_path([path("fd50::20", path_id=1), path("fd50::3", path_id=9)]) == path("fd50::3", path_id=9)


def test_the_switchs_own_as_prepended_on_an_ebgp_session_is_not_the_neighbour_as() -> None:
    a = path("192.0.2.1", as_path=(65000, 64501), med=100)
    b = path("192.0.2.2", as_path=(65000, 64502), med=0)
    assert neighbor_as(a, 65000) == 64501 and neighbor_as(path("192.0.2.1", as_path=()), 65000) == 0
    assert best_path([a, b], BestPathRules(switch_as=65000)) == a  # neighbour ASes 64501, 64502
    assert best_path([a, b]) == b  # read as one neighbour AS (65000): MED decides


def test_a_path_that_lost_can_decide_the_winner_and_its_withdraw_is_a_change() -> None:
    """RFC 4271's MED rule is not a total order: A removes B (same AS, lower MED), C beats A."""
    a = path("192.0.2.3", as_path=(64501,), med=0)
    b = path("192.0.2.1", as_path=(64501,), med=10)
    c = path("192.0.2.2", as_path=(64502,), med=5)
    assert best_path([a, b, c]) == c
    assert best_path([b, c]) == b
    for order in itertools.permutations([(1, a), (2, b), (3, c)]):
        rib = Rib()
        for path_id, candidate in order:
            rib.announce(SWITCH, P, replace(candidate, path_id=path_id))
        assert rib.paths(P)[0].next_hop == c.next_hop, order
        assert rib.withdraw(SWITCH, P, SWITCH, 1) == RibChange(P, rib.paths(P)[0])
        assert rib.paths(P)[0].next_hop == b.next_hop
        assert rib.drop_session(SWITCH) == [RibChange(P, None)]


def test_the_rib_follows_its_rules_and_agrees_with_best_path_in_any_order() -> None:
    candidates = [path("192.0.2.1", as_path=(64501,), med=100, path_id=1),
                  path("192.0.2.5", as_path=(64502,), med=0, path_id=2),
                  path("192.0.2.3", as_path=(64501,), med=50, path_id=3),
                  path("192.0.2.4", as_path=(64503, 64501), med=0, path_id=4)]
    for rules in (BestPathRules(), BestPathRules(always_compare_med=True)):
        expected = best_path(candidates, rules)
        for order in itertools.permutations(candidates):
            rib = Rib(rules=rules)
            for candidate in order:
                rib.announce(SWITCH, P, candidate)
            assert rib.best(P) == expected, (rules, order)
    assert best_path(candidates) == candidates[2]  # 64501's best (MED 50) has the lower next hop
    assert best_path(candidates, BestPathRules(always_compare_med=True)) == candidates[1]


def test_the_switch_config_sets_the_rules() -> None:
    from topfib.controller.config import SwitchConfig
    from topfib.controller.switch.controller import best_path_rules

    base = {"name": "sw1", "neighbor": "10.99.0.2", "local_address": "10.99.0.1", "local_as": 65000,
            "peer_as": 65000, "fib_cap_ipv4": 10, "fib_cap_ipv6": 2}
    assert best_path_rules(SwitchConfig.model_validate(base)) == BestPathRules()
    ebgp = SwitchConfig.model_validate({**base, "peer_as": 65001, "always_compare_med": True})
    assert best_path_rules(ebgp) == BestPathRules(always_compare_med=True, switch_as=65001)
