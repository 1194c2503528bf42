"""The body of ``PUT /v1/config/switches/{name}``: which overrides to set and which to clear.

What the settings in force are, and which values may apply at all (the config file's ceilings
included), is decided in one place for the API and the controller: controller/state/settings.py.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from topfib.controller.config import SwitchConfig
from topfib.controller.state.settings import SwitchSettings, check_settings, file_settings
from topfib.controller.state.store import SettingValue

_MAX_INT = 2**31 - 1


class SwitchSettingsPatch(BaseModel):
    """A partial update: keys present are overridden; a key set to null returns to the file's value.

    The score half-lives are not here: ``[collector]`` sets them for every switch at once.
    """

    # strict: JSON true is not the cap 1, nor "5" the cap 5 (floats still take integers)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    fib_cap_ipv4: int | None = Field(None, gt=0, le=_MAX_INT)
    fib_cap_ipv6: int | None = Field(None, gt=0, le=_MAX_INT)
    fib_cap_ipv4_24: int | None = Field(None, ge=0, le=_MAX_INT)
    request_ttl_default_s: float | None = Field(None, gt=0)
    request_ttl_max_s: float | None = Field(None, gt=0)
    max_requests_per_ap: int | None = Field(None, gt=0, le=_MAX_INT)
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


def patched_settings(switch: SwitchConfig, current: Mapping[str, SettingValue],
                     to_set: Mapping[str, SettingValue], to_clear: set[str]) -> SwitchSettings:
    """The settings the patch would give; ``SettingsError`` naming the key when they may not apply."""
    merged = file_settings(switch)
    merged.update({k: v for k, v in current.items() if k in merged and k not in to_clear})
    merged.update(to_set)
    return check_settings(switch, merged)
