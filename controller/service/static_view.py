"""A ControllerView over fixed data, for tests, benchmarks and API-only demos.

Not a controller: nothing is ever installed by asking. Routes are given per switch as
``{prefix: next_hop}`` and fixed after construction; lookups are linear scans over pre-parsed
prefixes, fine for the few hundred prefixes it is meant for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from topfib.api.view import (
    CollectorStatus,
    FamilyOccupancy,
    FibRoute,
    PathTraffic,
    RequestStatus,
    RibMatch,
    RibPath,
    StatusReport,
    SwitchStatus,
    TopEntry,
)
from topfib.collector.common.prefixes import parse_address, parse_prefix
from topfib.collector.rib.paths import BgpPath

ParsedPrefix = tuple[int, int, int, str]  # family, shift (host bits), network >> shift, prefix


def _parse_all(prefixes: Mapping[str, str]) -> list[ParsedPrefix]:
    parsed = []
    for prefix in prefixes:
        family, network, length = parse_prefix(prefix)
        shift = (32 if family == 4 else 128) - length
        parsed.append((family, shift, network >> shift, prefix))
    # Longest first, so the first hit is the longest match.
    return sorted(parsed, key=lambda p: p[1])


def _longest_match(parsed: list[ParsedPrefix], ip: str) -> str | None:
    family, address = parse_address(ip)
    for pf, shift, network, prefix in parsed:
        if pf == family and address >> shift == network:
            return prefix
    return None


@dataclass
class StaticView:
    routes: dict[str, dict[str, str]]
    installed: dict[str, list[FibRoute]] = field(default_factory=dict)
    ranking: dict[str, list[TopEntry]] = field(default_factory=dict)
    # switch → prefix → its paths and their traffic (GET /v1/top?per_path=true)
    path_traffic: dict[str, dict[str, list[PathTraffic]]] = field(default_factory=dict)
    rejected: dict[tuple[str, str], str] = field(default_factory=dict)  # (switch, prefix) → reason
    is_ready: bool = True
    _parsed: dict[str, list[ParsedPrefix]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._parsed = {switch: _parse_all(prefixes) for switch, prefixes in self.routes.items()}

    async def resolve(self, ip: str) -> list[tuple[str, str | None]]:
        return [(switch, _longest_match(parsed, ip)) for switch, parsed in self._parsed.items()]

    async def request_status(self, switch: str, ip: str, prefix: str) -> tuple[RequestStatus, str | None]:
        if any(r.prefix == prefix for r in self.installed.get(switch, [])):
            return "installed", None
        reason = self.rejected.get((switch, prefix))
        if reason is not None:
            return "rejected", reason
        return "pending", None

    async def fib(self, switch: str) -> list[FibRoute]:
        return list(self.installed.get(switch, []))

    async def top(self, switch: str, n: int) -> list[TopEntry]:
        return self.ranking.get(switch, [])[:n]

    async def top_paths(self, switch: str, prefixes: list[str]) -> dict[str, list[PathTraffic]]:
        known = self.path_traffic.get(switch, {})
        return {prefix: list(known[prefix]) for prefix in prefixes if prefix in known}

    async def rib_lookup(self, ip: str) -> list[RibMatch]:
        matches = []
        for switch, prefixes in self.routes.items():
            prefix = _longest_match(self._parsed[switch], ip)
            paths = [RibPath.from_path(BgpPath(next_hop=prefixes[prefix]), best=True)] if prefix else []
            matches.append(RibMatch(switch=switch, prefix=prefix, paths=paths))
        return matches

    async def status(self) -> StatusReport:
        switches = [
            SwitchStatus(
                name=switch, session_state="up", active=True,
                occupancy={"ipv4": FamilyOccupancy(installed=len(self.installed.get(switch, [])), cap=0)},
            )
            for switch in self.routes
        ]
        return StatusReport(switches=switches, collector=CollectorStatus())

    async def ready(self) -> bool:
        return self.is_ready
