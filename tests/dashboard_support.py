"""A dashboard-ready app over fixed but realistic data: two switches, a Zipf-like ranking, a FIB of
pinned, requested and TopN routes, active requests and a log of recent FIB changes.

Used by the dashboard's unit tests and by its browser test (served by uvicorn on loopback).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fastapi import FastAPI

from tests.api_support import make_config
from topfib.api.app import create_app
from topfib.api.context import ApiContext
from topfib.api.dashboard import FibChange, install_dashboard, is_installed
from topfib.api.tokens import TokenTable
from topfib.api.view import (
    CollectorStatus,
    FamilyOccupancy,
    FibRoute,
    RouteReason,
    StatusReport,
    SwitchStatus,
    TopEntry,
    sampling_error_pct,
)
from topfib.controller.config import TopfibConfig
from topfib.controller.service.static_view import StaticView
from topfib.controller.state.store import RequestEntry, Store

SWITCHES = ("edge1", "edge2")
CAP_IPV4 = 400
CAP_IPV6 = 120
RANKED = 1500  # prefixes with traffic per switch
NEXT_HOPS = ("192.0.2.1", "192.0.2.2", "192.0.2.3")


def dashboard_app(config: TopfibConfig, store: Store, view: StaticView,
                  clock: Callable[[], float] = time.monotonic,
                  wall_clock: Callable[[], float] = time.time) -> FastAPI:
    """``create_app`` with the dashboard mounted, unless ``create_app`` already mounts it itself."""
    app = create_app(config, store, view, clock=clock, wall_clock=wall_clock)
    if not is_installed(app):
        install_dashboard(app, ApiContext(config=config, store=store, view=view, wall_clock=wall_clock,
                                          clock=clock, tokens=TokenTable(config.token)))
    return app


def demo_config() -> TopfibConfig:
    return make_config(SWITCHES, switch_extra={"fib_cap_ipv4": CAP_IPV4, "fib_cap_ipv6": CAP_IPV6})


def _prefix(i: int) -> str:
    if i % 7 == 6:
        return f"2001:db8:{i // 256:x}:{i % 256:x}00::/56"
    return f"{198 - i // 65536 % 4}.{i // 256 % 256}.{i % 256}.0/24"


def _reason(rank: int) -> RouteReason:
    if rank in (3, 40, 900):
        return "pinned"
    if rank in (7, 120, 1300):
        return "request"
    return "topn"


@dataclass
class DemoView(StaticView):
    """StaticView with caps, coverage, session states, and all of DashboardSource.

    Each status() call is one step of a slowly moving controller, so over-time charts have shape.
    """

    changes: dict[str, list[FibChange]] = field(default_factory=dict)
    calls: int = 0
    score_calls: int = 0
    started_at: float = field(default_factory=time.time)

    async def status(self) -> StatusReport:
        self.calls += 1
        step = self.calls
        switches = []
        for index, name in enumerate(self.routes):
            installed = self.installed.get(name, [])
            v6 = sum(1 for r in installed if ":" in r.prefix)
            wobble = (step * 7 + index * 13) % 11 - 5  # routes coming and going between loops
            switches.append(SwitchStatus(
                name=name,
                session_state="up" if index == 0 else "connecting",
                session_since=self.started_at - 86_400 * 3 if index == 0 else self.started_at - 40,
                active=True,
                occupancy={
                    "ipv4": FamilyOccupancy(installed=max(0, len(installed) - v6 + wobble), cap=CAP_IPV4),
                    "ipv6": FamilyOccupancy(installed=v6, cap=CAP_IPV6),
                    "ipv4_24": FamilyOccupancy(installed=0, cap=0),
                },
                coverage=0.93 + 0.04 * ((step % 20) / 20) if index == 0 else None,
                churn_per_hour=42.0 + step % 5,
                requests_active=3 if index == 0 else 0,
            ))
        return StatusReport(switches=switches, collector=CollectorStatus(
            datagrams_per_s=812.0, samples_per_s=5_684.0, bad_datagrams_per_s=0.0))

    async def recent_changes(self, switch: str, n: int) -> list[FibChange]:
        return self.changes.get(switch, [])[:n]

    async def ranked_scores(self, switch: str) -> Sequence[float]:
        self.score_calls += 1
        return [entry.score for entry in self.ranking.get(switch, [])]

    async def installed_routes(self, switch: str, prefixes: Sequence[str]) -> dict[str, FibRoute]:
        by_prefix = {route.prefix: route for route in self.installed.get(switch, [])}
        return {prefix: by_prefix[prefix] for prefix in prefixes if prefix in by_prefix}

    async def reason_counts(self, switch: str) -> dict[RouteReason, int]:
        return dict(Counter(route.reason for route in self.installed.get(switch, [])))

    def plain(self) -> StaticView:
        """The same data as a plain StaticView: no change log, scores list nor FIB index."""
        return StaticView(routes=self.routes, installed=self.installed, ranking=self.ranking)


def demo_view(now: float) -> DemoView:
    routes: dict[str, dict[str, str]] = {}
    installed: dict[str, list[FibRoute]] = {}
    ranking: dict[str, list[TopEntry]] = {}
    changes: dict[str, list[FibChange]] = {}
    for switch_index, name in enumerate(SWITCHES):
        routes[name] = {}
        installed[name] = []
        ranking[name] = []
        changes[name] = []
        for rank in range(RANKED):
            prefix = _prefix(rank + switch_index * 3)
            next_hop = NEXT_HOPS[rank % len(NEXT_HOPS)]
            if ":" in prefix:
                next_hop = f"2001:db8::{rank % 3 + 1}"
            routes[name][prefix] = next_hop
            score = 40e9 / (rank + 1) ** 1.1  # Zipf-like: a few prefixes carry most traffic
            samples = int(score / 2e6)
            reason = _reason(rank)
            is_installed = rank < CAP_IPV4 - 20 or reason != "topn"
            if is_installed:
                installed[name].append(FibRoute(prefix=prefix, next_hop=next_hop, reason=reason,
                                                since=now - 30 - rank * 11, score=score))
            ranking[name].append(TopEntry(
                prefix=prefix, rate_fast_bps=score * (1.1 if rank % 4 else 0.8), rate_slow_bps=score,
                score=score * (1.1 if rank % 4 else 1.0), samples=samples,
                error_pct=sampling_error_pct(samples), installed=is_installed,
            ))
        ranking[name].sort(key=lambda e: -e.score)
        for i in range(60):
            prefix = _prefix(CAP_IPV4 + i)
            announce = i % 3 != 0
            withdraw_reason = "displaced" if i % 2 else "no live path"
            changes[name].append(FibChange(
                at=now - 5 - i * 37, action="announce" if announce else "withdraw", prefix=prefix,
                next_hop=NEXT_HOPS[i % 3] if announce else None,
                reason=("topn" if i % 5 else "request") if announce else withdraw_reason,
            ))
    return DemoView(routes=routes, installed=installed, ranking=ranking, changes=changes)


async def add_demo_requests(store: Store, now: float) -> None:
    entries = [
        RequestEntry("edge1", "198.0.7.10", "ap1", now - 120, now + 480),
        RequestEntry("edge1", "198.0.120.33", "ap2", now - 40, now + 860),
        RequestEntry("edge1", "203.0.113.9", "ap1", now - 5, now + 295),
    ]
    await store.add_requests(entries, {name: 100 for name in SWITCHES}, now)
