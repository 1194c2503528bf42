"""LiveView.request_status: a request's answer from the last selection, found by ip (not scanned per POST)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from topfib.controller.selection.model import RequestAnswer, Selection
from topfib.controller.service.live_view import LiveView


@dataclass
class FakeController:
    selection: Selection | None
    installed: dict[str, str] = field(default_factory=dict)
    woken: int = 0

    def request_arrived(self) -> None:
        self.woken += 1


def test_status_follows_the_first_answer_for_the_ip_of_the_current_selection() -> None:
    ctl = FakeController(Selection(routes={}, requests=(
        RequestAnswer("10.0.0.1", "rejected", "10.0.0.0/8", "ipv4 table full"),
        RequestAnswer("10.0.0.1", "no-route", None, "later answer, same ip"),
        RequestAnswer("10.0.0.2", "no-route", None, ""),
    )), installed={"11.0.0.0/8": "192.0.2.1"})
    view = LiveView({"edge1": ctl}, None)  # type: ignore[dict-item]

    def status(ip: str, prefix: str) -> tuple[str, str | None]:
        return asyncio.run(view.request_status("edge1", ip, prefix))

    assert status("10.0.0.1", "10.0.0.0/8") == ("rejected", "ipv4 table full")
    assert status("10.0.0.2", "10.0.0.0/8") == ("no-route", "no peer path: traffic uses the default route")
    assert status("10.0.0.3", "10.0.0.0/8") == ("pending", None)
    assert status("11.1.1.1", "11.0.0.0/8") == ("installed", None)
    ctl.selection = Selection(routes={}, requests=(
        RequestAnswer("10.0.0.3", "rejected", "10.0.0.0/8", "full"),))
    assert status("10.0.0.3", "10.0.0.0/8") == ("rejected", "full")  # a new selection: indexed anew
    assert status("10.0.0.1", "10.0.0.0/8") == ("pending", None)
    assert ctl.woken == 5  # all but the installed one
    assert asyncio.run(view.request_status("nowhere", "10.0.0.1", "10.0.0.0/8")) == (
        "rejected", "unknown switch nowhere")


def test_an_earlier_expired_answer_does_not_hide_a_later_no_route_for_the_same_ip() -> None:
    """Two requests from one address in one selection (an expiring one and its renewal): the POST
    reports the one that says something, as the scan over every answer did."""
    ctl = FakeController(Selection(routes={}, requests=(
        RequestAnswer("10.0.0.1", "expired", None, "request expired"),
        RequestAnswer("10.0.0.1", "installed", "10.0.0.0/8", ""),
        RequestAnswer("10.0.0.1", "no-route", None, "no peer path"),
    )))
    view = LiveView({"edge1": ctl}, None)  # type: ignore[dict-item]
    assert asyncio.run(view.request_status("edge1", "10.0.0.1", "10.0.0.0/8")) == ("no-route", "no peer path")
