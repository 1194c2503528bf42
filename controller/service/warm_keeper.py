"""Keeping controllers warm across restarts and takeovers (README: State, restarts and scale-out).

Every ``state.snapshot_interval_s`` (and once more on a clean stop) each active controller writes
a :mod:`topfib.controller.state.warm_state` snapshot of its switch: to the store (kind ``rates``) when it is
Redis, else to ``state.directory/{switch}.warm.json`` (atomically, 0600, private directory).
Without either (memory store, no directory) nothing is kept: starts are cold, as before.

On start (and on a standby's takeover) the snapshot is read before the first selection: its rates
are added decayed for the snapshot's age and its desired FIB becomes the incumbents of the first
selections. A standby keeps warm from the active's snapshots in Redis rather than from its own
copy of the sFlow: switches export to one collector as often as to two, and the snapshot needs no
switch configuration. A standby that does receive the switch's sFlow has rates of its own: then
only the desired FIB is taken from the snapshot (adding its rates would count traffic twice).

A snapshot that is missing, older than ``state.max_age_s``, unreadable or refused by validation
leaves the controller cold; the outcome is counted in ``topfib_state_restores_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from topfib.collector.accounting.path_rates import PathRates
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.collector.common.metrics import REGISTRY
from topfib.collector.common.safe_files import ensure_private_dir, open_private_fd, write_atomically
from topfib.controller.config import TopfibConfig
from topfib.controller.selection.model import TABLE_IPV4, TABLE_IPV4_24, TABLE_IPV6, SelectedRoute
from topfib.controller.state.store import Store, StoreUnavailable
from topfib.controller.state.warm_state import (
    MAX_PATH_ROWS,
    MAX_SNAPSHOT_BYTES,
    SnapshotRefused,
    WarmState,
    decode,
)
from topfib.controller.switch.controller import SwitchController

log = logging.getLogger(__name__)
FUTURE_SKEW_S = 5.0  # a snapshot taken this far "in the future" (clock skew) counts as fresh
ROWS_PER_SLOT = 4  # rate rows kept per FIB slot of a family unless state.max_entries says

_m_snapshots = REGISTRY.counter(
    "topfib_state_snapshots_total", "Warm-state snapshots by switch and outcome (written, failed).",
    ("switch", "outcome"),
)
_m_restores = REGISTRY.counter(
    "topfib_state_restores_total",
    "Warm-state restores at start or takeover by switch and outcome (warm, none, too_old, refused, "
    "unavailable).",
    ("switch", "outcome"),
)


class WarmKeeper:
    """Writes and reads the warm state of every switch of one ``topfib run``."""

    def __init__(self, config: TopfibConfig, rates: PrefixRates, store: Store, *,
                 path_rates: PathRates | None = None,
                 wall_clock: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config.state
        self.rates = rates
        self.path_rates = path_rates
        self.store = store
        self.in_store = config.store.url != "memory://"
        directory = self.config.directory
        self.directory = Path(directory) if directory and not self.in_store else None
        self._wall_clock = wall_clock
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return self.in_store or self.directory is not None

    def prepare(self) -> None:
        """Create or check ``state.directory`` (raises OSError, see topfib.collector.common.safe_files)."""
        if self.directory is not None:
            ensure_private_dir(self.directory)

    def path_of(self, switch: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{switch}.warm.json"

    # --- writing ---------------------------------------------------------------------------------

    def snapshot_of(self, ctl: SwitchController) -> WarmState:
        """The warm state of ``ctl``'s switch now (call on the event loop)."""
        return self._snapshot(_ControllerParts.of(ctl))

    def _snapshot(self, ctl: _ControllerParts) -> WarmState:
        """The warm state from the controller's parts, gathered on the event loop (the controller
        changes them there); reads the rates under their own lock, so it may run in a thread."""
        switch, caps = ctl.switch, ctl.caps
        per_family = self.config.max_entries
        limits = (
            per_family or ROWS_PER_SLOT * (caps.get(TABLE_IPV4, 0) + caps.get(TABLE_IPV4_24, 0)),
            per_family or ROWS_PER_SLOT * caps.get(TABLE_IPV6, 0),
        )
        now = self._clock()
        observed_s, rows = self.rates.export_rows(switch, now, limits)
        paths = [] if self.path_rates is None else self.path_rates.export_paths(
            switch, now, [row.prefix for row in rows])
        return WarmState(
            switch=switch, taken_at=self._wall_clock(), observed_s=observed_s,
            fast_half_life_s=self.rates.fast_half_life_s, slow_half_life_s=self.rates.slow_half_life_s,
            rows=rows, desired=ctl.desired, paths=paths[:MAX_PATH_ROWS], held=ctl.held,
            desired_at=ctl.desired_at, lost_at=ctl.lost_at,
        )

    async def save(self, ctl: SwitchController) -> bool:
        """Write ``ctl``'s snapshot; False (counted, logged) when it could not be written."""
        if not self.enabled or not ctl.active:
            return False
        try:
            # the controller's parts on the loop: a thread reading them races its updates
            parts = _ControllerParts.of(ctl)
            text = await asyncio.to_thread(lambda: self._snapshot(parts).encode())
            if self.directory is not None:
                await asyncio.to_thread(write_atomically, self.path_of(ctl.name), text.encode())
            else:
                await self.store.put_snapshot(ctl.name, "rates", text)
        except (OSError, StoreUnavailable) as exc:
            _m_snapshots.inc(switch=ctl.name, outcome="failed")
            log.warning("switch %s: warm-state snapshot not written: %s", ctl.name, exc)
            return False
        _m_snapshots.inc(switch=ctl.name, outcome="written")
        return True

    async def run(self, controllers: Iterable[SwitchController], stopping: asyncio.Event) -> None:
        """Snapshot every active controller each ``state.snapshot_interval_s`` until ``stopping``."""
        every = self.config.snapshot_interval_s
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), every)
            if stopping.is_set():
                return
            for ctl in controllers:
                try:
                    await self.save(ctl)
                except Exception:  # the loop must outlive one bad snapshot
                    log.exception("switch %s: warm-state snapshot failed", ctl.name)

    # --- reading ---------------------------------------------------------------------------------

    async def _read(self, switch: str) -> str | bytes | None:
        if self.directory is None:
            return await self.store.snapshot(switch, "rates")
        return await asyncio.to_thread(_read_file, self.path_of(switch))

    async def load(self, switch: str) -> WarmState | None:
        """The usable snapshot of ``switch``, or None (the outcome counted and, unless there is
        simply none, logged)."""
        if not self.enabled:
            return None
        try:
            text = await self._read(switch)
            if text is None:
                _m_restores.inc(switch=switch, outcome="none")
                return None
            halves = (self.rates.fast_half_life_s, self.rates.slow_half_life_s)
            state = await asyncio.to_thread(decode, text, switch, halves)
        except (OSError, StoreUnavailable) as exc:
            _m_restores.inc(switch=switch, outcome="unavailable")
            log.warning("switch %s: warm state not read, starting cold: %s", switch, exc)
            return None
        except SnapshotRefused as exc:
            _m_restores.inc(switch=switch, outcome="refused")
            log.warning("switch %s: warm-state snapshot refused, starting cold: %s", switch, exc)
            return None
        age = self._wall_clock() - state.taken_at
        if age > self.config.max_age_s or age < -FUTURE_SKEW_S:
            _m_restores.inc(switch=switch, outcome="too_old")
            log.warning("switch %s: warm-state snapshot is %.0f s old (state.max_age_s %.0f), starting "
                        "cold", switch, age, self.config.max_age_s)
            return None
        return state

    async def restore(self, ctl: SwitchController, *, with_rates: bool = True) -> bool:
        """Warm ``ctl`` from its switch's snapshot before its first selection; True when done."""
        state = await self.load(ctl.name)
        if state is None:
            return False
        age = max(0.0, self._wall_clock() - state.taken_at)
        if with_rates:
            with ctl.rib_lock:  # the collector accounts under this lock too
                self.rates.restore_rows(ctl.name, self._clock(), state.rows, age, state.observed_s)
                if self.path_rates is not None:
                    self.path_rates.restore_paths(ctl.name, self._clock(), state.paths, age, state.observed_s)
        desired = state.desired
        desired_at = state.taken_at if state.desired_at is None else state.desired_at
        if self._wall_clock() - desired_at > self.config.max_age_s:  # carried across restarts
            log.info("switch %s: the snapshot's desired FIB is older than state.max_age_s; not carried",
                     ctl.name)
            desired = {}
        ctl.carry_incumbents(desired, state.held, desired_at=desired_at, lost_at=state.lost_at)
        _m_restores.inc(switch=ctl.name, outcome="warm")
        log.info("switch %s: warm start from a %.0f s old snapshot (%d rate rows, %d paths, %d desired "
                 "routes)", ctl.name, age, len(state.rows) if with_rates else 0,
                 len(state.paths) if with_rates else 0, len(state.desired))
        return True


@dataclass(frozen=True, slots=True)
class _ControllerParts:
    """What a snapshot takes from its controller, read on the event loop."""

    switch: str
    caps: Mapping[str, int]
    desired: dict[str, SelectedRoute]
    desired_at: float
    held: list[str]
    lost_at: float | None

    @classmethod
    def of(cls, ctl: SwitchController) -> _ControllerParts:
        return cls(switch=ctl.name, caps=ctl.policy.caps(), desired=dict(ctl.continuity_routes()),
                   desired_at=ctl.continuity_at(), held=ctl.held_to_hand_on(),
                   lost_at=ctl.session_lost_at())


def _read_file(path: Path) -> bytes | None:
    """The file's bytes (at most one past the snapshot bound), refusing symlinks and foreign
    files; None when there is none."""
    try:
        fd = open_private_fd(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as source:
        return source.read(MAX_SNAPSHOT_BYTES + 1)
