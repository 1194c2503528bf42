"""Tables ``topfib ctl`` prints from the API's JSON (``--json`` prints the JSON itself instead).

Every string from the API goes in as plain :class:`rich.text.Text`, never as console markup: a
pin's note such as ``[/]`` would otherwise abort the listing, or restyle what an operator reads;
and through :func:`~topfib.controller.cli.ctl_client.terminal_text`, so it carries no escape sequence.
"""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table
from rich.text import Text

from topfib.controller.cli.ctl_client import terminal_text

Body = dict[str, Any]
CELL_MAX = 1000  # characters of one table cell


def _table(title: str, *columns: str) -> Table:
    table = Table(title=Text(terminal_text(title)))
    for column in columns:
        table.add_column(column)
    return table


def _add_row(table: Table, *cells: object) -> None:
    table.add_row(*(Text(terminal_text(str(cell), CELL_MAX)) for cell in cells))


def bits_per_s(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("Gb/s", 1e9), ("Mb/s", 1e6), ("kb/s", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} b/s"


def age(since: float | None, now: float | None = None) -> str:
    """How long ago a Unix time was, coarsely: ``42s``, ``7m``, ``3h``, ``2d``."""
    if since is None:
        return "-"
    seconds = max(0.0, (time.time() if now is None else now) - since)
    for unit, scale in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= scale:
            return f"{seconds // scale:.0f}{unit}"
    return f"{seconds:.0f}s"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def status_table(body: Body, now: float | None = None) -> Table:
    table = _table("switches", "switch", "session", "since", "active", "ipv4", "ipv6", "ipv4 /24",
                   "coverage", "churn/h", "requests")
    for sw in body["switches"]:
        occupancy = sw.get("occupancy", {})

        def used(family: str, occupancy: dict[str, Any] = occupancy) -> str:
            entry = occupancy.get(family)
            return "-" if entry is None else f"{entry['installed']}/{entry['cap']}"

        _add_row(table, sw["name"], sw["session_state"], age(sw.get("session_since"), now),
                 "yes" if sw["active"] else "no", used("ipv4"), used("ipv6"), used("ipv4_24"),
                 percent(sw.get("coverage")), f"{sw.get('churn_per_hour', 0.0):.0f}",
                 str(sw.get("requests_active", 0)))
    collector = body.get("collector", {})
    table.caption = Text(f"collector: {collector.get('datagrams_per_s', 0.0):.0f} datagrams/s, "
                         f"{collector.get('samples_per_s', 0.0):.0f} samples/s, "
                         f"{collector.get('bad_datagrams_per_s', 0.0):.0f} bad/s")
    return table


def fib_table(body: Body, now: float | None = None) -> Table:
    table = _table(f"FIB of {body['switch']} ({len(body['routes'])} routes)",
                   "prefix", "next hop", "why", "since", "score")
    for route in body["routes"]:
        _add_row(table, route["prefix"], route["next_hop"], route["reason"], age(route["since"], now),
                 bits_per_s(route.get("score")))
    return table


def top_table(body: Body) -> Table:
    table = _table(f"top prefixes of {body['switch']}",
                   "#", "prefix", "score", "fast", "slow", "samples", "± (95 %)", "installed")
    for rank, entry in enumerate(body["prefixes"], 1):
        error = entry.get("error_pct")
        _add_row(table, str(rank), entry["prefix"], bits_per_s(entry["score"]),
                 bits_per_s(entry["rate_fast_bps"]), bits_per_s(entry["rate_slow_bps"]),
                 str(entry["samples"]), "-" if error is None else f"{error:.0f} %",
                 "yes" if entry["installed"] else "no")
    return table


def rib_table(body: Body) -> Table:
    table = _table(f"RIB lookup of {body['ip']}",
                   "switch", "prefix", "next hop", "AS path", "peer", "local pref", "MED", "best")
    for match in body["matches"]:
        if not match["paths"]:
            _add_row(table, match["switch"], match["prefix"] or "no route", "", "", "", "", "", "")
        for path in match["paths"]:
            _add_row(table, match["switch"], match["prefix"], path["next_hop"],
                     " ".join(str(asn) for asn in path["as_path"]) or "(empty)", path["peer"],
                     str(path["local_pref"]), str(path["med"]), "*" if path["best"] else "")
    return table


def request_results_table(body: Body) -> Table:
    table = _table("requests", "ip", "switch", "prefix", "status", "ttl", "reason")
    for result in body["results"]:
        ttl = result.get("ttl_s")
        _add_row(table, result["ip"], result["switch"], result.get("prefix") or "-", result["status"],
                 "-" if ttl is None else f"{ttl:.0f}s", result.get("reason") or "")
    return table


def request_list_table(body: Body, now: float | None = None) -> Table:
    table = _table(f"active requests ({body['total']})", "switch", "ip", "client", "age", "expires in")
    current = time.time() if now is None else now
    for entry in body["requests"]:
        _add_row(table, entry["switch"], entry["ip"], entry["ap"], age(entry["requested_at"], current),
                 f"{max(0.0, entry['expires_at'] - current):.0f}s")
    return table


def pins_table(body: Body, now: float | None = None) -> Table:
    table = _table(f"pins ({len(body['pins'])})", "prefix", "by", "since", "note")
    for pin in body["pins"]:
        _add_row(table, pin["prefix"], pin["by"], age(pin["since"], now), pin["note"])
    return table


def switch_settings_table(body: Body) -> Table:
    """One switch's settings in force (``PUT /v1/config/switches/{name}``'s answer)."""
    table = _table(f"settings of {body['name']}", "key", "value", "source")
    overrides = body.get("overrides", {})
    for key, value in body["settings"].items():
        _add_row(table, key, str(value), "override" if key in overrides else "config file")
    return table
