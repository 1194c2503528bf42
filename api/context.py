"""Everything the route handlers share, passed in by the app factory (no module globals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from topfib.api.errors import validation_error
from topfib.api.tokens import TokenTable
from topfib.api.view import ControllerView
from topfib.collector.common.special_use import SpecialUseFilter
from topfib.controller.config import SwitchConfig, TopfibConfig
from topfib.controller.state.settings import SwitchSettings, effective_settings
from topfib.controller.state.store import Store


@dataclass(slots=True)
class ApiContext:
    config: TopfibConfig
    store: Store
    view: ControllerView
    wall_clock: Callable[[], float]
    clock: Callable[[], float]
    tokens: TokenTable
    # Reading the overrides is a store round trip and validating them costs more than the rest
    # of a request, while they change only when an operator says so: reuse them for a second.
    # (Another replica's change is seen within that second; this replica's at once.)
    settings_max_age_s: float = 1.0
    _settings_cache: tuple[float, dict[str, SwitchSettings]] | None = field(default=None, repr=False)
    _special_use: SpecialUseFilter | None = field(default=None, repr=False)

    @property
    def switch_names(self) -> list[str]:
        return [s.name for s in self.config.switch]

    def switch_config(self, name: str) -> SwitchConfig | None:
        return self.config.switch_named(name)

    async def settings(self) -> dict[str, SwitchSettings]:
        """Each switch's settings in force (file values with the stored overrides)."""
        now = self.clock()
        cached = self._settings_cache
        if cached is not None and 0 <= now - cached[0] < self.settings_max_age_s:
            return cached[1]
        overrides = await self.store.config_overrides()
        settings = {
            sw.name: effective_settings(sw, overrides.get(sw.name, {}))
            for sw in self.config.switch
        }
        self._settings_cache = (now, settings)
        return settings

    @property
    def special_use(self) -> SpecialUseFilter:
        """The special-use filter of ``[special_use]``: the RIB's, for requests and pins too."""
        if self._special_use is None:
            self._special_use = self.config.special_use.build()
        return self._special_use

    def apply_config(self, config: TopfibConfig) -> None:
        """Serve under ``config`` from now on (a reload: same switches and API sockets)."""
        self.config = config
        self.tokens.replace(config.token)
        self._settings_cache = None

    def forget_settings(self) -> None:
        """Drop the cached settings (after this replica changed them)."""
        self._settings_cache = None

    def pick_switch(self, requested: str | None) -> str | None:
        """The switch a read names; the only one when none is named. None: unknown switch."""
        if requested is None:
            if len(self.config.switch) == 1:
                return self.config.switch[0].name
            raise validation_error(("query", "switch"), "required when several switches are configured",
                                   "missing")
        return requested if self.config.switch_named(requested) is not None else None
