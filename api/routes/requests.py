"""On-demand requests from access points: create, end early, list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from topfib.api.auth import REQUEST_ROLES, VIEWER_ROLES, authorize, require_role
from topfib.api.context import ApiContext
from topfib.api.direct_route import DirectRoute
from topfib.api.errors import body_validation_error, validation_error
from topfib.api.metrics import REQUEST_RESULTS
from topfib.api.models import (
    STORE_DOWN_DOC,
    OpenApiResponses,
    RequestBatchIn,
    RequestBatchOut,
    RequestListOut,
    RequestOut,
    RequestResult,
    canonical_ip,
    error_doc,
)
from topfib.api.tokens import Principal
from topfib.collector.common.special_use import count_filtered
from topfib.controller.state.settings import SwitchSettings
from topfib.controller.state.store import RequestEntry


def _ttl(requested: float | None, settings: SwitchSettings) -> float:
    return min(requested if requested is not None else settings.request_ttl_default_s,
               settings.request_ttl_max_s)


def _unique(ips: list[str]) -> list[str]:
    return list(dict.fromkeys(ips))


def build_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["requests"])
    batch_max = ctx.config.api.request_batch_max

    # The hot path: a DirectRoute, with the body validated by pydantic straight from the JSON
    # bytes and the role checked inline; OpenAPI gets the same schema as a declared body would.
    body_schema = RequestBatchIn.model_json_schema()
    body_schema["properties"]["ips"]["maxItems"] = batch_max
    invalid_schema = {"$ref": "#/components/schemas/HTTPValidationError"}
    invalid_doc: OpenApiResponses = {422: {"description": "Validation Error", "content": {
        "application/json": {"schema": invalid_schema}}}}

    async def create_requests(request: Request) -> Response:
        """Ask for the routes of these addresses to be installed for ``ttl_s`` seconds.

        One result per address and switch. ``installed``: in the switch's FIB now; ``pending``:
        recorded, the controller acts on it within a loop period; ``no-route``: no peer path,
        traffic uses transit (the request stays recorded in case a path appears); ``rejected``:
        with the reason, e.g. this access point already holds its maximum of active requests.
        Asking again for an address refreshes its expiry. An address in special-use space
        (loopback, link-local, multicast, reserved, IPv4-mapped, documentation unless configured)
        answers ``no-route`` at once and is not recorded.
        """
        principal = authorize(request, REQUEST_ROLES)
        try:
            body = RequestBatchIn.model_validate_json(await request.body())
        except ValidationError as exc:
            raise body_validation_error(exc) from None
        if len(body.ips) > batch_max:
            raise validation_error(("body", "ips"), f"at most {batch_max} addresses per request",
                                   "too_long")
        now = ctx.wall_clock()
        settings = await ctx.settings()
        entries: list[RequestEntry] = []
        prefixes: list[str | None] = []
        refused: list[RequestResult] = []
        for ip in _unique(body.ips):
            special = ctx.special_use.reason_for_address(ip)
            if special is not None:  # never recorded: no prefix may be installed for it
                count_filtered("request", special)
                refused += [_special_use_result(ip, switch, special) for switch in ctx.switch_names]
                REQUEST_RESULTS.inc(len(ctx.switch_names), status="no-route")
                continue
            matched = dict(await ctx.view.resolve(ip))
            for switch in ctx.switch_names:
                ttl = _ttl(body.ttl_s, settings[switch])
                entries.append(RequestEntry(switch, ip, principal.name, now, now + ttl))
                prefixes.append(matched.get(switch))
        limits = {name: s.max_requests_per_ap for name, s in settings.items()}
        accepted = await ctx.store.add_requests(entries, limits, now)
        results = refused
        for entry, prefix, ok in zip(entries, prefixes, accepted, strict=True):
            results.append(await _result(ctx, entry, prefix, ok, settings[entry.switch]))
            REQUEST_RESULTS.inc(status=results[-1].status)
        # Serialised here: the hot path skips FastAPI's re-validation of the response model.
        return Response(RequestBatchOut(results=results).model_dump_json(), media_type="application/json")

    router.add_api_route(
        "/v1/requests", create_requests, methods=["POST"], route_class_override=DirectRoute,
        response_model=RequestBatchOut, responses={**STORE_DOWN_DOC, **invalid_doc},
        openapi_extra={"requestBody": {"required": True,
                                       "content": {"application/json": {"schema": body_schema}}}},
    )

    @router.delete("/v1/requests/{ip}", status_code=204, responses={
        **error_doc(404, "this client holds no request for the address"), **STORE_DOWN_DOC})
    async def end_request(
        ip: Annotated[str, Path(max_length=64, examples=["198.51.100.7"])],
        principal: Annotated[Principal, Depends(require_role(*REQUEST_ROLES))],
    ) -> Response:
        """End this client's request for ``ip`` on every switch before its TTL runs out."""
        removed = await ctx.store.remove_requests(principal.name, _path_ip(ip), ctx.wall_clock())
        if not removed:
            return _not_found("no active request for this address from this client")
        return Response(status_code=204)

    @router.get("/v1/requests", response_model=RequestListOut)
    async def list_requests(
        principal: Annotated[Principal, Depends(require_role("ap", *VIEWER_ROLES))],
        switch: Annotated[str | None, Query(max_length=64, description="only this switch")] = None,
        ap: Annotated[str | None, Query(max_length=256, description="only this client's")] = None,
        limit: Annotated[int, Query(ge=1, le=100_000, description="at most this many, newest first")] = 1000,
    ) -> RequestListOut:
        """Active requests, newest first; ``total`` counts them all. An access point sees only its own."""
        entries = await ctx.store.active_requests(switch, ctx.wall_clock())
        if principal.role == "ap":
            ap = principal.name
        if ap is not None:
            entries = [e for e in entries if e.ap == ap]
        shown = [RequestOut.from_entry(e) for e in entries[:limit]]
        return RequestListOut(requests=shown, total=len(entries))

    return router


async def _result(
    ctx: ApiContext, entry: RequestEntry, prefix: str | None, accepted: bool, settings: SwitchSettings
) -> RequestResult:
    ttl = entry.expires_at - entry.requested_at
    if not accepted:
        return RequestResult(
            ip=entry.ip, switch=entry.switch, prefix=prefix, status="rejected",
            reason=f"this client already holds {settings.max_requests_per_ap} active requests "
                   f"on {entry.switch}",
        )
    if prefix is None:
        return RequestResult(ip=entry.ip, switch=entry.switch, prefix=None, status="no-route",
                             reason="no peer path for this address; traffic uses transit",
                             ttl_s=ttl, expires_at=entry.expires_at)
    status, reason = await ctx.view.request_status(entry.switch, entry.ip, prefix)
    return RequestResult(ip=entry.ip, switch=entry.switch, prefix=prefix, status=status, reason=reason,
                         ttl_s=ttl, expires_at=entry.expires_at)


def _special_use_result(ip: str, switch: str, range_name: str) -> RequestResult:
    return RequestResult(ip=ip, switch=switch, prefix=None, status="no-route",
                         reason=f"special-use address ({range_name}): never routed by topfib")


def _path_ip(text: str) -> str:
    try:
        return canonical_ip(text)
    except ValueError:
        raise validation_error(("path", "ip"), "not an IPv4 or IPv6 address") from None


def _not_found(detail: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=404)
