"""The demo's routing table: which prefixes exist, which of them the switch has peer routes for.

The table is the corpus's full table (CAIDA RouteViews pfx2as: ~1M IPv4 prefixes, plus an IPv6
table), found through ``TOPFIB_CORPUS`` (see :func:`corpus_location`); without it,
a bundled 20k-prefix random extract of the same files (``controller/demo/data/demo-table.pfx2as.gz``:
``random.Random(20240406).sample`` of 18,000 lines of the 2024 IPv4 table and 2,000 of the IPv6 one).

Traffic is Zipf over the whole table (per family, a seeded random ranking, so popularity has
nothing to do with address or length). The switch's peers carry the head of that ranking: the
``peer_count`` most popular prefixes get peer routes (at most half the table), everything else
reaches the Internet through the switch's default (transit) route. This is how a peering edge
looks — peers cover the popular destinations, transit the long tail — and it keeps what BIRD
sends ExaBGP small enough (tens of thousands of paths, not a million) to be learned in seconds:
ExaBGP parses on the order of 10k routes/s, so a full table would take minutes before the
demo shows anything. No ``rib_file`` preload is used: live paths replace a preloaded table at
End-of-RIB, and a preloaded prefix without a peer path could not be installed anyway.

Each peer prefix gets one or two of the peering LAN's next-hops, chosen by its origin AS, so
nested prefixes with different exits (selection's no-cache-hiding units) occur as in real tables.
"""

from __future__ import annotations

import gzip
import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import topfib
from topfib.controller.demo.netns_lab import PEER_NEXT_HOPS, PeerRoute
from topfib.controller.sim.zipf import ZipfTraffic

CORPUS_ENV = "TOPFIB_CORPUS"
CORPUS_V4 = "bgp/mccurtain__routeviews-rv2-20240406.pfx2as.gz"
CORPUS_V6 = "bgp/pytricia__routeviews-rv6-20160202-1200.pfx2as.gz"
BUNDLED_TABLE = Path(__file__).resolve().parent / "data" / "demo-table.pfx2as.gz"


def corpus_location() -> Path:
    """Where the optional full corpus is: ``$TOPFIB_CORPUS``, else the repository's own small
    subset (``tests/data``, same layout, without the full tables). It may not exist (an installed
    wheel has no tests). The one place that knows where the corpus is."""
    configured = os.environ.get(CORPUS_ENV)
    checkout = Path(topfib.__file__).resolve().parent.parent
    return Path(configured) if configured else checkout / "tests" / "data"


def corpus_dir() -> Path | None:
    """The corpus location when it holds the full table, else None (then the bundled extract is used)."""
    candidate = corpus_location()
    return candidate if (candidate / CORPUS_V4).is_file() else None


def read_pfx2as(path: Path) -> Iterator[tuple[str, int]]:
    """(prefix as written, first origin AS) per line of a gzipped pfx2as file; malformed lines skipped.

    Prefixes are not validated here (a million ``ipaddress`` parses cost seconds): the ones that
    become peer routes or traffic are, where they are used.
    """
    with gzip.open(path, "rb") as compressed:
        text = compressed.read().decode("ascii", errors="replace")
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) != 3:
            continue
        origin = fields[2].split("_", 1)[0].split(",", 1)[0]
        if origin.isdigit() and fields[1].isdigit():
            yield f"{fields[0]}/{fields[1]}", int(origin)


def canonical(prefix: str) -> str | None:
    """The prefix in canonical form, None when it is not one (or has host bits set)."""
    try:
        return str(ipaddress.ip_network(prefix))
    except ValueError:
        return None


@dataclass(frozen=True)
class FamilyTable:
    """One family's prefixes in Zipf rank order (rank 0 = most traffic) and their origin ASes."""

    family: int
    prefixes: list[str]
    origins: list[int]
    traffic: ZipfTraffic  # over the list's indices; index i has rank i

    @classmethod
    def build(cls, family: int, rows: list[tuple[str, int]], alpha: float, seed: int) -> FamilyTable:
        unique = dict(rows)  # a prefix listed twice keeps its last origin
        listed = list(unique.items())
        zipf = ZipfTraffic.build(len(listed), alpha, seed)
        # Reorder by rank, so that the head of the list is the head of the traffic.
        ordered = [listed[i] for i in zipf.prefix_of_rank.tolist()]
        identity = ZipfTraffic(alpha, np.arange(len(ordered), dtype=np.int64), zipf.cumulative)
        prefixes, origins = zip(*ordered, strict=True)
        return cls(family, list(prefixes), list(origins), identity)

    def peer_routes(self, count: int) -> list[PeerRoute]:
        """The ``count`` most popular prefixes with their peer next-hop indices (1 or 2 paths)."""
        peers = len(PEER_NEXT_HOPS[self.family])
        routes: list[PeerRoute] = []
        for text, origin in zip(self.prefixes[:count], self.origins[:count], strict=True):
            prefix = canonical(text)
            if prefix is None:
                continue
            first = origin % peers
            paths = (first, (first + 1) % peers) if (origin // peers) % 3 == 0 else (first,)
            routes.append((prefix, paths))
        return routes


@dataclass(frozen=True)
class DemoTable:
    source: str  # where the table came from, for the banner
    v4: FamilyTable
    v6: FamilyTable

    def family(self, family: int) -> FamilyTable:
        return self.v4 if family == 4 else self.v6


def load_demo_table(alpha: float, seed: int) -> DemoTable:
    """The corpus's full table when present, else the bundled extract (also for a family the
    corpus lacks)."""
    corpus = corpus_dir()
    files = [corpus / CORPUS_V4, corpus / CORPUS_V6] if corpus is not None else []
    rows = _rows([path for path in files if path.is_file()])
    sources = {family: f"full table from {corpus}" for family in (4, 6) if rows[family]}
    if not rows[4] or not rows[6]:
        bundled = _rows([BUNDLED_TABLE])
        for family in (4, 6):
            if not rows[family]:
                rows[family] = bundled[family]
                sources[family] = f"bundled extract {BUNDLED_TABLE.name} ({CORPUS_ENV}: the full table)"
    if not rows[4] or not rows[6]:
        raise FileNotFoundError(f"no IPv4 and IPv6 routing table in {BUNDLED_TABLE}")
    source = sources[4] if sources[4] == sources[6] else f"IPv4: {sources[4]}; IPv6: {sources[6]}"
    return DemoTable(
        source,
        FamilyTable.build(4, rows[4], alpha, seed),
        FamilyTable.build(6, rows[6], alpha, seed + 1),
    )


def _rows(paths: list[Path]) -> dict[int, list[tuple[str, int]]]:
    rows: dict[int, list[tuple[str, int]]] = {4: [], 6: []}
    for path in paths:
        for prefix, origin in read_pfx2as(path):
            rows[6 if ":" in prefix else 4].append((prefix, origin))
    return rows
