"""Reacting to the switch's withdraws between loop iterations, without a selection.

Installed prefixes whose best path changed are withdrawn at once when they lost their last path;
those whose best path moved are re-pointed once the burst of changes has settled (in a mass
withdraw the other paths usually go too, and re-pointing first would double ExaBGP's work).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from topfib.collector.rib.rib import Rib, RibChange
from topfib.controller.program.plan import plan
from topfib.controller.selection.observed_paths import ObservedPathRib
from topfib.controller.switch.bgp_session.session import SessionTracker
from topfib.controller.switch.programmer import UNUSABLE_NEXT_HOPS, Programmer

log = logging.getLogger(__name__)

# A prefix whose best path moved is re-announced once the update burst touching installed
# prefixes has been quiet this long and no installed prefix lost its last path in the meantime
# (or this long after the burst began).
SETTLE_QUIET_S = 0.3
SETTLE_MAX_S = 3.0
# ...except a prefix whose installed next hop has no path left (its exit is gone: the switch keeps
# forwarding to it meanwhile): it is re-pointed once the burst has been quiet this long.
DEAD_EXIT_QUIET_S = 0.05
# A reactor batch this big marks a burst (a peer or session dropping many routes): selection
# keeps out of the way for BURST_HOLD_S after it, so the next batch is not stuck behind it.
BURST_PREFIXES = 100
BURST_HOLD_S = 0.5


class Reactor:
    """Installed prefixes touched by RIB changes, and the batches that repair them."""

    def __init__(
        self,
        name: str,
        programmer: Programmer,
        sessions: SessionTracker,
        rib: Rib,
        rib_lock: threading.Lock,
        route_view: ObservedPathRib | Rib,
        *,
        clock: Callable[[], float],
        settle_quiet_s: float = SETTLE_QUIET_S,
        settle_max_s: float = SETTLE_MAX_S,
    ) -> None:
        self._name = name
        self._programmer = programmer
        self._sessions = sessions
        self._rib = rib
        self._rib_lock = rib_lock
        self._route_view = route_view
        self._clock = clock
        self._settle_quiet_s = settle_quiet_s
        self._settle_max_s = settle_max_s
        # Installed prefixes whose best path changed since the last reaction, and when the
        # current burst of such changes began / last touched one.
        self._touched: set[str] = set()
        self._burst_began: float | None = None
        self._last_touch = 0.0
        self._reaction = asyncio.Event()
        self._dead_exits = False  # the last batch kept back prefixes whose installed exit is gone
        self.burst_until = 0.0  # see BURST_PREFIXES

    def note_rib_changes(self, changes: list[RibChange]) -> None:
        """Remember installed prefixes whose best path changed; wake the reactor for them."""
        installed = self._programmer.installed
        if not installed:
            return
        touched = [change.prefix for change in changes if change.prefix in installed]
        if not touched:
            return
        now = self._clock()
        if not self._touched:
            self._burst_began = now
        self._touched.update(touched)
        self._last_touch = now
        self._reaction.set()

    def forget_touched(self) -> None:
        """The session ended: nothing installed is left to repair."""
        self._touched.clear()

    def settle_delay(self) -> float:
        """Seconds until the burst of changes to installed prefixes counts as settled (0: now)."""
        if not self._touched or self._burst_began is None:
            return 0.0
        now = self._clock()
        quiet = self._last_touch + self._settle_quiet_s - now
        cap = self._burst_began + self._settle_max_s - now
        return max(0.0, min(quiet, cap))

    async def until_settled(self) -> None:
        while (delay := self.settle_delay()) > 0:
            await asyncio.sleep(delay)

    async def run(self) -> None:
        """Withdraw installed prefixes that lost their last path at once; re-point those whose
        best path moved once the burst has settled. No selection runs for either."""
        while True:
            await self._reaction.wait()
            self._reaction.clear()
            try:
                delay = await self.react_once()
            except Exception:  # the reactor must outlive one bad batch; the loop repairs the rest
                log.exception("switch %s: reacting to RIB changes failed", self._name)
                continue
            if delay > 0:
                asyncio.get_running_loop().call_later(delay, self._reaction.set)

    async def react_once(self) -> float:
        """React until no new change comes in during a batch (the program lock is held all
        along, so a mass withdraw goes out batch after batch with nothing in between); returns
        how long until re-pointing may be done (0: nothing left)."""
        async with self._programmer.lock:
            while self._touched:
                if (not self._sessions.ready_to_program()
                        or not await self._programmer.forget_announced_locked()):
                    self._touched.clear()  # the first full plan covers them
                    return 0.0
                if not await self._react_batch():
                    return 0.0
                if not self._reaction.is_set():
                    break
                self._reaction.clear()  # more came in while that batch was out: go on now
        if self._dead_exits:
            return min(self.settle_delay(), max(0.0, self._last_touch + DEAD_EXIT_QUIET_S - self._clock()))
        return self.settle_delay()

    async def _react_batch(self) -> bool:
        """Withdraw touched prefixes without a path; re-point those whose installed exit is gone
        once the burst paused (DEAD_EXIT_QUIET_S), moved ones once it settled. False when ExaBGP
        did not confirm everything."""
        unsettled = self.settle_delay() > 0
        now = self._clock()
        began = self._burst_began
        capped = began is not None and now - began >= self._settle_max_s
        touched, self._touched = self._touched, set()
        gone: dict[str, str] = {}
        moved: dict[str, str] = {}
        dead: dict[str, str] = {}  # moved, and the installed next hop has no path left
        installed_now = self._programmer.installed
        with self._rib_lock:
            for prefix in touched:
                installed = installed_now.get(prefix)
                if installed is None:
                    continue
                best = self._route_view.best(prefix)
                if best is None or best.next_hop in UNUSABLE_NEXT_HOPS:
                    gone[prefix] = installed
                elif best.next_hop != installed:
                    alive = any(path.next_hop == installed for path in self._rib.paths(prefix))
                    (moved if alive else dead)[prefix] = best.next_hop
        if unsettled or (gone and not capped):  # prefixes still lose their last path: a burst
            self._touched.update(moved)  # kept for later: their other paths may go too
            moved = {}
        self._dead_exits = bool(dead) and now - self._last_touch < DEAD_EXIT_QUIET_S and not capped
        if self._dead_exits:
            self._touched.update(dead)  # mid-burst: the new exit may be going as well
            dead = {}
        moved.update(dead)
        part = {prefix: self._programmer.installed[prefix] for prefix in (*gone, *moved)}
        changes = plan(moved, part)
        withdraws = [step for step in changes.steps if step.action == "withdraw"]
        announces = [step for step in changes.steps if step.action == "announce"]
        send_steps = self._programmer.send_steps
        try:
            if withdraws and not await send_steps(withdraws):
                return False
            return not announces or await send_steps(announces)
        finally:
            if changes.withdraws + changes.announces >= BURST_PREFIXES:
                self.burst_until = self._clock() + BURST_HOLD_S
