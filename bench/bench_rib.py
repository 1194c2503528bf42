"""RIB scale benchmark: full IPv4 pfx2as table + IPv6 table with two peers' paths per prefix.

    .venv/bin/python -m bench.bench_rib [--addresses 1000000] [--ingest 200000] [--per-line 1,4,10,100]
    .venv/bin/python -m bench.bench_rib --ingest-only [--ingest 200000]   # ingest rates only, ~1 min
    .venv/bin/python -m bench.bench_rib --ingest-only --parser python   # without the C scanner

Reports load time, resident memory, longest-match rates (single and batched) side by side with
pytricia (C patricia trie) in the same run, correctness against an independent reference on
every probed address, and the ExaBGP JSON ingest rate (parse + RIB) against ``json.loads`` alone.
Bars: RSS ≤ 300 MB (600 MB until issue 21); batched lookups ≥ pytricia's single lookups; ingest ≥ 50k
prefixes/s. Times are CPU seconds of this process (the machine may be shared), wall in brackets.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import ipaddress
import json
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt

from topfib.collector.common.prefixes import IPV4, IPV6
from topfib.collector.rib.exabgp_json import ExabgpJsonParser
from topfib.collector.rib.loaders import load_rib_file
from topfib.collector.rib.lpm import LpmTable
from topfib.collector.rib.paths import BgpPath
from topfib.collector.rib.rib import Rib
from topfib.controller.demo.table import corpus_location

CORPUS = corpus_location() / "bgp"
V4_TABLE = CORPUS / "mccurtain__routeviews-rv2-20240406.pfx2as.gz"
V6_TABLE = CORPUS / "pytricia__routeviews-rv6-20160202-1200.pfx2as.gz"
V6_PEERS = ("2001:db8:ffff::1", "2001:db8:ffff::2")
MASK64 = (1 << 64) - 1
MEMORY_BAR_MB = 300.0
INGEST_BAR = 50_000.0


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Timer:
    cpu = 0.0
    wall = 0.0

    def __str__(self) -> str:
        return f"{self.cpu:.2f} CPU-s [{self.wall:.2f} s]"


@contextmanager
def timed() -> Iterator[Timer]:
    timer = Timer()
    cpu, wall = time.process_time(), time.perf_counter()
    yield timer
    timer.cpu, timer.wall = time.process_time() - cpu, time.perf_counter() - wall


@contextmanager
def gc_time() -> Iterator[Timer]:
    """CPU time the cyclic garbage collector ran inside the block (``cpu`` only)."""
    timer = Timer()
    started = [0.0]

    def on_collect(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.process_time()
        else:
            timer.cpu += time.process_time() - started[0]

    gc.callbacks.append(on_collect)
    try:
        yield timer
    finally:
        gc.callbacks.remove(on_collect)


def load_tables() -> Rib:
    rib = Rib()
    with timed() as t4:
        report = load_rib_file(V4_TABLE, rib)
    print(f"load IPv4 pfx2as: {report.routes:,} paths, {rib.counts().ipv4_prefixes:,} prefixes in {t4}")
    v6_table = Rib()
    load_rib_file(V6_TABLE, v6_table)
    with timed() as t6:
        for prefix in list(v6_table):
            for index, peer in enumerate(V6_PEERS):
                for path in v6_table.paths(prefix):
                    rib.announce(peer, prefix, BgpPath(next_hop=peer, as_path=(64600 + index, *path.as_path),
                                                    peer=peer, path_id=path.path_id))
    del v6_table
    counts = rib.counts()
    print(f"load IPv6 (2 peers): {counts.ipv6_prefixes:,} prefixes, {counts.ipv6_paths:,} paths in {t6}")
    rib.drain_changed()
    return rib


def table_prefixes(count: int) -> list[str]:
    """The first ``count`` distinct prefixes of the IPv4 pfx2as table, in file order."""
    seen: dict[str, None] = {}
    with gzip.open(V4_TABLE, "rt", encoding="ascii") as table:
        for line in table:
            network, length, _ = line.split("\t")
            seen[f"{network}/{length}"] = None
            if len(seen) >= count:
                break
    return list(seen)


def random_v4(rng: np.random.Generator, count: int) -> npt.NDArray[np.uint32]:
    return rng.integers(0, 1 << 32, count, dtype=np.uint64).astype(np.uint32)


def random_v6(rng: np.random.Generator, prefixes: list[str], count: int) -> list[int]:
    """Half inside random table prefixes (else nearly nothing matches in 2^128), half random 2000::/3."""
    out = []
    picks = rng.integers(0, len(prefixes), count)
    randoms = rng.integers(0, 1 << 62, (count, 2), dtype=np.uint64)
    for i in range(count):
        high, low = int(randoms[i, 0]), int(randoms[i, 1])
        address = (high << 66 | low) & ((1 << 128) - 1)
        if i % 2:
            net = ipaddress.IPv6Network(prefixes[picks[i]])
            host_bits = 128 - net.prefixlen
            address = int(net.network_address) | (address & ((1 << host_bits) - 1))
        else:
            address = (0x2 << 125) | (address & ((1 << 125) - 1))
        out.append(address)
    return out


def reference_v4(lpm: LpmTable, addresses: npt.NDArray[np.uint32]) -> list[str | None]:
    """Independent reference: for every length, is the masked address a table network? Longest wins."""
    networks: dict[int, list[int]] = {}
    for prefix in lpm.prefixes():
        if ":" not in prefix:
            net_text, length_text = prefix.split("/")
            networks.setdefault(int(length_text), []).append(int(ipaddress.IPv4Address(net_text)))
    best = np.full(addresses.size, -1, dtype=np.int64)
    best_network = np.zeros(addresses.size, dtype=np.uint64)
    wide = addresses.astype(np.uint64)
    for length in sorted(networks):
        mask = np.uint64((0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF)
        hit = np.isin(wide & mask, np.array(networks[length], dtype=np.uint64))
        best[hit] = length
        best_network[hit] = (wide & mask)[hit]
    return [None if length < 0 else f"{ipaddress.IPv4Address(int(net))}/{length}"
            for length, net in zip(best.tolist(), best_network.tolist(), strict=True)]


def reference_v6(lpm: LpmTable, addresses: list[int]) -> list[str | None]:
    """Independent reference: probe a (network, length) set from the longest length down."""
    table: set[tuple[int, int]] = set()
    for prefix in lpm.prefixes():
        if ":" in prefix:
            net = ipaddress.IPv6Network(prefix)
            table.add((int(net.network_address), net.prefixlen))
    lengths = sorted({length for _, length in table}, reverse=True)
    out: list[str | None] = []
    for address in addresses:
        found = None
        for length in lengths:
            network = (address >> (128 - length)) << (128 - length) if length else 0
            if (network, length) in table:
                found = f"{ipaddress.IPv6Address(network)}/{length}"
                break
        out.append(found)
    return out


def rate(count: int, timer: Timer) -> float:
    return count / timer.cpu if timer.cpu > 0 else float("inf")


def bench_lookups(rib: Rib, count: int) -> None:
    import pytricia

    lpm = rib.lpm
    rng = np.random.default_rng(1)
    v4 = random_v4(rng, count)
    v6_prefixes = [p for p in rib if ":" in p]
    v6 = random_v6(rng, v6_prefixes, count)
    v6_high = np.array([a >> 64 for a in v6], dtype=np.uint64)
    v6_low = np.array([a & MASK64 for a in v6], dtype=np.uint64)

    lpm.lookup_v4_ids(v4[:10])  # paint buffered changes outside the timing
    with timed() as batch4:
        ids4 = lpm.lookup_v4_ids(v4)
    with timed() as batch6:
        ids6 = lpm.lookup_v6_ids(v6_high, v6_low)
    v4_ints = v4.tolist()
    single_count = min(count, 300_000)
    with timed() as single4:
        for address in v4_ints[:single_count]:
            lpm.lookup_id_int(IPV4, address)
    with timed() as single6:
        for address in v6[:single_count]:
            lpm.lookup_id_int(IPV6, address)

    tries = {IPV4: pytricia.PyTricia(32), IPV6: pytricia.PyTricia(128)}
    for prefix in rib:
        tries[IPV6 if ":" in prefix else IPV4][prefix] = True
    v4_text = [str(ipaddress.IPv4Address(a)) for a in v4_ints]
    v6_text = [str(ipaddress.IPv6Address(a)) for a in v6]
    with timed() as tricia4:
        tricia4_keys = [tries[IPV4].get_key(a) for a in v4_text]
    with timed() as tricia6:
        tricia6_keys = [tries[IPV6].get_key(a) for a in v6_text]
    with timed() as str4:
        for text in v4_text[:single_count]:
            rib.longest_match(text)

    ours4 = [lpm.prefix_of_id(i) if i >= 0 else None for i in ids4.tolist()]
    ours6 = [lpm.prefix_of_id(i) if i >= 0 else None for i in ids6.tolist()]
    with timed() as ref_time:
        ref4 = reference_v4(lpm, v4)
        ref6 = reference_v6(lpm, v6)
    singles_agree = all(lpm.lookup_id_int(IPV4, a) == i for a, i in zip(v4_ints[:20_000], ids4.tolist(),
                                                                          strict=False))
    print(f"\nlongest match over the full table, {count:,} random addresses per family:")
    rows: list[tuple[str, float]] = [
        ("IPv4 batched  (lookup_v4_ids)", rate(count, batch4)),
        ("IPv4 single   (lookup_id_int)", rate(single_count, single4)),
        ("IPv4 single   (longest_match str)", rate(single_count, str4)),
        ("IPv4 pytricia single (get_key str)", rate(count, tricia4)),
        ("IPv6 batched  (lookup_v6_ids)", rate(count, batch6)),
        ("IPv6 single   (lookup_id_int)", rate(single_count, single6)),
        ("IPv6 pytricia single (get_key str)", rate(count, tricia6)),
    ]
    for name, per_second in rows:
        print(f"  {name:38s} {per_second / 1e6:8.2f} M/s")
    print(f"  ratio IPv4 batched / pytricia single: {rows[0][1] / rows[3][1]:.1f}x")
    print(f"  ratio IPv6 batched / pytricia single: {rows[4][1] / rows[6][1]:.1f}x")
    print(f"  ratio IPv4 single / pytricia single:  {rows[1][1] / rows[3][1]:.1f}x")
    print(f"  equal to reference (per-length set probe, {ref_time}): IPv4 {ours4 == ref4}, "
          f"IPv6 {ours6 == ref6}; equal to pytricia: IPv4 {ours4 == tricia4_keys}, "
          f"IPv6 {ours6 == tricia6_keys}; single == batched: {singles_agree}")
    matched4 = sum(p is not None for p in ours4)
    print(f"  matched: IPv4 {matched4 / count:.1%}, IPv6 {sum(p is not None for p in ours6) / count:.1%}")
    if not (ours4 == ref4 == tricia4_keys and ours6 == ref6 == tricia6_keys and singles_agree):
        raise SystemExit("LOOKUP MISMATCH")


def _exabgp5_json(value: object) -> str:
    """A value as ExaBGP 5 writes it in an update's attributes (spaces inside brackets)."""
    if isinstance(value, list):
        return "[ " + ", ".join(_exabgp5_json(v) for v in value) + " ]" if value else "[ ]"
    return json.dumps(value)


def exabgp5_update(counter: int, peer: str, body: str) -> str:
    """One update line with the header ExaBGP 5.0 writes (as in tests/golden/exabgp/)."""
    return ('{ "exabgp": "5.0.0", "time": 1795632255.2692747, "host" : "bench", "pid" : 13644, '
            f'"ppid" : 13616, "counter": {counter}, "type": "update", "neighbor": {{ "address": '
            f'{{ "local": "192.0.2.2", "peer": "{peer}" }}, "asn": {{ "local": 65000, "peer": 65001 }}, '
            f'"router-id": "192.0.2.2" , "direction": "receive", '
            f'"message": {{ "update": {{ {body} }} }} }} }}')


def _nlris(prefixes: list[str], first: int) -> str:
    """ADD-PATH NLRIs; the path-id of the n-th prefix of the table is 1 + n % 3."""
    return ", ".join(f'{{ "nlri": "{prefix}", "path-information": "0.0.0.{1 + (first + n) % 3}" }}'
                     for n, prefix in enumerate(prefixes))


def synthetic_updates(prefixes: list[str], per_line: int, peer: str = "192.0.2.1",
                      attribute_sets: int = 0) -> list[str]:
    """ExaBGP 5 update lines, written as ExaBGP 5.0 writes them (header, spacing, AS path as
    segments, ADD-PATH ids: see tests/golden/exabgp/), ``per_line`` NLRIs each.

    Every line carries its own attribute set, unless ``attribute_sets`` > 0: then lines draw
    from that many distinct sets (a peer's table repeats its AS paths).
    """
    rng = random.Random(5)
    lines = []
    for start in range(0, len(prefixes), per_line):
        draw = random.Random(rng.randrange(attribute_sets)) if attribute_sets else rng
        as_path = json.dumps([64500, draw.randrange(1, 65000), draw.randrange(1, 400_000)])
        community = _exabgp5_json([[64500, draw.randrange(1000)]])
        segments = f'{{"0": {{"element": "as-sequence", "value": {as_path}}}}}'
        attributes = (f'"origin": "igp", "as-path": {segments}, "med": {draw.choice([0, 10, 20])}, '
                      f'"local-preference": 100, "community": {community}')
        next_hop = f"192.0.2.{draw.randrange(1, 250)}"
        nlris = _nlris(prefixes[start:start + per_line], start)
        announce = f'"announce": {{ "ipv4 unicast": {{ "{next_hop}": [ {nlris} ] }} }}'
        lines.append(exabgp5_update(start, peer, f'"attribute": {{ {attributes} }}, {announce}'))
    return lines


def synthetic_withdraws(prefixes: list[str], per_line: int, peer: str = "192.0.2.1") -> list[str]:
    """ExaBGP 5 withdraw lines for the paths :func:`synthetic_updates` announced."""
    return [exabgp5_update(start, peer, f'"withdraw": {{ "ipv4 unicast": [ '
                                        f'{_nlris(prefixes[start:start + per_line], start)} ] }}')
            for start in range(0, len(prefixes), per_line)]


def bench_ingest(prefixes: list[str], cases: list[int], native: bool = True) -> None:
    """Rates of ``parse_line`` + ``Rib.apply_all`` per line, as the switch controller calls them
    (``native=False``: without the C scanner, i.e. the Python fast path)."""
    scanner = "C scanner" if native and ExabgpJsonParser()._scan is not None else "Python fast path"
    print(f"\nExaBGP JSON ingest (parse + RIB apply, {scanner}) of {len(prefixes):,} IPv4 prefixes into an "
          "empty RIB,\nlines as ExaBGP 5 writes them (header, spacing, AS path segments, ADD-PATH ids):")
    pool = len(prefixes) // 4
    runs = [(per_line, 0, "own attribute set per line" + (" (worst case)" if per_line == 1 else ""))
            for per_line in cases]
    if 1 in cases:
        runs.insert(1, (1, pool, f"{pool:,} attribute sets shared by the lines"))
    for per_line, attribute_sets, label in runs:
        lines = synthetic_updates(prefixes, per_line, attribute_sets=attribute_sets)
        with timed() as baseline:
            for line in lines:
                json.loads(line)
        rib = Rib()
        parser = ExabgpJsonParser(known_prefix=rib.lpm.knows, native=native)
        apply_all = rib.apply_all
        parse = parser.parse_line
        gc.collect()
        with timed() as ingest, gc_time() as collector:
            for line in lines:
                apply_all(parse(line))
            rib.lpm.lookup_v4_ids(np.zeros(1, dtype=np.uint32))  # include painting the LPM
        assert rib.counts().ipv4_prefixes == len(prefixes), rib.counts()
        assert set(parser.counters) == {"lines"}, parser.counters
        per_second = rate(len(prefixes), ingest)
        verdict = "ok" if per_second >= INGEST_BAR else "BELOW BAR"
        print(f"  {per_line:4d} NLRI/line, {label}:\n"
              f"       {per_second / 1e3:8.1f} k prefixes/s ({ingest}, of which cyclic GC "
              f"{collector.cpu / max(ingest.cpu, 1e-9):.0%}); "
              f"json.loads alone {rate(len(prefixes), baseline) / 1e3:8.1f} k/s; "
              f"ingest costs {ingest.cpu / max(baseline.cpu, 1e-9):.1f}x json.loads   [{verdict}]")
        if per_line == 1 and not attribute_sets:
            withdraws = synthetic_withdraws(prefixes, 1)
            gc.collect()
            with timed() as withdraw:
                for line in withdraws:
                    apply_all(parse(line))
                rib.lpm.lookup_v4_ids(np.zeros(1, dtype=np.uint32))
            assert len(rib) == 0 and set(parser.counters) == {"lines"}, (len(rib), parser.counters)
            withdraw_rate = rate(len(prefixes), withdraw)
            print(f"     1 NLRI/line, withdraw of all of them: {withdraw_rate / 1e3:8.1f} k prefixes/s "
                  f"({withdraw})")
        del rib, parser, lines


def bench_churn(rib: Rib) -> None:
    """Route changes between batched lookups: the incremental LPM update cost."""
    rng = random.Random(9)
    prefixes = [p for p in rib if ":" not in p]
    sample = rng.sample(prefixes, 20_000)
    saved = {p: rib.sessions_of(p) for p in sample}
    probe = random_v4(np.random.default_rng(3), 100_000)
    with timed() as churn:
        for prefix in sample:
            for session, path in saved[prefix]:
                rib.withdraw(session, prefix, path.peer, path.path_id)
        rib.lpm.lookup_v4_ids(probe)
        for prefix in sample:
            for session, path in saved[prefix]:
                rib.announce(session, prefix, path)
        rib.lpm.lookup_v4_ids(probe)
    print(f"\nchurn: withdraw + re-announce {len(sample):,} prefixes with a 100k batch lookup after each "
          f"phase: {churn} ({2 * len(sample) / churn.cpu / 1e3:.0f}k changes/CPU-s)")
    with timed() as more:
        sizes = [len(rib.more_specifics(p)) for p in ("8.0.0.0/8", "1.0.0.0/8", "193.0.0.0/16")]
    print(f"more_specifics after churn (base + overlay): {sizes} in {more}")
    with timed() as down:
        changes = rib.drop_session(V6_PEERS[0])
    moved = sum(change.best is not None for change in changes)
    print(f"session down (IPv6 peer 1 of 2): {len(changes):,} best-path changes ({moved:,} moved to peer 2) "
          f"in {down}")


def main() -> int:
    parser = argparse.ArgumentParser(description="RIB scale benchmark")
    parser.add_argument("--addresses", type=int, default=1_000_000)
    parser.add_argument("--ingest", type=int, default=200_000, help="prefixes for the ingest benchmark")
    parser.add_argument("--per-line", type=lambda text: [int(n) for n in text.split(",")],
                        default=[1, 4, 10, 100], help="NLRIs per update line, comma-separated")
    parser.add_argument("--ingest-only", action="store_true",
                        help="only the ingest benchmark (prefixes read from the IPv4 table, no RIB load)")
    parser.add_argument("--service-gc", action="store_true",
                        help="the GC threshold `topfib run` sets "
                             "(topfib.controller.service.run.GC_THRESHOLDS)")
    parser.add_argument("--parser", choices=("c", "python"), default="c",
                        help="ingest through the C scanner (when built) or the Python fast path only")
    args = parser.parse_args()
    native = args.parser == "c"
    if args.service_gc:
        from topfib.controller.service.run import GC_THRESHOLDS

        gc.set_threshold(*GC_THRESHOLDS)
    if args.ingest_only:
        bench_ingest(table_prefixes(args.ingest), args.per_line, native)
        return 0
    baseline_rss = rss_mb()
    rib = load_tables()
    rib.lpm.lookup_v4_ids(np.zeros(1, dtype=np.uint32))
    rib.lpm.more_specifics("0.0.0.0/0")  # build the more-specifics index too
    gc.collect()
    resident = rss_mb()
    peak = rss_mb("VmHWM")
    verdict = "ok" if resident <= MEMORY_BAR_MB else "ABOVE BAR"
    print(f"resident memory with both tables: {resident:.0f} MB (interpreter + libraries before loading: "
          f"{baseline_rss:.0f} MB; peak while loading {peak:.0f} MB; bar {MEMORY_BAR_MB:.0f} MB)"
          f"   [{verdict}]")
    with timed() as ms:
        more = [len(rib.more_specifics(p)) for p in ("8.0.0.0/8", "1.0.0.0/8", "193.0.0.0/16", "2001::/16")]
    print(f"more_specifics: {more} prefixes under 8/8, 1/8, 193.0/16, 2001::/16 in {ms}")
    bench_lookups(rib, args.addresses)
    bench_churn(rib)
    prefixes = [p for p in rib if ":" not in p][: args.ingest]
    del rib
    gc.collect()
    bench_ingest(prefixes, args.per_line, native)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


