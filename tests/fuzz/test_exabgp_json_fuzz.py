"""Fuzz: mutated ExaBGP JSON lines never raise out of the parser or the RIB."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_exabgp_json_golden import GOLDEN
from topfib.collector.rib.exabgp_json import ExabgpJsonParser
from topfib.collector.rib.rib import Rib

pytestmark = pytest.mark.fuzz
LINES = GOLDEN.read_text(encoding="utf-8").splitlines()
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 40), 1 << 40) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def replace_somewhere(document: Any, path: list[int], value: Any) -> Any:
    """Replace one node of a JSON document, chosen by walking ``path`` (indices mod width)."""
    if not path or not isinstance(document, dict | list) or not document:
        return value
    keys = list(document) if isinstance(document, dict) else list(range(len(document)))
    key = keys[path[0] % len(keys)]
    document[key] = replace_somewhere(document[key], path[1:], value)
    return document


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=st.sampled_from(LINES), path=st.lists(st.integers(0, 50), max_size=8), value=JSON_VALUES)
def test_structural_mutations(line: str, path: list[int], value: Any) -> None:
    parser = ExabgpJsonParser()
    rib = Rib()
    mutated = json.dumps(replace_somewhere(json.loads(line), path, value))
    for event in parser.parse_line(mutated):
        rib.apply(event)
    assert parser.counters["unexpected"] == 0  # every bad shape has a named reason


@settings(max_examples=300, deadline=None)
@given(state=st.sampled_from(["up", "down", "connected"]),
       reason=st.one_of(st.text(max_size=2000), JSON_VALUES), data=JSON_VALUES, message=JSON_VALUES)
def test_peer_text_in_states_and_notifications_comes_out_printable_and_bounded(
    state: str, reason: Any, data: Any, message: Any,
) -> None:
    neighbor = {"address": {"local": "10.0.0.1", "peer": "10.0.0.2"}}
    lines = [{"type": "state", "neighbor": {**neighbor, "state": state, "reason": reason}},
             {"type": "notification", "neighbor": {**neighbor, "direction": reason, "notification": {
                 "code": 6, "subcode": 2, "data": data, "message": message}}}]
    for line in lines:
        for event in ExabgpJsonParser().parse_line(json.dumps(line)):
            for text in (getattr(event, name) for name in ("reason", "direction", "data", "message")
                         if hasattr(event, name)):
                assert text.isprintable() and len(text) <= 512


@settings(max_examples=400, deadline=None)
@given(line=st.sampled_from(LINES), cut=st.integers(0, 2000), junk=st.binary(max_size=8))
def test_byte_mutations(line: str, cut: int, junk: bytes) -> None:
    parser = ExabgpJsonParser()
    raw = line.encode()
    cut %= len(raw) + 1
    events = parser.parse_line(raw[:cut] + junk + raw[cut + len(junk):])
    rib = Rib()
    for event in events:
        rib.apply(event)


# --- 100k seeded mutations through the controller's own entry point ------------------------------

SEEDS = LINES + [
    line for path in sorted((Path(__file__).parent / "seeds" / "exabgp").glob("*.jsonl"))
    for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
]
MUTATED_LINES = int(os.environ.get("TOPFIB_FUZZ_EXABGP_LINES", "100000"))
NASTY_STRINGS = [
    "", "0", "-1", "1e999", "NaN", "16.0.0.0/33", "16.0.0.0/-1", "999.0.0.0/8", "16.0.0.1/24", "::/129",
    "2001:db8::/48/1", "0.0.0.0/0", "::/0", "10.77.0.2", "fd77::2", "0.0.0.4294967296", "1.2.3",
    "ipv4 unicast", "ipv6 unicast", "up", "down", "connected", "as-sequence", "as-set", "\x00", "é" * 40,
    "x" * 5000,
]
NASTY_VALUES: list[Any] = [None, True, False, 0, -1, 1 << 64, -(1 << 63), 1.5, float("inf"), [], {}, [[]],
                           {"": {}}, [None] * 50, *NASTY_STRINGS]

JUNK = [b"{", b"}", b"[", b"]", b",", b'"', b":", b"\\u0000", b"\xff\xfe", b"null"]


def _nodes(document: Any, trail: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths (key/index tuples) to every node of a JSON document."""
    found = [trail]
    if isinstance(document, dict):
        for key, value in document.items():
            found.extend(_nodes(value, (*trail, key)))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.extend(_nodes(value, (*trail, index)))
    return found


def _mutate_structure(rng: random.Random, document: Any) -> Any:
    trail = rng.choice(_nodes(document))
    if not trail:
        return rng.choice(NASTY_VALUES)
    parent = document
    for step in trail[:-1]:
        parent = parent[step]
    last = trail[-1]
    action = rng.randrange(6)
    if action == 0:
        parent[last] = rng.choice(NASTY_VALUES)
    elif action == 1 and isinstance(parent, dict):
        del parent[last]
    elif action == 2:
        parent[last] = [parent[last]] * rng.randrange(0, 4)
    elif action == 3:
        parent[last] = {rng.choice(NASTY_STRINGS): parent[last]}
    elif action == 4 and isinstance(parent, dict):
        parent[rng.choice(NASTY_STRINGS)] = parent.pop(last)
    else:
        parent[last] = json.loads(json.dumps(document))  # self-similar nesting
    return document


def _mutate_bytes(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randrange(1, 8)):
        action = rng.randrange(4)
        at = rng.randrange(len(data) + 1)
        if action == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif action == 1:
            del data[at:at + rng.randrange(1, 40)]
        elif action == 2:
            data[at:at] = rng.choice(JUNK)
        else:
            data[at:at] = rng.choice(SEEDS).encode()[: rng.randrange(1, 200)]
    return bytes(data)


def test_100k_mutated_lines_through_the_switch_controller(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """≥100k mutated lines (half structural, half byte-level, seeded so a failure replays) go through
    ``SwitchController._on_message``, as lines from the bridge do: nothing raises, every bad shape
    is counted under a named reason, and the RIB stays consistent with its longest-match index."""
    from topfib.collector.accounting.prefix_rates import PrefixRates
    from topfib.controller.config import SwitchConfig, TopfibConfig
    from topfib.controller.state.store import MemoryStore
    from topfib.controller.switch.controller import SwitchController

    caplog.set_level(logging.ERROR, logger="topfib.controller.switch")  # session up/down lines
    switch = SwitchConfig(name="fuzz", neighbor="10.77.0.2", local_address="10.77.0.1", local_as=65000,
                          peer_as=65000, fib_cap_ipv4=100, fib_cap_ipv6=100)
    config = TopfibConfig(switch=[switch])
    ctl = SwitchController(switch, config, PrefixRates(5.0, 60.0), MemoryStore(), threading.Lock(), tmp_path)
    rng = random.Random(int(os.environ.get("TOPFIB_FUZZ_SEED", "8")))
    objects = [i for i, line in enumerate(SEEDS) if line.lstrip().startswith("{")]
    updates = [line for line in SEEDS if '"announce"' in line]
    checked = 0
    started = time.monotonic()
    for n in range(MUTATED_LINES):
        if n % 2 == 0:
            line = json.dumps(_mutate_structure(rng, json.loads(SEEDS[rng.choice(objects)])))
        else:
            line = _mutate_bytes(rng, SEEDS[rng.randrange(len(SEEDS))].encode()).decode("utf-8", "replace")
        ctl.ingest.on_message(line)
        if n % 997 == 0:  # valid announces keep the RIB populated; check it is still consistent
            for update in updates:
                ctl.ingest.on_message(update)
            for prefix in list(ctl.rib):
                assert ctl.rib.best(prefix) is not None, prefix
                assert ctl.rib.longest_match(prefix.split("/")[0]) is not None, prefix
                checked += 1
    elapsed = time.monotonic() - started
    counters = ctl.parser.counters
    assert counters["lines"] >= MUTATED_LINES
    assert counters["unexpected"] == 0, "a bad shape fell through to the catch-all (no named reason)"
    assert checked > 0
    # the special-use filter saw every new prefix: /0 and the rest never entered (issue 15)
    assert ctl.rib.special_use is not None
    assert not [prefix for prefix in ctl.rib if ctl.rib.special_use.reason(prefix) is not None]
    assert ctl.rib.refused_special_use > 0
    print(f"\n{MUTATED_LINES} mutated ExaBGP JSON lines in {elapsed:.1f}s "
          f"({MUTATED_LINES / elapsed:,.0f}/s); RIB {len(ctl.rib)} prefixes; "
          f"reasons {dict(sorted(counters.items()))}")


# --- the C scanner against a fresh reference parser, line by line --------------------------------

DIFFERENTIAL_LINES = int(os.environ.get("TOPFIB_FUZZ_EXABGP_DIFF_LINES", "8000"))


@pytest.mark.parametrize("max_cached", [100_000, 5])
def test_c_scanner_against_a_fresh_reference(monkeypatch: pytest.MonkeyPatch, max_cached: int) -> None:
    """Crafted ExaBGP-like updates (tests/unit/test_exabgp_json_c_review.py), a third of them
    mutated where a byte scanner can go wrong, as str and as bytes, go through the C-first, the
    Python-fast-first and the reference parser (long-lived: shared caches, here also tiny ones
    that clear all the time) and a fresh reference parser per line: same events, parsed keys and
    counters, and every cache key determines its set. Seeded (TOPFIB_FUZZ_SEED) so a failure
    replays; TOPFIB_FUZZ_EXABGP_DIFF_LINES lines in chunks of 500."""
    # imported here: those modules import this one
    from tests.unit.test_exabgp_json_c import mutate
    from tests.unit.test_exabgp_json_c_review import agree, crafted_line
    from topfib.collector.rib import exabgp_json

    monkeypatch.setattr(exabgp_json, "_MAX_CACHED", max_cached)
    rng = random.Random(int(os.environ.get("TOPFIB_FUZZ_SEED", "8")) + max_cached)
    taken = done = 0
    started = time.monotonic()
    while done < DIFFERENTIAL_LINES:
        lines = [crafted_line(rng) for _ in range(min(500, DIFFERENTIAL_LINES - done))]
        for i, line in enumerate(lines):
            if rng.random() < 0.33:
                with contextlib.suppress(ValueError):  # some mutations read the line as JSON
                    lines[i] = mutate(line, rng)
        _, chunk_taken = agree(lines)
        agree([line.encode("utf-8", "surrogatepass") for line in lines[:100]], known=True)
        taken += chunk_taken
        done += len(lines)
    elapsed = time.monotonic() - started
    assert taken > 0.25 * done, (taken, done)  # the scanner decides a good share itself
    print(f"\n{done} lines vs a fresh reference in {elapsed:.1f}s, {taken} taken by the C scanner")
