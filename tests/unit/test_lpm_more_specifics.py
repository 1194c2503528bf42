"""More-specifics through churn: the overlay merge and the rebuild when it grows too big."""

from __future__ import annotations

import ipaddress
import random

import pytest

from topfib.collector.rib import more_specifics
from topfib.collector.rib.lpm import LpmTable


def expected(present: set[str], outer: str) -> list[str]:
    net = ipaddress.ip_network(outer)
    inside = [ipaddress.ip_network(p) for p in present if p != outer]
    hits = [n for n in inside if n.version == net.version and n.subnet_of(net)]  # type: ignore[arg-type]
    return [str(n) for n in sorted(hits, key=lambda n: (int(n.network_address), n.prefixlen))]


@pytest.mark.parametrize("max_overlay", [3, 1000])
def test_queries_between_changes_match_a_fresh_scan(
        monkeypatch: pytest.MonkeyPatch, max_overlay: int) -> None:
    monkeypatch.setattr(more_specifics, "MAX_OVERLAY", max_overlay)
    rng = random.Random(11)
    universe = [f"10.{a}.{b}.0/24" for a in range(4) for b in range(0, 256, 37)]
    universe += [f"10.{a}.0.0/16" for a in range(4)] + ["10.0.0.0/8", "10.0.0.0/9", "0.0.0.0/0"]
    universe += [str(ipaddress.ip_network(f"2001:db8:{a:x}::/48")) for a in range(6)]
    universe += ["2001:db8::/32", "2001:db8::/33"]
    table = LpmTable()
    present: set[str] = set()
    for _ in range(300):
        prefix = rng.choice(universe)
        if prefix in present:
            table.remove(prefix)
            present.discard(prefix)
        else:
            table.add(prefix)
            present.add(prefix)
        outer = rng.choice(["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "2001:db8::/32", "2001:db8::/31"])
        assert table.more_specifics(outer) == expected(present, outer)
