"""Ingest hands each prefix's parsed key down instead of re-parsing it: the C key probes equal
their Python reference, every parser path puts the key on its events (withdraws too), known_prefix
is asked only about non-canonical texts, and a RIB fed keys ends exactly as one fed none."""

from __future__ import annotations

import random
from array import array
from typing import Any

import pytest

from tests.unit.test_exabgp_json import ATTRS_V4, update_line
from topfib.collector.common.prefixes import split_prefix
from topfib.collector.rib import keymap
from topfib.collector.rib.events import RouteUpdate
from topfib.collector.rib.exabgp_json import ExabgpJsonParser
from topfib.collector.rib.keymap import KeyIds, place_py, probe_py
from topfib.collector.rib.paths import BgpPath
from topfib.collector.rib.rib import Rib

try:
    from topfib.collector.rib import _keymap_fast
except ImportError:  # pragma: no cover - optional build
    _keymap_fast = None  # type: ignore[assignment]

needs_c = pytest.mark.skipif(_keymap_fast is None, reason="C extension not built")


def _copy(table: keymap.Table) -> keymap.Table:
    return array("I", table[0]), table[1]


def _filled(count: int, rng: random.Random) -> tuple[KeyIds, array[int], list[tuple[int, int]]]:
    """A map of ``count`` random prefixes (ids in order) and the networks array it reads."""
    networks = array("I")
    ids = KeyIds(networks)
    prefixes: dict[tuple[int, int], None] = {}
    while len(prefixes) < count:
        length = rng.randrange(33)
        prefixes[(rng.randrange(1 << 32) >> (32 - length) << (32 - length), length)] = None
    for value, (network, length) in enumerate(prefixes):
        networks.append(network)
        ids.insert(network, length, value)
    return ids, networks, list(prefixes)


@needs_c
def test_c_probes_equal_the_python_reference() -> None:
    rng = random.Random(7)
    ids, networks, prefixes = _filled(3000, rng)
    table = ids._table
    known = set(prefixes)
    absent = [(network, length + 1) for network, length in prefixes[:300] if length < 32]
    absent += [(rng.randrange(1 << 32), 32) for _ in range(300)] + [(0, 63), ((1 << 32) - 1, 0)]
    absent = [prefix for prefix in absent if prefix not in known]
    for prefix in prefixes + absent:
        assert _keymap_fast.probe(table, networks, *prefix) == probe_py(table, networks, *prefix)
    assert [_keymap_fast.probe(table, networks, *prefix) for prefix in prefixes] == list(range(len(prefixes)))
    ours, theirs = _copy(table), _copy(table)
    for value, (network, length) in enumerate(absent[:100]):  # same slots written, in the same order
        _keymap_fast.place(ours, network, length, 5000 + value)
        place_py(theirs, network, length, 5000 + value)
    assert ours == theirs


@needs_c
@pytest.mark.parametrize("call", [
    lambda t, n, last: _keymap_fast.probe(t, n, -1, 8),
    lambda t, n, last: _keymap_fast.probe(t, n, 1 << 32, 8),
    lambda t, n, last: _keymap_fast.probe(t, n, 5, 64),  # does not fit the slot's 6 bits
    lambda t, n, last: _keymap_fast.place(t, 5, 8, 1 << 26),  # id + 1 does not fit 26 bits
    lambda t, n, last: _keymap_fast.probe((t[0],), n, 5, 8),  # type: ignore[arg-type]
    lambda t, n, last: _keymap_fast.probe((t[0], t[1] - 1), n, 5, 8),  # shift does not fit the size
    lambda t, n, last: _keymap_fast.probe(t, array("Q", n), 0, 8),  # networks of another width
    lambda t, n, last: _keymap_fast.probe(t, n[:1], *last),  # a slot names an id past the networks
    lambda t, n, last: _keymap_fast.place((bytes(t[0]), t[1]), 5, 8, 1),  # type: ignore[arg-type]  # read-only
])
def test_c_probes_refuse_what_is_not_a_table_or_key(call: Any) -> None:
    ids, networks, prefixes = _filled(200, random.Random(1))
    with pytest.raises((TypeError, ValueError, OverflowError, BufferError)):
        call(ids._table, networks, prefixes[-1])


def _parsers(known: Any = None) -> list[ExabgpJsonParser]:
    """The C scanner (when built), the Python fast path and the reference path."""
    return [ExabgpJsonParser(known_prefix=known), ExabgpJsonParser(known_prefix=known, native=False),
            ExabgpJsonParser(known_prefix=known, fast=False)]


NLRIS_V4 = ["10.0.0.0/8", {"nlri": "192.0.2.0/24", "path-information": "0.0.0.2"}, "10.1.0.0/016"]
NLRIS_V6 = ["2001:db8::/32", "2001:DB8:1::/48"]
LINE = update_line({"attribute": ATTRS_V4,
                    "announce": {"ipv4 unicast": {"192.0.2.9": NLRIS_V4},
                                 "ipv6 unicast": {"2001:db8::9": NLRIS_V6}},
                    "withdraw": {"ipv4 unicast": ["198.51.100.0/24"], "ipv6 unicast": ["2001:DB8:2::/48"]}})


def test_every_path_puts_the_key_on_announces_and_withdraws() -> None:
    parsers = _parsers()
    assert parsers[0]._scan is None or parsers[0]._scan(LINE) is not None  # the C scanner takes it
    for parser in parsers:
        events = parser.parse_line(LINE)
        assert len(events) == 7 and set(parser.counters) == {"lines"}
        for event in events:
            assert isinstance(event, RouteUpdate) and event.parsed == split_prefix(event.prefix)
        assert [e.prefix for e in events if isinstance(e, RouteUpdate)] == [
            "198.51.100.0/24", "2001:db8:2::/48", "10.0.0.0/8", "192.0.2.0/24", "10.1.0.0/16",
            "2001:db8::/32", "2001:db8:1::/48"]


@pytest.mark.parametrize("answer", [True, False])
def test_known_prefix_is_asked_only_about_non_canonical_texts(answer: bool) -> None:
    asked: list[str] = []

    def known(text: str) -> bool:
        asked.append(text)
        return answer

    for parser in _parsers(known):
        asked.clear()
        events = [e for e in parser.parse_line(LINE) if isinstance(e, RouteUpdate)]
        assert sorted(set(asked)) == ["10.1.0.0/016", "2001:DB8:1::/48", "2001:DB8:2::/48"]
        prefixes = {e.prefix: e.parsed for e in events}
        if answer:  # taken as written, on known_prefix's word: no key
            assert prefixes["10.1.0.0/016"] is None and prefixes["2001:DB8:1::/48"] is None
        else:
            assert prefixes["10.1.0.0/16"] == split_prefix("10.1.0.0/16")
        assert prefixes["10.0.0.0/8"] == split_prefix("10.0.0.0/8")


def _events(rng: random.Random, prefixes: list[str], with_keys: bool) -> list[RouteUpdate]:
    paths = [BgpPath(next_hop=f"192.0.2.{n}", as_path=(64500, n), peer=peer, path_id=n % 2)
             for n in range(4) for peer in ("192.0.2.1", "192.0.2.2")]
    events = []
    for _ in range(6000):
        prefix = rng.choice(prefixes)
        path = rng.choice(paths)
        key = split_prefix(prefix) if with_keys else None
        withdrawn = rng.random() < 0.4
        events.append(RouteUpdate(path.peer, "ipv6 unicast" if ":" in prefix else "ipv4 unicast", prefix,
                                  path.path_id, None if withdrawn else path, key))
    return events


def test_a_rib_fed_keys_ends_as_one_fed_none() -> None:
    """Same changes, bests, path counts, names and lookups; so the key handed down is the one
    the RIB would have parsed (a key of another prefix would move another prefix's paths)."""
    prefixes = [f"10.{i}.0.0/16" for i in range(40)]
    prefixes += [f"10.{i}.{j}.0/24" for i in range(4) for j in range(20)]
    prefixes += [f"2001:db8:{i:x}::/48" for i in range(30)] + ["0.0.0.0/0", "10.0.0.0/8", "10.0.0.1/32"]
    keyed, plain = Rib(), Rib()
    changes_keyed = keyed.apply_all(_events(random.Random(3), prefixes, True))
    changes_plain = plain.apply_all(_events(random.Random(3), prefixes, False))
    assert changes_keyed == changes_plain and keyed.drain_changed() == plain.drain_changed()
    assert sorted(keyed) == sorted(plain) and keyed.counts() == plain.counts()
    assert all(keyed.sessions_of(p) == plain.sessions_of(p) for p in prefixes)
    for address in ("10.0.0.1", "10.1.2.3", "10.2.19.9", "11.0.0.1", "2001:db8:3::1"):
        assert keyed.longest_match(address) == plain.longest_match(address)


def test_python_fallback_probes_match_a_dict_across_growth(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the C extension KeyIds runs on probe_py/place_py: the same map."""
    monkeypatch.setattr(keymap, "_probe", probe_py)
    monkeypatch.setattr(keymap, "_place", place_py)
    ids, networks, prefixes = _filled(5000, random.Random(11))
    assert all(ids.get(*prefix) == value for value, prefix in enumerate(prefixes)) and len(ids) == 5000
    fresh = KeyIds(array("I"))
    assert fresh.get(0, 0) == -1 and fresh.get(networks[7], 33) == -1


@needs_c
def test_the_c_build_of_this_slot_layout_is_the_one_in_use() -> None:
    """A build of another layout (stale .so) is refused: KeyIds falls back to the Python probes."""
    assert _keymap_fast.SLOT_LAYOUT == keymap.SLOT_LAYOUT and keymap._probe is _keymap_fast.probe
