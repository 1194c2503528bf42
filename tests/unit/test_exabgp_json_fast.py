"""The parser's fast paths (the C scanner; orjson + a narrow walk) against its reference path
(json + every check).

Every line is parsed by three parsers: the default one (C scanner first, when built), one with
``native=False`` (Python fast path first) and one with ``fast=False`` (reference path only): the
events, their parsed-prefix keys and the problem counters must be the same, on the recorded golden
lines, on generated well-formed ExaBGP 4/5 updates, and on mutated lines (what a fast path refuses,
the reference path reports). Mutations aimed at the C scanner: tests/unit/test_exabgp_json_c.py.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.test_exabgp_json_fuzz import SEEDS, _mutate_bytes, _mutate_structure
from tests.unit.test_exabgp_json_golden import GOLDEN
from topfib.collector.common.prefixes import IPV4, PrefixError, format_network, split_canonical, split_prefix
from topfib.collector.rib.events import Event, RouteUpdate, new_route_update
from topfib.collector.rib.exabgp_json import ExabgpJsonParser
from topfib.collector.rib.paths import BgpPath, new_path
from topfib.collector.rib.rib import Rib, RibChange, _rib_change

GOLDEN_LINES = GOLDEN.read_text(encoding="utf-8").splitlines()


class Trio:
    """A C-first, a Python-fast-first and a reference parser, each feeding its own RIB."""

    def __init__(self, known: bool = False) -> None:
        self.known = known
        self.ribs = (Rib(), Rib(), Rib())
        self.native = ExabgpJsonParser(known_prefix=self.ribs[0].lpm.knows if known else None)
        self.python = ExabgpJsonParser(known_prefix=self.ribs[1].lpm.knows if known else None, native=False)
        self.reference = ExabgpJsonParser(known_prefix=self.ribs[2].lpm.knows if known else None, fast=False)

    def agree(self, line: str | bytes) -> list[Event]:
        """Parse ``line`` with all three and check they agree; the reference's events."""
        got, fast = self.native.parse_line(line), self.python.parse_line(line)
        want = self.reference.parse_line(line)
        assert got == want, line
        assert fast == want, line
        assert [parsed_key(e) for e in got] == [parsed_key(e) for e in want], line
        assert [parsed_key(e) for e in fast] == [parsed_key(e) for e in want], line
        assert self.native.counters == self.reference.counters, line
        assert self.python.counters == self.reference.counters, line
        if self.known:  # the RIB feeds the known-prefix shortcut: all must keep seeing the same table
            changes = self.ribs[2].apply_all(want)
            assert self.ribs[0].apply_all(got) == changes, line
            assert self.ribs[1].apply_all(fast) == changes, line
        return want


def both(lines: list[str] | list[bytes], known: bool = False) -> tuple[ExabgpJsonParser, ExabgpJsonParser]:
    """Parse ``lines`` with the C-first, the Python-fast-first and the reference parser and check
    they agree line by line; (C-first parser, reference parser)."""
    trio = Trio(known)
    for line in lines:
        trio.agree(line)
    return trio.native, trio.reference


def parsed_key(event: Event) -> tuple[int, int, int] | None:
    key = event.parsed if isinstance(event, RouteUpdate) else None
    if key is not None and isinstance(event, RouteUpdate):
        assert key == split_prefix(event.prefix)
    return key


def test_golden_lines_agree_and_updates_take_the_fast_path() -> None:
    fast, _ = both(GOLDEN_LINES)
    scanner = ExabgpJsonParser()._scan
    for line in GOLDEN_LINES:
        message = json.loads(line)
        is_update = message["type"] == "update" and "eor" not in message["neighbor"]["message"]
        assert (fast._fast_line(line) is not None) == is_update, line
        if scanner is not None:  # the C scanner takes every update ExaBGP wrote, str or bytes
            assert (scanner(line) is not None) == is_update, line
            assert (scanner(line.encode() + b"\n") is not None) == is_update, line
    both([line.encode() + b"\n" for line in GOLDEN_LINES])
    both(GOLDEN_LINES * 2, known=True)


def test_fast_path_shares_one_path_per_attribute_set() -> None:
    parser = ExabgpJsonParser()
    [first, *rest] = parser.parse_line(GOLDEN_LINES[2])
    assert isinstance(first, RouteUpdate) and rest
    assert all(isinstance(e, RouteUpdate) and e.path is first.path for e in rest)


# --- generated well-formed updates -------------------------------------------------------------

ASN = st.integers(0, (1 << 32) - 1)


def v4_prefix(address: int, length: int, pad: bool) -> str:
    """A valid IPv4 prefix; ``pad`` writes the length with a leading zero ("/08": not canonical)."""
    network = address >> (32 - length) << (32 - length) if length else 0
    return f"{format_network(IPV4, network, length).partition('/')[0]}/{'0' if pad else ''}{length}"


V4_PREFIX = st.builds(v4_prefix, st.integers(0, (1 << 32) - 1), st.integers(0, 32), st.booleans())
V6_PREFIX = st.sampled_from(["2001:db8::/32", "2001:DB8:0:1::/64", "fd77::/16", "::/0", "2001:db8:100::/48"])
PATH_INFO = st.one_of(st.none(), st.integers(0, (1 << 32) - 1),
                      st.tuples(*[st.integers(0, 255)] * 4).map(lambda q: ".".join(map(str, q))))


@st.composite
def attributes(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["origin"] = draw(st.sampled_from(["igp", "egp", "incomplete"]))
    shape = draw(st.sampled_from(["none", "list", "one", "segments"]))
    if shape == "list":
        out["as-path"] = draw(st.lists(ASN, max_size=5))
    elif shape == "one":
        out["as-path"] = {"0": {"element": "as-sequence", "value": draw(st.lists(ASN, max_size=5))}}
    elif shape == "segments":
        out["as-path"] = {str(i): {"element": draw(st.sampled_from(["as-sequence", "as-set"])),
                                   "value": draw(st.lists(ASN, max_size=3))}
                          for i in draw(st.permutations(range(draw(st.integers(1, 3)))))}
    if draw(st.booleans()):
        out["med"] = draw(ASN)
    if draw(st.booleans()):
        out["local-preference"] = draw(ASN)
    if draw(st.booleans()):
        out["community"] = draw(st.lists(st.lists(st.integers(0, 65535), min_size=2, max_size=2), max_size=3))
    if draw(st.booleans()):
        out["large-community"] = draw(st.lists(st.lists(ASN, min_size=3, max_size=3), max_size=2))
    return out


def nlri(prefix: str, path_info: Any, compact: bool) -> Any:
    if compact and path_info is None:
        return prefix
    return {"nlri": prefix} if path_info is None else {"nlri": prefix, "path-information": path_info}


@st.composite
def update_lines(draw: st.DrawFn) -> str:
    version = draw(st.sampled_from(["4.2.21", "5.0.0"]))
    compact = draw(st.booleans())
    update: dict[str, Any] = {}
    if draw(st.booleans()):
        withdrawn = draw(st.lists(st.tuples(V4_PREFIX, PATH_INFO), max_size=4))
        update["withdraw"] = {"ipv4 unicast": [nlri(p, i, compact) for p, i in withdrawn]}
    if draw(st.booleans()) or not update:
        update["attribute"] = draw(attributes())
        families: dict[str, Any] = {}
        for family, prefixes, hops in (("ipv4 unicast", V4_PREFIX, ["192.0.2.9", "10.77.0.10"]),
                                       ("ipv6 unicast", V6_PREFIX, ["fd77::10", "2001:db8::1"])):
            if draw(st.booleans()):
                families[family] = {hop: [nlri(p, i, compact) for p, i in draw(
                    st.lists(st.tuples(prefixes, PATH_INFO), min_size=1, max_size=4))]
                    for hop in draw(st.lists(st.sampled_from(hops), min_size=1, max_size=2, unique=True))}
        update["announce"] = families
    peer = draw(st.sampled_from(["10.77.0.2", "fd77::2"]))
    return json.dumps({"exabgp": version, "time": 1.5, "type": "update",
                       "neighbor": {"address": {"local": "10.77.0.1", "peer": peer}, "direction": "receive",
                                    "message": {"update": update}}},
                      separators=draw(st.sampled_from([(", ", ": "), (",", ":")])))


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(update_lines(), min_size=1, max_size=4), known=st.booleans())
def test_generated_updates_agree(lines: list[str], known: bool) -> None:
    fast, _ = both(lines, known=known)
    assert set(fast.counters) == {"lines"}  # well-formed: nothing for the reference path to report
    scanner = ExabgpJsonParser()._scan
    for line in lines:  # the C scanner takes them all, but AS path segments out of order
        segments = json.loads(line)["neighbor"]["message"]["update"].get("attribute", {}).get("as-path")
        in_order = not isinstance(segments, dict) or list(segments) == [str(i) for i in range(len(segments))]
        assert scanner is None or (scanner(line) is not None) == in_order, line


@settings(max_examples=300, deadline=None)
@given(line=update_lines(), pick=st.integers(0, 10_000), value=st.sampled_from([
    None, True, 1.5, -1, 1 << 32, 1 << 70, -(1 << 70), "", "x", "0.0.0.256", "10.0.0.1/8", "10.0.0.0/033",
    "10.0.0.0/08", "0.0.0.0/00", "null", [], {}, [[1, 2, 3]], {"0": {"element": "as-set", "value": [3, 1]}},
    {"x": {"element": "as-sequence", "value": []}}, {"error": "treat-as-withdraw"},
]))
def test_generated_updates_with_one_bad_value_agree(line: str, pick: int, value: Any) -> None:
    """Replace one node of a generated update (big ints too: orjson turns them into floats)."""
    document = json.loads(line)
    nodes: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            children = list(node.items())
        else:
            children = list(enumerate(node)) if isinstance(node, list) else []
        for key, child in children:
            nodes.append((node, key))
            walk(child)

    walk(document)
    parent, key = nodes[pick % len(nodes)]
    parent[key] = value
    both([json.dumps(document)], known=bool(pick % 2))


# --- mutated lines, as the fuzz test makes them ----------------------------------------------------

def test_mutated_lines_agree() -> None:
    rng = random.Random(11)
    objects = [line for line in SEEDS if line.lstrip().startswith("{")]
    lines: list[str] = []
    for n in range(4000):
        if n % 2:
            lines.append(json.dumps(_mutate_structure(rng, json.loads(rng.choice(objects)))))
        else:
            lines.append(_mutate_bytes(rng, rng.choice(SEEDS).encode()).decode("utf-8", "replace"))
    fast, _ = both(lines, known=True)
    assert fast.counters["unexpected"] == 0


PEER_1 = {"address": {"peer": "192.0.2.1"}}
ANNOUNCE = {"ipv4 unicast": {"192.0.2.9": ["10.0.0.0/8"]}}
HUGE = "123456789012345678901234567890"  # orjson: a float; json: an int


def update_text(update: dict[str, Any], neighbor: dict[str, Any] = PEER_1) -> str:
    return json.dumps({"type": "update", "neighbor": {**neighbor, "message": {"update": update}}})


@pytest.mark.parametrize("text", [
    update_text({"attribute": {"local-preference": 7}, "announce": ANNOUNCE}).replace("7", HUGE),
    update_text({"announce": {"ipv4 unicast": {"192.0.2.9": [{"nlri": "10.0.0.0/8", "path-information": 7}]}}}
                ).replace("7", HUGE),
    update_text({"attribute": {"med": 7}, "announce": ANNOUNCE}).replace("7", "NaN"),
    update_text({"withdraw": {"ipv4 unicast": ["10.0.0.0/8"]}}, {"address": {"peer": "@"}}
                ).replace("@", "\\ud800"),
    # duplicate keys: the last one wins in both parsers
    '{"type": "update", "type": "update", "neighbor": {"address": {"peer": "192.0.2.1", '
    '"peer": "192.0.2.7"}, "message": {"update": {"withdraw": {"ipv4 unicast": ["10.0.0.0/8"], '
    '"ipv4 unicast": ["11.0.0.0/8"]}}}}}',
    json.dumps({"type": "notification", "neighbor": {**PEER_1, "notification": {"code": 7, "subcode": 1}}}
               ).replace("7", HUGE),
    json.dumps({"type": "state", "neighbor": {**PEER_1, "state": "down", "reason": 7}}).replace("7", HUGE),
    "\x0b" + update_text({}),
])
def test_json_corners_where_orjson_and_json_differ(text: str) -> None:
    both([text])
    both([text.encode("utf-8", "surrogatepass")])


# --- the hot-path constructors and the prefix split -----------------------------------------------

def test_fast_constructors_equal_the_dataclass_ones() -> None:
    values = ("192.0.2.9", (64500, 1), "egp", 150, 7, ("1:2",), ("1:2:3",), "10.77.0.2", 9)
    assert new_path(*values) == BgpPath(*values)
    assert repr(new_path(*values)) == repr(BgpPath(*values))
    assert hash(new_path(*values)) == hash(BgpPath(*values))
    path = BgpPath(*values)
    event = new_route_update("10.77.0.2", "ipv4 unicast", "10.0.0.0/8", 9, path, (4, 10 << 24, 8))
    assert event == RouteUpdate("10.77.0.2", "ipv4 unicast", "10.0.0.0/8", 9, path)
    assert event.parsed == (4, 10 << 24, 8)
    assert _rib_change("10.0.0.0/8", None) == RibChange("10.0.0.0/8", None)


@pytest.mark.parametrize("text", [
    "10.0.0.0/8", "10.0.0.0/08", "10.0.0.0/008", "10.0.0.0/0008", "0.0.0.0/0", "0.0.0.0/00", "0.0.0.0/000",
    "10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0", "/8", "10.0.0.0/+8", "10.0.0.0/-8", "10.0.0.0/٨",
    "010.0.0.0/8", "10.0.0/24", "256.0.0.0/8", "10.0.0.0/8 ", " 10.0.0.0/8", "10.0.0.0\x00/8",
    "2001:DB8::/32", "2001:db8::/32", "2001:db8::1/32", "::/0", "::/00", "::/129", "::ffff:10.0.0.0/104",
    "1.2.3.4/32", "255.255.255.255/32",
])
def test_split_canonical_is_split_prefix_plus_the_reference_canonical_form(text: str) -> None:
    try:
        key = split_prefix(text)
    except PrefixError:
        assert split_canonical(text) is None
        return
    canonical = text if key[0] == IPV4 and text.endswith(f"/{key[2]}") else format_network(*key)
    assert split_canonical(text) == (canonical, key)
