"""Read endpoints for viewers and operators: FIB, ranking, RIB lookups, status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from topfib.api.auth import VIEWER_ROLES, require_role
from topfib.api.context import ApiContext
from topfib.api.errors import validation_error
from topfib.api.models import UNKNOWN_SWITCH_DOC, canonical_ip
from topfib.api.view import FibRoute, RibMatch, StatusReport, TopEntry

SwitchQuery = Annotated[str | None, Query(max_length=64, description="switch name; may be omitted when "
                                          "only one switch is configured")]


class FibOut(BaseModel):
    switch: str
    routes: list[FibRoute]


class TopOut(BaseModel):
    switch: str
    prefixes: list[TopEntry]


class RibOut(BaseModel):
    ip: str
    matches: list[RibMatch]


def _unknown_switch() -> JSONResponse:
    return JSONResponse({"detail": "unknown switch"}, status_code=404)


def build_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["read"], dependencies=[Depends(require_role(*VIEWER_ROLES))])

    @router.get("/v1/fib", response_model=FibOut, responses=UNKNOWN_SWITCH_DOC)
    async def get_fib(switch: SwitchQuery = None) -> FibOut | JSONResponse:
        """Routes installed in the switch: next-hop, why (pinned/request/topn), since when, score."""
        name = ctx.pick_switch(switch)
        if name is None:
            return _unknown_switch()
        return FibOut(switch=name, routes=await ctx.view.fib(name))

    @router.get("/v1/top", response_model=TopOut, responses=UNKNOWN_SWITCH_DOC)
    async def get_top(
        switch: SwitchQuery = None,
        n: Annotated[int, Query(ge=1, description="how many prefixes, at most api.top_max")] = 100,
        per_path: Annotated[bool, Query(description="add each prefix's paths and the traffic attributed "
                                        "to each (next hop named by the flow, else the best path)")] = False,
    ) -> TopOut | JSONResponse:
        """Prefixes ranked by score, with their rates and the sampling error bound; with
        ``per_path=true`` also each prefix's paths (next hop, peer, AS path) and their traffic."""
        if n > ctx.config.api.top_max:
            raise validation_error(("query", "n"), f"at most api.top_max ({ctx.config.api.top_max})")
        name = ctx.pick_switch(switch)
        if name is None:
            return _unknown_switch()
        ranked = await ctx.view.top(name, n)
        if per_path:
            paths = await ctx.view.top_paths(name, [entry.prefix for entry in ranked])
            ranked = [entry.model_copy(update={"paths": paths.get(entry.prefix, [])}) for entry in ranked]
        return TopOut(switch=name, prefixes=ranked)

    @router.get("/v1/rib/{ip}", response_model=RibOut)
    async def get_rib(ip: Annotated[str, Path(max_length=64, examples=["198.51.100.7"])]) -> RibOut:
        """Longest match for the address in each switch's RIB, with all its paths."""
        try:
            address = canonical_ip(ip)
        except ValueError:
            raise validation_error(("path", "ip"), "not an IPv4 or IPv6 address") from None
        return RibOut(ip=address, matches=await ctx.view.rib_lookup(address))

    @router.get("/v1/status", response_model=StatusReport)
    async def get_status() -> StatusReport:
        """BGP sessions, FIB occupancy against caps, coverage, churn and collector rates."""
        return await ctx.view.status()

    return router
