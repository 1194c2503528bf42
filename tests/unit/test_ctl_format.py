"""``topfib ctl``'s tables and its KEY=VALUE parsing, from API answers shaped as the API's models."""

from __future__ import annotations

import pytest
from rich.console import Console
from rich.table import Table

from topfib.api.view import CollectorStatus, FamilyOccupancy, FibRoute, StatusReport, SwitchStatus, TopEntry
from topfib.controller.cli import ctl_format
from topfib.controller.cli.ctl import parse_assignments

NOW = 1_800_000_000.0


def text(table: Table) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def test_status_shows_occupancy_against_cap_coverage_and_session_age() -> None:
    report = StatusReport(
        switches=[SwitchStatus(name="edge1", session_state="up", session_since=NOW - 7200, active=True,
                               occupancy={"ipv4": FamilyOccupancy(installed=812, cap=1000),
                                          "ipv6": FamilyOccupancy(installed=3, cap=200)},
                               coverage=0.7934, churn_per_hour=41.6, requests_active=2)],
        collector=CollectorStatus(datagrams_per_s=120.4, samples_per_s=2999.6, bad_datagrams_per_s=0.0))
    shown = text(ctl_format.status_table(report.model_dump(), now=NOW))
    row = next(line for line in shown.splitlines() if "edge1" in line)
    for cell in ("up", "2h", "yes", "812/1000", "3/200", "79.3 %", "42", "2"):
        assert f" {cell} " in row, (cell, row)
    assert "120 datagrams/s, 3000 samples/s, 0 bad/s" in shown


def test_fib_and_top_rows() -> None:
    fib = {"switch": "edge1", "routes": [FibRoute(prefix="198.51.100.0/24", next_hop="192.0.2.1",
                                                  reason="pinned", since=NOW - 90, score=2.5e9).model_dump()]}
    shown = text(ctl_format.fib_table(fib, now=NOW))
    assert "FIB of edge1 (1 routes)" in shown
    assert all(cell in shown for cell in ("198.51.100.0/24", "192.0.2.1", "pinned", "1m", "2.5 Gb/s"))
    top = {"switch": "edge1", "prefixes": [TopEntry(
        prefix="203.0.113.0/24", rate_fast_bps=1.2e6, rate_slow_bps=800.0, score=1.2e6, samples=100,
        error_pct=19.6, installed=False).model_dump()]}
    row = next(line for line in text(ctl_format.top_table(top)).splitlines() if "203.0.113.0/24" in line)
    assert all(f" {cell} " in row for cell in ("1", "1.2 Mb/s", "800 b/s", "100", "20 %", "no"))


def test_rib_without_a_match_says_so() -> None:
    shown = text(ctl_format.rib_table({"ip": "192.0.2.9", "matches": [
        {"switch": "edge1", "prefix": None, "paths": []}]}))
    assert "edge1" in shown and "no route" in shown


def test_request_results_and_settings_sources() -> None:
    results = {"results": [{"ip": "192.0.2.9", "switch": "edge1", "prefix": None, "status": "no-route",
                            "reason": "no peer path", "ttl_s": 600.0, "expires_at": NOW}]}
    row = text(ctl_format.request_results_table(results))
    assert all(cell in row for cell in ("192.0.2.9", "no-route", "600s", "no peer path"))
    settings = text(ctl_format.switch_settings_table(
        {"name": "edge1", "settings": {"fib_cap_ipv4": 500, "margin": 0.2},
         "overrides": {"fib_cap_ipv4": 500}}))
    assert any("fib_cap_ipv4" in line and "override" in line for line in settings.splitlines())
    assert any("margin" in line and "config file" in line for line in settings.splitlines())


@pytest.mark.parametrize(("value", "shown"), [(None, "-"), (999.0, "999 b/s"), (1500.0, "1.5 kb/s"),
                                              (2.5e7, "25.0 Mb/s"), (4e10, "40.0 Gb/s")])
def test_bits_per_s(value: float | None, shown: str) -> None:
    assert ctl_format.bits_per_s(value) == shown


def test_assignments_take_aliases_api_names_numbers_and_default() -> None:
    assignments = ["cap_ipv4=16000", "fib_cap_ipv6=4000", "margin=0.25", "min_dwell_s=default"]
    assert parse_assignments(assignments) == {
        "fib_cap_ipv4": 16000, "fib_cap_ipv6": 4000, "margin": 0.25, "min_dwell_s": None}


@pytest.mark.parametrize(("item", "says"), [("cap_ipv4", "want KEY=VALUE"), ("colour=red", "want KEY=VALUE"),
                                             ("margin=abc", "margin: 'abc' is not a number"),
                                             ("margin=nan", "not a finite number"),
                                             ("margin=inf", "not a finite number")])
def test_bad_assignments_name_the_item(item: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_assignments([item])


def test_text_from_the_api_is_shown_as_is_never_as_markup() -> None:
    """A note like ``[/]`` made rich raise (the listing aborted); ``[red]`` restyled the table."""
    note = "[/] [red]urgent[/red] [link=http://x]y"
    shown = text(ctl_format.pins_table({"pins": [{"prefix": "198.51.100.0/24", "by": "[bold]ops",
                                                  "since": NOW, "note": note}]}, now=NOW))
    assert note in shown and "[bold]ops" in shown


def test_text_from_the_api_cannot_send_the_terminal_escape_sequences() -> None:
    """A pin's note, an AP name another Redis client wrote, a switch name in a title: escape
    sequences (ESC, C1 CSI, bell, line breaks) are shown escaped, never sent to the terminal."""
    hostile = "x\x1b[2J\x1b]0;owned\x07\x9b31m\u202eevil\r\nforged"
    body = {"pins": [{"prefix": "198.51.100.0/24", "by": hostile, "since": NOW, "note": hostile}]}
    requests = {"total": 1, "requests": [{"switch": "edge1", "ip": "198.51.100.1", "ap": hostile,
                                          "requested_at": NOW, "expires_at": NOW + 60}]}
    fib = {"switch": hostile, "routes": []}
    for table in (ctl_format.pins_table(body, now=NOW), ctl_format.request_list_table(requests, now=NOW),
                  ctl_format.fib_table(fib, now=NOW)):
        console = Console(width=400, record=True, force_terminal=True)
        console.print(table)
        shown = console.export_text(styles=False)
        assert all(c.isprintable() or c == "\n" for c in shown), repr(shown)
        assert "\\x1b[2J" in shown and "forged" in shown
