"""ExabgpJsonParser on hand-made lines: ExaBGP 4 shapes, edge cases and bad input by reason."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from topfib.collector.rib.events import EndOfRib, Notification, RouteUpdate, SessionState
from topfib.collector.rib.exabgp_json import ExabgpJsonParser
from topfib.collector.rib.paths import BgpPath


def update_line(update: dict[str, Any], peer: str = "192.0.2.1", version: str = "5.0.0") -> str:
    return json.dumps({
        "exabgp": version, "time": 1.0, "type": "update",
        "neighbor": {"address": {"local": "192.0.2.2", "peer": peer}, "asn": {"local": 1, "peer": 2},
                     "direction": "receive", "message": {"update": update}},
    })


ONE = {"ipv4 unicast": {"192.0.2.9": ["10.0.0.0/8"]}}  # one plain announce
PEER = {"address": {"peer": "192.0.2.1"}}
ATTRS_V4 = {"origin": "egp", "as-path": [64500, 64501, 64502], "med": 5, "local-preference": 150,
            "community": [[65000, 1]], "large-community": [[65000, 1, 1]]}


def test_exabgp4_list_as_path_and_compact_nlri() -> None:
    parser = ExabgpJsonParser()
    line = update_line({"attribute": ATTRS_V4,
                        "announce": {"ipv4 unicast": {"192.0.2.9": ["198.51.100.0/24", "10.0.0.0/8"]}}},
                       version="4.2.21")
    path = BgpPath(next_hop="192.0.2.9", as_path=(64500, 64501, 64502), origin="egp", local_pref=150, med=5,
                communities=("65000:1",), large_communities=("65000:1:1",), peer="192.0.2.1", path_id=0)
    assert parser.parse_line(line) == [
        RouteUpdate("192.0.2.1", "ipv4 unicast", "198.51.100.0/24", 0, path),
        RouteUpdate("192.0.2.1", "ipv4 unicast", "10.0.0.0/8", 0, path),
    ]


def test_as_set_segments_and_defaults() -> None:
    parser = ExabgpJsonParser()
    as_path = {"1": {"element": "as-set", "value": [65003, 65001]},
               "0": {"element": "as-sequence", "value": [64500]}}
    line = update_line({"attribute": {"as-path": as_path},
                        "announce": {"ipv6 unicast": {"2001:db8::1": [
                            {"nlri": "2001:DB8:0:0::/32", "path-information": 7}]}}})
    [event] = parser.parse_line(line)
    assert isinstance(event, RouteUpdate)
    assert event.prefix == "2001:db8::/32"  # canonicalised
    assert event.path_id == 7
    assert event.path == BgpPath(next_hop="2001:db8::1", as_path=(64500, 65001, 65003), peer="192.0.2.1",
                              path_id=7)


def test_withdraw_and_announce_in_one_update() -> None:
    parser = ExabgpJsonParser()
    line = update_line({
        "attribute": {"origin": "igp", "as-path": []},
        "announce": {"ipv4 unicast": {"192.0.2.9": [{"nlri": "10.1.0.0/16", "path-information": "0.0.1.0"}]}},
        "withdraw": {"ipv4 unicast": [{"nlri": "10.2.0.0/16", "path-information": "0.0.0.9"}]},
    })
    events = parser.parse_line(line)
    assert [(type(e).__name__, getattr(e, "prefix", None), getattr(e, "path_id", None)) for e in events] == [
        ("RouteUpdate", "10.2.0.0/16", 9), ("RouteUpdate", "10.1.0.0/16", 256)]
    assert isinstance(events[0], RouteUpdate) and events[0].path is None


def test_acks_and_blank_lines_are_not_errors() -> None:
    parser = ExabgpJsonParser()
    assert parser.parse_line("done") == []
    assert parser.parse_line("error\n") == []
    assert parser.parse_line("") == []
    assert parser.counters["ack"] == 2
    assert set(parser.counters) == {"lines", "ack"}


def test_keepalive_and_open_are_ignored_not_bad() -> None:
    parser = ExabgpJsonParser()
    neighbor = {"address": {"peer": "192.0.2.1"}}
    assert parser.parse_line(json.dumps({"type": "keepalive", "neighbor": neighbor})) == []
    assert parser.counters["ignored_type"] == 1


@pytest.mark.parametrize(("line", "reason"), [
    ("{not json", "not_json"),
    ("[1, 2]", "not_object"),
    (json.dumps({"type": "mystery"}), "unknown_type"),
    (json.dumps({"type": "state", "neighbor": {"state": "up"}}), "bad_neighbor"),
    (json.dumps({"type": "state", "neighbor": {"address": {"peer": "192.0.2.1"}, "state": "sideways"}}),
     "bad_state"),
    (json.dumps({"type": "notification", "neighbor": {"address": {"peer": "192.0.2.1"},
                                                      "notification": {"code": "x"}}}), "bad_notification"),
    (update_line({"announce": {"ipv4 flow": {"192.0.2.9": ["10.0.0.0/8"]}}}), "unsupported_family"),
    (update_line({"announce": {"ipv4 unicast": {"192.0.2.9": ["10.0.0.1/8"]}}}), "bad_prefix"),
    (update_line({"announce": {"ipv4 unicast": {"192.0.2.9": ["10.0.0.0/40"]}}}), "bad_prefix"),
    (update_line({"announce": {"ipv4 unicast": {"192.0.2.9": [{"nlri": 5}]}}}), "bad_nlri"),
    (update_line({"announce": {"ipv4 unicast": {"192.0.2.9": [
        {"nlri": "10.0.0.0/8", "path-information": "1.2.3"}]}}}), "bad_nlri"),
    (update_line({"announce": {"ipv4 unicast": {"null": ["10.0.0.0/8"]}}}), "bad_next_hop"),
    (update_line({"announce": {"ipv4 unicast": ["10.0.0.0/8"]}}), "bad_nlri"),
    (update_line({"attribute": {"as-path": "64500"}, "announce": ONE}), "bad_attribute"),
    (update_line({"attribute": {"med": -1}, "announce": ONE}), "bad_attribute"),
    (update_line({"attribute": {"origin": "bgp"}, "announce": ONE}), "bad_attribute"),
    (update_line({"attribute": {"community": [[1, 2, 3]]}, "announce": ONE}), "bad_attribute"),
    (update_line({"withdraw": ["10.0.0.0/8"]}), "bad_update"),
    (json.dumps({"type": "update", "neighbor": {**PEER, "message": {"eor": {}}}}), "bad_update"),
    (json.dumps({"type": "update", "neighbor": {**PEER, "message": 3}}), "bad_update"),
])
def test_bad_input_is_counted_by_reason(line: str, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    parser = ExabgpJsonParser()
    with caplog.at_level(logging.WARNING):
        assert parser.parse_line(line) == []
    assert parser.counters[reason] == 1
    assert reason in caplog.text


def test_a_bad_nlri_does_not_lose_the_good_ones() -> None:
    parser = ExabgpJsonParser()
    line = update_line({"announce": {"ipv4 unicast": {"192.0.2.9": ["10.0.0.0/8", "bad", "11.0.0.0/8"]}}})
    prefixes = [e.prefix for e in parser.parse_line(line) if isinstance(e, RouteUpdate)]
    assert prefixes == ["10.0.0.0/8", "11.0.0.0/8"]
    assert parser.counters["bad_prefix"] == 1


def test_treat_as_withdraw_turns_announces_into_withdraws() -> None:
    parser = ExabgpJsonParser()
    line = update_line({"attribute": {"error": "treat-as-withdraw"},
                        "announce": {"ipv4 unicast": {"192.0.2.9": ["10.0.0.0/8"]}}})
    assert parser.parse_line(line) == [RouteUpdate("192.0.2.1", "ipv4 unicast", "10.0.0.0/8", 0, None)]
    assert parser.counters["treat_as_withdraw"] == 1


def test_logging_is_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    parser = ExabgpJsonParser(clock=lambda: now[0], log_interval_s=60.0)
    with caplog.at_level(logging.WARNING):
        for _ in range(100):
            parser.parse_line("{garbage")
        now[0] = 61.0
        parser.parse_line("{garbage")
    assert parser.counters["not_json"] == 101
    assert len(caplog.records) == 2
    assert "99 similar suppressed" in caplog.records[1].getMessage()


def test_eor_state_and_notification_shapes() -> None:
    parser = ExabgpJsonParser()
    neighbor: dict[str, Any] = {"address": {"local": "::1", "peer": "2001:db8::2"}}
    eor = {"type": "update", "neighbor": {**neighbor, "message": {"eor": {"afi": "ipv6", "safi": "unicast"}}}}
    down = {"type": "state", "neighbor": {**neighbor, "state": "down", "reason": "peer reset"}}
    note = {"type": "notification", "neighbor": {**neighbor, "direction": "send",
                                                 "notification": {"code": 4, "subcode": 0, "data": "0x"}}}
    assert parser.parse_line(json.dumps(eor)) == [EndOfRib("2001:db8::2", "ipv6 unicast")]
    assert parser.parse_line(json.dumps(down)) == [SessionState("2001:db8::2", "down", "peer reset")]
    assert parser.parse_line(json.dumps(note)) == [Notification("2001:db8::2", "send", 4, 0, "0x", "")]


def test_peer_supplied_text_reaches_the_log_and_status_printable_and_bounded() -> None:
    """An RFC 8203 shutdown communication is the peer's own text: no forged log lines."""
    parser = ExabgpJsonParser()
    neighbor: dict[str, Any] = {"address": {"local": "10.0.0.1", "peer": "10.0.0.2"}}
    forged = 'x\n2026-01-01 ERROR topfib: forged\x1b[2J\u2028' + "y" * 5000
    down = {"type": "state", "neighbor": {**neighbor, "state": "down", "reason": forged}}
    note = {"type": "notification", "neighbor": {**neighbor, "direction": "receive",
                                                 "notification": {"code": 6, "subcode": 2, "data": forged,
                                                                  "message": forged}}}
    [state] = parser.parse_line(json.dumps(down))
    [notification] = parser.parse_line(json.dumps(note))
    assert isinstance(state, SessionState) and isinstance(notification, Notification)
    for text in (state.reason, notification.data, notification.message):
        assert text.isprintable() and len(text) <= 512
        assert text.startswith("x?2026-01-01 ERROR topfib: forged?[2J?y")


def test_attribute_sets_are_parsed_once_and_paths_compare_equal() -> None:
    parser = ExabgpJsonParser()
    line = update_line({"attribute": ATTRS_V4, "announce": {"ipv4 unicast": {"192.0.2.9": ["10.0.0.0/8"]}}})
    first = parser.parse_line(line)
    second = parser.parse_line(line)
    assert first == second
