"""UnitCache: selection with RIB answers kept across calls equals selection without, as the RIB changes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from topfib.collector.rib.paths import BgpPath
from topfib.collector.rib.rib import Rib
from topfib.controller.selection.select import SelectionPolicy, UnitCache, select

HOPS = ["192.0.2.1", "192.0.2.2"]
# nested prefixes, so that units (a prefix with more-specifics of another exit) come and go
PREFIXES = ["10.0.0.0/16", "10.0.0.0/20", "10.0.1.0/24", "10.0.2.0/24", "10.0.16.0/20", "10.0.17.0/24",
            "2001:db8::/32", "2001:db8:1::/48"]
PATHS = {hop: BgpPath(next_hop=hop, peer=hop) for hop in HOPS}

changes = st.lists(
    st.tuples(st.sampled_from(PREFIXES), st.sampled_from([*HOPS, None])), min_size=1, max_size=6
)


@given(st.lists(changes, min_size=1, max_size=5), st.integers(1, 4))
@settings(max_examples=60, deadline=None)
def test_cached_selection_equals_a_fresh_one_after_every_rib_change(
    rounds: list[list[tuple[str, str | None]]], cap: int
) -> None:
    rib = Rib()
    cache = UnitCache()
    policy = SelectionPolicy(cap_ipv4=cap, cap_ipv6=cap, margin=0.0, min_dwell_s=0.0)
    scores = {prefix: float(len(PREFIXES) - i) for i, prefix in enumerate(PREFIXES)}
    for round_changes in rounds:
        for prefix, hop in round_changes:
            # one path per prefix: replace it (a new best) or withdraw it (the prefix goes)
            for path in rib.paths(prefix):
                rib.withdraw("s", prefix, path.peer, path.path_id)
            if hop is not None:
                rib.announce("s", prefix, PATHS[hop])
        cache.forget(rib.drain_changed())
        cached = select(scores=scores, rib=rib, policy=policy, now=0.0, cache=cache)
        fresh = select(scores=scores, rib=rib, policy=policy, now=0.0)
        assert cached.routes == fresh.routes


def test_a_new_more_specific_of_another_exit_joins_its_cached_cover() -> None:
    rib = Rib()
    rib.announce("s", "10.0.0.0/16", PATHS[HOPS[0]])
    cache = UnitCache()
    policy = SelectionPolicy(cap_ipv4=5, cap_ipv6=5)
    scores = {"10.0.0.0/16": 10.0}
    assert set(select(scores=scores, rib=rib, policy=policy, now=0.0, cache=cache).routes) == {"10.0.0.0/16"}
    rib.announce("s", "10.0.3.0/24", PATHS[HOPS[1]])
    cache.forget(rib.drain_changed())
    routes = select(scores=scores, rib=rib, policy=policy, now=1.0, cache=cache).routes
    assert {p: r.next_hop for p, r in routes.items()} == {"10.0.0.0/16": HOPS[0], "10.0.3.0/24": HOPS[1]}


def test_another_rib_object_or_a_change_storm_starts_the_cache_over() -> None:
    first, second = Rib(), Rib()
    first.announce("s", "10.0.0.0/24", PATHS[HOPS[0]])
    second.announce("s", "10.0.0.0/24", PATHS[HOPS[1]])
    cache = UnitCache()
    policy = SelectionPolicy(cap_ipv4=5, cap_ipv6=5)
    scores = {"10.0.0.0/24": 1.0}
    assert select(scores=scores, rib=first, policy=policy, now=0.0, cache=cache).desired() == {
        "10.0.0.0/24": HOPS[0]
    }
    assert select(scores=scores, rib=second, policy=policy, now=0.0, cache=cache).desired() == {
        "10.0.0.0/24": HOPS[1]
    }
    assert len(cache)
    cache.forget(f"10.{i >> 8}.{i & 255}.0/24" for i in range(6000))
    assert not len(cache)
    cache.forget(["not-a-prefix"])  # not a prefix: forgetting everything is the safe answer
