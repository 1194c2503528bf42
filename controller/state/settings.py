"""A switch's live settings: the config file's values with the operator's overrides on top.

``PUT /v1/config/switches/{name}`` stores overrides (keys as in the switch's config table); the
API (request TTLs and quotas) and the controller (caps and selection tunables, every loop) both
read the settings in force through :func:`effective_settings`, and the API checks a change with
:func:`check_settings` before storing it: one rule for both.

The file bounds the overrides: a capped key (``CEILING_KEYS``) may not exceed its ceiling,
``switch[].<key>_max``, which defaults to the file's own value. A leaked operator token can then
lower the caps or shorten TTLs, never switch the cap off.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from topfib.controller.config import SwitchConfig
from topfib.controller.selection.model import SelectionPolicy
from topfib.controller.state.store import FirstTimes, SettingValue

_MAX_INT = 2**31 - 1
log = logging.getLogger(__name__)


class SwitchSettings(BaseModel):
    """The tunables of one switch as they apply now."""

    # strict: JSON true is not the cap 1, nor "5" the cap 5 (floats still take integers)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    fib_cap_ipv4: int = Field(gt=0, le=_MAX_INT)
    fib_cap_ipv6: int = Field(gt=0, le=_MAX_INT)
    fib_cap_ipv4_24: int = Field(ge=0, le=_MAX_INT)
    request_ttl_default_s: float = Field(gt=0)
    request_ttl_max_s: float = Field(gt=0)
    max_requests_per_ap: int = Field(gt=0, le=_MAX_INT)
    margin: float = Field(ge=0)
    min_dwell_s: float = Field(ge=0)
    min_swap_gain: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ttl_bounds(self) -> SwitchSettings:
        if self.request_ttl_default_s > self.request_ttl_max_s:
            raise ValueError("request_ttl_default_s must not exceed request_ttl_max_s")
        return self


TUNABLE_KEYS = frozenset(SwitchSettings.model_fields)


class SettingsError(ValueError):
    """Settings that may not apply; ``field`` names the offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def file_settings(switch: SwitchConfig) -> dict[str, SettingValue]:
    """The config file's value of every tunable key."""
    return {key: getattr(switch, key) for key in TUNABLE_KEYS}


def check_settings(switch: SwitchConfig, values: Mapping[str, SettingValue]) -> SwitchSettings:
    """``values`` as settings of ``switch``; :class:`SettingsError` naming the first bad key."""
    try:
        settings = SwitchSettings.model_validate(dict(values))
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        field = str(first["loc"][0]) if first["loc"] else "request_ttl_default_s"  # the TTL rule
        raise SettingsError(field, first["msg"]) from None
    for key, ceiling in switch.override_ceilings().items():
        if getattr(settings, key) > ceiling:
            raise SettingsError(key, f"at most {ceiling:g} (switch[].{key}_max in the config file)")
    return settings


_warned = FirstTimes()  # conflicts already logged


def effective_settings(switch: SwitchConfig, overrides: Mapping[str, SettingValue]) -> SwitchSettings:
    """The file's values with ``overrides`` applied; unknown override keys are ignored.

    Overrides are checked when written, but the file may change underneath them (a lower
    ceiling, or a lower ``request_ttl_max_s`` than an overridden default): then the file's values
    apply alone, which are valid by construction, and a warning is logged (once per conflict).
    """
    values = file_settings(switch)
    values.update({k: v for k, v in overrides.items() if k in TUNABLE_KEYS})
    try:
        return check_settings(switch, values)
    except SettingsError as exc:
        key = (switch.name, str(sorted(overrides.items())))
        if _warned.first(key):
            log.warning("switch %s: stored overrides conflict with the config file, ignoring them: %s",
                        switch.name, exc)
        return SwitchSettings.model_validate(file_settings(switch))


def selection_policy(switch: SwitchConfig, settings: SwitchSettings) -> SelectionPolicy:
    """The selection policy of ``switch`` under ``settings``."""
    return replace(
        SelectionPolicy.from_switch(switch),
        cap_ipv4=settings.fib_cap_ipv4,
        cap_ipv6=settings.fib_cap_ipv6,
        cap_ipv4_24=settings.fib_cap_ipv4_24,
        margin=settings.margin,
        min_dwell_s=settings.min_dwell_s,
        min_swap_gain=settings.min_swap_gain,
    )
