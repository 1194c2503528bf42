"""Everything the route handlers share, passed in by the app factory (no module globals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from api.errors import validation_error
from api.settings import SwitchSettings, effective_settings
from api.view import ControllerView
from controller.config import SwitchConfig, TopfibConfig
from controller.store import Store


@dataclass(frozen=True, slots=True)
class ApiContext:
    config: TopfibConfig
    store: Store
    view: ControllerView
    wall_clock: Callable[[], float]

    @property
    def switch_names(self) -> list[str]:
        return [s.name for s in self.config.switch]

    def switch_config(self, name: str) -> SwitchConfig | None:
        return self.config.switch_named(name)

    async def settings(self) -> dict[str, SwitchSettings]:
        """Each switch's settings in force now (file values with the stored overrides)."""
        overrides = await self.store.config_overrides()
        return {
            sw.name: effective_settings(sw, self.config.collector, overrides.get(sw.name, {}))
            for sw in self.config.switch
        }

    def pick_switch(self, requested: str | None) -> str | None:
        """The switch a read names; the only one when none is named. None: unknown switch."""
        if requested is None:
            if len(self.config.switch) == 1:
                return self.config.switch[0].name
            raise validation_error(("query", "switch"), "required when several switches are configured",
                                   "missing")
        return requested if self.config.switch_named(requested) is not None else None
