"""What ``topfib demo`` measures of its running service: a :class:`DemoSnapshot` each second, the
running maxima, and the final summary (one JSON object)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from topfib.controller.demo.view import DemoSnapshot, RequestLine, TopLine
from topfib.controller.selection.model import share_of
from topfib.controller.service.run import Service
from topfib.controller.sim.oracle import hindsight_fib
from topfib.controller.switch.controller import SwitchController

SWITCH_NAME = "demo-sw"


@dataclass
class Totals:
    """What the summary reports: the most seen during the run and the last values."""

    max_installed: dict[str, int] = field(default_factory=dict)
    max_switch_fib: dict[int, int] = field(default_factory=dict)
    max_coverage: float = 0.0
    last: DemoSnapshot | None = None

    def note(self, snapshot: DemoSnapshot) -> None:
        self.last = snapshot
        for table, (used, _) in snapshot.occupancy.items():
            self.max_installed[table] = max(self.max_installed.get(table, 0), used)
        for family, count in (snapshot.switch_fib or {}).items():
            self.max_switch_fib[family] = max(self.max_switch_fib.get(family, 0), count)
        if snapshot.coverage is not None:
            self.max_coverage = max(self.max_coverage, snapshot.coverage)


class Snapshotter:
    """Builds a :class:`DemoSnapshot` from the running service each second."""

    def __init__(
        self, service: Service, switch_label: str, cap_guard_label: str, dashboard_url: str, duration_s: float
    ) -> None:
        self.service = service
        self.cap_guard_label = cap_guard_label
        self.ctl: SwitchController = service.controllers[SWITCH_NAME]
        self.switch_label = switch_label
        self.dashboard_url = dashboard_url
        self.duration_s = duration_s
        self.started = time.monotonic()
        self.requested: dict[str, str] = {}  # ip → what the API answered
        self._last_totals: tuple[float, int, int] | None = None
        self._rates = (0.0, 0.0)

    def _collector_rates(self, now: float) -> tuple[float, float]:
        totals = self.service.collector.totals
        current = (now, totals.flow_samples, totals.datagrams)
        if self._last_totals is not None and now - self._last_totals[0] >= 0.5:
            span = now - self._last_totals[0]
            base = self._last_totals
            self._rates = ((current[1] - base[1]) / span, (current[2] - base[2]) / span)
            self._last_totals = current
        elif self._last_totals is None:
            self._last_totals = current
        return self._rates

    def _requests(self) -> list[RequestLine]:
        answers = {a.ip: a for a in (self.ctl.selection.requests if self.ctl.selection else ())}
        lines = []
        for ip, api_status in self.requested.items():
            answer = answers.get(ip)
            if answer is None:
                lines.append(RequestLine(ip, api_status, None))
                continue
            installed = answer.prefix is not None and answer.prefix in self.ctl.installed
            # "installed" from selection means chosen; it counts once ExaBGP acknowledged it
            status = "installed" if installed else (
                "pending" if answer.status == "installed" else answer.status)
            lines.append(RequestLine(ip, status, answer.prefix, answer.reason))
        return lines

    def take(self, switch_fib: dict[int, int] | None, cap_guard_fired: bool) -> DemoSnapshot:
        now = time.monotonic()
        ctl = self.ctl
        with ctl.rib_lock:
            scores = ctl.rates.scores(SWITCH_NAME, now)
            counts = ctl.rib.counts()
            top = ctl.rates.top(SWITCH_NAME, 8, now)
            # the same traffic through the best FIB of the same caps, known in advance
            oracle = hindsight_fib(scores, ctl.route_view, ctl.policy)
        totals = self.service.collector.totals
        accounted = totals.flow_samples
        routed_share = (accounted - totals.unrouted_samples) / accounted if accounted else None
        samples_per_s, datagrams_per_s = self._collector_rates(now)
        return DemoSnapshot(
            elapsed_s=now - self.started,
            duration_s=self.duration_s,
            switch_label=self.switch_label,
            session_state=ctl.session.state,
            rib_prefixes={4: counts.ipv4_prefixes, 6: counts.ipv6_prefixes},
            occupancy=ctl.occupancy(),
            switch_fib=switch_fib,
            coverage=ctl.coverage(scores),
            oracle_coverage=share_of(scores, oracle),
            routed_share=routed_share,
            churn_per_hour=ctl.churn_per_hour(),
            requests=self._requests(),
            samples_per_s=samples_per_s,
            datagrams_per_s=datagrams_per_s,
            samples_total=accounted,
            malformed=totals.malformed_datagrams,
            top=[TopLine(t.prefix, t.fast_bps * 8.0, int(t.samples), t.prefix in ctl.installed) for t in top],
            cap_guard_fired=cap_guard_fired,
            cap_guard_label=self.cap_guard_label,
            dashboard_url=self.dashboard_url,
        )


def _share(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def summary(totals: Totals, extra: dict[str, object]) -> dict[str, object]:
    last = totals.last
    return {
        "max_installed": totals.max_installed,
        "max_switch_fib": {f"ipv{family}": count for family, count in totals.max_switch_fib.items()},
        "max_coverage": round(totals.max_coverage, 4),
        "coverage": _share(None if last is None else last.coverage),
        "oracle_coverage": _share(None if last is None else last.oracle_coverage),
        "routed_share": _share(None if last is None else last.routed_share),
        "churn_per_hour": None if last is None else last.churn_per_hour,
        "session_state": None if last is None else last.session_state,
        "samples": 0 if last is None else last.samples_total,
        "requests": {} if last is None else {line.ip: line.status for line in last.requests},
        "cap_guard_fired": bool(last and last.cap_guard_fired),
        **extra,
    }
