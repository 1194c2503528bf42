"""Operator endpoints: the switches' live settings and the pins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Response
from fastapi.responses import JSONResponse

from topfib.api.auth import OPERATOR_ROLES, VIEWER_ROLES, require_role
from topfib.api.context import ApiContext
from topfib.api.errors import validation_error
from topfib.api.models import (
    STORE_DOWN_DOC,
    UNKNOWN_SWITCH_DOC,
    ApiLimitsOut,
    ConfigOut,
    PinIn,
    PinListOut,
    PinOut,
    SwitchConfigOut,
    error_doc,
)
from topfib.api.settings import SwitchSettingsPatch, patched_settings
from topfib.api.tokens import Principal
from topfib.collector.common.prefixes import PrefixError, canonical_prefix
from topfib.collector.common.special_use import count_filtered
from topfib.controller.state.settings import SettingsError, effective_settings
from topfib.controller.state.store import Pin


def build_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["operator"])
    operator = Depends(require_role(*OPERATOR_ROLES))

    @router.get("/v1/config", response_model=ConfigOut, dependencies=[operator])
    async def get_config() -> ConfigOut:
        """Each switch's settings in force, with the operator overrides behind them."""
        overrides = await ctx.store.config_overrides()
        switches = [
            SwitchConfigOut(
                name=sw.name,
                settings=effective_settings(sw, overrides.get(sw.name, {})),
                overrides=overrides.get(sw.name, {}),
            )
            for sw in ctx.config.switch
        ]
        api = ctx.config.api
        return ConfigOut(switches=switches, api=ApiLimitsOut(
            request_batch_max=api.request_batch_max, rate_limit_per_s=api.rate_limit_per_s,
            rate_limit_burst=api.rate_limit_burst, max_body_bytes=api.max_body_bytes))

    @router.put("/v1/config/switches/{name}", response_model=SwitchConfigOut, dependencies=[operator],
                responses={**UNKNOWN_SWITCH_DOC, **STORE_DOWN_DOC})
    async def update_switch(
        name: Annotated[str, Path(max_length=64)], patch: SwitchSettingsPatch
    ) -> SwitchConfigOut | JSONResponse:
        """Override some of a switch's settings; ``null`` returns a key to the config file's value.

        The controller applies the change within one control-loop period. Overrides survive
        restarts when the store is Redis; the config file itself is never rewritten. Caps, the
        longest request TTL and the per-AP request quota may not exceed the config file's
        ceilings (``switch[].<key>_max``, by default the file's own value): 422 naming the key.
        """
        switch = ctx.switch_config(name)
        if switch is None:
            return JSONResponse({"detail": f"unknown switch {name!r}"}, status_code=404)
        to_set, to_clear = patch.changes()
        current = (await ctx.store.config_overrides()).get(name, {})
        try:
            patched_settings(switch, current, to_set, to_clear)
        except SettingsError as exc:
            raise validation_error(("body", exc.field), exc.message) from None
        overrides = await ctx.store.update_config_overrides(name, to_set, to_clear)
        ctx.forget_settings()
        settings = effective_settings(switch, overrides)
        return SwitchConfigOut(name=name, settings=settings, overrides=overrides)

    @router.get("/v1/pins", response_model=PinListOut, dependencies=[Depends(require_role(*VIEWER_ROLES))])
    async def list_pins() -> PinListOut:
        """Pinned prefixes: installed on every switch that has a live path for them."""
        return PinListOut(pins=[PinOut.from_pin(p) for p in await ctx.store.pins()])

    @router.put("/v1/pins/{prefix:path}", response_model=PinOut, responses=STORE_DOWN_DOC)
    async def put_pin(
        prefix: Annotated[str, Path(max_length=64, examples=["198.51.100.0/24"])],
        principal: Annotated[Principal, Depends(require_role(*OPERATOR_ROLES))],
        body: Annotated[PinIn | None, Body()] = None,
    ) -> PinOut:
        """Pin a prefix (canonical form, host bits zero): it outranks requests and TopN.

        A default route (/0) or a prefix inside special-use space (loopback, link-local,
        multicast, reserved, IPv4-mapped, documentation unless configured) is refused (422).
        """
        canonical = _path_prefix(prefix)
        refused = ctx.special_use.reason(canonical)
        if refused is not None:
            count_filtered("pin", refused)
            raise validation_error(("path", "prefix"), f"special-use prefix ({refused}): never pinned",
                                   "special_use")
        pin = Pin(canonical, principal.name, ctx.wall_clock(), body.note if body else "")
        await ctx.store.set_pin(pin)
        return PinOut.from_pin(pin)

    @router.delete("/v1/pins/{prefix:path}", status_code=204, dependencies=[operator],
                   responses={**error_doc(404, "not pinned"), **STORE_DOWN_DOC})
    async def delete_pin(prefix: Annotated[str, Path(max_length=64)]) -> Response:
        """Unpin a prefix; it stays installed only if requests or TopN still want it."""
        if not await ctx.store.remove_pin(_path_prefix(prefix)):
            return JSONResponse({"detail": "prefix is not pinned"}, status_code=404)
        return Response(status_code=204)

    return router


def _path_prefix(text: str) -> str:
    try:
        return canonical_prefix(text)
    except PrefixError:
        msg = "not a prefix in canonical form (host bits must be zero)"
        raise validation_error(("path", "prefix"), msg) from None
