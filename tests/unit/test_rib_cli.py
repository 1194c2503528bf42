"""topfib rib lookup / stats through the real CLI app."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from topfib.controller.cli.app import app


def test_lookup_prints_one_object_per_address(corpus: Path) -> None:
    dump = corpus / "bgp" / "bgpdump__bview.ipv4_unicast_add_path.gz"
    result = CliRunner().invoke(app, ["rib", "lookup", "--rib", str(dump), "10.0.10.7", "192.0.2.1"])
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.output.splitlines())
    assert first["address"] == "10.0.10.7" and first["prefix"] == "10.0.10.0/24"
    assert [(p["next_hop"], p["as_path"], p["origin_as"], p["path_id"]) for p in first["paths"]] == [
        ("10.0.15.1", [65015, 65014, 65013, 65012, 65011], 65011, 36),
        ("10.0.15.1", [65015, 65014, 65013, 65012, 65011, 65010], 65010, 38)]
    assert second == {"address": "192.0.2.1", "prefix": None, "paths": []}


def test_lookup_bad_address_and_bad_file(tmp_path: Path, corpus: Path) -> None:
    dump = corpus / "bgp" / "bgpdump__bview.ipv6_unicast_add_path.gz"
    result = CliRunner().invoke(app, ["rib", "lookup", "--rib", str(dump), "not-an-ip", "2001:db8:28::1"])
    assert result.exit_code == 1
    bad, good = (json.loads(line) for line in result.output.splitlines())
    assert "error" in bad and good["prefix"] == "2001:db8:28::/48"
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00" * 64)
    result = CliRunner().invoke(app, ["rib", "lookup", "--rib", str(junk), "10.0.0.1"])
    assert result.exit_code == 2


def test_stats_json_and_text(tmp_path: Path) -> None:
    table = tmp_path / "t.pfx2as"
    table.write_text("10.0.0.0\t8\t1\n10.1.0.0\t16\t2_3\n2001:db8::\t32\t4\n")
    result = CliRunner().invoke(app, ["rib", "stats", "--rib", str(table), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert (stats["ipv4_prefixes"], stats["ipv6_prefixes"], stats["paths"]) == (2, 1, 4)
    assert (stats["ipv4_paths"], stats["ipv6_paths"], stats["format"]) == (3, 1, "pfx2as")
    text = CliRunner().invoke(app, ["rib", "stats", "--rib", str(table)])
    assert text.exit_code == 0 and "IPv4:" in text.output and "IPv6:" in text.output
