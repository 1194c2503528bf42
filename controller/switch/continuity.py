"""Warm continuity for one switch: what it takes over from the previous controller (a warm
restart or a takeover) and what it hands on to the next (controller/service/warm_keeper.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from topfib.controller.config import SwitchConfig
from topfib.controller.selection.model import SelectedRoute, Selection
from topfib.controller.switch.bgp_session.session import SessionTracker
from topfib.controller.switch.programmer import Programmer

log = logging.getLogger(__name__)


class Continuity:
    """The carried desired FIB, and the state handed on."""

    def __init__(self, name: str, programmer: Programmer, sessions: SessionTracker, *,
                 switch: Callable[[], SwitchConfig], max_age_s: Callable[[], float],
                 wall_clock: Callable[[], float]) -> None:
        self._name = name
        self._programmer = programmer
        self._sessions = sessions
        self._switch = switch
        self._max_age_s = max_age_s  # state.max_age_s as configured now
        self._wall_clock = wall_clock
        # the previous controller's last desired FIB: incumbents of every selection until one
        # has been programmed on the switch's full table
        self.carried: dict[str, SelectedRoute] = {}
        self._carried_at = 0.0  # wall clock the carried FIB dates from (its first snapshot)

    def carry(self, routes: dict[str, SelectedRoute], held: Iterable[str], *,
              desired_at: float | None, lost_at: float | None) -> None:
        """See :meth:`SwitchController.carry_incumbents`."""
        now = self._wall_clock()
        self.carried = dict(routes)
        self._carried_at = now if desired_at is None else min(desired_at, now)
        if self._switch().graceful_restart_s:  # what the switch may still hold as stale from it
            self._programmer.hold_as_stale([*routes, *held])
            if self._sessions.info.state != "up":
                self._sessions.lost_before(now if lost_at is None else min(lost_at, now))

    def expire(self, wall_now: float) -> None:
        """A carried FIB older than state.max_age_s is dropped, as a snapshot that old would be."""
        if self.carried and wall_now - self._carried_at > self._max_age_s():
            log.info("switch %s: the carried desired FIB is older than state.max_age_s; dropped",
                     self._name)
            self.carried = {}

    def programmed(self) -> None:
        """A selection was programmed: it is what the switch holds now."""
        self.carried = {}

    def routes_to_hand_on(self, selection: Selection | None) -> Mapping[str, SelectedRoute]:
        """The desired FIB to hand on: the carried one until a selection has been programmed."""
        if self.carried or selection is None:
            return self.carried
        return selection.routes

    def routes_date(self) -> float:
        """Wall clock :meth:`routes_to_hand_on` dates from (a carried FIB: its first snapshot)."""
        return self._carried_at if self.carried else self._wall_clock()

    def held_to_hand_on(self) -> list[str]:
        """The prefixes the switch holds from topfib for the warm snapshot: without the stale ones
        once the switch's restart time (graceful_restart_s) since the session loss has run out
        (it flushed them)."""
        lost_at = self._sessions.lost_at
        if lost_at is not None and self._wall_clock() - lost_at > self._switch().graceful_restart_s:
            return sorted(self._programmer.installed)
        return sorted(self._programmer.held())
