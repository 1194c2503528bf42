"""The RIB-out towards one switch: what ExaBGP acknowledged, and the commands that change it.

What counts as installed is only what ExaBGP acknowledged with ``done`` on a session that is up.
A session going down (or the bridge going away) empties it: the switch drops our routes then.
ExaBGP itself keeps what it announced (its adj-rib-out, always on with route-refresh) and would
replay it when the session comes back; topfib clears it as soon as the session is down, and
before anything is programmed on the next session (see :meth:`Programmer.forget_announced`).

Every command batch goes out under :attr:`Programmer.lock`; withdraws are confirmed before any
announce, and announces never take a table past its cap, counting what the switch may still
hold as stale (graceful restart) as well (see :meth:`Programmer.occupancy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import replace

from topfib.collector.common.metrics import REGISTRY
from topfib.collector.rib.rib import Rib
from topfib.controller.config import SwitchConfig
from topfib.controller.exabgp.commands import clear_adj_rib_out_command, end_of_rib_commands, render_step
from topfib.controller.exabgp.link import ExabgpLink, ExabgpLinkDown
from topfib.controller.program.plan import Step, plan
from topfib.controller.selection.observed_paths import ObservedPathRib
from topfib.controller.selection.select import Selection, SelectionPolicy
from topfib.controller.switch.bgp_session.session import SessionTracker
from topfib.controller.switch.table_counts import TableCounts

log = logging.getLogger(__name__)

# Graceful restart: after topfib's End-of-RIB the switch's stale routes still count against the caps
# this long (ExaBGP sends it, then the switch prunes them: see Programmer.held).
STALE_PRUNE_S = 2.0
# Announce lines sent per window: between windows the program lock is free, so withdraws of
# prefixes that lost their last path never wait behind a long programming run.
ANNOUNCE_WINDOW_LINES = 4
COMMAND_CHUNK = 1000  # prefixes per ExaBGP command line
CHURN_WINDOW_S = 3600.0
UNUSABLE_NEXT_HOPS = frozenset({"", "0.0.0.0", "::"})

_m_changes = REGISTRY.counter(
    "topfib_fib_changes_total", "Routes announced or withdrawn, by switch and action.", ("switch", "action")
)
_m_errors = REGISTRY.counter(
    "topfib_exabgp_command_errors_total", "Commands ExaBGP answered with error, by switch.", ("switch",)
)


def _windows(steps: list[Step], size: int) -> list[list[Step]]:
    """``steps`` cut into windows of at most ``size`` prefixes (a step may be split)."""
    windows: list[list[Step]] = []
    current: list[Step] = []
    room = size
    for step in steps:
        prefixes = step.prefixes
        while prefixes:
            taken, prefixes = prefixes[:room], prefixes[room:]
            current.append(replace(step, prefixes=taken))
            room -= len(taken)
            if room == 0:
                windows.append(current)
                current, room = [], size
    if current:
        windows.append(current)
    return windows


class Programmer:
    """The switch's installed routes and every command that changes them (event loop only)."""

    def __init__(
        self,
        name: str,
        link: ExabgpLink,
        sessions: SessionTracker,
        rib: Rib,
        rib_lock: threading.Lock,
        route_view: ObservedPathRib | Rib,
        *,
        switch: Callable[[], SwitchConfig],
        policy: Callable[[], SelectionPolicy],
        refresh_policy: Callable[[], Awaitable[SelectionPolicy]],
        selection: Callable[[], Selection | None],
        is_active: Callable[[], bool],
        on_link_lost: Callable[[str], None],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self._name = name
        self._link = link
        self._sessions = sessions
        self._rib = rib
        self._rib_lock = rib_lock
        self._route_view = route_view
        self._switch = switch
        self._policy = policy
        self._refresh_policy = refresh_policy  # the store's overrides over the switch's config, now
        self._selection = selection
        self._is_active = is_active
        self._on_link_lost = on_link_lost
        self._clock = clock
        self._wall_clock = wall_clock
        self.lock = asyncio.Lock()  # every command batch to ExaBGP goes out under it
        self._installed: dict[str, str] = {}
        self._installed_tables = TableCounts()  # kept with _installed: the caps' room, not recounted
        # recent FIB changes for the dashboard: (wall time, action, prefix, next-hop, reason)
        self.changes: deque[tuple[float, str, str, str, str]] = deque(maxlen=1000)
        self._change_times: deque[float] = deque()
        # ExaBGP acknowledged announces since its adj-rib-out was last cleared: once the session
        # ends it holds routes the switch no longer has, and would replay them on the next one;
        # so a replay is pending until the clear is confirmed, and nothing is programmed meanwhile.
        self._announced = False
        self.replay_pending = False
        self._forgetting: asyncio.Task[bool] | None = None
        # graceful restart: prefixes the switch may still hold as stale from an earlier session
        # (or the previous controller) until topfib's End-of-RIB; they count against the caps
        self.stale: set[str] = set()
        self.stale_until: float | None = None  # when the switch has pruned them (see held)

    # --- what the switch holds -----------------------------------------------------------------

    @property
    def installed(self) -> dict[str, str]:
        """Prefix → next-hop, acknowledged by ExaBGP (changed only here: see _apply_acks)."""
        return self._installed

    @installed.setter
    def installed(self, routes: dict[str, str]) -> None:
        self._installed, self._installed_tables = routes, TableCounts(routes)

    def _stale_counts(self) -> bool:
        """Whether stale prefixes still count as held (see :meth:`held`)."""
        return bool(self.stale) and (self.stale_until is None or self._clock() < self.stale_until)

    def held(self) -> set[str]:
        """What the switch may hold from topfib: the installed prefixes and, with graceful
        restart, the stale ones until STALE_PRUNE_S after our End-of-RIB (or graceful_restart_s +
        STALE_PRUNE_S after the session went down or up without one). Not sooner: ExaBGP may
        send announces queued after the End-of-RIB before it, and the switch prunes stale routes
        after processing it (BIRD in a later event); nor stale ones withdrawn explicitly, as
        ExaBGP drops the withdraws of a session's first update pass.
        Side-effect free (read from WarmKeeper's snapshot too): :meth:`prune_stale` forgets them."""
        if self.stale_until is not None and self._clock() >= self.stale_until:
            return set(self.installed)
        return self.stale.union(self.installed)

    def prune_stale(self) -> None:
        """Forget the stale prefixes once the switch has pruned them (event loop only)."""
        if self.stale_until is not None and self._clock() >= self.stale_until:
            self.stale, self.stale_until = set(), None

    def keep_as_stale(self) -> None:
        """Graceful restart: the switch keeps what it had until our End-of-RIB."""
        if self._switch().graceful_restart_s:
            self.prune_stale()  # those the switch already pruned are not held again
            self.stale.update(self.installed)
            # pruned at the next session's End-of-RIB (see end_of_rib_once); without one, the
            # switch drops them when its restart time runs out (a margin for the way there)
            self.stale_until = self._clock() + self._switch().graceful_restart_s + STALE_PRUNE_S

    def hold_as_stale(self, prefixes: Iterable[str]) -> None:
        """Graceful restart: ``prefixes`` (the previous controller's) may be on the switch as
        stale routes until our End-of-RIB, or until its restart time runs out."""
        self.stale.update(prefixes)
        self.stale_until = self._clock() + self._switch().graceful_restart_s + STALE_PRUNE_S

    def occupancy(self) -> dict[str, tuple[int, int]]:
        """Per table: (prefixes counting against the cap, that is :meth:`held`, cap). Without
        stale prefixes (graceful restart) from counts kept as acks arrive: the request fast path
        asks on every admission, and recounting a full table cost it ~0.3 ms."""
        return self._occupancy(self.held_counted()[1])

    def held_counted(self) -> tuple[Collection[str], TableCounts]:
        """:meth:`held` and its counts per table, the stale window looked at once (the clock may
        pass its end between two looks)."""
        if self._stale_counts():
            held = self.stale.union(self._installed)
            return held, TableCounts(held)
        return self._installed, self._installed_tables

    def _occupancy(self, counts: TableCounts) -> dict[str, tuple[int, int]]:
        policy = self._policy()
        used = counts.under(policy)
        return {table: (used[table], cap) for table, cap in policy.caps().items()}

    def within_caps(self, steps: list[Step]) -> list[Step]:
        """Announce steps trimmed so that new prefixes never take a table past its cap."""
        policy = self._policy()
        held, counts = self.held_counted()
        room = {table: cap - used for table, (used, cap) in self._occupancy(counts).items()}
        kept: list[Step] = []
        for step in steps:
            prefixes = []
            for prefix in step.prefixes:
                if prefix in held:  # a next-hop change (or a stale route's refresh) replaces in place
                    prefixes.append(prefix)
                    continue
                table = policy.table_of(prefix)
                if room.get(table, 0) > 0:
                    room[table] -= 1
                    prefixes.append(prefix)
            if prefixes:
                kept.append(replace(step, prefixes=tuple(prefixes)))
        return kept

    def churn_per_hour(self) -> float:
        horizon = self._wall_clock() - CHURN_WINDOW_S
        while self._change_times and self._change_times[0] < horizon:
            self._change_times.popleft()
        return float(len(self._change_times))

    # --- sessions ending: ExaBGP's adj-rib-out -------------------------------------------------

    def session_changed(self) -> None:
        """A session came up or went down: the switch holds none of our routes (but the stale
        ones), unless ExaBGP replays them, so its adj-rib-out is cleared."""
        self.keep_as_stale()
        self.installed = {}
        if self._announced:
            self.replay_pending = True
            self.forget_soon()

    def forget_soon(self) -> None:
        """Clear ExaBGP's adj-rib-out now, before the session can come back and replay it."""
        idle = self._forgetting is None or self._forgetting.done()
        if self._is_active() and self._link.connected and idle:
            self._forgetting = asyncio.get_running_loop().create_task(self.forget_announced())

    async def forget_announced(self) -> bool:
        async with self.lock:
            return await self.forget_announced_locked()

    async def forget_announced_locked(self) -> bool:
        """Make ExaBGP forget every route it announced on earlier sessions (withdrawing them if
        the session is already up again): then nothing counts as installed, truly. False while
        that is not confirmed; nothing may be programmed then (it could be replayed past the cap)."""
        if not self.replay_pending:
            return True
        try:
            [done] = await self._link.send([clear_adj_rib_out_command(self._switch().neighbor)])
        except ExabgpLinkDown:
            return False
        if not done:
            _m_errors.inc(switch=self._name)
            log.error("switch %s: ExaBGP did not clear its adj-rib-out; programming waits", self._name)
            return False
        self._announced = self.replay_pending = False
        self.installed = {}  # acks of a lost session's last commands may have refilled it
        return True

    async def stop(self) -> None:
        task, self._forgetting = self._forgetting, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- sending -------------------------------------------------------------------------------

    async def end_of_rib_once(self) -> None:
        """Graceful restart: End-of-RIB once the first programming on a session is out, so the
        switch flushes the stale routes topfib did not announce again (ExaBGP sends none by
        itself: manual-eor). Not while ExaBGP may still replay an earlier session's routes."""
        session = self._sessions.info
        if (not self._switch().graceful_restart_s or session.end_of_rib_sent or self.replay_pending
                or not self._sessions.ready_to_program()):
            return
        async with self.lock:
            try:
                results = await self._link.send(end_of_rib_commands(self._switch().neighbor))
            except ExabgpLinkDown:
                return
        if all(results):
            session.end_of_rib_sent = True
            if session is self._sessions.info:  # the switch prunes them a moment later (see held)
                self.stale_until = self._clock() + STALE_PRUNE_S
            log.info("switch %s: End-of-RIB sent (stale routes not announced again leave)", self._name)
        else:
            _m_errors.inc(switch=self._name)
            log.error("switch %s: ExaBGP refused End-of-RIB; retried after the next programming", self._name)

    async def send_steps(self, steps: list[Step]) -> bool:
        """Send ``steps``; apply what ExaBGP acknowledged. False when anything was not done.

        ExaBGP parses a line whole before placing any of it, so ``error`` means none of its
        prefixes was placed; the prefixes of a refused line are sent again one per line, so that
        one prefix ExaBGP refuses cannot hold back the others. Nothing counts as installed but
        the prefixes a ``done`` line names.
        """
        neighbor = self._switch().neighbor
        lines: list[tuple[Step, tuple[str, ...], str]] = [
            (step, prefixes, line) for step in steps
            for prefixes, line in render_step(step, neighbor, COMMAND_CHUNK)
        ]
        session = self._sessions.info
        try:
            results = await self._link.send([line for _, _, line in lines])
        except ExabgpLinkDown:
            return False
        done = [(step, prefixes) for (step, prefixes, _), ok in zip(lines, results, strict=True) if ok]
        refused = [entry for entry, ok in zip(lines, results, strict=True) if not ok]
        retry: list[tuple[Step, tuple[str, ...], str]] = [
            (step, single, line) for step, prefixes, _ in refused if len(prefixes) > 1
            for single, line in render_step(replace(step, prefixes=prefixes), neighbor, 1)
        ]
        failed = [entry for entry in refused if len(entry[1]) == 1]
        if retry and self._link.connected:
            try:
                results = await self._link.send([line for _, _, line in retry])
            except ExabgpLinkDown:
                results = [False] * len(retry)
            done += [(step, single) for (step, single, _), ok in zip(retry, results, strict=True) if ok]
            failed += [entry for entry, ok in zip(retry, results, strict=True) if not ok]
        elif retry:
            failed += retry
        if failed:  # one log line per send: ExaBGP refusing everything must not flood the log
            _m_errors.inc(len(failed), switch=self._name)
            unconfirmed = sum(len(prefixes) for _, prefixes, _ in failed)
            log.error("switch %s: ExaBGP did not confirm %d line(s) of %d prefix(es), the first: %r",
                      self._name, len(failed), unconfirmed, failed[0][2][:200])
        self._apply_acks(done, late=self._sessions.info is not session or session.state != "up")
        if not self._link.connected:
            self._on_link_lost("ExaBGP link lost while programming")
            return False
        return not failed

    def _apply_acks(self, done: list[tuple[Step, tuple[str, ...]]], *, late: bool) -> None:
        """``done`` acknowledged by ExaBGP. ``late``: acked after the session ended (or for an
        earlier one): in ExaBGP's adj-rib-out, to be forgotten before the next programming, never
        on the switch, so never installed."""
        wall_now = self._wall_clock()
        for step, prefixes in done:
            if late:
                if step.action == "announce":
                    self._announced = self.replay_pending = True
                continue
            for prefix in prefixes:
                reason = self._change_reason(step.action, prefix)
                if step.action == "withdraw":
                    if self._installed.pop(prefix, None) is not None:
                        self._installed_tables.remove((prefix,))
                else:
                    assert step.next_hop is not None
                    if prefix not in self._installed:
                        self._installed_tables.add((prefix,))
                    self._installed[prefix] = step.next_hop
                    self._announced = True
                self.changes.append((wall_now, step.action, prefix, step.next_hop or "", reason))
                self._change_times.append(wall_now)
            _m_changes.inc(len(prefixes), switch=self._name, action=step.action)

    def _change_reason(self, action: str, prefix: str) -> str:
        if action == "announce":
            if prefix in self.installed:
                return "next-hop changed"
            selection = self._selection()
            chosen = selection.routes.get(prefix) if selection else None
            return chosen.reason if chosen else "topn"
        with self._rib_lock:
            alive = self._rib.best(prefix) is not None
        return "displaced" if alive else "no live path"

    async def program(self, wanted: Callable[[], Mapping[str, str]]) -> bool:
        """Make the installed routes ``wanted()`` (prefix → next-hop), within the caps; it is
        asked once the program lock is held, so what the request fast path announced while this
        run waited for the lock is in it. True when every line was tried on the session this
        began on (the switch's table complete)."""
        sessions = self._sessions
        async with self.lock:
            if not await self.forget_announced_locked():
                return False
            # Preloaded (file) paths carry no real next-hop: they rank traffic but are never announced.
            desired = {prefix: nh for prefix, nh in wanted().items() if nh not in UNUSABLE_NEXT_HOPS}
            with self._rib_lock:
                changes = plan(desired, self.installed, rib=self._route_view, unusable=UNUSABLE_NEXT_HOPS)
            withdraws = [step for step in changes.steps if step.action == "withdraw"]
            announces = [step for step in changes.steps if step.action == "announce"]
            # Withdraws go first and are answered before any announce, so the switch never holds
            # more than the cap: a refused withdraw stays installed, so it counts as held below.
            session = sessions.info
            if withdraws:
                await self.send_steps(withdraws)
                if sessions.info is not session or not sessions.ready_to_program():
                    return False
            announces = self.within_caps(announces)
        # Announces go out a window at a time; between windows the reactor may withdraw (which
        # only makes room), and each window is checked against the RIB and the caps as they are
        # now (a SIGHUP or an operator override may have lowered one) before it is sent.
        # A refused line (logged and counted by send_steps) does not stop the run: the rest
        # goes out, and End-of-RIB after it.
        for window in _windows(announces, ANNOUNCE_WINDOW_LINES * COMMAND_CHUNK):
            async with self.lock:
                if sessions.info is not session or not sessions.ready_to_program():
                    return False
                await self._refresh_policy()
                now_wanted = wanted()  # the request fast path may have displaced one since
                with self._rib_lock:
                    live = [step for step in (self._still_wanted(step, now_wanted) for step in window)
                            if step.prefixes]
                live = self.within_caps(live)
                if live:
                    await self.send_steps(live)
        return sessions.info is session and sessions.ready_to_program()  # every line was tried

    def _still_wanted(self, step: Step, wanted: Mapping[str, str]) -> Step:
        """``step`` (an announce) without the prefixes no longer ``wanted`` or whose best next-hop
        is no longer its own."""
        kept = []
        for prefix in step.prefixes:
            best = self._route_view.best(prefix)
            if best is not None and best.next_hop == step.next_hop and prefix in wanted:
                kept.append(prefix)
        return step if len(kept) == len(step.prefixes) else replace(step, prefixes=tuple(kept))
