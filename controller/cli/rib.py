"""``topfib rib lookup`` and ``topfib rib stats``: a RIB file (MRT dump or pfx2as) from the shell."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from topfib.collector.common.prefixes import PrefixError
from topfib.collector.rib.paths import BgpPath

if TYPE_CHECKING:
    from topfib.collector.rib.loaders import LoadReport
    from topfib.collector.rib.rib import Rib

EXIT_BAD_ADDRESS = 1
EXIT_BAD_FILE = 2

rib_app = typer.Typer(help="Inspect a RIB file (MRT dump or CAIDA pfx2as).", no_args_is_help=True)


def _load(rib_file: Path) -> tuple[Rib, LoadReport] | None:
    # imported here: the RIB and its loaders take a while to load, and only this command needs them
    from topfib.collector.rib.loaders import RibFileError, load_rib_file
    from topfib.collector.rib.rib import Rib

    rib = Rib()
    try:
        report = load_rib_file(rib_file, rib)
    except RibFileError as exc:
        print(f"topfib rib: {exc}", file=sys.stderr)
        return None
    return rib, report


def path_json(path: BgpPath) -> dict[str, Any]:
    return {
        "next_hop": path.next_hop,
        "as_path": list(path.as_path),
        "origin_as": path.origin_as,
        "origin": path.origin,
        "local_pref": path.local_pref,
        "med": path.med,
        "communities": list(path.communities),
        "large_communities": list(path.large_communities),
        "peer": path.peer,
        "path_id": path.path_id,
    }


def run_lookup(rib: Path, ips: list[str]) -> int:
    """One JSON object per address: the longest matching prefix and its paths, best first."""
    loaded = _load(rib)
    if loaded is None:
        return EXIT_BAD_FILE
    table, _ = loaded
    status = 0
    for ip in ips:
        try:
            prefix = table.longest_match(ip)
        except PrefixError as exc:
            print(json.dumps({"address": ip, "error": str(exc)}))
            status = EXIT_BAD_ADDRESS
            continue
        paths = table.paths(prefix) if prefix is not None else []
        print(json.dumps({"address": ip, "prefix": prefix, "paths": [path_json(p) for p in paths]}))
    return status


def run_stats(rib: Path, as_json: bool) -> int:
    """Prefix and path counts per family, and what was skipped while loading."""
    loaded = _load(rib)
    if loaded is None:
        return EXIT_BAD_FILE
    table, report = loaded
    counts = table.counts()
    stats: dict[str, Any] = {
        "file": str(rib),
        "format": report.format,
        "compression": report.compression,
        "ipv4_prefixes": counts.ipv4_prefixes,
        "ipv6_prefixes": counts.ipv6_prefixes,
        "ipv4_paths": counts.ipv4_paths,
        "ipv6_paths": counts.ipv6_paths,
        "paths": counts.paths,
        "skipped": dict(sorted(report.problems.items())),
        "stream_error": report.stream_error,
        "load_seconds": round(report.seconds, 3),
    }
    if as_json:
        print(json.dumps(stats))
        return 0
    print(f"{stats['file']} ({report.format}, {report.compression})")
    print(f"  IPv4: {counts.ipv4_prefixes:>10,} prefixes {counts.ipv4_paths:>10,} paths")
    print(f"  IPv6: {counts.ipv6_prefixes:>10,} prefixes {counts.ipv6_paths:>10,} paths")
    if report.problems:
        print("  skipped: " + ", ".join(f"{k} {v:,}" for k, v in sorted(report.problems.items())))
    if report.stream_error:
        print(f"  stream: {report.stream_error} (loaded what came before)")
    print(f"  loaded in {report.seconds:.2f} s")
    return 0


@rib_app.command("lookup")
def rib_lookup(
    rib: Annotated[Path, typer.Option("--rib", help="MRT dump or pfx2as file")],
    ips: Annotated[list[str], typer.Argument(help="addresses to look up")],
) -> None:
    """Longest match and paths for each address, one JSON object per line."""
    raise typer.Exit(run_lookup(rib, ips))


@rib_app.command("stats")
def rib_stats(
    rib: Annotated[Path, typer.Option("--rib", help="MRT dump or pfx2as file")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Prefix and path counts per address family."""
    raise typer.Exit(run_stats(rib, as_json))
