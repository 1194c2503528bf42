"""The dashboard: page and files served without a token, nothing loaded from elsewhere, its JSON reads."""

from __future__ import annotations

import hashlib
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi import FastAPI

from tests.api_support import (
    AP_TOKEN,
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    FakeClock,
    anyio_backend,  # noqa: F401
    auth,
    client,
    make_config,
    make_view,
)
from tests.dashboard_support import (
    CAP_IPV4,
    RANKED,
    add_demo_requests,
    dashboard_app,
    demo_config,
    demo_view,
)
from topfib.api import dashboard
from topfib.api.dashboard import (
    IMMUTABLE_CACHE,
    UPLOT_VERSION,
    DashboardSource,
    FibChangeLog,
    FibIndex,
    RankedScores,
    load_assets,
    traffic_curve,
)
from topfib.controller.service.static_view import StaticView
from topfib.controller.state.store import MemoryStore

STATIC = Path(__file__).resolve().parents[2] / "api" / "static"
NOW = 1_700_000_000.0
VIEW = auth(VIEWER_TOKEN)


def demo_app() -> FastAPI:
    return dashboard_app(demo_config(), MemoryStore(), demo_view(NOW), clock=FakeClock(),
                         wall_clock=FakeClock(NOW))


class _References(HTMLParser):
    """Every URL-bearing attribute in a page, and every element id."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "action", "formaction", "poster", "data") and value is not None:
                self.urls.append(value)
            if name == "id" and value:
                self.ids.add(value)


def page_references() -> _References:
    parser = _References()
    parser.feed((STATIC / "index.html").read_text())
    return parser


# ---- the page and its files ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_page_and_every_file_it_references_load_without_a_token() -> None:
    async with client(demo_app()) as c:
        page = await c.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        files = [url for url in page_references().urls if not url.startswith("data:")]
        assert sorted(files) == sorted([
            f"static/vendor/uPlot-{UPLOT_VERSION}.min.css", "static/dashboard.css",
            f"static/vendor/uPlot-{UPLOT_VERSION}.iife.min.js", "static/dashboard.js",
        ])
        for url in files:
            response = await c.get("/" + url)
            assert response.status_code == 200, url
            assert response.content == (STATIC / url.removeprefix("static/")).read_bytes()
            kind = "text/javascript" if url.endswith(".js") else "text/css"
            assert response.headers["content-type"] == f"{kind}; charset=utf-8"
            vendored = url.startswith("static/vendor/")
            assert response.headers["cache-control"] == (IMMUTABLE_CACHE if vendored else "no-cache")


@pytest.mark.anyio
async def test_head_and_etag_revalidation() -> None:
    async with client(demo_app()) as c:
        full = await c.get("/static/dashboard.js")
        head = await c.head("/static/dashboard.js")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(full.content))
        again = await c.get("/static/dashboard.js", headers={"If-None-Match": full.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        changed = await c.get("/static/dashboard.js", headers={"If-None-Match": '"something-else"'})
        assert changed.status_code == 200 and changed.content == full.content


@pytest.mark.anyio
@pytest.mark.parametrize("path", [
    "/index.html", "/static/", "/static/../dashboard.py", "/static/dashboard.py",
    f"/static/vendor/uPlot-{UPLOT_VERSION}.LICENSE", f"/static/vendor/uPlot-{UPLOT_VERSION}.sha256",
    "/static/vendor/../../app.py", "/favicon.ico",
])
async def test_nothing_else_is_public(path: str) -> None:
    async with client(demo_app()) as c:
        assert (await c.get(path)).status_code == 401
        assert (await c.get(path, headers=VIEW)).status_code == 404


@pytest.mark.anyio
async def test_other_methods_on_the_page_go_through_auth() -> None:
    async with client(demo_app()) as c:
        assert (await c.post("/", content=b"x")).status_code == 401
        assert (await c.post("/static/dashboard.js", headers=VIEW)).status_code in (404, 405)


# ---- nothing is loaded from anywhere else ------------------------------------------------------

_ABSOLUTE_URL = re.compile(r"""(?:\b[a-z][a-z0-9+.-]*:)?//[a-z0-9-]+(?:\.[a-z0-9-]+)+""", re.IGNORECASE)
_SCHEME = re.compile(r"\b(?:https?|wss?|ftp):", re.IGNORECASE)


def test_page_references_only_its_own_files() -> None:
    for url in page_references().urls:
        assert url == "data:," or (not _SCHEME.match(url) and not url.startswith(("/", "\\"))), url


@pytest.mark.parametrize("name", ["dashboard.js", "dashboard.css", "index.html"])
def test_own_files_name_no_other_host(name: str) -> None:
    text = (STATIC / name).read_text()
    assert not _SCHEME.search(text), name
    assert not _ABSOLUTE_URL.search(text), name
    assert "@import" not in text


def test_vendored_library_names_no_host_but_its_own_banner() -> None:
    for name in (f"uPlot-{UPLOT_VERSION}.iife.min.js", f"uPlot-{UPLOT_VERSION}.min.css"):
        text = (STATIC / "vendor" / name).read_text()
        found = {m.group(0) for m in _ABSOLUTE_URL.finditer(text)}
        if name.endswith(".js"):
            banner = f"/*! https://github.com/leeoniya/uPlot (v{UPLOT_VERSION}) */"
            assert text.startswith(banner)
            assert found == {"https://github.com"}  # in the banner comment only
            assert "http://" not in text
            assert text.count("https://") == 1
        else:
            assert found == set()
            assert "url(" not in text and "@import" not in text


def test_vendored_files_match_their_recorded_hashes_and_keep_their_license() -> None:
    vendor = STATIC / "vendor"
    recorded = (vendor / f"uPlot-{UPLOT_VERSION}.sha256").read_text().split("\n")
    hashes = {name: digest for digest, name in (line.split("  ", 1) for line in recorded if line)}
    assert set(hashes) == {f"uPlot-{UPLOT_VERSION}.{kind}" for kind in ("LICENSE", "iife.min.js", "min.css")}
    for name, digest in hashes.items():
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
    assert "MIT License" in (vendor / f"uPlot-{UPLOT_VERSION}.LICENSE").read_text()


def test_every_element_the_script_uses_is_on_the_page() -> None:
    script = (STATIC / "dashboard.js").read_text()
    used = set(re.findall(r"""\$\("([\w-]+)"\)""", script))
    used |= set(re.findall(r"""fillTable\("([\w-]+)\"""", script))
    used |= {f"chart-{name}" for name in ("occupancy", "coverage", "curve")}  # $(`chart-${name}`)
    assert used >= {"token", "token-form", "switch", "freshness", "top", "changes", "chart-occupancy"}
    missing = used - page_references().ids
    assert not missing


def test_assets_are_exactly_the_page_and_the_js_and_css_files() -> None:
    assert set(load_assets()) == {
        "/", "/static/dashboard.js", "/static/dashboard.css",
        f"/static/vendor/uPlot-{UPLOT_VERSION}.iife.min.js", f"/static/vendor/uPlot-{UPLOT_VERSION}.min.css",
    }


# ---- JSON reads ------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/v1/dashboard/top", "/v1/dashboard/curve", "/v1/changes"])
async def test_reads_need_a_viewer_or_operator_token(path: str) -> None:
    query = "?switch=edge1"
    async with client(demo_app()) as c:
        assert (await c.get(path + query)).status_code == 401
        assert (await c.get(path + query, headers=auth("tfb_not-a-token"))).status_code == 401
        assert (await c.get(path + query, headers=auth(AP_TOKEN))).status_code == 403
        assert (await c.get(path + query, headers=VIEW)).status_code == 200
        assert (await c.get(path + query, headers=auth(OPERATOR_TOKEN))).status_code == 200
        assert (await c.get(path + "?switch=nope", headers=VIEW)).status_code == 404
        assert (await c.get(path, headers=VIEW)).status_code == 422  # two switches: must name one


def _app_over(view: StaticView, clock: FakeClock | None = None) -> FastAPI:
    return dashboard_app(demo_config(), MemoryStore(), view, clock=clock or FakeClock(),
                         wall_clock=FakeClock(NOW))


def test_the_demo_view_has_every_capability_and_a_static_view_none() -> None:
    demo = demo_view(NOW)
    assert isinstance(demo, DashboardSource)
    plain = demo.plain()
    assert not isinstance(plain, FibChangeLog | RankedScores | FibIndex)


@pytest.mark.anyio
@pytest.mark.parametrize("capable", [True, False], ids=["fib-index", "whole-fib"])
async def test_top_joins_the_ranking_with_the_fib(capable: bool) -> None:
    view = demo_view(NOW)
    async with client(_app_over(view if capable else view.plain())) as c:
        body = (await c.get("/v1/dashboard/top?switch=edge1&n=1000", headers=VIEW)).json()
    installed = {r.prefix: r for r in view.installed["edge1"]}
    rows = body["prefixes"]
    assert body["switch"] == "edge1" and len(rows) == 1000
    assert [row["prefix"] for row in rows] == [e.prefix for e in view.ranking["edge1"][:1000]]
    scores = [row["score"] for row in rows]
    assert scores == sorted(scores, reverse=True)
    for row in rows:
        route = installed.get(row["prefix"])
        assert row["next_hop"] == (route.next_hop if route else None)
        assert row["reason"] == (route.reason if route else None)
        assert row["installed_since"] == (route.since if route else None)
    assert {row["reason"] for row in rows} == {"pinned", "request", "topn", None}
    reasons = ("pinned", "request", "topn")
    expected = {reason: sum(r.reason == reason for r in installed.values()) for reason in reasons}
    assert body["fib_by_reason"] == expected
    assert expected["pinned"] == 3 and expected["request"] == 3


@pytest.mark.anyio
@pytest.mark.parametrize("capable", [True, False], ids=["ranked-scores", "top"])
async def test_curve_endpoint_from_the_ranking(capable: bool) -> None:
    view = demo_view(NOW)
    async with client(_app_over(view if capable else view.plain())) as c:
        body = (await c.get("/v1/dashboard/curve?switch=edge2&points=50", headers=VIEW)).json()
        assert (await c.get("/v1/dashboard/curve?switch=edge2&points=1", headers=VIEW)).status_code == 422
    scores = sorted((e.score for e in view.ranking["edge2"]), reverse=True)
    assert body["ranked"] == RANKED and body["truncated"] is False
    assert body["total_bps"] == pytest.approx(math.fsum(scores))
    points = body["points"]
    assert 2 <= len(points) <= 50
    assert points[-1] == {"routes": RANKED, "share": pytest.approx(1.0)}
    at_cap = next(p for p in points if p["routes"] >= CAP_IPV4)
    assert at_cap["share"] == pytest.approx(math.fsum(scores[:at_cap["routes"]]) / math.fsum(scores))


@pytest.mark.anyio
async def test_curve_from_top_alone_says_when_it_was_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard, "CURVE_FALLBACK_PREFIXES", 100)
    view = demo_view(NOW)
    async with client(_app_over(view.plain())) as c:
        body = (await c.get("/v1/dashboard/curve?switch=edge1", headers=VIEW)).json()
    assert body["ranked"] == 100 and body["truncated"] is True
    assert body["points"][-1] == {"routes": 100, "share": 1.0}


@pytest.mark.anyio
async def test_curve_is_computed_at_most_once_per_max_age_per_switch() -> None:
    view = demo_view(NOW)
    clock = FakeClock()
    async with client(_app_over(view, clock)) as c:
        async def curve(switch: str = "edge1", points: int = 200) -> None:
            response = await c.get(f"/v1/dashboard/curve?switch={switch}&points={points}", headers=VIEW)
            assert response.status_code == 200

        await curve()
        await curve()
        assert view.score_calls == 1
        clock.advance(dashboard.CURVE_MAX_AGE_S - 0.1)
        await curve()
        assert view.score_calls == 1
        await curve("edge2")  # per switch
        assert view.score_calls == 2
        await curve(points=20)  # another resolution: recomputed, and replaces the cached one
        assert view.score_calls == 3
        clock.advance(0.2)
        await curve(points=20)
        assert view.score_calls == 3
        clock.advance(dashboard.CURVE_MAX_AGE_S)
        await curve(points=20)
        assert view.score_calls == 4


@pytest.mark.anyio
async def test_changes_come_from_the_source_newest_first_and_bounded() -> None:
    async with client(demo_app()) as c:
        body = (await c.get("/v1/changes?switch=edge1&n=5", headers=VIEW)).json()
        assert (await c.get("/v1/changes?switch=edge1&n=0", headers=VIEW)).status_code == 422
        assert (await c.get("/v1/changes?switch=edge1&n=1001", headers=VIEW)).status_code == 422
    assert body["switch"] == "edge1"
    changes = body["changes"]
    assert len(changes) == 5
    assert [c["at"] for c in changes] == sorted((c["at"] for c in changes), reverse=True)
    assert changes[0] == {"at": NOW - 5, "action": "withdraw", "prefix": "198.1.144.0/24", "next_hop": None,
                          "reason": "no live path"}
    assert changes[1]["action"] == "announce" and changes[1]["next_hop"] == "192.0.2.2"


@pytest.mark.anyio
async def test_changes_without_a_source_answer_501() -> None:
    app = dashboard_app(make_config(), MemoryStore(), make_view(), clock=FakeClock(),
                        wall_clock=FakeClock(NOW))
    async with client(app) as c:
        response = await c.get("/v1/changes", headers=VIEW)
        assert response.status_code == 501
        assert response.json() == {"detail": "this controller keeps no log of FIB changes"}
        # The rest of the dashboard works over a plain ControllerView.
        assert (await c.get("/", headers=VIEW)).status_code == 200
        top = (await c.get("/v1/dashboard/top", headers=VIEW)).json()
        no_routes = {"pinned": 0, "request": 0, "topn": 0}
        assert top == {"switch": "edge1", "prefixes": [], "fib_by_reason": no_routes}
        curve = (await c.get("/v1/dashboard/curve", headers=VIEW)).json()
        assert curve == {"switch": "edge1", "ranked": 0, "truncated": False, "total_bps": 0.0, "points": []}


@pytest.mark.anyio
async def test_requests_seen_by_the_dashboard() -> None:
    store = MemoryStore()
    await add_demo_requests(store, NOW)
    app = dashboard_app(demo_config(), store, demo_view(NOW), clock=FakeClock(), wall_clock=FakeClock(NOW))
    async with client(app) as c:
        body = (await c.get("/v1/requests?switch=edge1", headers=VIEW)).json()
    assert {r["ip"] for r in body["requests"]} == {"198.0.7.10", "198.0.120.33", "203.0.113.9"}


# ---- the curve ---------------------------------------------------------------------------------------


def test_traffic_curve_small_exact() -> None:
    points = traffic_curve([1.0, 5.0, 4.0], 10)
    assert [(p.routes, p.share) for p in points] == [(1, 0.5), (2, 0.9), (3, 1.0)]


def test_traffic_curve_ignores_zero_negative_and_non_finite_scores() -> None:
    assert traffic_curve([], 10) == []
    assert traffic_curve([0.0, 0.0], 10) == []
    points = traffic_curve([3.0, 0.0, -1.0, math.nan, math.inf, 1.0], 10)
    assert [(p.routes, p.share) for p in points] == [(1, 0.75), (2, 1.0)]


@pytest.mark.parametrize("count, max_points", [(1, 2), (7, 2), (10, 3), (1000, 200), (100_000, 200),
                                               (100_000, 7), (250, 1000)])
def test_traffic_curve_shape(count: int, max_points: int) -> None:
    scores = [1e9 / (i + 1) for i in range(count)]
    points = traffic_curve(scores, max_points)
    routes = [p.routes for p in points]
    shares = [p.share for p in points]
    assert 1 <= len(points) <= max_points
    assert routes == sorted(set(routes)) and routes[0] >= 1 and routes[-1] == count
    assert shares == sorted(shares) and shares[-1] == pytest.approx(1.0)
    total = math.fsum(scores)
    for p in points:
        assert p.share == pytest.approx(math.fsum(scores[:p.routes]) / total)
    if count >= 1000 and max_points >= 100:  # the steep start is drawn route by route
        assert routes[:5] == [1, 2, 3, 4, 5]
