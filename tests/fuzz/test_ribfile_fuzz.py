"""Fuzz: mutated MRT dumps and pfx2as lines are counted, never raised."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import TEST_DATA
from topfib.collector.rib.mrt import MrtRibDecoder
from topfib.collector.rib.pfx2as import Pfx2asError, Pfx2asParser
from topfib.collector.rib.rib import Rib

pytestmark = pytest.mark.fuzz
DUMPS = [TEST_DATA / "bgp" / name for name in ("bgpdump__bview.ipv4_unicast_add_path.gz",
                                             "bgpdump__bview.ipv6_unicast_add_path.gz",
                                             "bgpdump__bview.64k_stream_overflow.gz")]


def dump_bytes(index: int) -> bytes:
    return gzip.decompress(DUMPS[index % len(DUMPS)].read_bytes())


@settings(max_examples=300, deadline=None)
@given(index=st.integers(0, 2), flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)),
                                                min_size=1, max_size=6))
def test_mutated_mrt_never_raises(index: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(dump_bytes(index))
    for offset, value in flips:
        data[offset % len(data)] = value
    decoder = MrtRibDecoder()
    rib = Rib()
    for prefix, path in decoder.feed(bytes(data)):
        rib.announce("file", prefix, path)
    decoder.finish()
    assert decoder.counters["records"] + decoder.counters["truncated"] >= 1


@settings(max_examples=300, deadline=None)
@given(line=st.text(alphabet="0123456789abcdef.:/_,\t x", max_size=40))
def test_pfx2as_lines_raise_only_their_own_error(line: str) -> None:
    parser = Pfx2asParser()
    try:
        prefix, paths = parser.parse_line(line)
    except Pfx2asError:
        return
    assert paths
    rib = Rib()
    try:
        for path in paths:
            rib.announce("file", prefix, path)
    except ValueError:  # PrefixError: the RIB's own check of an IPv4 prefix
        pass
