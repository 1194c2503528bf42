"""The routing table the collector benchmark gives both daemons, and the stream drawn from it.

The full table (CAIDA RouteViews pfx2as, ~1M IPv4 prefixes plus an IPv6 table) when the corpus is
there (``TOPFIB_CORPUS``, see ``topfib.controller.demo.table.corpus_location``),
else a generated one: seeded random prefixes with a DFZ-like length mix (half /24s), outside the
special-use ranges topfib refuses. Written once per table into the work directory as topfib's
``rib_file`` (one pfx2as file, both families), sfacctd's ``networks_file`` (plus the marker
prefix) and one gzipped pfx2as file per family (for ``bench.collector_sink``).
"""

from __future__ import annotations

import gzip
import random
from dataclasses import dataclass
from pathlib import Path

from bench.gen_traffic import Table, Traffic, generate, load_pfx2as
from bench.sfacctd_daemon import MARKER_PREFIX
from topfib.controller.demo.table import CORPUS_V4, CORPUS_V6, corpus_dir, corpus_location

ORIGIN_AS = 64512  # pfx2as needs an origin; topfib's accounting does not look at it
# first octets never drawn for generated IPv4 prefixes: special-use and documentation ranges
_SKIP_V4_OCTETS = frozenset({0, 10, 100, 127, 169, 172, 192, 198, 203})


@dataclass
class BenchTable:
    name: str  # "corpus" or "generated-N"
    description: str
    v4: Table
    v6: Table
    v4_pfx2as: Path
    v6_pfx2as: Path
    rib_file: Path
    networks_file: Path

    @property
    def prefixes(self) -> int:
        return len(self.v4.networks) + len(self.v6.networks)


def generated_tables(v4_count: int, seed: int = 7) -> tuple[Table, Table]:
    """``v4_count`` IPv4 prefixes (/16–/24, half /24) and a tenth as many IPv6 ones (/32–/48)."""
    rng = random.Random(seed)
    octets = [octet for octet in range(1, 224) if octet not in _SKIP_V4_OCTETS]
    tables = []
    for family, count in ((4, v4_count), (6, max(v4_count // 10, 1))):
        bits = 32 if family == 4 else 128
        seen: set[tuple[int, int]] = set()
        while len(seen) < count:
            if family == 4:
                length = 24 if rng.random() < 0.5 else rng.randint(16, 23)
                top = rng.choice(octets) << 24
            else:
                length = rng.choice((32, 36, 40, 44, 48, 48, 48))
                top = rng.randint(0x2400, 0x2FFF) << 112
            network = (top | rng.getrandbits(bits - 8 if family == 4 else bits - 16)) >> (bits - length)
            seen.add((network << (bits - length), length))
        ordered = sorted(seen)
        tables.append(Table([n for n, _ in ordered], [n_len for _, n_len in ordered]))
    return tables[0], tables[1]


def bench_table(workdir: Path, generated_prefixes: int) -> BenchTable:
    """The corpus's full table unless ``generated_prefixes`` > 0 or the corpus is missing."""
    corpus = corpus_dir()
    if corpus is not None and generated_prefixes <= 0:
        name = "corpus"
        v4, v6 = load_pfx2as(corpus / CORPUS_V4, 4), load_pfx2as(corpus / CORPUS_V6, 6)
        description = f"full table from the corpus ({corpus / CORPUS_V4}, {corpus / CORPUS_V6})"
    else:
        count = generated_prefixes if generated_prefixes > 0 else 200_000
        name = f"generated-{count}"
        v4, v6 = generated_tables(count)
        why = "as asked" if corpus is not None else f"no corpus at {corpus_location()}"
        description = f"generated table ({why}): {count} IPv4 + {len(v6.networks)} IPv6 random prefixes"
    directory = workdir / f"table-{name}"
    table = BenchTable(
        name,
        description,
        v4,
        v6,
        directory / "v4.pfx2as.gz",
        directory / "v6.pfx2as.gz",
        directory / "rib.pfx2as",
        directory / "networks.txt",
    )
    if not table.networks_file.exists():  # written last: its presence means the set is complete
        directory.mkdir(parents=True, exist_ok=True)
        _write_files(table)
    return table


def _write_files(table: BenchTable) -> None:
    v4, v6 = table.v4.prefix_strings(4), table.v6.prefix_strings(6)
    for path, prefixes in ((table.v4_pfx2as, v4), (table.v6_pfx2as, v6)):
        with gzip.open(path, "wt") as out:
            out.writelines(_pfx2as_line(prefix) for prefix in prefixes)
    with table.rib_file.open("w") as out:
        out.writelines(_pfx2as_line(prefix) for prefix in (*v4, *v6))
    partial = table.networks_file.with_suffix(".part")
    partial.write_text("\n".join([*v4, *v6, MARKER_PREFIX]) + "\n")
    partial.rename(table.networks_file)


def _pfx2as_line(prefix: str) -> str:
    network, length = prefix.split("/")
    return f"{network}\t{length}\t{ORIGIN_AS}\n"


def load_traffic(workdir: Path, table: BenchTable, samples: int, seed: int) -> Traffic:
    """``samples`` flow samples over ``table`` (cached in ``workdir``)."""
    cache = workdir / f"traffic-{table.name}-{samples}-{seed}.npz"
    if cache.exists():
        return Traffic.load(cache)
    print(f"generating {samples} samples (cached in {cache}) ...", flush=True)
    traffic = generate(samples, seed=seed, v4=table.v4, v6=table.v6)
    traffic.save(cache)
    return traffic
