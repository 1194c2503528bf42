"""Golden: JSON lines recorded from a real ExaBGP 5 receiving from a real BIRD 2 (ADD-PATH tx).

Recorded with scripts/record_exabgp_json.py; the parsed events and the RIB built from them are
asserted completely.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from topfib.collector.rib.events import EndOfRib, Event, Notification, RouteUpdate, SessionState
from topfib.collector.rib.exabgp_json import ExabgpJsonParser
from topfib.collector.rib.paths import BgpPath
from topfib.collector.rib.rib import Rib, RibChange

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "exabgp" / "bird2-addpath.jsonl"
V4, V6 = "10.77.0.2", "fd77::2"


def path_a(peer: str, next_hop: str, path_id: int) -> BgpPath:
    """The s4a/s6a paths: local-pref 200, MED 10, AS path 64500 64501, two communities."""
    return BgpPath(next_hop=next_hop, as_path=(64500, 64501), origin="igp", local_pref=200, med=10,
                communities=("65000:100", "65000:101"), large_communities=("65000:1:2",),
                peer=peer, path_id=path_id)


def path_b(peer: str, next_hop: str, path_id: int) -> BgpPath:
    """The s4b/s6b paths: local-pref 100, MED 20, origin incomplete, AS path 64502."""
    return BgpPath(next_hop=next_hop, as_path=(64502,), origin="incomplete", local_pref=100, med=20,
                communities=("65000:200",), large_communities=("65000:3:4294967295",),
                peer=peer, path_id=path_id)


A4, B4 = path_a(V4, "10.77.0.10", 2), path_b(V4, "10.77.0.11", 3)
A6, B6 = path_a(V6, "fd77::10", 4), path_b(V6, "fd77::11", 5)

EXPECTED: list[list[Event]] = [
    [SessionState(V4, "connected")],
    [SessionState(V4, "up")],
    [RouteUpdate(V4, "ipv4 unicast", p, 2, A4)
     for p in ("198.51.100.0/24", "192.0.2.0/24", "10.99.0.0/16", "203.0.113.0/25")],
    [RouteUpdate(V4, "ipv4 unicast", p, 3, B4)
     for p in ("198.51.100.0/24", "192.0.2.0/24", "203.0.113.128/25", "10.99.1.0/24")],
    [EndOfRib(V4, "ipv4 unicast")],
    [SessionState(V6, "connected")],
    [SessionState(V6, "up")],
    [RouteUpdate(V6, "ipv6 unicast", p, 4, A6) for p in ("2001:db8:100::/48", "2001:db8:200::/48")],
    [RouteUpdate(V6, "ipv6 unicast", p, 5, B6) for p in ("2001:db8:100::/48", "2001:db8:300::/64")],
    [EndOfRib(V6, "ipv6 unicast")],
    [RouteUpdate(V4, "ipv4 unicast", p, 3, None)
     for p in ("198.51.100.0/24", "192.0.2.0/24", "203.0.113.128/25", "10.99.1.0/24")],
    [RouteUpdate(V6, "ipv6 unicast", p, 5, None) for p in ("2001:db8:100::/48", "2001:db8:300::/64")],
    [Notification(V4, "receive", 6, 2, "0x", "")],
    [SessionState(V4, "down", "notification received (6,2)")],
    [SessionState(V4, "connected")],
    [SessionState(V4, "down", "closing connection")],
    [SessionState(V6, "down", "stop, message [shutting down]")],
    [Notification(None, "local", 0, 0, "", "shutdown")],
]


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return GOLDEN.read_text(encoding="utf-8").splitlines()


def test_every_recorded_line_parses_to_the_expected_events(lines: list[str]) -> None:
    parser = ExabgpJsonParser()
    assert [parser.parse_line(line) for line in lines] == EXPECTED
    assert dict(parser.counters) == {"lines": len(lines)}


def test_bytes_lines_parse_alike(lines: list[str]) -> None:
    parser = ExabgpJsonParser()
    assert [parser.parse_line(line.encode() + b"\n") for line in lines] == EXPECTED


def test_rib_built_from_the_recording(lines: list[str]) -> None:
    parser = ExabgpJsonParser()
    rib = Rib()
    changes = [rib.apply_all(parser.parse_line(line)) for line in lines]

    # Both paths of 198.51.100.0/24 arrive; s4a's (local-pref 200) stays best.
    assert changes[2] == [RibChange(p, A4) for p in
                          ("198.51.100.0/24", "192.0.2.0/24", "10.99.0.0/16", "203.0.113.0/25")]
    assert changes[3] == [RibChange("203.0.113.128/25", B4), RibChange("10.99.1.0/24", B4)]
    assert changes[9] == []  # End-of-RIB: no preloaded file paths to replace

    # Withdrawing the non-best path changes nothing but the prefixes that lose their only path.
    assert changes[10] == [RibChange("203.0.113.128/25", None), RibChange("10.99.1.0/24", None)]
    assert changes[11] == [RibChange("2001:db8:300::/64", None)]
    assert changes[12] == []  # a notification alone changes nothing; "down" follows

    # The IPv4 session going down removes its paths at once.
    assert sorted(changes[13], key=lambda c: c.prefix) == [
        RibChange(p, None) for p in ("10.99.0.0/16", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/25")]
    assert sorted(changes[16], key=lambda c: c.prefix) == [
        RibChange("2001:db8:100::/48", None), RibChange("2001:db8:200::/48", None)]
    assert len(rib) == 0 and len(rib.lpm) == 0
    assert rib.counts().paths == 0


def test_rib_state_after_end_of_rib(lines: list[str]) -> None:
    parser = ExabgpJsonParser()
    rib = Rib()
    for line in lines[:10]:
        rib.apply_all(parser.parse_line(line))
    assert rib.paths("198.51.100.0/24") == [A4, B4]
    assert rib.best("198.51.100.0/24") == A4
    assert rib.paths("2001:db8:100::/48") == [A6, B6]
    assert rib.longest_match("10.99.1.7") == "10.99.1.0/24"
    assert rib.longest_match("10.99.2.7") == "10.99.0.0/16"
    assert rib.more_specifics("10.99.0.0/16") == ["10.99.1.0/24"]
    counts = rib.counts()
    assert (counts.ipv4_prefixes, counts.ipv6_prefixes, counts.ipv4_paths, counts.ipv6_paths) == (6, 3, 8, 4)
    assert rib.session_path_counts() == {V4: 8, V6: 4}
