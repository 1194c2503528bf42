"""Fuzz: mutated ExaBGP JSON lines never raise out of the parser or the RIB."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.exabgp_json import ExabgpJsonParser
from collector.rib import Rib
from tests.unit.test_exabgp_json_golden import GOLDEN

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
