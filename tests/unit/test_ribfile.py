"""RIB files: MRT dumps (TABLE_DUMP, TABLE_DUMP_V2, ADD-PATH; gz/bz2; cut streams) and pfx2as.

Expected values come from bgpdump's golden output (tests/data/expected/bgpdump), pyasn's asserted
values, and values computed on the full pfx2as tables (optional corpus, TOPFIB_CORPUS).
"""

from __future__ import annotations

import bz2
import gzip
import ipaddress
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from topfib.collector.common.compressed import StreamStatus, read_chunks
from topfib.collector.rib.loaders import MRT, PFX2AS, RibFileError, load_rib_file
from topfib.collector.rib.lpm import LpmTable
from topfib.collector.rib.mrt import MrtRibDecoder
from topfib.collector.rib.paths import BgpPath
from topfib.collector.rib.pfx2as import SYNTHETIC_NEXT_HOP_V4, Pfx2asError, Pfx2asParser
from topfib.collector.rib.rib import Rib


def decode(path: Path) -> tuple[list[tuple[str, BgpPath]], MrtRibDecoder, StreamStatus]:
    decoder = MrtRibDecoder()
    status = StreamStatus()
    routes = [route for chunk in read_chunks(path, status) for route in decoder.feed(chunk)]
    decoder.finish()
    return routes, decoder, status


def first_origins(routes: list[tuple[str, BgpPath]]) -> dict[str, int | None]:
    """Origin AS of each prefix's first entry in file order (what pyasn asserts)."""
    out: dict[str, int | None] = {}
    for prefix, path in routes:
        out.setdefault(prefix, path.origin_as)
    return out


# -- MRT: pyasn's truncated dumps ------------------------------------------------------------------


@pytest.mark.slow
def test_table_dump_v2_truncated_pyasn(full_corpus_file: Callable[[str], Path]) -> None:
    routes, decoder, status = decode(full_corpus_file("bgp/pyasn__rib.20140523.0600_firstMB.bz2"))
    assert len(routes) == 270_005
    assert len({prefix for prefix, _ in routes}) == 9_072
    assert decoder.counters["peer_index"] == 1 and decoder.counters["truncated"] == 1
    assert status.error == "truncated bzip2 stream"
    assert routes[0][0] == "0.0.0.0/0" and routes[0][1].as_path == (2905, 65023, 16637)
    one = [path for prefix, path in routes if prefix == "1.0.0.0/24"]
    assert len(one) == 32 and one[0].as_path == (701, 6453, 15169)
    origins = first_origins(routes)
    assert {p: origins[p] for p in ("0.0.0.0/0", "1.0.4.0/24", "1.0.5.0/24", "1.0.20.0/23", "1.0.38.0/24",
                                    "1.0.128.0/17", "1.1.57.0/24", "1.38.0.0/17", "1.116.0.0/16",
                                    "5.128.0.0/14", "5.128.0.0/16")} == {
        "0.0.0.0/0": 16637, "1.0.4.0/24": 56203, "1.0.5.0/24": 56203, "1.0.20.0/23": 2519,
        "1.0.38.0/24": 24155, "1.0.128.0/17": 9737, "1.1.57.0/24": 132537, "1.38.0.0/17": 38266,
        "1.116.0.0/16": 131334, "5.128.0.0/14": 50923, "5.128.0.0/16": 31200}


@pytest.mark.slow
def test_table_dump_v1_truncated_pyasn(full_corpus_file: Callable[[str], Path]) -> None:
    routes, decoder, _ = decode(full_corpus_file("bgp/pyasn__rib.20080501.0644_firstMB.bz2"))
    assert len(routes) == 139_291
    assert len({prefix for prefix, _ in routes}) == 3_507
    assert decoder.counters["truncated"] == 1
    assert routes[0] == ("0.0.0.0/0", routes[0][1]) and routes[0][1].as_path == (11686, 3561)
    assert routes[2][0] == "3.0.0.0/8" and routes[2][1].as_path == (13237, 3320, 1239, 701, 703, 80)
    origins = first_origins(routes)
    assert {p: origins[p] for p in ("3.0.0.0/8", "4.79.181.0/24", "6.9.0.0/20", "8.2.118.0/23", "8.3.52.0/23",
                                    "8.4.96.0/20", "8.6.48.0/21", "8.7.81.0/24", "8.7.232.0/24")} == {
        "3.0.0.0/8": 80, "4.79.181.0/24": 14780, "6.9.0.0/20": 668, "8.2.118.0/23": 13909,
        "8.3.52.0/23": 26759, "8.4.96.0/20": 15162, "8.6.48.0/21": 36492, "8.7.81.0/24": 25741,
        "8.7.232.0/24": 13909}


@pytest.mark.slow
def test_table_dump_v2_ipv6_truncated_pyasn(full_corpus_file: Callable[[str], Path]) -> None:
    routes, decoder, _ = decode(full_corpus_file("bgp/pyasn__rib6.20151101.0600_firstMB.bz2"))
    assert decoder.counters["truncated"] == 1
    assert len(routes) == 149_578
    assert len({prefix for prefix, _ in routes}) == 6_870
    first = [path for prefix, path in routes if prefix == "2001::/32"]
    assert len(first) == 24 and first[0].as_path == (3257, 1103, 1101)


# -- MRT: bgpdump's golden output -----------------------------------------------------------------


def bgpdump_rows(corpus: Path, name: str) -> list[list[str]]:
    with gzip.open(corpus / "expected" / "bgpdump" / f"{name}.bgp.gz", "rt") as expected:
        return [line.rstrip("\n").split("|") for line in expected]


@pytest.mark.parametrize("name", ["bview.ipv4_unicast_add_path.gz", "bview.ipv6_unicast_add_path.gz",
                                  "bview.64k_stream_overflow.gz"])
def test_bgpdump_golden_entries(corpus: Path, name: str) -> None:
    routes, _, _ = decode(corpus / "bgp" / f"bgpdump__{name}")
    rows = bgpdump_rows(corpus, name)
    assert len(routes) == len(rows)
    for (prefix, path), row in zip(routes, rows, strict=True):
        add_path = row[0] == "TABLE_DUMP2_AP"
        fields = row[6:] if not add_path else row[7:]
        as_path, origin, next_hop, local_pref, med, communities = fields[:6]
        assert prefix == row[5]
        assert ipaddress.ip_address(path.peer) == ipaddress.ip_address(row[3])
        assert path.path_id == (int(row[6]) if add_path else 0)
        assert path.as_path == tuple(int(a) for a in as_path.split())
        assert path.origin == origin.lower()
        assert path.med == int(med)
        assert path.communities == tuple(communities.split())
        if next_hop == "255.255.255.255":
            # bgpdump's placeholder for an entry without a next hop (no NEXT_HOP / MP_REACH).
            assert path.next_hop == ""
        else:
            assert ipaddress.ip_address(path.next_hop) == ipaddress.ip_address(next_hop)
        # bgpdump shows 0 where LOCAL_PREF is absent; we apply BGP's default of 100.
        assert path.local_pref == (int(local_pref) or 100)


@pytest.mark.parametrize(("name", "entries", "prefixes"), [
    ("mrtparse__bird-mrtdump_rib", 18, 6),
    ("mrtparse__bird6-mrtdump_rib", 10, 5),
    ("mrtparse__openbgpd_rib_table", 31, 21),
    ("mrtparse__openbgpd_rib_table-v2", 31, 21),
    ("mrtparse__quagga_rib", 9, 6),
])
def test_mrtparse_samples_counts(corpus: Path, name: str, entries: int, prefixes: int) -> None:
    routes, decoder, _ = decode(corpus / "bgp" / name)
    assert (len(routes), len({p for p, _ in routes})) == (entries, prefixes)
    assert decoder.counters["bad_record"] == 0 and decoder.counters["bad_attribute"] == 0


def test_mrt_update_stream_is_skipped_not_loaded(corpus: Path) -> None:
    routes, decoder, _ = decode(corpus / "bgp" / "mrtparse__openbgpd_rib_table-mp")
    assert routes == [] and decoder.counters["skipped_type_16"] == 31


def test_rib_records_without_peer_index_are_counted(corpus: Path) -> None:
    routes, decoder, _ = decode(corpus / "bgp" / "pyasn__bview.20140112.1600_3samples.bz2")
    assert routes == [] and decoder.counters["no_peer_index"] == 3


def test_add_path_entries_stay_separate_in_the_rib(corpus: Path) -> None:
    rib = Rib()
    report = load_rib_file(corpus / "bgp" / "bgpdump__bview.ipv4_unicast_add_path.gz", rib)
    assert (report.format, report.compression, report.routes) == (MRT, "gzip", 62)
    assert rib.counts().ipv4_prefixes == 31 and rib.counts().ipv4_paths == 62
    paths = rib.paths("10.0.10.0/24")
    assert sorted(p.path_id for p in paths) == [36, 38]
    assert rib.best("10.0.10.0/24") == next(p for p in paths if p.path_id == 36)  # shorter AS path


# -- MRT: damaged input --------------------------------------------------------------------------


def test_cut_and_damaged_streams(corpus: Path, tmp_path: Path) -> None:
    whole = (corpus / "bgp" / "bgpdump__bview.ipv4_unicast_add_path.gz").read_bytes()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    rib = Rib()
    report = load_rib_file(cut, rib)
    assert report.stream_error == "truncated gzip stream"
    assert 0 < report.routes < 62 and rib.counts().ipv4_paths == report.routes

    raw = gzip.decompress(whole)
    lying = bytearray(raw)
    lying[8:12] = (1 << 30).to_bytes(4, "big")  # first record claims 1 GiB
    decoder = MrtRibDecoder()
    assert list(decoder.feed(bytes(lying))) == []
    decoder.finish()
    assert decoder.counters["truncated"] == 1

    garbage = bytearray(raw)
    garbage[12 + 4:12 + 6] = b"\xff\xff"  # peer index table: view name length past the record
    decoder = MrtRibDecoder()
    routes = list(decoder.feed(bytes(garbage)))
    assert routes == [] and decoder.counters["bad_record"] == 1 and decoder.counters["no_peer_index"] == 31


def test_byte_by_byte_feeding_gives_the_same_routes(corpus: Path) -> None:
    raw = gzip.decompress((corpus / "bgp" / "bgpdump__bview.ipv6_unicast_add_path.gz").read_bytes())
    whole = list(MrtRibDecoder().feed(raw))
    decoder = MrtRibDecoder()
    pieces = [route for i in range(0, len(raw), 7) for route in decoder.feed(raw[i:i + 7])]
    assert pieces == whole and len(whole) == 62


# -- pfx2as --------------------------------------------------------------------------------------


def test_pfx2as_moas_and_as_sets() -> None:
    parser = Pfx2asParser()
    prefix, paths = parser.parse_line("192.0.2.0\t24\t64500_64501,64502\n")
    assert prefix == "192.0.2.0/24"
    assert paths == (BgpPath(next_hop=SYNTHETIC_NEXT_HOP_V4, as_path=(64500,), path_id=0),
                     BgpPath(next_hop=SYNTHETIC_NEXT_HOP_V4, as_path=(64501, 64502), path_id=1))
    prefix, paths = parser.parse_line("2001:DB8:0::\t32\t64500")
    assert prefix == "2001:db8::/32" and paths[0].next_hop == "::"
    for bad, reason in (("1.2.3.0\t24", "bad_line"), ("1.2.3.0\t24\tAS1", "bad_origin"),
                        ("2001:db8::1\t32\t1", "bad_prefix"), ("1.2.3.0\t024x\t1", "bad_prefix")):
        with pytest.raises(Pfx2asError) as caught:
            parser.parse_line(bad)
        assert caught.value.reason == reason


def test_pfx2as_file_with_bad_lines(tmp_path: Path) -> None:
    table = tmp_path / "t.pfx2as.bz2"
    table.write_bytes(bz2.compress(b"10.0.0.0\t8\t1\n10.0.0.1\t8\t2\nnonsense\n10.1.0.0\t16\t3_4\n"
                                   b"2001:db8::\t32\t5\n"))
    rib = Rib()
    report = load_rib_file(table, rib)
    assert (report.format, report.compression, report.routes) == (PFX2AS, "bzip2", 4)
    assert dict(report.problems) == {"bad_prefix": 1, "bad_line": 1}
    assert [p.as_path for p in rib.paths("10.1.0.0/16")] == [(3,), (4,)]
    assert rib.longest_match("10.1.2.3") == "10.1.0.0/16"


def test_unknown_and_empty_files_are_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01\x02" * 10)
    with pytest.raises(RibFileError):
        load_rib_file(junk, Rib())
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(RibFileError):
        load_rib_file(empty, Rib())
    with pytest.raises(RibFileError):
        load_rib_file(tmp_path / "missing", Rib())


@pytest.mark.slow
def test_full_pfx2as_tables_count_and_lookups(full_corpus_file: Callable[[str], Path]) -> None:
    """Every line of the 998,042-prefix table parses; the §4.13 matches hold.

    Loading a million prefixes is the benchmark's job; here the LPM is built from the prefixes
    covering the probe addresses only, which gives the same longest match as the whole table.
    """
    probes = {"8.8.8.8": ("8.8.8.0/24", 15169), "1.1.1.1": ("1.1.1.0/24", 13335),
              "9.9.9.9": ("9.9.9.0/24", 19281), "193.0.6.139": ("193.0.0.0/21", 3333),
              "2001:4860:4860::8888": ("2001:4860::/32", 15169)}
    probe_ints = {ip: int(ipaddress.ip_address(ip)) for ip in probes}
    origins: dict[str, int | None] = {}
    table = LpmTable()
    counts: dict[str, int] = defaultdict(int)
    for name in ("mccurtain__routeviews-rv2-20240406.pfx2as.gz",
                 "pytricia__routeviews-rv6-20160202-1200.pfx2as.gz"):
        parser = Pfx2asParser()
        with gzip.open(full_corpus_file(f"bgp/{name}"), "rt") as lines:
            for line in lines:
                prefix, paths = parser.parse_line(line)
                counts[name] += 1
                if not prefix.startswith(("8.", "1.", "9.", "193.", "2001:4860")):
                    continue  # cheap filter before building network objects
                net = ipaddress.ip_network(prefix)
                if any(ipaddress.ip_address(ip) in net for ip in probe_ints):
                    table.add(prefix)
                    origins[prefix] = paths[0].origin_as
    assert counts == {"mccurtain__routeviews-rv2-20240406.pfx2as.gz": 998_042,
                      "pytricia__routeviews-rv6-20160202-1200.pfx2as.gz": 28_744}
    for ip, (prefix, origin) in probes.items():
        assert table.lookup(ip) == prefix
        assert origins[prefix] == origin
