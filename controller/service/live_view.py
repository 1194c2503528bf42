"""The API's window on the running controller (implements ``topfib.api.view.ControllerView``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from topfib.api.dashboard import FibChange
from topfib.api.view import (
    CollectorStatus,
    FamilyOccupancy,
    FibRoute,
    PathTraffic,
    RequestStatus,
    RibMatch,
    RibPath,
    RouteReason,
    StatusReport,
    SwitchStatus,
    TopEntry,
    sampling_error_pct,
)
from topfib.collector.accounting.path_rates import PathRate
from topfib.collector.accounting.pipeline import Collector
from topfib.collector.common.prefixes import canonical_address
from topfib.collector.rib.paths import BgpPath
from topfib.controller.selection.model import RequestAnswer
from topfib.controller.switch.controller import SwitchController

BITS_PER_BYTE = 8.0


class LiveView:
    """Reads the switch controllers' state; every call is cheap and never awaits I/O."""

    def __init__(
        self,
        controllers: Mapping[str, SwitchController],
        collector: Collector | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._controllers = controllers
        self._collector = collector
        self._clock = clock
        self._rate_base: tuple[float, int, int, int] | None = None
        self._last_rates = CollectorStatus()
        # per switch: the request answers of its last selection, by ip
        self._answers_by_ip: dict[str, tuple[tuple[RequestAnswer, ...], dict[str, RequestAnswer]]] = {}

    async def resolve(self, ip: str) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
        for name, ctl in self._controllers.items():
            with ctl.rib_lock:
                out.append((name, ctl.rib.longest_match(ip)))
        return out

    async def request_status(self, switch: str, ip: str, prefix: str) -> tuple[RequestStatus, str | None]:
        ctl = self._controllers.get(switch)
        if ctl is None:
            return "rejected", f"unknown switch {switch}"
        if prefix in ctl.installed:
            return "installed", None
        ctl.request_arrived()  # the API asks right after storing a request: decide on it now
        selection = ctl.selection
        answer = self._answer_of(switch, selection.requests).get(ip) if selection is not None else None
        if answer is not None:
            if answer.status == "no-route":
                return "no-route", answer.reason or "no peer path: traffic uses the default route"
            if answer.status == "rejected":
                return "rejected", answer.reason
        return "pending", None

    def _answer_of(self, switch: str, answers: tuple[RequestAnswer, ...]) -> dict[str, RequestAnswer]:
        """ip → its first no-route or rejected answer in ``answers`` (what a POST reports; an ip may
        be answered more than once): built once per selection, not scanned per POST."""
        indexed, by_ip = self._answers_by_ip.get(switch, ((), {}))
        if indexed is not answers:
            by_ip = {}
            for answer in answers:
                if answer.status in ("no-route", "rejected"):
                    by_ip.setdefault(answer.ip, answer)
            self._answers_by_ip[switch] = (answers, by_ip)
        return by_ip

    async def fib(self, switch: str) -> list[FibRoute]:
        ctl = self._controllers.get(switch)
        if ctl is None:
            return []
        return [self._route(ctl, prefix) for prefix in sorted(ctl.installed)]

    async def top(self, switch: str, n: int) -> list[TopEntry]:
        ctl = self._controllers.get(switch)
        if ctl is None:
            return []
        with ctl.rib_lock:
            ranked = ctl.rates.top(switch, n, self._clock())
        return [
            TopEntry(
                prefix=item.prefix,
                rate_fast_bps=item.fast_bps * BITS_PER_BYTE,
                rate_slow_bps=item.slow_bps * BITS_PER_BYTE,
                score=item.score * BITS_PER_BYTE,
                samples=int(item.samples),
                error_pct=sampling_error_pct(int(item.samples)),
                installed=item.prefix in ctl.installed,
            )
            for item in ranked
        ]

    async def top_paths(self, switch: str, prefixes: list[str]) -> dict[str, list[PathTraffic]]:
        ctl = self._controllers.get(switch)
        if ctl is None:
            return {}
        path_rates = self._collector.path_rates if self._collector is not None else None
        now = self._clock()
        out: dict[str, list[PathTraffic]] = {}
        for prefix in prefixes:
            with ctl.rib_lock:
                paths = ctl.rib.paths(prefix)
                traffic = path_rates.paths_of(switch, prefix, now) if path_rates is not None else []
            out[prefix] = _path_traffic(paths, traffic)
        return out

    async def rib_lookup(self, ip: str) -> list[RibMatch]:
        matches = []
        for name, ctl in self._controllers.items():
            with ctl.rib_lock:
                prefix = ctl.rib.longest_match(ip)
                paths = ctl.rib.paths(prefix) if prefix else []
                best = ctl.rib.best(prefix) if prefix else None
            matches.append(
                RibMatch(
                    switch=name,
                    prefix=prefix,
                    paths=[RibPath.from_path(path, path == best) for path in paths],
                )
            )
        return matches

    async def status(self) -> StatusReport:
        switches = []
        now = self._clock()
        for name, ctl in self._controllers.items():
            with ctl.rib_lock:
                scores = ctl.rates.scores(name, now)
            occupancy = {
                table.replace("/", "_"): FamilyOccupancy(installed=used, cap=cap)
                for table, (used, cap) in ctl.occupancy().items()
            }
            requests_active = len(ctl.selection.requests) if ctl.selection else 0
            switches.append(
                SwitchStatus(
                    name=name,
                    session_state=ctl.session.state,
                    session_since=ctl.session.since,
                    session_reason=ctl.diagnosis.reason,
                    active=ctl.active,
                    occupancy=occupancy,
                    coverage=ctl.coverage(scores),
                    churn_per_hour=ctl.churn_per_hour(),
                    requests_active=requests_active,
                )
            )
        return StatusReport(switches=switches, collector=self._collector_rates(now))

    def _collector_rates(self, now: float) -> CollectorStatus:
        if self._collector is None:
            return CollectorStatus()
        totals = self._collector.totals
        current = (now, totals.datagrams, totals.flow_samples, totals.malformed_datagrams)
        base = self._rate_base
        if base is None or now - base[0] >= 5.0:
            if base is not None and now > base[0]:
                span = now - base[0]
                self._last_rates = CollectorStatus(
                    datagrams_per_s=(current[1] - base[1]) / span,
                    samples_per_s=(current[2] - base[2]) / span,
                    bad_datagrams_per_s=(current[3] - base[3]) / span,
                )
            self._rate_base = current
        return self._last_rates

    # --- what the dashboard uses beyond ControllerView (topfib.api.dashboard.DashboardSource) ----------

    async def recent_changes(self, switch: str, n: int) -> list[FibChange]:
        ctl = self._controllers.get(switch)
        if ctl is None:
            return []
        newest = list(ctl.changes)[-n:][::-1] if n > 0 else []
        return [
            FibChange(at=at, action="withdraw" if action == "withdraw" else "announce", prefix=prefix,
                      next_hop=next_hop or None, reason=reason)
            for at, action, prefix, next_hop, reason in newest
        ]

    async def ranked_scores(self, switch: str) -> Sequence[float]:
        ctl = self._controllers.get(switch)
        if ctl is None:
            return []
        with ctl.rib_lock:
            scores = ctl.rates.scores(switch, self._clock())
        return [score * BITS_PER_BYTE for score in scores.values()]

    async def installed_routes(self, switch: str, prefixes: Sequence[str]) -> dict[str, FibRoute]:
        ctl = self._controllers.get(switch)
        if ctl is None:
            return {}
        return {prefix: self._route(ctl, prefix) for prefix in prefixes if prefix in ctl.installed}

    async def reason_counts(self, switch: str) -> dict[RouteReason, int]:
        ctl = self._controllers.get(switch)
        counts: dict[RouteReason, int] = {"pinned": 0, "request": 0, "topn": 0}
        if ctl is None:
            return counts
        for prefix in ctl.installed:
            counts[self._route(ctl, prefix).reason] += 1
        return counts

    @staticmethod
    def _route(ctl: SwitchController, prefix: str) -> FibRoute:
        chosen = ctl.selection.routes.get(prefix) if ctl.selection else None
        reason = chosen.reason if chosen else "topn"
        return FibRoute(
            prefix=prefix,
            next_hop=ctl.installed[prefix],
            reason="topn" if reason == "dependency" else reason,
            since=chosen.since if chosen else 0.0,
            score=chosen.score * BITS_PER_BYTE if chosen else None,
        )

    async def ready(self) -> bool:
        return all(ctl.selection is not None for ctl in self._controllers.values())


def _path_traffic(paths: list[BgpPath], traffic: list[PathRate]) -> list[PathTraffic]:
    """The RIB's paths (best first) joined by next hop with their traffic, then next hops that
    carried traffic but have no path any more."""
    by_hop = {rate.next_hop: rate for rate in traffic}
    total = sum(rate.score for rate in traffic)
    out = []
    seen: set[str] = set()
    for rank, path in enumerate(paths):
        hop = canonical_address(path.next_hop)
        rate = None if hop in seen else by_hop.get(hop)  # two paths, one next hop: traffic shown once
        seen.add(hop)
        out.append(_entry(path.next_hop, path, rank == 0, rate, total))
    out += [_entry(rate.next_hop, None, False, rate, total) for rate in traffic if rate.next_hop not in seen]
    return out


def _entry(
    next_hop: str, path: BgpPath | None, best: bool, rate: PathRate | None, total: float
) -> PathTraffic:
    return PathTraffic(
        next_hop=next_hop,
        peer=path.peer if path is not None else None,
        peer_as=path.as_path[0] if path is not None and path.as_path else None,
        as_path=list(path.as_path) if path is not None else [],
        best=best,
        in_rib=path is not None,
        rate_fast_bps=rate.fast_bps * BITS_PER_BYTE if rate else 0.0,
        rate_slow_bps=rate.slow_bps * BITS_PER_BYTE if rate else 0.0,
        packets_fast_per_s=rate.fast_pps if rate else 0.0,
        packets_slow_per_s=rate.slow_pps if rate else 0.0,
        share=(rate.score / total if rate else 0.0) if total > 0 else None,
    )
