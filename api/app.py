"""The app factory: everything comes in as arguments, so tests build apps with fakes."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import FastAPI

from topfib.api.auth import AuthMiddleware, public_paths
from topfib.api.context import ApiContext
from topfib.api.dashboard import install_dashboard
from topfib.api.errors import install_error_handlers
from topfib.api.middleware import BodyLimitMiddleware, ResponseCountMiddleware
from topfib.api.openapi import install_openapi
from topfib.api.rate_limit import RateLimiter
from topfib.api.routes import health, matrix, operator, read, requests
from topfib.api.tokens import TokenTable
from topfib.api.view import ControllerView
from topfib.collector.matrix.traffic_matrix import TrafficMatrix
from topfib.controller.config import TopfibConfig
from topfib.controller.state.store import Store

DESCRIPTION = """\
topfib's HTTP API. Every endpoint except `/healthz`, `/readyz`, `/metrics`, these docs and the
dashboard page needs `Authorization: Bearer TOKEN` (tokens from `topfib token new`). Roles: `ap`
(access points) make on-demand requests and see their own; `viewer` reads everything; `operator`
reads, changes switch settings and pins, and may make requests too.
"""


def create_app(
    config: TopfibConfig,
    store: Store,
    view: ControllerView,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    dashboard: bool = True,
    traffic_matrix: TrafficMatrix | None = None,
) -> FastAPI:
    """The API over ``store`` and ``view``; ``clock`` drives rate limits, ``wall_clock`` expiries.

    ``dashboard`` mounts the operator dashboard (topfib.api.dashboard): the page at ``/`` and its reads.
    ``traffic_matrix`` adds ``GET /v1/matrix`` (absent when the matrix is disabled); its ``now``
    is read from ``clock``.
    """
    ctx = ApiContext(config=config, store=store, view=view, wall_clock=wall_clock, clock=clock,
                     tokens=TokenTable(config.token))
    # Swagger UI and ReDoc load their scripts from a CDN: off unless api.docs (openapi.json stays)
    docs = config.api.docs
    app = FastAPI(title="topfib", version="1", description=DESCRIPTION, docs_url="/docs" if docs else None,
                  redoc_url="/redoc" if docs else None)
    public = public_paths(config.api.metrics_token_required)
    for module in (health, requests, operator, read):
        app.include_router(module.build_router(ctx))
    if traffic_matrix is not None:
        app.include_router(matrix.build_router(ctx, traffic_matrix))
    install_error_handlers(app)
    install_openapi(app, public)
    limiter = RateLimiter(config.api.rate_limit_per_s, config.api.rate_limit_burst, clock)
    # add_middleware wraps: the last added runs first. Order of arrival: count, authenticate, limit body.
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.api.max_body_bytes)
    app.add_middleware(AuthMiddleware, tokens=ctx.tokens, limiter=limiter, public=public)
    app.add_middleware(ResponseCountMiddleware)
    app.state.api_context = ctx  # a config reload (SIGHUP) applies through it
    if dashboard:
        install_dashboard(app, ctx)  # last: its page must be served ahead of token auth
    return app
