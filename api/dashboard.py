"""The operator dashboard: a static page at ``/`` and the few JSON reads it needs beyond ``/v1``.

The page (``api/static/index.html`` with ``dashboard.js``, ``dashboard.css`` and the vendored uPlot
chart library) holds no data. It asks for a viewer token, keeps it in the tab's ``sessionStorage``
(``/#token=…`` is also accepted and at once removed from the address bar) and polls the JSON
endpoints with it: ``/v1/status`` every 2 s (the over-time charts keep their history in the
browser), and the reads below, ``/v1/requests`` and ``/v1/changes`` every few seconds.

Endpoints added here (viewer or operator token, like every other read):

- ``GET /v1/dashboard/top?switch=&n=``: the ranking joined with the FIB, so each prefix comes with
  its next-hop and why it is installed, plus how many FIB routes each reason holds. Joined here
  rather than in the browser: the full FIB can be 100k routes.
- ``GET /v1/dashboard/curve?switch=&points=``: what a cap of N would buy — the share of the
  ranked traffic carried by the top N prefixes, downsampled to at most ``points`` points and
  computed at most once per :data:`CURVE_MAX_AGE_S` per switch, however many dashboards are open.
- ``GET /v1/changes?switch=&n=``: the switch's most recent announces and withdraws.

The controller view can make these cheap by also implementing the small protocols below (meant
for the live controller; :class:`DashboardSource` is all of them). Without them the dashboard still
works from :class:`topfib.api.view.ControllerView` alone, at a cost that grows with the FIB and the
ranking (``/v1/changes`` then answers 501):

- :class:`FibChangeLog` — ``recent_changes``: a bounded log of what was sent to the switch.
- :class:`RankedScores` — ``ranked_scores``: every ranked prefix's score, for the curve (else the
  top :data:`CURVE_FALLBACK_PREFIXES` from ``top()``).
- :class:`FibIndex` — ``installed_routes`` for a few prefixes and ``reason_counts`` (else the
  whole ``fib()`` on each call).

The page and its files must load before anyone has typed a token, while the API's auth middleware
answers 401 to any path not on its public list. :class:`DashboardAssets` is therefore an ASGI
layer *outside* the auth middleware that answers GET/HEAD for exactly the shipped files' paths
(held in memory, so no request ever touches the filesystem) and passes everything else on
untouched. :func:`install_dashboard` mounts both; call it last in ``create_app``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from topfib.api.auth import VIEWER_ROLES, require_role
from topfib.api.context import ApiContext
from topfib.api.models import UNKNOWN_SWITCH_DOC, error_doc
from topfib.api.view import FibRoute, RouteReason, TopEntry
from topfib.collector.common.shares import top_k_shares

UPLOT_VERSION = "1.6.32"  # scripts/vendor_chart_lib.sh; the version is in the vendored files' names
CURVE_MAX_AGE_S = 10.0  # a curve is recomputed at most this often per switch, for all clients
CURVE_FALLBACK_PREFIXES = 10_000  # without RankedScores: the curve covers this many from top()
# Vendored files carry their version in their names, so their URLs never change meaning.
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"
# The page and topfib's own scripts change with topfib: cached, but revalidated (ETag) on every use.
REVALIDATE_CACHE = "no-cache"
# The page runs only its own files and talks only to its own origin.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                  ".css": "text/css; charset=utf-8"}

ChangeAction = Literal["announce", "withdraw"]
ReasonCounts = dict[RouteReason, int]


class FibChange(BaseModel):
    at: float = Field(description="when the controller sent it (Unix seconds)")
    action: ChangeAction
    prefix: str = Field(examples=["198.51.100.0/24"])
    next_hop: str | None = Field(None, description="the announced next-hop; null for a withdraw")
    reason: str = Field(description="why: for an announce the route's reason (pinned, request, topn) or "
                        '"next-hop changed"; for a withdraw e.g. "displaced", "no live path", "expired"',
                        examples=["topn", "no live path"])


class ChangesOut(BaseModel):
    switch: str
    changes: list[FibChange] = Field(description="newest first")


class TopRow(TopEntry):
    next_hop: str | None = Field(description="installed next-hop; null when not installed")
    reason: RouteReason | None = Field(description="why it is installed; null when not installed")
    installed_since: float | None = Field(description="Unix seconds; null when not installed")


class TopOut(BaseModel):
    switch: str
    prefixes: list[TopRow]
    fib_by_reason: dict[RouteReason, int] = Field(description="installed routes per reason (whole FIB)")


class CurvePoint(BaseModel):
    routes: int = Field(ge=1, description="a cap of this many routes (the top ones by score)")
    share: float = Field(ge=0, le=1, description="their share of the ranked traffic, 0..1")


class CurveOut(BaseModel):
    switch: str
    ranked: int = Field(ge=0, description="prefixes ranked (the curve's last point)")
    truncated: bool = Field(description="the ranking was cut (the controller gave only its top prefixes): "
                            "shares are of the traffic of those only")
    total_bps: float = Field(description="sum of the ranked prefixes' scores, bits/s")
    points: list[CurvePoint]


@runtime_checkable
class FibChangeLog(Protocol):
    async def recent_changes(self, switch: str, n: int) -> list[FibChange]:
        """The switch's last ``n`` announces and withdraws, newest first (a bounded in-memory log)."""
        ...


@runtime_checkable
class RankedScores(Protocol):
    async def ranked_scores(self, switch: str) -> Sequence[float]:
        """The score (bits/s) of every prefix with traffic on the switch, in any order.

        Called at most once per CURVE_MAX_AGE_S per switch; a numpy array is fine (and cheap).
        """
        ...


@runtime_checkable
class FibIndex(Protocol):
    async def installed_routes(self, switch: str, prefixes: Sequence[str]) -> dict[str, FibRoute]:
        """The installed routes among ``prefixes`` (a page's worth), by prefix."""
        ...

    async def reason_counts(self, switch: str) -> dict[RouteReason, int]:
        """How many installed routes each reason holds."""
        ...


@runtime_checkable
class DashboardSource(FibChangeLog, RankedScores, FibIndex, Protocol):
    """Everything the dashboard can use beyond :class:`topfib.api.view.ControllerView`."""


def traffic_curve(scores: Sequence[float] | npt.NDArray[np.float64], max_points: int) -> list[CurvePoint]:
    """Cumulative share of ``scores`` (taken largest first) at up to ``max_points`` route counts.

    The counts are spread both evenly and geometrically over 1..len(scores), so the steep start
    (the first few hundred prefixes) is drawn as faithfully as the long tail; the last count is
    always all of them. Zero, negative and non-finite scores are left out. None left: no points.
    """
    shares = top_k_shares(scores)
    count = len(shares)
    if count == 0 or max_points < 2:
        return []
    half = max(1, max_points // 2)
    steps = np.arange(half, dtype=np.float64)
    counts = np.concatenate([
        np.rint(count * (steps + 1) / half),  # even
        np.rint(count ** (steps / max(1, half - 1))),  # geometric
        [count],
    ])
    chosen = np.unique(np.clip(counts, 1, count).astype(np.int64))
    if len(chosen) > max_points:  # rounding makes this rare; thin evenly, keep the last
        picks = np.unique(np.floor(np.arange(max_points - 1) * len(chosen) / max_points).astype(np.int64))
        chosen = np.unique(np.append(chosen[picks], count))
    return [CurvePoint(routes=int(n), share=float(shares[n - 1])) for n in chosen]


SwitchQuery = Annotated[str | None, Query(max_length=64, description="switch name; may be omitted when "
                                          "only one switch is configured")]


def _unknown_switch() -> JSONResponse:
    return JSONResponse({"detail": "unknown switch"}, status_code=404)


def build_dashboard_router(ctx: ApiContext, source: object | None = None) -> APIRouter:
    """The dashboard's JSON reads (viewer role). The page itself is served by :class:`DashboardAssets`.

    ``source`` (usually ``ctx.view``) is used for whichever of :class:`FibChangeLog`,
    :class:`RankedScores` and :class:`FibIndex` it implements.
    """
    router = APIRouter(tags=["dashboard"], dependencies=[Depends(require_role(*VIEWER_ROLES))])
    change_log = source if isinstance(source, FibChangeLog) else None
    score_list = source if isinstance(source, RankedScores) else None
    fib_index = source if isinstance(source, FibIndex) else None
    curves: dict[str, tuple[float, int, CurveOut]] = {}  # switch → (when, points, curve): one per switch

    async def installed(switch: str, prefixes: list[str]) -> tuple[dict[str, FibRoute], ReasonCounts]:
        by_reason: ReasonCounts = {"pinned": 0, "request": 0, "topn": 0}
        if fib_index is not None:
            by_reason.update(await fib_index.reason_counts(switch))
            return await fib_index.installed_routes(switch, prefixes), by_reason
        routes = await ctx.view.fib(switch)
        for route in routes:
            by_reason[route.reason] += 1
        wanted = set(prefixes)
        return {route.prefix: route for route in routes if route.prefix in wanted}, by_reason

    async def compute_curve(switch: str, points: int) -> CurveOut:
        if score_list is not None:
            scores: Sequence[float] = await score_list.ranked_scores(switch)
            truncated = False
        else:
            scores = [entry.score for entry in await ctx.view.top(switch, CURVE_FALLBACK_PREFIXES)]
            truncated = len(scores) >= CURVE_FALLBACK_PREFIXES
        values = np.asarray(scores, dtype=np.float64)
        values = values[np.isfinite(values) & (values > 0)]
        # Sorting a million scores takes a few hundred ms: not on the event loop the controller shares.
        curve = await run_in_threadpool(traffic_curve, values, points)
        return CurveOut(switch=switch, ranked=len(values), truncated=truncated,
                        total_bps=float(values.sum()), points=curve)

    @router.get("/v1/dashboard/top", response_model=TopOut, responses=UNKNOWN_SWITCH_DOC)
    async def get_dashboard_top(
        switch: SwitchQuery = None,
        n: Annotated[int, Query(ge=1, le=1000, description="how many prefixes")] = 25,
    ) -> TopOut | JSONResponse:
        """The top prefixes by score with their rates, error bound, next-hop and why installed."""
        name = ctx.pick_switch(switch)
        if name is None:
            return _unknown_switch()
        ranking = await ctx.view.top(name, n)
        routes, by_reason = await installed(name, [entry.prefix for entry in ranking])
        rows = []
        for entry in ranking:
            route = routes.get(entry.prefix)
            rows.append(TopRow(
                **entry.model_dump(),
                next_hop=route.next_hop if route else None,
                reason=route.reason if route else None,
                installed_since=route.since if route else None,
            ))
        return TopOut(switch=name, prefixes=rows, fib_by_reason=by_reason)

    @router.get("/v1/dashboard/curve", response_model=CurveOut, responses=UNKNOWN_SWITCH_DOC)
    async def get_dashboard_curve(
        switch: SwitchQuery = None,
        points: Annotated[int, Query(ge=2, le=1000, description="at most this many points")] = 200,
    ) -> CurveOut | JSONResponse:
        """Routes vs share of traffic: what a FIB cap of N would carry, from the current ranking."""
        name = ctx.pick_switch(switch)
        if name is None:
            return _unknown_switch()
        now = ctx.clock()
        cached = curves.get(name)
        if cached is not None and cached[1] == points and 0 <= now - cached[0] < CURVE_MAX_AGE_S:
            return cached[2]
        curve = await compute_curve(name, points)
        curves[name] = (now, points, curve)
        return curve

    @router.get("/v1/changes", response_model=ChangesOut, responses={
        **UNKNOWN_SWITCH_DOC, **error_doc(501, "this controller keeps no log of FIB changes")})
    async def get_changes(
        switch: SwitchQuery = None,
        n: Annotated[int, Query(ge=1, le=1000, description="how many changes")] = 50,
    ) -> ChangesOut | JSONResponse:
        """The most recent announces and withdraws sent to the switch, newest first."""
        name = ctx.pick_switch(switch)
        if name is None:
            return _unknown_switch()
        if change_log is None:
            return JSONResponse({"detail": "this controller keeps no log of FIB changes"}, status_code=501)
        return ChangesOut(switch=name, changes=(await change_log.recent_changes(name, n))[:n])

    return router


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    cache_control: str
    etag: str
    is_page: bool


def load_assets() -> dict[str, Asset]:
    """URL path → file, for ``index.html`` (at ``/``) and every ``.js``/``.css`` under ``api/static``."""
    root = resources.files("topfib.api") / "static"
    assets: dict[str, Asset] = {}

    def add(url: str, name: str, body: bytes, vendored: bool) -> None:
        suffix = name[name.rfind("."):]
        assets[url] = Asset(
            body=body, content_type=_CONTENT_TYPES[suffix],
            cache_control=IMMUTABLE_CACHE if vendored else REVALIDATE_CACHE,
            etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"', is_page=suffix == ".html",
        )

    add("/", "index.html", (root / "index.html").read_bytes(), vendored=False)
    for folder, vendored in ((root, False), (root / "vendor", True)):
        for item in folder.iterdir():
            if item.is_file() and item.name.endswith((".js", ".css")):
                prefix = "/static/vendor/" if vendored else "/static/"
                add(prefix + item.name, item.name, item.read_bytes(), vendored)
    return assets


class DashboardAssets:
    """Answers GET/HEAD for the dashboard's page and files, ahead of token auth (see module doc).

    Only the exact paths in ``assets`` answer; any other path or method goes to ``app`` unchanged.
    """

    def __init__(self, app: ASGIApp, assets: dict[str, Asset]) -> None:
        self._app = app
        self._assets = assets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asset = self._assets.get(scope["path"]) if scope["type"] == "http" else None
        if asset is None or scope["method"] not in ("GET", "HEAD"):
            await self._app(scope, receive, send)
            return
        headers = [
            (b"content-type", asset.content_type.encode()),
            (b"cache-control", asset.cache_control.encode()),
            (b"etag", asset.etag.encode()),
            (b"x-content-type-options", b"nosniff"),
        ]
        if asset.is_page:
            headers += [(b"content-security-policy", PAGE_CSP.encode()), (b"x-frame-options", b"DENY"),
                        (b"referrer-policy", b"no-referrer")]
        if _matches_etag(scope, asset.etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers[1:]})
            await send({"type": "http.response.body", "body": b""})
            return
        headers.append((b"content-length", str(len(asset.body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else asset.body})


def _matches_etag(scope: Scope, etag: str) -> bool:
    for name, value in scope["headers"]:
        if name == b"if-none-match":
            tags = {tag.strip().removeprefix("W/") for tag in value.decode("latin-1").split(",")}
            return etag in tags or "*" in tags
    return False


def install_dashboard(app: FastAPI, ctx: ApiContext) -> None:
    """Mount the dashboard on ``app``: its JSON reads, and the page's files ahead of token auth.

    Call after the app's own ``add_middleware`` calls (the last added runs first): the asset layer
    must wrap the auth middleware, or the page would need a token to load. ``ctx.view`` is used
    for whatever parts of :class:`DashboardSource` it implements.
    """
    app.include_router(build_dashboard_router(ctx, ctx.view))
    app.add_middleware(DashboardAssets, assets=load_assets())


def is_installed(app: FastAPI) -> bool:
    """Whether :func:`install_dashboard` has run on ``app``."""
    return any(getattr(m, "cls", None) is DashboardAssets for m in app.user_middleware)
