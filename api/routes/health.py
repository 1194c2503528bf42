"""Unauthenticated probes and metrics, for load balancers and Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from topfib.api.auth import VIEWER_ROLES, authorize
from topfib.api.context import ApiContext
from topfib.api.models import HealthOut, ReadyOut
from topfib.collector.common.metrics import CONTENT_TYPE, REGISTRY


def build_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=HealthOut)
    async def healthz() -> HealthOut:
        """The process is up and serving."""
        return HealthOut()

    @router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
    async def readyz() -> ReadyOut | JSONResponse:
        """200 once the controller can act on requests; ``store`` reports whether writes would succeed.

        An unreachable store does not make the API unready: reads keep being served from the last
        state, and writes answer 503 on their own.
        """
        controller_ready = await ctx.view.ready()
        store_ok = await ctx.store.ping()
        body = ReadyOut(ready=controller_ready, controller=controller_ready, store=store_ok)
        if not controller_ready:
            return JSONResponse(body.model_dump(), status_code=503)
        return body

    @router.get("/metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> PlainTextResponse:
        """Prometheus text exposition of every topfib metric in this process (with
        ``api.metrics_token_required``: for viewer and operator tokens only)."""
        if ctx.config.api.metrics_token_required:
            authorize(request, VIEWER_ROLES)
        return PlainTextResponse(REGISTRY.render(), media_type=CONTENT_TYPE)

    return router
