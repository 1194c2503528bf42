"""What ``topfib demo`` shows: a snapshot of the running lab, as a rich view or as plain text.

:func:`render` (the live terminal view) and :func:`plain_line` (one line, when stdout is not a
terminal) are pure functions of a :class:`DemoSnapshot`; the demo builds a snapshot each second.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class RequestLine:
    ip: str
    status: str  # installed | pending | no-route | rejected | expired
    prefix: str | None
    note: str = ""


@dataclass(frozen=True)
class TopLine:
    prefix: str
    bps: float
    samples: int
    installed: bool


@dataclass(frozen=True)
class DemoSnapshot:
    elapsed_s: float
    duration_s: float  # 0: until Ctrl-C
    switch_label: str  # what the switch stand-in is
    session_state: str
    rib_prefixes: dict[int, int]  # family → prefixes with a peer path
    occupancy: dict[str, tuple[int, int]]  # table → (installed, cap)
    switch_fib: dict[int, int] | None  # family → routes the switch really holds (None: unknown)
    coverage: float | None  # share of peer-routable traffic on installed routes
    oracle_coverage: float | None  # the same for the best FIB of the same caps in hindsight
    routed_share: float | None  # share of sampled traffic to prefixes with a peer path
    churn_per_hour: float
    requests: list[RequestLine]
    samples_per_s: float
    datagrams_per_s: float
    samples_total: int
    malformed: int
    top: list[TopLine] = field(default_factory=list)
    cap_guard_fired: bool = False
    cap_guard_label: str = "switch over the cap"
    dashboard_url: str = ""


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100.0 * value:.1f} %"


def _rate(bps: float) -> str:
    for unit, scale in (("Tb/s", 1e12), ("Gb/s", 1e9), ("Mb/s", 1e6), ("kb/s", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.1f} {unit}"
    return f"{bps:.0f} b/s"


def coverage_text(snapshot: DemoSnapshot) -> str:
    """``79.3 % of 86.1 % possible``: coverage next to the hindsight oracle's on the same traffic."""
    if snapshot.oracle_coverage is None:
        return _pct(snapshot.coverage)
    return f"{_pct(snapshot.coverage)} of {_pct(snapshot.oracle_coverage)} possible"


def _clock(snapshot: DemoSnapshot) -> str:
    if snapshot.duration_s > 0:
        return f"{snapshot.elapsed_s:.0f}/{snapshot.duration_s:.0f} s"
    return f"{snapshot.elapsed_s:.0f} s (Ctrl-C stops)"


def render(snapshot: DemoSnapshot) -> RenderableType:
    """The live view: switch and session, FIB vs cap, traffic, requests, top prefixes."""
    state_style = "green" if snapshot.session_state == "up" else "red"
    head = Table.grid(padding=(0, 2))
    head.add_row("switch", snapshot.switch_label)
    head.add_row("BGP session", Text(snapshot.session_state, style=state_style))
    head.add_row("peer prefixes in RIB",
                 f"{snapshot.rib_prefixes.get(4, 0):,} IPv4, {snapshot.rib_prefixes.get(6, 0):,} IPv6")
    head.add_row("dashboard", Text(snapshot.dashboard_url, overflow="fold"))

    fib = Table(title="FIB", expand=False)
    fib.add_column("table")
    fib.add_column("installed", justify="right")
    fib.add_column("cap", justify="right")
    fib.add_column("in switch FIB", justify="right")
    for table, (used, cap) in snapshot.occupancy.items():
        family = 6 if table.startswith("ipv6") else 4
        known = snapshot.switch_fib is not None and not table.endswith("/24")
        real = f"{snapshot.switch_fib[family]:,}" if snapshot.switch_fib is not None and known else "–"
        style = "red" if used > cap else ""
        fib.add_row(table, Text(f"{used:,}", style=style), f"{cap:,}", real)

    traffic = Table.grid(padding=(0, 2))
    traffic.add_row("coverage (peer traffic on installed routes)",
                    Text(coverage_text(snapshot), style="bold"))
    traffic.add_row("possible: the best FIB of the same caps in hindsight", _pct(snapshot.oracle_coverage))
    traffic.add_row("traffic with a peer path (rest: default route)", _pct(snapshot.routed_share))
    traffic.add_row("churn", f"{snapshot.churn_per_hour:,.0f} changes/h")
    traffic.add_row("sFlow", f"{snapshot.samples_per_s:,.0f} samples/s, {snapshot.datagrams_per_s:,.0f} "
                    f"datagrams/s, {snapshot.samples_total:,} samples, {snapshot.malformed} malformed")
    traffic.add_row(snapshot.cap_guard_label,
                    Text("FIRED", style="red bold") if snapshot.cap_guard_fired else "never hit")

    requests = Table(title="access-point requests")
    requests.add_column("ip")
    requests.add_column("status")
    requests.add_column("prefix")
    for line in snapshot.requests:
        style = {"installed": "green", "no-route": "yellow", "rejected": "red"}.get(line.status, "")
        requests.add_row(line.ip, Text(line.status, style=style), line.prefix or "–")

    top = Table(title="top prefixes")
    top.add_column("prefix")
    top.add_column("rate", justify="right")
    top.add_column("samples", justify="right")
    top.add_column("installed")
    for entry in snapshot.top:
        top.add_row(entry.prefix, _rate(entry.bps), f"{entry.samples:,}", "yes" if entry.installed else "no")

    body = Group(head, Text(""), fib, traffic, Text(""), requests, top)
    return Panel(body, title=f"topfib demo — {_clock(snapshot)}", expand=False)


def plain_line(snapshot: DemoSnapshot) -> str:
    """One status line for logs and scripted runs."""
    occupancy = " ".join(f"{table}={used}/{cap}" for table, (used, cap) in snapshot.occupancy.items())
    fib = ("" if snapshot.switch_fib is None
           else f" switch_fib=v4:{snapshot.switch_fib.get(4, 0)},v6:{snapshot.switch_fib.get(6, 0)}")
    requests = ",".join(f"{line.ip}:{line.status}" for line in snapshot.requests)
    return (f"[{snapshot.elapsed_s:5.0f} s] session={snapshot.session_state} "
            f"rib=v4:{snapshot.rib_prefixes.get(4, 0)},v6:{snapshot.rib_prefixes.get(6, 0)} {occupancy}{fib} "
            f"coverage={coverage_text(snapshot)} routed={_pct(snapshot.routed_share)} "
            f"churn/h={snapshot.churn_per_hour:.0f} samples/s={snapshot.samples_per_s:.0f} "
            f"requests={requests or '-'}")
