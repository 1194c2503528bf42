"""Review of the C scanner and the attribute cache it shares with the Python paths.

Each finding has a test here that failed before its fix. The differential check :func:`agree`
is stricter than ``test_exabgp_json_fast.both``: besides the three long-lived parsers (whose
caches are shared across lines, so a poisoned cache entry shows) every line is also parsed by a
*fresh* reference parser, the ground truth, and every attribute cache key must determine its set.
:func:`crafted_line` writes ExaBGP-like updates token by token (key order, whitespace, duplicate
keys, AS path segment forms, number and prefix edge cases) so that the scanner takes a good share.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from tests.unit.test_exabgp_json_fast import Trio
from topfib.collector.common.prefixes import split_canonical
from topfib.collector.rib import exabgp_json
from topfib.collector.rib.events import Event, RouteUpdate
from topfib.collector.rib.exabgp_json import ExabgpJsonParser, c_scanner_available
from topfib.collector.rib.exabgp_json_values import Attributes, parse_attributes
from topfib.collector.rib.paths import BgpPath

needs_c = pytest.mark.skipif(not c_scanner_available(), reason="C extension not built")

HEADER = ('{"exabgp": "5.0.0", "time": 1.5, "type": "update", "neighbor": {"address": {"local": "10.77.0.1", '
          '"peer": "10.77.0.2"}, "direction": "receive", "message": {"update": %s}}}')


def update(attribute: str, announce: str = '{"ipv4 unicast": {"10.77.0.10": ["10.0.0.0/8"]}}') -> str:
    return HEADER % f'{{"attribute": {attribute}, "announce": {announce}}}'


def fresh(line: str | bytes) -> list[Event]:
    """The reference path with no cache history: what the line means on its own."""
    return ExabgpJsonParser(fast=False).parse_line(line)


def check_cache_keys(parser: ExabgpJsonParser) -> None:
    """Every attribute cache key is a JSON text whose set is the cached one (a key determines
    its set, whichever path wrote it; str and bytes keys never meet)."""
    for key, cached in parser._attribute_cache.items():
        assert isinstance(cached, Attributes)
        assert parse_attributes(json.loads(key), cached.serial) == cached, key


def agree(lines: list[str] | list[bytes], known: bool = False) -> tuple[ExabgpJsonParser, int]:
    """C-first, Python-fast-first and reference parsers (long-lived) agree with each other and,
    without ``known``, with a fresh reference parser per line: events, parsed keys, counters.
    Returns the C-first parser and how many lines its scanner took."""
    trio = Trio(known)
    taken = 0
    for line in lines:
        scan = trio.native._scan
        if scan is not None and scan(line) is not None:
            taken += 1
        before = trio.reference.counters.copy()
        want = trio.agree(line)
        if not known:
            alone = ExabgpJsonParser(fast=False)
            assert alone.parse_line(line) == want, line
            assert alone.counters == trio.reference.counters - before, line
    native = trio.native
    for parser in (trio.native, trio.python, trio.reference):
        check_cache_keys(parser)
    return native, taken


# -- finding 1: the reference path's attribute cache key (text slice) is spoofable ---------------


def test_reference_key_is_not_cut_short_by_announce_inside_the_attributes() -> None:
    """The text between '"attribute"' and the first '"announce"' was the key: a string value
    "announce" cut it short, so two sets differing after it shared the first one's entry."""
    parser = ExabgpJsonParser(fast=False)
    first, second = update('{"x": "announce", "med": 5}'), update('{"x": "announce", "med": 7}')
    assert parser.parse_line(first) == fresh(first)
    assert parser.parse_line(second) == fresh(second)


def test_a_decoy_attribute_key_before_the_update_cannot_poison_the_cache() -> None:
    """A line with a decoy '"attribute": {...}, "announce"' in its header cached its real set
    under the decoy's text, which an honest line with that set then hit. Through the default
    parser too: an unsupported family sends both lines to the reference path."""
    announce = '{"ipv4 flow": {}, "ipv4 unicast": {"10.77.0.10": ["10.0.0.0/8"]}}'
    honest = update('{"med": 5}', announce)
    decoy = '{"attribute": {"med": 5}, "announce": 1, ' + update('{"med": 7}', announce)[1:]
    for parser in (ExabgpJsonParser(), ExabgpJsonParser(fast=False)):
        assert parser.parse_line(decoy) == fresh(decoy)
        assert parser.parse_line(honest) == fresh(honest)
        check_cache_keys(parser)


def test_reference_key_without_the_texts_it_looked_for() -> None:
    """Keys still work when '"announce"' comes first or the attribute object is spaced oddly."""
    reversed_order = HEADER % '{"announce": {"ipv4 flow": {}}, "attribute": {"med": 3}}'
    spaced = update('{ "med" :3 }', '{"ipv4 flow": {}}')
    agree([reversed_order, spaced, reversed_order.replace("3", "4"), spaced.replace("3", "4")])


# -- the generator ---------------------------------------------------------------------------

WS = ["", " ", "  ", "\t", "\n", "\r\n"]
ASNS = ["0", "1", "64500", "65535", "4294967295", "4294967296", "-1", "-0", "1.0", "1e2", "01", "true", '"1"',
        "18446744073709551616", "9" * 30]
U32 = ["0", "1", "100", "4294967295", "4294967296", "-0", "-1", "1.5", "2E1", "00", "null", "true", '"5"',
       "9" * 19, "9" * 20]
ORIGINS = ['"igp"', '"egp"', '"incomplete"', '"IGP"', '""', "null", "1", '"ig\\u0070"']
V4 = ["10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24", "192.0.2.1/32", "0.0.0.0/0", "0.0.0.0/00", "10.0.0.0/08",
      "10.0.0.0/008", "10.0.0.0/0008",
      "010.0.0.0/8", "10.0.0.1/8", "10.0.0.0/33", "1.2.3.4/32", "1.2.3.04/32",
      "255.255.255.255/32", "256.0.0.0/8", "10.0.0/8", "10.0.0.0", "10.0.0.0/", "/8", "1.2.3.4.5/32",
      "128.0.0.0/1", "128.0.0.0/0", "10.0.0.0/8/8", "10.0.0.0/+8", "1.0.0.0/24x"]
V6 = ["2001:db8::/32", "2001:DB8::/32", "2001:db8:0::/48", "2001:db8::1/32", "::/0", "::/00", "::/129",
      "fd77::/16", "::ffff:10.0.0.0/104", "2001:db8::/032", ":::/8", "2001:db8::/3x"]
PATH_IDS = ['"0.0.0.1"', '"0.0.0.01"', '"00000001"', '"4294967295"', '"4294967296"', '"1..2.3"', '"1.2.3"',
            '"255.255.255.255"', '"0.0.0.256"', '""', '"1 "', "0", "7", "4294967295", "4294967296", "-1",
            "1.0", "null", "true", '"0.0.0.\\u0031"']
GOOD_HOPS = ["10.77.0.10", "10.77.0.11", "fd77::10", "FD77::A"]
HOPS = [*GOOD_HOPS, "null", "", "g::1", "10.77.0.10 ", "1.2.3.4.5"]
FAMILIES = ["ipv4 unicast", "ipv6 unicast", "ipv4 flow", "IPV4 UNICAST"]


def _ws(rng: random.Random) -> str:
    return rng.choice(WS) if rng.random() < 0.5 else " "


def _obj(rng: random.Random, members: list[tuple[str, str]], dup: float = 0.03) -> str:
    """An object written member by member; sometimes a member twice (the other value first or last)."""
    if members and rng.random() < dup:
        key, _ = rng.choice(members)
        other = rng.choice(["null", "1", '"x"', "[]", "{}"] + [value for _, value in members])
        at = rng.randrange(len(members) + 1)
        members = [*members[:at], (key, other), *members[at:]]
    inner = ",".join(f"{_ws(rng)}{json.dumps(key)}{_ws(rng)}:{_ws(rng)}{value}{_ws(rng)}"
                     for key, value in members)
    return "{" + inner + "}"


def _arr(rng: random.Random, values: list[str]) -> str:
    return "[" + ",".join(f"{_ws(rng)}{value}{_ws(rng)}" for value in values) + "]"


def _pick(rng: random.Random, good: list[str], pool: list[str], bad: float = 0.04) -> str:
    return rng.choice(pool) if rng.random() < bad else rng.choice(good)


def _asn(rng: random.Random) -> str:
    return _pick(rng, [str(rng.randrange(1 << 32)), str(rng.randrange(64512, 65535)), "0"], ASNS)


def _as_path(rng: random.Random) -> str:
    form = rng.randrange(10)
    if form == 0:  # ExaBGP 4
        return _arr(rng, [_asn(rng) for _ in range(rng.randrange(5))])
    segments = []
    for index in range(1 if form < 6 else rng.randrange(5)):
        element = rng.choice(['"as-sequence"'] * 3 + ['"as-set"'] + (
            ['"as-confed-sequence"', "null"] if rng.random() < 0.05 else []))
        members = [("element", element), ("value", _arr(rng, [_asn(rng) for _ in range(rng.randrange(6))]))]
        if rng.random() < 0.5:
            members.reverse()
        if rng.random() < 0.03:
            members.pop(rng.randrange(2))
        key = str(index) if rng.random() > 0.03 else rng.choice(["00", "-0", "1", "x", " 0", str(index + 1)])
        segments.append((key, _obj(rng, members)))
    if rng.random() < 0.03:
        rng.shuffle(segments)
    return _obj(rng, segments)


def _communities(rng: random.Random, width: int) -> str:
    limit = 1 << (16 if width == 2 else 32)
    items = []
    for _ in range(rng.randrange(4)):
        numbers = [_pick(rng, [str(rng.randrange(limit)), str(limit - 1), "0"], [*U32, str(limit)])
                   for _ in range(width + (rng.random() < 0.03) - (rng.random() < 0.03))]
        items.append(_arr(rng, numbers))
    return _arr(rng, items)


def _attributes(rng: random.Random) -> str:
    members: list[tuple[str, str]] = []
    if rng.random() < 0.9:
        members.append(("origin", _pick(rng, ['"igp"', '"egp"', '"incomplete"'], ORIGINS)))
    if rng.random() < 0.9:
        members.append(("as-path", _as_path(rng)))
    for name in ("med", "local-preference"):
        if rng.random() < 0.7:
            members.append((name, _pick(rng, [str(rng.randrange(1 << 32)), "0", "100"], U32)))
    if rng.random() < 0.6:
        members.append(("community", _communities(rng, 2)))
    if rng.random() < 0.4:
        members.append(("large-community", _communities(rng, 3)))
    if rng.random() < 0.2:
        members.append((rng.choice(["atomic-aggregate", "aggregator", "originator-id", "x"]),
                        rng.choice(["true", '"10.0.0.1"', '{"asn": 1, "id": "1.1.1.1"}', "[1, [2, {}]]"])))
    if rng.random() < 0.02:
        members.append(("error", '"treat-as-withdraw"'))
    if rng.random() < 0.02:
        members.append(("announce", '"announce"'))
    rng.shuffle(members)
    return _obj(rng, members)


def _nlri(rng: random.Random, family: str) -> str:
    pool = V6 if family.startswith("ipv6") else V4
    good = [p for p in pool if split_canonical(p) is not None]
    prefix = json.dumps(_pick(rng, good, pool, bad=0.06))
    if rng.random() < 0.25:
        return prefix
    members = [("nlri", prefix)]
    if rng.random() < 0.8:
        members.append(("path-information", _pick(rng, [f'"0.0.0.{rng.randrange(4)}"', str(rng.randrange(4))],
                                                  PATH_IDS)))
    if rng.random() < 0.5:
        members.reverse()
    return _obj(rng, members)


def _family(rng: random.Random) -> str:
    return _pick(rng, FAMILIES[:2], FAMILIES, bad=0.03)


def crafted_line(rng: random.Random) -> str:
    """One update as ExaBGP 4/5 could write it, with an edge case now and then."""
    members: list[tuple[str, str]] = []
    if rng.random() < 0.5:
        withdraw = [(_family(rng), _arr(rng, [_nlri(rng, "ipv4") for _ in range(rng.randrange(3))]))]
        members.append(("withdraw", _obj(rng, withdraw) if rng.random() > 0.02 else "null"))
    if rng.random() < 0.8:
        families = []
        chosen = rng.sample(FAMILIES[:2], rng.randrange(1, 3)) if rng.random() > 0.03 else [_family(rng)]
        for family in chosen:
            hops = [(_pick(rng, GOOD_HOPS, HOPS),
                     _arr(rng, [_nlri(rng, family) for _ in range(rng.randrange(1, 4))]))
                    for _ in range(rng.randrange(1, 3))]
            families.append((family, _obj(rng, hops)))
        members.append(("announce", _obj(rng, families)))
        if rng.random() < 0.95:
            members.append(("attribute", _attributes(rng)))
    rng.shuffle(members)
    peer = _pick(rng, ['"10.77.0.2"', '"fd77::2"'], ['""', "null", '"10.77.0.\\u0032"', "1"], bad=0.02)
    line = (f'{{"exabgp":{_ws(rng)}"5.0.0", "time": {rng.random() * 2e9}, "counter": {rng.randrange(99)},'
            f'{_ws(rng)}"type": "update", "neighbor": {{"address": {{"local": "10.77.0.1", "peer": {peer}}}, '
            f'"asn": {{"local": 65000, "peer": 65000}}, "direction": "receive", '
            f'"message": {{"update": {_obj(rng, members, dup=0.02)}}}}}}}')
    return line + rng.choice(["", "", "\n", " ", "\r\n"])


def crafted_lines(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [crafted_line(rng) for _ in range(count)]


def test_crafted_lines_agree_with_a_fresh_reference() -> None:
    lines = crafted_lines(3000, seed=11)
    _, taken = agree(lines)
    assert taken > 0.4 * len(lines), taken  # the generator reaches the scanner's accepting paths
    agree([line.encode() for line in lines[:1000]], known=True)


# -- C scanner specifics --------------------------------------------------------------------


@needs_c
def test_known_prefix_answers_and_errors() -> None:
    """known_prefix returning non-bools (truthiness, as Python's ``if``) or raising in __bool__:
    the Python paths decide, nothing leaks or crashes."""

    class Bad:
        def __bool__(self) -> bool:
            raise RuntimeError("no truth")

    line = update('{"med": 1}', '{"ipv4 unicast": {"10.77.0.10": ["10.0.0.0/8", "10.0.0.1/8"]}}')
    answers: list[Any] = [1, 0, "", "x", [], None, Bad()]
    for answer in answers:
        def known(prefix: str, answer: Any = answer) -> Any:
            return answer

        parser = ExabgpJsonParser(known_prefix=known)
        reference = ExabgpJsonParser(known_prefix=known, fast=False)
        assert parser.parse_line(line) == reference.parse_line(line)
        assert parser.counters == reference.counters


@needs_c
@pytest.mark.parametrize("answer", [["2001:db8::/32", None], ("x",), ("a", "b", "c"), 7, (1, None),
                                    ("2001:db8::/32", [6, 1, 32])])
def test_split_canonical_returning_odd_values(answer: Any) -> None:
    """The scanner checks what split_canonical gives back: a (str, tuple) pair or None, else a
    TypeError (the caller then uses the Python paths); never a crash or a non-str prefix."""
    from topfib.collector.rib._exabgp_fast import Scanner

    scanner = Scanner(RouteUpdate, BgpPath, Attributes, {}, {}, {}, None,
                      lambda text: answer, 10)
    line = update("{}", '{"ipv6 unicast": {"fd77::10": ["2001:db8::/32"]}}')
    with pytest.raises(TypeError):
        scanner.scan(line)


@needs_c
def test_deep_nesting_and_cuts_everywhere() -> None:
    """Every prefix of a line (a cut at each byte: unterminated strings, numbers at the very end)
    and deep nesting in the ignored parts: None or the reference's events, never a crash."""
    base = crafted_lines(1, seed=3)[0]
    parser = ExabgpJsonParser()
    assert parser._scan is not None
    for cut in range(len(base)):
        for piece in (base[:cut], base[:cut].encode()):
            assert parser._scan(piece) is None
    deep = update('{"x": ' + "[" * 25 + "]" * 25 + ', "med": 1}')
    deeper = update('{"x": ' + "[" * 40 + "]" * 40 + ', "med": 1}')
    agree([deep, deeper])
    assert parser._scan(deep) is not None and parser._scan(deeper) is None


def test_an_attribute_set_json_cannot_key_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    def too_deep(attributes: dict[str, Any]) -> str:
        raise RecursionError

    monkeypatch.setattr(exabgp_json, "_reference_key", too_deep)
    parser = ExabgpJsonParser(fast=False)
    assert parser.parse_line(update('{"med": 1}')) == []
    assert parser.counters["bad_attribute"] == 1 and parser._attribute_cache == {}


# -- finding 2: an integer json.loads refuses, in a part the scanner skips -------------------


@needs_c
@pytest.mark.parametrize("number", ["1" * 5000, "-" + "9" * 4301, "1" * 700, "1" * 20])
def test_integers_json_refuses_are_not_skipped_over(number: str) -> None:
    """json.loads refuses integers longer than sys.get_int_max_str_digits() (4300 by default,
    640 at least): the reference path counts such a line not_json, so the scanner must not skip
    over one in a header field and answer the update. Floats of any length are fine."""
    line = update('{"med": 1}')
    for value in (number, number + ".5", number + "e2"):
        agree([line.replace('"time": 1.5', f'"time": {value}')])
    parser = ExabgpJsonParser()
    assert parser._scan is not None
    assert parser._scan(line.replace('"time": 1.5', f'"time": {number}')) is None or len(number) <= 19
    assert parser._scan(line.replace('"time": 1.5', f'"time": {number}.5')) is not None


@needs_c
def test_objects_the_scanner_builds_are_whole_whenever_python_runs() -> None:
    """RouteUpdate, Path and Attributes are allocated without __init__ and their slots written in
    C: a collection (or any Python code) running mid-line, here from known_prefix, must only
    find whole objects, and the events must survive it."""
    import gc

    seen = [0]

    def known(prefix: str) -> bool:
        gc.collect()
        for obj in gc.get_objects():
            if type(obj) in (RouteUpdate, BgpPath, Attributes):
                repr(obj)  # AttributeError on an unset slot
                seen[0] += 1
        return False

    lines = crafted_lines(12, seed=21)
    parser = ExabgpJsonParser(known_prefix=known)
    reference = ExabgpJsonParser(fast=False)
    for line in lines:
        assert parser.parse_line(line) == reference.parse_line(line)
    assert seen[0] > 0
