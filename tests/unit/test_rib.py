"""Rib: paths per session and path-id, deterministic best path, change events, LPM kept in sync."""

from __future__ import annotations

import itertools
import random

from topfib.collector.rib.events import EndOfRib, RouteUpdate, SessionState
from topfib.collector.rib.paths import BgpPath, best_path
from topfib.collector.rib.rib import Rib, RibChange

P = "198.51.100.0/24"


def path(peer: str, next_hop: str = "192.0.2.1", path_id: int = 0, **attrs: object) -> BgpPath:
    return BgpPath(next_hop=next_hop, peer=peer, path_id=path_id, **attrs)  # type: ignore[arg-type]


def test_best_path_does_not_depend_on_arrival_order() -> None:
    candidates = [
        path("10.0.0.3", local_pref=100, as_path=(1, 2)),
        path("10.0.0.2", local_pref=100, as_path=(1,), med=50),
        path("10.0.0.1", local_pref=100, as_path=(3,), med=50),
        path("10.0.0.1", local_pref=100, as_path=(3,), med=50, path_id=1),
        path("10.0.0.9", local_pref=90),
        path("10.0.0.4", local_pref=100, as_path=(4,), origin="incomplete"),
    ]
    expected = best_path(candidates)
    for order in itertools.islice(itertools.permutations(candidates), 0, 720, 37):
        rib = Rib()
        for candidate in order:
            rib.announce(candidate.peer, P, candidate)
        assert rib.best(P) == expected
        assert rib.paths(P)[0] == expected
        assert sorted(rib.paths(P), key=repr) == sorted(candidates, key=repr)


def test_changes_report_best_path_moves_only() -> None:
    rib = Rib()
    good = path("10.0.0.1", local_pref=200)
    worse = path("10.0.0.2", local_pref=100)
    assert rib.announce("10.0.0.2", P, worse) == RibChange(P, worse)
    assert rib.announce("10.0.0.1", P, good) == RibChange(P, good)
    assert rib.announce("10.0.0.2", P, worse) is None  # same path again
    assert rib.withdraw("10.0.0.2", P, "10.0.0.2", 0) is None  # non-best leaves
    assert rib.withdraw("10.0.0.1", P, "10.0.0.1", 0) == RibChange(P, None)
    assert P not in rib and rib.lpm.lookup("198.51.100.1") is None
    assert rib.withdraw("10.0.0.1", P, "10.0.0.1", 0) is None  # unknown: ignored
    assert rib.drain_changed() == {P}
    assert rib.drain_changed() == set()


def test_implicit_replace_of_the_same_path_id() -> None:
    rib = Rib()
    first = path("10.0.0.1", next_hop="192.0.2.1", path_id=4)
    moved = path("10.0.0.1", next_hop="192.0.2.2", path_id=4)
    rib.announce("10.0.0.1", P, first)
    assert rib.announce("10.0.0.1", P, moved) == RibChange(P, moved)
    assert rib.paths(P) == [moved]
    assert rib.counts().ipv4_paths == 1


def test_path_ids_are_separate_paths() -> None:
    rib = Rib()
    for path_id in (1, 2, 3):
        rib.announce("10.0.0.1", P, path("10.0.0.1", next_hop=f"192.0.2.{path_id}", path_id=path_id))
    assert [p.path_id for p in rib.paths(P)] == [1, 2, 3]
    rib.withdraw("10.0.0.1", P, "10.0.0.1", 2)
    assert [p.path_id for p in rib.paths(P)] == [1, 3]


def test_session_down_and_up_drop_its_paths_only() -> None:
    rib = Rib()
    a, b = path("10.0.0.1", local_pref=200), path("10.0.0.2")
    rib.apply(RouteUpdate("10.0.0.1", "ipv4 unicast", P, 0, a))
    rib.apply(RouteUpdate("10.0.0.2", "ipv4 unicast", P, 0, b))
    rib.apply(RouteUpdate("10.0.0.1", "ipv4 unicast", "203.0.113.0/24", 0, a))
    changes = rib.apply(SessionState("10.0.0.1", "down", "hold timer expired"))
    assert sorted(changes, key=lambda c: c.prefix) == [RibChange("198.51.100.0/24", b),
                                                       RibChange("203.0.113.0/24", None)]
    assert rib.apply(SessionState("10.0.0.1", "connected")) == []
    rib.apply(RouteUpdate("10.0.0.2", "ipv4 unicast", "192.0.2.0/24", 0, b))
    assert rib.apply(SessionState("10.0.0.2", "up")) != []  # a new session starts empty
    assert len(rib) == 0 and len(rib.lpm) == 0


def test_end_of_rib_replaces_the_preloaded_file_paths_per_family() -> None:
    rib = Rib()
    file_v4 = path("203.0.113.1", local_pref=300)
    file_v6 = path("2001:db8::1", next_hop="2001:db8::1")
    rib.announce("file", P, file_v4)
    rib.announce("file", "10.0.0.0/8", file_v4)
    rib.announce("file", "2001:db8::/32", file_v6)
    live = path("10.0.0.1")
    # A live path wins at once, even against a "better" preloaded one.
    assert rib.apply(RouteUpdate("10.0.0.1", "ipv4 unicast", P, 0, live)) == [RibChange(P, live)]
    changes = rib.apply(EndOfRib("10.0.0.1", "ipv4 unicast"))
    assert changes == [RibChange("10.0.0.0/8", None)]
    assert rib.paths(P) == [live]
    assert rib.best("2001:db8::/32") == file_v6  # IPv6 waits for its own End-of-RIB
    assert rib.session_path_counts() == {"10.0.0.1": 1, "file": 1}


def test_one_file_session_holds_many_mrt_peers() -> None:
    rib = Rib()
    rib.announce("file", P, path("10.0.0.1"))
    rib.announce("file", P, path("10.0.0.2"))
    assert len(rib.paths(P)) == 2
    rib.withdraw("file", P, "10.0.0.1", 0)
    assert [p.peer for p in rib.paths(P)] == ["10.0.0.2"]


def test_counts_more_specifics_and_lookup() -> None:
    rib = Rib()
    for prefix in ("10.0.0.0/8", "10.1.0.0/16", "10.1.1.0/24", "2001:db8::/32", "2001:db8:1::/48"):
        peer = "2001:db8::ff" if ":" in prefix else "10.255.0.1"
        rib.announce(peer, prefix, path(peer))
        rib.announce(peer, prefix, path(peer, path_id=1))
    counts = rib.counts()
    assert (counts.ipv4_prefixes, counts.ipv6_prefixes) == (3, 2)
    assert (counts.ipv4_paths, counts.ipv6_paths, counts.paths) == (6, 4, 10)
    assert rib.more_specifics("10.0.0.0/8") == ["10.1.0.0/16", "10.1.1.0/24"]
    assert rib.more_specifics("2001:db8::/32") == ["2001:db8:1::/48"]
    assert rib.longest_match("10.1.1.1") == "10.1.1.0/24"
    assert rib.longest_match("2001:db8:1::1") == "2001:db8:1::/48"
    assert rib.longest_match("192.0.2.1") is None


def test_interned_paths_are_shared_and_released() -> None:
    rib = Rib()
    prefixes = [f"10.{i}.0.0/16" for i in range(50)]
    shared = path("10.0.0.1", as_path=(1, 2, 3))  # producers share one Path per attribute set
    for prefix in prefixes:
        rib.announce("10.0.0.1", prefix, shared)
    assert all(rib.paths(p)[0] is shared for p in prefixes)
    assert len(rib._shared) == 1
    rib.announce("10.0.0.1", prefixes[0], path("10.0.0.1", as_path=(1, 2, 3)))  # equal, not shared
    assert rib.paths(prefixes[0]) == [shared] and len(rib._shared) == 2
    rib.announce("10.0.0.2", prefixes[1], path("10.0.0.2"))  # ordered against the shared one
    rib.drop_session("10.0.0.2")
    for prefix in prefixes:
        rib.withdraw("10.0.0.1", prefix, "10.0.0.1", 0)
    assert len(rib._shared) == 0
    assert not rib._shared._extra_holders and not rib._shared._sort_keys and not rib._shared._by_session


def test_random_churn_keeps_lpm_and_best_in_sync() -> None:
    rng = random.Random(3)
    rib = Rib()
    prefixes = [f"10.{i}.0.0/16" for i in range(20)] + [f"2001:db8:{i:x}::/48" for i in range(20)]
    peers = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    truth: dict[tuple[str, str, int], BgpPath] = {}
    for _ in range(2000):
        prefix, peer, path_id = rng.choice(prefixes), rng.choice(peers), rng.randrange(3)
        roll = rng.random()
        if roll < 0.55:
            p = path(peer, next_hop=f"192.0.2.{rng.randrange(4)}", path_id=path_id,
                     local_pref=rng.choice([100, 200]), as_path=tuple(range(rng.randrange(3))))
            rib.announce(peer, prefix, p)
            truth[(prefix, peer, path_id)] = p
        elif roll < 0.98:
            rib.withdraw(peer, prefix, peer, path_id)
            truth.pop((prefix, peer, path_id), None)
        else:
            rib.drop_session(peer)
            truth = {k: v for k, v in truth.items() if k[1] != peer}
    for prefix in prefixes:
        expected = [v for k, v in truth.items() if k[0] == prefix]
        assert rib.best(prefix) == best_path(expected)
        assert (prefix in rib.lpm) == bool(expected)
    assert rib.counts().paths == len(truth)


def test_a_live_path_beats_a_preloaded_file_path() -> None:
    rib = Rib()
    preloaded = BgpPath(next_hop="0.0.0.0", as_path=(64500,))  # pfx2as: short AS path, synthetic next hop
    live = path("10.0.0.1", as_path=(64501, 64502, 64500))
    rib.announce("file", P, preloaded)
    assert rib.best(P) == preloaded  # nothing better yet
    assert rib.announce("10.0.0.1", P, live) == RibChange(P, live)
    assert rib.paths(P) == [live, preloaded]
    rib.withdraw("10.0.0.1", P, "10.0.0.1", 0)
    assert rib.best(P) == preloaded


def test_session_down_reports_one_change_per_prefix() -> None:
    rib = Rib()
    for path_id, local_pref in ((1, 300), (2, 200)):  # the going session holds the two best paths
        rib.announce("10.0.0.1", P, path("10.0.0.1", path_id=path_id, local_pref=local_pref))
    survivor = path("10.0.0.2")
    rib.announce("10.0.0.2", P, survivor)
    rib.drain_changed()
    assert rib.drop_session("10.0.0.1") == [RibChange(P, survivor)]
    assert rib.drain_changed() == {P}
    assert rib.session_path_counts() == {"10.0.0.2": 1} and rib.counts().ipv4_paths == 1


def test_path_versions_change_exactly_when_a_prefixs_paths_do() -> None:
    rib = Rib()
    first = BgpPath(next_hop="192.0.2.1", peer="192.0.2.1")
    second = BgpPath(next_hop="192.0.2.2", peer="192.0.2.2", local_pref=50)
    prefix, other = "198.51.100.0/24", "203.0.113.0/24"
    rib.announce("192.0.2.1", other, first)
    rib.announce("192.0.2.1", prefix, first)

    def version(name: str) -> int:
        return int(rib.path_versions()[rib.lpm.locate(name)[1]])

    untouched = version(other)
    seen = [version(prefix)]
    for step in (
        lambda: rib.announce("192.0.2.2", prefix, second),  # a second path, not the best
        lambda: rib.withdraw("192.0.2.2", prefix, "192.0.2.2", 0),
        lambda: rib.announce("192.0.2.2", prefix, second),
        lambda: rib.drop_session("192.0.2.2"),
        lambda: rib.withdraw("192.0.2.1", prefix, "192.0.2.1", 0),  # gone
        lambda: rib.announce("192.0.2.1", prefix, first),  # back, with the same LPM id
    ):
        step()
        seen.append(version(prefix))
    assert len(set(seen)) == len(seen)  # every change gave a new version
    rib.announce("192.0.2.1", prefix, first)  # the same path again: no change
    rib.withdraw("192.0.2.9", prefix, "192.0.2.9", 0)  # an unknown path: no change
    assert version(prefix) == seen[-1]
    assert version(other) == untouched


def test_a_path_version_wraps_around_without_taking_the_readers_none_value() -> None:
    rib = Rib()
    path = BgpPath(next_hop="192.0.2.1", peer="192.0.2.1")
    rib.announce("192.0.2.1", "198.51.100.0/24", path)
    prefix_id = rib.lpm.locate("198.51.100.0/24")[1]
    rib.path_versions()[prefix_id] = 2**32 - 2  # as after four billion changes
    rib.withdraw("192.0.2.1", "198.51.100.0/24", "192.0.2.1", 0)
    assert int(rib.path_versions()[prefix_id]) == 0  # 2**32 - 1 means "not decided" to a reader
