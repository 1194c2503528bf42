"""What one switch's selection reads from the store: requests, pins and setting overrides.

A store outage keeps what was read last (requests still expiring, the last pins, the last
overrides over the switch's config as it is now): it must not flush routes out of the FIB.
"""

from __future__ import annotations

import contextlib

from topfib.controller.config import SwitchConfig
from topfib.controller.selection.select import OnDemandRequest, SelectionPolicy
from topfib.controller.state.settings import effective_settings, selection_policy
from topfib.controller.state.store import SettingValue, Store, StoreUnavailable
from topfib.controller.switch.request_mirror import RequestMirror


class StoreInputs:
    """The store's inputs for one switch, as last read."""

    def __init__(self, name: str, store: Store, requests: RequestMirror) -> None:
        self._name = name
        self._store = store
        self._requests = requests  # the store's active requests, read by changes
        self._last_pins: list[str] = []
        self.last_overrides: dict[str, SettingValue] = {}

    def policy_as_last_read(self, switch: SwitchConfig) -> SelectionPolicy:
        """``switch``'s policy under the overrides read last (a config reload: no store read)."""
        return selection_policy(switch, effective_settings(switch, self.last_overrides))

    async def effective_policy(self, switch: SwitchConfig) -> SelectionPolicy:
        """``switch``'s policy under the store's overrides (the last ones read when it is down)."""
        with contextlib.suppress(StoreUnavailable):  # else the last ones, over the switch's config now
            self.last_overrides = (await self._store.config_overrides()).get(self._name, {})
        return self.policy_as_last_read(switch)

    async def read(self, wall_now: float) -> tuple[list[OnDemandRequest], list[str]]:
        """The active requests and the pins."""
        # only the changes since the last read; a store outage keeps what was read (still expiring)
        requests = await self._requests.refresh(self._store, wall_now)
        with contextlib.suppress(StoreUnavailable):  # else keep deciding on the last pins
            self._last_pins = [pin.prefix for pin in await self._store.pins()]
        return requests, self._last_pins
