"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

uvicorn serves the API with the dashboard on a loopback port, over fixed but realistic data
(``tests.dashboard_support``). The browser loads the page with a viewer token and must show no
console errors, request nothing but that one origin, and draw every chart with data. Screenshots
are kept under ``artifacts/`` (gitignored). Skipped when Playwright or Chromium is missing; never
downloads a browser.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.api_support import AP_TOKEN, VIEWER_TOKEN
from tests.dashboard_support import (
    CAP_IPV4,
    CAP_IPV6,
    SWITCHES,
    add_demo_requests,
    dashboard_app,
    demo_config,
    demo_view,
)
from topfib.controller.state.store import MemoryStore

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("TOPFIB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
# The series colours in dashboard.js, to find each chart's line among its pixels.
SERIES_COLOURS = {
    "occupancy": (0x1F, 0x77, 0xB4), "coverage": (0xD6, 0x27, 0x28), "curve": (0xFF, 0x7F, 0x0E),
}


@dataclass
class Server:
    url: str
    thread: threading.Thread
    server: uvicorn.Server


@pytest.fixture
def served() -> Iterator[Server]:
    """uvicorn with the dashboard app on 127.0.0.1, an ephemeral port, in a thread of this process."""
    now = time.time()
    store = MemoryStore()
    asyncio.run(add_demo_requests(store, now))
    app = dashboard_app(demo_config(), store, demo_view(now))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False,
                            lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dashboard-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Server(f"http://127.0.0.1:{port}", thread, server)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive()


@dataclass
class Browser:
    page: Any
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """A fresh headless Chromium profile; console, page errors and every request recorded."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1440, "height": 1000}, device_scale_factor=1, timezone_id="UTC",
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            recorded = Browser(page)
            page.on("console", lambda m: recorded.console_errors.append(f"{m.text} @ {m.location}")
                    if m.type in ("error", "assert") else None)
            page.on("pageerror", lambda e: recorded.page_errors.append(str(e)))
            page.on("request", lambda r: recorded.requested.append(r.url))
            page.on("requestfailed", lambda r: recorded.failed.append(f"{r.url}: {r.failure}"))
            yield recorded
        finally:
            context.close()


def _wait_for_data(page: Any) -> None:
    page.wait_for_function("""() => {
        const d = window.topfibDashboard;
        if (!d) return false;
        const rows = (id) => document.querySelectorAll(`#${id} tbody tr:not(:has(td.empty))`).length;
        return d.charts.occupancy.data[0].length >= 3 && d.charts.coverage.data[0].length >= 3
            && d.charts.curve.data[0].length >= 10
            && rows('top') >= 25 && rows('changes') >= 50 && rows('requests') === 3 && rows('sessions') === 2;
    }""", timeout=20_000)


def _series_pixels(page: Any, chart: str) -> int:
    """Pixels of the chart's canvas close to its first series' colour: the line was really drawn."""
    red, green, blue = SERIES_COLOURS[chart]
    result = page.evaluate("""([name, r, g, b]) => {
        const u = window.topfibDashboard.charts[name];
        const { width, height } = u.ctx.canvas;
        const pixels = u.ctx.getImageData(0, 0, width, height).data;
        let near = 0;
        for (let i = 0; i < pixels.length; i += 4) {
            if (pixels[i + 3] > 128 && Math.abs(pixels[i] - r) + Math.abs(pixels[i + 1] - g)
                + Math.abs(pixels[i + 2] - b) < 60) near += 1;
        }
        return near;
    }""", [chart, red, green, blue])
    assert isinstance(result, int)
    return result


def test_dashboard_renders_live_data_without_errors(served: Server, browser: Browser) -> None:
    page = browser.page
    page.goto(f"{served.url}/#token={VIEWER_TOKEN}")
    _wait_for_data(page)
    first_points = page.evaluate("window.topfibDashboard.charts.occupancy.data[0].length")
    # Still polling: the history grows. (Predicates are functions, never strings: the page's CSP
    # forbids eval, and a string predicate is eval'd.)
    page.wait_for_function("(n) => window.topfibDashboard.charts.occupancy.data[0].length > n",
                           arg=first_points, timeout=10_000)

    charts = page.evaluate("""() => {
        const out = {};
        for (const [name, u] of Object.entries(window.topfibDashboard.charts)) {
            out[name] = { series: u.series.map((s) => s.label), data: u.data,
                          width: u.ctx.canvas.width, height: u.ctx.canvas.height };
        }
        return out;
    }""")
    occupancy = charts["occupancy"]
    assert occupancy["series"][1:3] == ["IPv4 installed", "IPv4 cap"]
    assert set(occupancy["data"][2]) == {CAP_IPV4}  # the cap line
    assert all(0 < v <= CAP_IPV4 for v in occupancy["data"][1])
    assert all(93 <= v <= 97 for v in charts["coverage"]["data"][1])
    curve_x, curve_y = charts["curve"]["data"]
    assert curve_x[0] == 1 and curve_y[-1] == pytest.approx(100)
    assert curve_y == sorted(curve_y)
    for name in SERIES_COLOURS:
        assert charts[name]["width"] > 300 and charts[name]["height"] > 200
        assert _series_pixels(page, name) > 100, f"{name}: no line drawn"

    # Tables, filled with textContent from the API.
    sessions = page.locator("#sessions tbody tr")
    assert sessions.nth(0).locator("td").nth(1).inner_text() == "up"
    assert sessions.nth(1).locator("td").nth(1).inner_text() == "connecting"
    top_first = page.locator("#top tbody tr").first.locator("td").all_inner_texts()
    assert top_first[1] == "198.0.0.0/24" and top_first[7] == "192.0.2.1" and top_first[8] == "topn"
    assert top_first[5].startswith("± ")
    assert "pinned" in page.locator("#top tbody").inner_text()
    assert "withdraw" in page.locator("#changes tbody").inner_text()
    assert page.locator("#requests tbody").inner_text().count("ap1") == 2
    note = page.locator("#curve-note").inner_text()
    match = re.search(r"\(IPv4 \+ IPv6: ([\d,]+) routes, dashed line\) carry ([\d.]+) %", note)
    assert match, note
    cap = CAP_IPV4 + CAP_IPV6
    assert int(match.group(1).replace(",", "")) == cap
    scores = sorted((e.score for e in demo_view(time.time()).ranking[SWITCHES[0]]), reverse=True)
    assert float(match.group(2)) == pytest.approx(100 * math.fsum(scores[:cap]) / math.fsum(scores), abs=0.3)
    assert page.locator("#freshness").inner_text().startswith("live")

    # The token went from the address bar to this tab's session storage only.
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('topfib.dashboard.token')") == VIEWER_TOKEN

    # Another switch: its history and tables.
    page.select_option("#switch", SWITCHES[1])
    page.wait_for_function("() => document.querySelector('#requests-count').textContent.includes('edge2')")
    page.wait_for_function("() => window.topfibDashboard.state.curve.switch === 'edge2'", timeout=20_000)
    page.select_option("#switch", SWITCHES[0])
    page.wait_for_function("() => document.querySelector('#requests-count').textContent.includes('edge1')")
    _wait_for_data(page)

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    assert browser.console_errors == []
    assert browser.page_errors == []
    assert browser.failed == []
    assert browser.requested and all(url.startswith(served.url + "/") for url in browser.requested), \
        sorted(set(browser.requested))
    paths = {url.removeprefix(served.url).split("?")[0] for url in browser.requested}
    assert {"/v1/status", "/v1/dashboard/top", "/v1/dashboard/curve", "/v1/changes", "/v1/requests"} <= paths


def test_without_a_token_the_page_asks_for_one_and_reads_nothing(served: Server, browser: Browser) -> None:
    page = browser.page
    page.goto(served.url + "/")
    page.wait_for_function("() => window.topfibDashboard !== undefined")
    assert page.locator("#token-form").is_visible()
    assert page.locator("#freshness").inner_text() == "not connected"
    page.wait_for_timeout(2500)  # more than one poll period
    assert not [url for url in browser.requested if "/v1/" in url]
    assert browser.console_errors == [] and browser.page_errors == []

    # Typing a token in connects.
    page.fill("#token", VIEWER_TOKEN)
    page.click("#token-form button[type=submit]")
    _wait_for_data(page)
    assert page.locator("#token-form").is_hidden()
    assert browser.console_errors == [] and browser.page_errors == []


def test_a_refused_token_is_dropped_and_said_so(served: Server, browser: Browser) -> None:
    page = browser.page
    page.goto(f"{served.url}/#token={AP_TOKEN}")  # an access point's token may not read the dashboard
    page.wait_for_selector("#alert:not([hidden])")
    assert "403" in page.locator("#alert").inner_text()
    assert page.locator("#token-form").is_visible()
    assert page.evaluate("sessionStorage.getItem('topfib.dashboard.token')") is None
    page.wait_for_timeout(2500)
    status_polls = [url for url in browser.requested if url.endswith("/v1/status")]
    assert len(status_polls) == 1  # stopped polling
    assert browser.page_errors == []
    # Chromium reports the refused fetch itself as a console error; nothing else may appear.
    assert all("403" in error for error in browser.console_errors), browser.console_errors

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-refused-token.png"))


def test_when_the_api_goes_away_the_page_says_so(served: Server, browser: Browser) -> None:
    page = browser.page
    page.clock.install()  # the page's clock runs as usual until fast-forwarded below
    page.goto(f"{served.url}/#token={VIEWER_TOKEN}")
    _wait_for_data(page)
    served.server.should_exit = True
    served.thread.join(timeout=10)
    assert not served.thread.is_alive()
    page.wait_for_selector("#alert:not([hidden])", timeout=10_000)
    assert page.locator("#alert").inner_text().startswith("Last poll failed: API unreachable")
    assert page.locator("#freshness.stale").count() == 0, "stale before STALE_AFTER_S (10 s)"
    # past the dashboard's 10 s staleness limit without waiting it out (its timers fire on the way)
    page.clock.fast_forward("00:11")
    page.wait_for_selector("#freshness.stale", timeout=2_000)  # numbers on screen are now old: said loudly
    assert page.locator("#freshness").inner_text().startswith("STALE: last update")
    assert page.locator("#token-form").is_hidden()  # the token is kept: it will reconnect
    # The outage is a gap in the over-time charts, not a line drawn across it.
    tail = page.evaluate("() => window.topfibDashboard.charts.occupancy.data[1].slice(-2)")
    assert tail[-1] is None
    assert browser.page_errors == []
    assert all("ERR_CONNECTION_REFUSED" in error for error in browser.console_errors), browser.console_errors
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-stale.png"))
