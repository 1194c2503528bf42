"""The metrics of one switch's control loop, and the gauges it publishes after each selection."""

from __future__ import annotations

from collections.abc import Mapping

from topfib.collector.common.metrics import REGISTRY

_m_installed = REGISTRY.gauge(
    "topfib_fib_installed_routes",
    "Routes held on the switch against the cap: acknowledged by ExaBGP, plus (graceful restart) stale ones "
    "until the switch prunes them, by switch and table.",
    ("switch", "table"),
)
_m_cap = REGISTRY.gauge(
    "topfib_fib_cap_routes", "FIB cap in effect, by switch and table.", ("switch", "table")
)
_m_session = REGISTRY.gauge(
    "topfib_bgp_session_up", "1 when the BGP session with the switch is up.", ("switch",)
)
_m_desired = REGISTRY.gauge(
    "topfib_fib_desired_routes", "Routes selection wants, by switch and table.", ("switch", "table")
)
_m_coverage = REGISTRY.gauge(
    "topfib_coverage_ratio",
    "Share of routed traffic (bytes/s, fast rate) going to installed prefixes, by switch.",
    ("switch",),
)
_m_loop = REGISTRY.counter("topfib_control_loops_total", "Control-loop iterations, by switch.", ("switch",))
_m_skipped = REGISTRY.counter(
    "topfib_selections_skipped_total",
    "Loop iterations without a selection: nothing programmable and no input changed, by switch.", ("switch",),
)
_m_fast = REGISTRY.counter(
    "topfib_requests_fast_installed_total",
    "Requested prefixes announced before the next selection (the request fast path), by switch.", ("switch",),
)



def publish_gauges(switch: str, *, session_up: bool, occupancy: Mapping[str, tuple[int, int]],
                   desired: Mapping[str, int] | None, coverage: float | None) -> None:
    """``occupancy``: table → (routes counting against the cap, cap); ``desired``: table → routes
    the selection wants (None before the first selection); ``coverage``: None when unknown."""
    _m_session.set(1.0 if session_up else 0.0, switch=switch)
    for table, (used, cap) in occupancy.items():
        _m_installed.set(used, switch=switch, table=table)
        _m_cap.set(cap, switch=switch, table=table)
    for table, used in (desired or {}).items():
        _m_desired.set(used, switch=switch, table=table)
    if coverage is not None:
        _m_coverage.set(coverage, switch=switch)
