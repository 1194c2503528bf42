"""A switch's live tunables: the config file's values with the operator's overrides on top.

``PUT /v1/config/switches/{name}`` stores overrides (keys as in the switch's config table, plus the
score half-lives, which the config file sets for all switches under ``[collector]``); the controller
reads them from the store every loop and applies them with :func:`effective_settings`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from controller.config import CollectorConfig, SwitchConfig
from controller.store import SettingValue

_MAX_INT = 2**31 - 1
log = logging.getLogger(__name__)


class SwitchSettings(BaseModel):
    """The tunables of one switch as they apply now."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    fib_cap_ipv4: int = Field(gt=0, le=_MAX_INT)
    fib_cap_ipv6: int = Field(gt=0, le=_MAX_INT)
    fib_cap_ipv4_24: int = Field(ge=0, le=_MAX_INT)
    request_ttl_default_s: float = Field(gt=0)
    request_ttl_max_s: float = Field(gt=0)
    max_requests_per_ap: int = Field(gt=0, le=_MAX_INT)
    fast_half_life_s: float = Field(gt=0)
    slow_half_life_s: float = Field(gt=0)
    margin: float = Field(ge=0)
    min_dwell_s: float = Field(ge=0)
    min_swap_gain: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ttl_bounds(self) -> SwitchSettings:
        if self.request_ttl_default_s > self.request_ttl_max_s:
            raise ValueError("request_ttl_default_s must not exceed request_ttl_max_s")
        return self


class SwitchSettingsPatch(BaseModel):
    """A partial update: keys present are overridden; a key set to null returns to the file's value."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    fib_cap_ipv4: int | None = Field(None, gt=0, le=_MAX_INT)
    fib_cap_ipv6: int | None = Field(None, gt=0, le=_MAX_INT)
    fib_cap_ipv4_24: int | None = Field(None, ge=0, le=_MAX_INT)
    request_ttl_default_s: float | None = Field(None, gt=0)
    request_ttl_max_s: float | None = Field(None, gt=0)
    max_requests_per_ap: int | None = Field(None, gt=0, le=_MAX_INT)
    fast_half_life_s: float | None = Field(None, gt=0)
    slow_half_life_s: float | None = Field(None, gt=0)
    margin: float | None = Field(None, ge=0)
    min_dwell_s: float | None = Field(None, ge=0)
    min_swap_gain: float | None = Field(None, ge=0, le=1)

    def changes(self) -> tuple[dict[str, SettingValue], set[str]]:
        """(values to set, keys to clear) from the keys the client actually sent."""
        to_set: dict[str, SettingValue] = {}
        to_clear: set[str] = set()
        for key in self.model_fields_set:
            value = getattr(self, key)
            if value is None:
                to_clear.add(key)
            else:
                to_set[key] = value
        return to_set, to_clear


TUNABLE_KEYS = frozenset(SwitchSettings.model_fields)


def file_settings(switch: SwitchConfig, collector: CollectorConfig) -> dict[str, SettingValue]:
    values: dict[str, SettingValue] = {
        key: getattr(switch, key) for key in TUNABLE_KEYS if key in SwitchConfig.model_fields
    }
    values["fast_half_life_s"] = collector.fast_half_life_s
    values["slow_half_life_s"] = collector.slow_half_life_s
    return values


def effective_settings(
    switch: SwitchConfig, collector: CollectorConfig, overrides: Mapping[str, SettingValue]
) -> SwitchSettings:
    """The file's values with ``overrides`` applied; unknown override keys are ignored.

    Overrides are validated when written, but the file may change underneath them (a lower
    ``request_ttl_max_s`` than an overridden default): then the file's values apply alone, which
    are valid by construction, and a warning is logged.
    """
    values = file_settings(switch, collector)
    base = dict(values)
    values.update({k: v for k, v in overrides.items() if k in TUNABLE_KEYS})
    try:
        return SwitchSettings.model_validate(values)
    except ValidationError as exc:
        log.warning("switch %s: stored overrides conflict with the config file, ignoring them: %s",
                    switch.name, exc.errors(include_url=False, include_input=False))
        return SwitchSettings.model_validate(base)
