"""Request and response bodies of the API's own endpoints (the view's data lives in topfib.api.view)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from topfib.api.view import RequestStatus
from topfib.controller.state.settings import SwitchSettings
from topfib.controller.state.store import Pin, RequestEntry, SettingValue


def canonical_ip(text: str) -> str:
    """The canonical form of an IPv4/IPv6 address; scoped (``%zone``) addresses are refused."""
    if "%" in text:
        raise ValueError("scoped addresses are not routable prefixes' members")
    return str(ipaddress.ip_address(text))


IpAddress = Annotated[str, Field(max_length=45, examples=["198.51.100.7"]), AfterValidator(canonical_ip)]


class _Body(BaseModel):
    # strict: a JSON true or "60" is not a number of seconds (a 422 naming the field instead)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class RequestBatchIn(_Body):
    ips: list[IpAddress] = Field(min_length=1, description="addresses whose routes are wanted; at most "
                                 "api.request_batch_max")
    ttl_s: float | None = Field(None, gt=0, description="seconds the routes are wanted; default and upper "
                                "bound come from each switch's settings (longer values are cut to the bound)")


class RequestResult(BaseModel):
    ip: str
    switch: str
    prefix: str | None = Field(description="longest prefix with a peer path on this switch; null: none")
    status: RequestStatus
    reason: str | None = None
    ttl_s: float | None = Field(None, description="TTL applied on this switch (after bounding)")
    expires_at: float | None = Field(None, description="Unix seconds; null when not recorded")


class RequestBatchOut(BaseModel):
    results: list[RequestResult]


class RequestOut(BaseModel):
    switch: str
    ip: str
    ap: str
    requested_at: float
    expires_at: float

    @classmethod
    def from_entry(cls, entry: RequestEntry) -> RequestOut:
        return cls(switch=entry.switch, ip=entry.ip, ap=entry.ap, requested_at=entry.requested_at,
                   expires_at=entry.expires_at)


class RequestListOut(BaseModel):
    requests: list[RequestOut]
    total: int = Field(description="active requests matching the filters, before the limit")


class PinIn(_Body):
    note: str = Field("", max_length=256, description="free text shown with the pin")


class PinOut(BaseModel):
    prefix: str
    by: str
    since: float
    note: str

    @classmethod
    def from_pin(cls, pin: Pin) -> PinOut:
        return cls(prefix=pin.prefix, by=pin.by, since=pin.since, note=pin.note)


class PinListOut(BaseModel):
    pins: list[PinOut]


class SwitchConfigOut(BaseModel):
    name: str
    settings: SwitchSettings = Field(description="values in force: the file's, with overrides applied")
    overrides: dict[str, SettingValue] = Field(description="operator overrides stored for this switch")


class ApiLimitsOut(BaseModel):
    request_batch_max: int
    rate_limit_per_s: float
    rate_limit_burst: int
    max_body_bytes: int


class ConfigOut(BaseModel):
    switches: list[SwitchConfigOut]
    api: ApiLimitsOut


class ErrorOut(BaseModel):
    detail: str


OpenApiResponses = dict[int | str, dict[str, Any]]


def error_doc(status: int, description: str) -> OpenApiResponses:
    """An extra documented error response for a route's ``responses=``."""
    return {status: {"model": ErrorOut, "description": description}}


STORE_DOWN_DOC = error_doc(503, "state store unavailable; nothing recorded")
UNKNOWN_SWITCH_DOC = error_doc(404, "no switch of that name in the config")


class HealthOut(BaseModel):
    status: str = "ok"


class ReadyOut(BaseModel):
    ready: bool
    controller: bool
    store: bool
