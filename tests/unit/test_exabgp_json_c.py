"""The C scanner (collector/rib/_exabgp_fast.c) on lines mutated where a byte scanner can go wrong.

Escapes, duplicate keys, numbers JSON parsers read differently (big, signed, floats), whitespace
JSON does or does not allow, non-canonical prefixes and path-ids, renamed keys, cuts: every
mutated line goes through the three parsers of :func:`both`, which must agree. The scanner must
also take its share of them (a scanner answering None to everything would agree trivially), share
its caches with the Python fast path, keep them bounded, and not leak.
"""

from __future__ import annotations

import contextlib
import gc
import json
import random
import re
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_exabgp_json_fast import GOLDEN_LINES, both, update_lines
from topfib.collector.rib import exabgp_json
from topfib.collector.rib.events import RouteUpdate
from topfib.collector.rib.exabgp_json import ExabgpJsonParser, c_scanner_available

pytestmark = pytest.mark.skipif(not c_scanner_available(), reason="C extension not built")

UPDATES = [line for line in GOLDEN_LINES if '"update": {' in line]
# JSON tokens; anything else (a stray byte) is a token of its own.
TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[{}\[\]:,]|true|false|null|\s+|.',
                   re.DOTALL)
NUMBERS = ["0", "7", "255", "256", "65535", "65536", "4294967295", "4294967296", "18446744073709551615",
           "18446744073709551616", "1" + "0" * 25, "9" * 19, "-0", "-1", "1.0", "1e2", "1E0", "0.5", "00",
           "01", "-", "+1", "0x10", "NaN", "Infinity", "-Infinity", "1.", ".5", "1e"]
STRINGS = [
    # prefixes: canonical or not, valid or not
    "10.0.0.0/8", "10.0.0.0/08", "10.0.0.0/008", "10.0.0.0/0008", "010.0.0.0/8", "10.0.0.1/8", "10.0.0.0/33",
    "10.0.0/8", "1.2.3.4.5/32", "10.0.0.0", "/8", "10.0.0.0/", "10.0.0.0/8/8", "0.0.0.0/0", "0.0.0.0/00",
    "255.255.255.255/32", "256.0.0.0/8", "1.2.3.04/32", "10.0.0.0/+8", "10.0.0.0/ 8", " 10.0.0.0/8",
    "2001:db8::/32", "2001:DB8::/32", "2001:db8::1/32", "::/0", "::/00", "::/129", "::ffff:10.0.0.0/104",
    "2001:db8::/032", "fd77::/16", ":::/8", "2001:db8::/3x",
    # path-ids
    "0.0.0.1", "0.0.0.01", "00000001", "4294967295", "4294967296", "1..2.3", "1.2.3.4.5", "1.2.3", "1.2.3.",
    "255.255.255.255", "0.0.0.256", "", " 1", "1 ", "-1", "0x1",
    # next hops, families, keys, kinds
    "192.0.2.1", "fd77::10", "null", "G::1", "192.0.2.1 ", "ipv4 unicast", "ipv6 unicast", "ipv4 flow",
    "IPV4 UNICAST", "update", "eor", "state", "igp", "egp", "incomplete", "IGP", "as-sequence", "as-set",
    "as-confed-sequence", "nlri", "path-information", "withdraw", "announce", "attribute", "error", "peer",
    "x" * 300,
]
WHITESPACE = [" ", "\t", "\n", "\r", "\r\n    ", "", "\x0b", "\x0c", "\xa0", "\u2028"]
VALUES = ["null", "true", "false", "[]", "{}", '""', "[[1, 2]]",
          '{"0": {"element": "as-set", "value": [3, 1]}}', '{"error": "treat-as-withdraw"}',
          '[{"nlri": "10.0.0.0/8"}]', '{"192.0.2.1": ["10.0.0.0/8"]}',
          "[" * 40 + "]" * 40, "[" * 40, '{"a": ' * 40 + "1" + "}" * 40]


def _escaped(token: str, rng: random.Random) -> str:
    """The same string with one character written as an escape (both parsers decode it)."""
    body = token[1:-1]
    if not body or "\\" in body:
        return token
    at = rng.randrange(len(body))
    char = body[at]
    escape = rng.choice([f"\\u{ord(char):04x}", f"\\u{ord(char):04X}",
                         "\\/" if char == "/" else f"\\u{ord(char):04x}"])
    return f'"{body[:at]}{escape}{body[at + 1:]}"'


def _dump_with_duplicate(document: Any, target: int, value: Any, last: bool, counter: list[int]) -> str:
    """JSON text of ``document`` where the ``target``-th object member is written twice: once with
    ``value`` (first, or ``last``), once with its own value."""
    if isinstance(document, dict):
        members = []
        for key, child in document.items():
            own = f"{json.dumps(key)}: {_dump_with_duplicate(child, target, value, last, counter)}"
            counter[0] += 1
            if counter[0] - 1 == target:
                other = f"{json.dumps(key)}: {json.dumps(value)}"
                members.extend([own, other] if last else [other, own])
            else:
                members.append(own)
        return "{" + ", ".join(members) + "}"
    if isinstance(document, list):
        items = (_dump_with_duplicate(item, target, value, last, counter) for item in document)
        return "[" + ", ".join(items) + "]"
    return json.dumps(document)


def mutate(line: str, rng: random.Random) -> str:
    """One mutation aimed at the scanner."""
    tokens = TOKEN.findall(line)
    kind = rng.randrange(9)
    at = rng.randrange(len(tokens))
    strings = [i for i, token in enumerate(tokens) if token.startswith('"')]
    numbers = [i for i, token in enumerate(tokens) if token[0] in "-0123456789"]
    if kind == 0 and strings:  # an escape inside a string
        i = rng.choice(strings)
        tokens[i] = _escaped(tokens[i], rng)
    elif kind == 1:  # a duplicate key, with the same or another value, before or after
        document = json.loads(line)
        size = [0]
        _dump_with_duplicate(document, -1, None, True, size)
        value = rng.choice([None, 1, "x", [], {}, "10.0.0.0/8", "update", json.loads(line)])
        last = rng.random() < 0.35  # the other value first: the line's own value wins
        return _dump_with_duplicate(document, rng.randrange(max(size[0], 1)), value, last, [0])
    elif kind == 2 and numbers:  # a number written differently
        tokens[rng.choice(numbers)] = rng.choice(NUMBERS)
    elif kind == 3:  # whitespace changed or added between tokens
        tokens.insert(at, rng.choice(WHITESPACE))
    elif kind == 4 and strings:  # a string value replaced
        i = rng.choice(strings)
        tokens[i] = json.dumps(rng.choice(STRINGS))
    elif kind == 5:  # a value replaced by another kind of value
        candidates = [i for i in range(1, len(tokens)) if tokens[i - 1] == ":" or (
            tokens[i - 1].isspace() and i > 1 and tokens[i - 2] == ":")]
        if candidates:
            i = rng.choice(candidates)
            if tokens[i].isspace():
                i += 1
            if tokens[i] not in "{[":  # scalars only: the structure stays balanced
                tokens[i] = rng.choice(VALUES + NUMBERS)
    elif kind == 6:  # cut, or something after the object
        return line[:rng.randrange(len(line))] if rng.random() < 0.5 else line + rng.choice(
            [" ", "\n", "x", "{}", " 1", ",", "\x00"])
    elif kind == 7 and strings:  # a key renamed (to a known key too)
        i = rng.choice(strings)
        tokens[i] = json.dumps(rng.choice(STRINGS[-20:]))
    else:  # a byte of the line changed
        data = bytearray(line.encode())
        data[rng.randrange(len(data))] = rng.randrange(256)
        return data.decode("utf-8", "replace")
    return "".join(tokens)


def exabgp4_line(rng: random.Random) -> str:
    """An ExaBGP 4 style update: AS path as a list, compact NLRIs, numeric path-ids, IPv6 too."""
    attributes: dict[str, Any] = {"origin": rng.choice(["igp", "egp", "incomplete"]),
                                  "as-path": [rng.randrange(1 << 32) for _ in range(rng.randrange(4))],
                                  "med": rng.randrange(1 << 32), "local-preference": rng.randrange(1 << 32),
                                  "large-community": [[65000, 1, rng.randrange(1 << 32)]]}
    v4 = [f"10.{rng.randrange(256)}.0.0/16" for _ in range(rng.randrange(1, 4))]
    v6 = [{"nlri": f"2001:db8:{rng.randrange(1 << 16):x}::/48", "path-information": rng.randrange(1 << 32)}]
    return json.dumps({"exabgp": "4.2.21", "type": "update", "neighbor": {
        "address": {"local": "fd77::1", "peer": "fd77::2"}, "message": {"update": {
            "attribute": attributes,
            "announce": {"ipv4 unicast": {"10.77.0.10": v4}, "ipv6 unicast": {"fd77::10": v6}},
            "withdraw": {"ipv4 unicast": [f"11.{rng.randrange(256)}.0.0/16"]}}}}})


def seeded_lines(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for n in range(count):
        base = rng.choice(UPDATES) if n % 3 else exabgp4_line(rng)
        lines.append(mutate(base, rng) if n % 4 else base)
    return lines


def test_mutated_updates_agree_and_the_scanner_takes_its_share() -> None:
    lines = seeded_lines(3000, seed=5)
    scanner = ExabgpJsonParser()._scan
    assert scanner is not None
    taken = sum(scanner(line) is not None for line in lines)
    assert 0.35 * len(lines) < taken < 0.95 * len(lines), taken
    both(lines)
    both(lines, known=True)
    both([line.encode("utf-8", "surrogatepass") for line in lines[:1000]], known=True)


@settings(max_examples=400, deadline=None)
@given(line=update_lines(), seed=st.integers(0, 1 << 32), known=st.booleans())
def test_mutated_generated_updates_agree(line: str, seed: int, known: bool) -> None:
    rng = random.Random(seed)
    both([mutate(line, rng), line, mutate(line, rng)], known=known)


def template(**slots: Any) -> str:
    """An ExaBGP 5 update with a value put in a named place (a placeholder, replaced as raw text
    when the slot's value is a number's text)."""
    attributes: dict[str, Any] = {
        "origin": slots.get("origin", "igp"),
        "as-path": {"0": {"element": slots.get("element", "as-sequence"), "value": [64500, "@asn"]}},
        "med": "@med", "local-preference": "@local_pref", "community": [[65000, "@community"]],
        "large-community": [[65000, 1, "@large"]], slots.get("attribute_key", "atomic-aggregate"): False}
    nlri = {"nlri": slots.get("nlri", "10.0.0.0/8"), "path-information": slots.get("path_info", "@path_id")}
    line = json.dumps({"exabgp": "5.0.0", "counter": "@counter", "type": "update", "neighbor": {
        "address": {"local": "10.77.0.1", "peer": slots.get("peer", "10.77.0.2")}, "message": {"update": {
            "withdraw": {slots.get("family", "ipv4 unicast"): [slots.get("withdrawn", "11.0.0.0/8")]},
            "attribute": attributes,
            "announce": {slots.get("family", "ipv4 unicast"): {slots.get("next_hop", "10.77.0.10"): [
                nlri, slots.get("bare", "12.0.0.0/8")]}}}}}})
    for name in ("asn", "med", "local_pref", "community", "large", "path_id", "counter"):
        line = line.replace(f'"@{name}"', slots.get(name, "7"))
    return line


STRING_SLOTS = ["origin", "element", "attribute_key", "nlri", "path_info", "peer", "family", "withdrawn",
                "next_hop", "bare"]
NUMBER_SLOTS = ["asn", "med", "local_pref", "community", "large", "path_id", "counter"]


@pytest.mark.parametrize("slot", STRING_SLOTS)
def test_every_nasty_string_in_every_place_agrees(slot: str) -> None:
    lines = [template(**{slot: value}) for value in STRINGS]
    both(lines)
    both(lines, known=True)


@pytest.mark.parametrize("slot", NUMBER_SLOTS)
def test_every_number_form_in_every_place_agrees(slot: str) -> None:
    both([template(**{slot: text}) for text in [*NUMBERS, "1" * 10]])


def test_templates_are_taken_by_the_scanner() -> None:
    scanner = ExabgpJsonParser()._scan
    assert scanner is not None
    assert scanner(template()) is not None
    assert scanner(template(family="ipv6 unicast", nlri="2001:DB8::/32", withdrawn="::/00", bare="fd77::/16",
                            next_hop="fd77::10", path_info="0.0.0.01")) is not None


@pytest.mark.parametrize("line", [
    # each of these must be left to the Python paths (which then agree with the reference)
    UPDATES[0].replace('"ipv4 unicast"', '"ipv4\\u0020unicast"'),
    UPDATES[0].replace('"type": "update"', '"type": "update", "type": "update"'),
    UPDATES[0].replace('"local-preference": 200', '"local-preference": 200, "local-preference": 100'),
    UPDATES[0].replace('"med": 10', '"med": 10.0'),
    UPDATES[0].replace('"med": 10', '"med": -0'),
    UPDATES[0].replace('"med": 10', '"med": 4294967296'),
    UPDATES[0].replace('"med": 10', '"med": 123456789012345678901234567890'),
    UPDATES[0].replace('"time": 1795632255.2692747', '"time": NaN'),
    UPDATES[0].replace('"10.77.0.2"', '"10.77.0.2\u00e9"'),
    UPDATES[0] + "\x0b",
    "\ufeff" + UPDATES[0],
    UPDATES[0].replace('"as-path": {', '"as-path": {"1": {"element": "as-set", "value": [9, 8]}, '),
    UPDATES[0].replace('"value": [64500, 64501]', '"value": [' + ", ".join(["64500"] * 1100) + "]"),
    UPDATES[0].replace('"host" : "vm"', '"host" : ' + "[" * 100 + "]" * 100),
])
def test_what_the_scanner_leaves_to_python(line: str) -> None:
    scanner = ExabgpJsonParser()._scan
    assert scanner is not None and scanner(line) is None
    both([line])
    both([line.encode("utf-8", "surrogatepass")])


def test_as_path_segments_in_order_are_taken() -> None:
    scanner = ExabgpJsonParser()._scan
    assert scanner is not None
    segments = {str(i): {"element": "as-set" if i % 3 else "as-sequence", "value": [i + 9, i, 70000 + i]}
                for i in range(12)}
    one_segment = '{"0": {"element": "as-sequence", "value": [64500, 64501]}}'
    line = UPDATES[0].replace(one_segment, json.dumps(segments))
    assert scanner(line) is not None
    both([line])
    for keys in (["00"], ["0", "2"], ["1"], ["0", "01"], ["-0"], ["0 "]):
        odd = {key: {"element": "as-sequence", "value": [1]} for key in keys}
        line = UPDATES[0].replace(one_segment, json.dumps(odd))
        assert scanner(line) is None, keys
        both([line])


def test_scanner_answers_none_for_non_lines() -> None:
    scanner = ExabgpJsonParser()._scan
    assert scanner is not None
    for value in ["", " ", "done", "{}", "[]", "null", b"", b"\xff", bytearray(b"{}"), 7, None]:
        assert scanner(value) is None  # type: ignore[arg-type]  # wrong types on purpose


def test_c_and_python_fast_paths_share_attribute_sets_and_paths() -> None:
    """The scanner's cache key is orjson's bytes for the same set: a line taken by either path
    finds the other's Path (the RIB interns by identity)."""
    parser = ExabgpJsonParser()
    assert parser._scan is not None
    line = UPDATES[0]
    native = parser._scan(line)
    python = parser._fast_line(line)
    assert native is not None and python is not None and native == python
    assert len(parser._attribute_cache) == 1
    for a, b in zip(native, python, strict=True):
        assert isinstance(a, RouteUpdate) and isinstance(b, RouteUpdate) and a.path is b.path
    spaced = line.replace(": ", ":  ").replace(", ", " ,\t")  # other whitespace: the same set
    again = parser._scan(spaced)
    assert again is not None and [e.path for e in again] == [e.path for e in native]  # type: ignore[union-attr]
    assert all(a.path is b.path for a, b in zip(again, native, strict=True))  # type: ignore[union-attr]


def test_bounded_caches_are_cleared_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exabgp_json, "_MAX_CACHED", 3)
    lines = [line.replace('"med": 10', f'"med": {n % 7}') for n in range(40) for line in UPDATES[:1]]
    native, _ = both(lines)
    assert len(native._attribute_cache) <= 3 and len(native._path_cache) <= 3 and len(native._strings) <= 3
    for line in lines:  # sharing holds after clears: one Path per (set, next hop, peer, path-id)
        events = native.parse_line(line)
        assert all(isinstance(e, RouteUpdate) and e.path is events[0].path for e in events[:1])  # type: ignore[union-attr]


def _blocks_after(rounds: int, scan: Callable[[Any], Any], lines: list[Any]) -> int:
    for _ in range(rounds):
        for line in lines:
            with contextlib.suppress(ValueError):  # known_prefix raised
                scan(line)
    gc.collect()
    return sys.getallocatedblocks()


def test_scanner_does_not_leak() -> None:
    """Allocated blocks do not grow with lines once the caches are warm, on accepted and refused
    lines and when ``known_prefix`` raises half way through a line."""
    calls = [0]

    def flaky_known(prefix: str) -> bool:
        calls[0] += 1
        if calls[0] % 3 == 0:
            raise ValueError(prefix)
        return prefix.startswith("10.")

    lines: list[Any] = seeded_lines(600, seed=9)
    lines += [line.encode() for line in lines[:200]]
    for known in (None, flaky_known):
        parser = ExabgpJsonParser(known_prefix=known)
        assert parser._scan is not None
        before = _blocks_after(3, parser._scan, lines)
        after = _blocks_after(5, parser._scan, lines)
        assert after - before < len(lines) // 4, (before, after)
