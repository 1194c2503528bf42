"""The BGP session with one switch, and whether its table is complete enough to program.

:class:`SessionTracker` holds the current :class:`SessionInfo` (replaced whole at every up/down,
so a programming run can tell that its session ended), counts the switch's route updates for
:class:`QuietClock`, remembers the table size across sessions (:class:`KnownTableSize`) and
decides :meth:`SessionTracker.ready_to_program`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from topfib.collector.rib.rib import Rib
from topfib.controller.exabgp.commands import SESSION_FAMILIES
from topfib.controller.exabgp.link import ExabgpLink
from topfib.controller.switch.bgp_session.table_readiness import (
    QUIET_CHECK_S,
    READY_MAX_WAIT_S,
    READY_QUIET_S,
    KnownTableSize,
    QuietClock,
    needed_quiet,
)

# After the switch's End-of-RIB for one family, how long the other's may take to follow (BIRD sends
# them apart by up to a few seconds to a restarted peer; a switch carrying one family sends one).
SECOND_FAMILY_WAIT_S = 10.0


@dataclass(slots=True)
class SessionInfo:
    state: str = "down"
    reason: str = ""  # why it went down last (ExaBGP's words), "" when up or never up
    since: float | None = None
    up_at: float | None = None  # monotonic time the session came up
    eor_families: set[str] = field(default_factory=set)
    first_eor_at: float | None = None  # monotonic time of the switch's first End-of-RIB on it
    ready: bool = False  # the switch's table was complete once: programming may go on
    end_of_rib_sent: bool = False  # graceful restart: topfib's End-of-RIB went out on this session

    @property
    def every_family_ended(self) -> bool:
        """The switch sent End-of-RIB for every family of the session."""
        return self.eor_families.issuperset(SESSION_FAMILIES)


def table_complete(info: SessionInfo, now: float, quiet_for: float, *,
                   quiet_s: float = READY_QUIET_S, max_wait_s: float = READY_MAX_WAIT_S) -> bool:
    """Whether the switch has sent its whole table on the session ``info`` describes.

    End-of-RIB for both families says so; without it, ``quiet_for`` (seconds observed without an
    update, see :class:`QuietClock`) reaching ``quiet_s`` (see :func:`needed_quiet`), or
    ``max_wait_s`` after the session came up.
    """
    if info.state != "up" or info.up_at is None:
        return False
    if info.every_family_ended:
        return True
    return now - info.up_at >= max_wait_s or quiet_for >= quiet_s


class SessionTracker:
    """The session's state and the switch table's readiness (event loop only)."""

    def __init__(
        self,
        rib: Rib,
        rib_lock: threading.Lock,
        link: ExabgpLink,
        table_size_path: Path,
        *,
        is_active: Callable[[], bool],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        ready_quiet_s: float = READY_QUIET_S,
        ready_max_wait_s: float = READY_MAX_WAIT_S,
    ) -> None:
        self._rib = rib
        self._rib_lock = rib_lock
        self._link = link
        self._is_active = is_active
        self._clock = clock
        self._wall_clock = wall_clock
        self._ready_quiet_s = ready_quiet_s
        self._ready_max_wait_s = ready_max_wait_s
        self.info = SessionInfo()
        self.updates = 0  # route updates from ExaBGP so far (a running count, for QuietClock)
        self.lost_at: float | None = None  # wall clock of the session loss that left routes stale
        self._quiet = QuietClock()
        self._known_size = KnownTableSize(table_size_path)
        self._session_up = asyncio.Event()  # wakes watch_quiet, which sleeps while nothing is awaited

    def came_up(self) -> None:
        """A new session is up: its table starts to come in."""
        self.info = SessionInfo(state="up", since=self._wall_clock(), up_at=self._clock())
        self.lost_at = None
        self._quiet.restart()
        self._session_up.set()

    def went_down(self, reason: str) -> None:
        """The session is down (or ExaBGP is gone): the next one starts from nothing."""
        if self.info.ready:  # its table was complete: the next session's should be as big
            with self._rib_lock:
                self.remember_table_size_locked()
        if self.lost_at is None:  # the switch's restart time runs from the first loss
            self.lost_at = self._wall_clock()
        self.info = SessionInfo(state="down", reason=reason, since=self._wall_clock())

    def lost_before(self, at: float) -> None:
        """The session was lost at ``at`` (wall clock), before this controller took over."""
        self.lost_at = at

    def count_updates(self, updates: int) -> None:
        self.updates += updates

    def end_of_rib(self, family: str) -> None:
        """The switch's End-of-RIB for ``family`` on the current session."""
        self.info.eor_families.add(family)
        if self.info.first_eor_at is None:
            self.info.first_eor_at = self._clock()

    def changed_to(self, state: str) -> None:
        """A state other than up or down (e.g. connected)."""
        self.info.state = state
        self.info.since = self._wall_clock()

    def remember_table_size_locked(self) -> None:
        """Keep the complete table's size for the next session's readiness (rib_lock held)."""
        self._known_size.remember(self.table_paths_locked())

    def table_paths_locked(self) -> int:
        """Paths the switch sent on its session(s), the preloaded file's not counted (rib_lock held)."""
        preload = self._rib.preload_session
        return sum(n for session, n in self._rib.session_path_counts().items() if session != preload)

    def identity(self) -> tuple[bool, float | None]:
        """Which up session this is, as the selection gate sees it: a drop changes it (the RIB
        loses the session's paths); the attempts of a session that never comes up (connect,
        fail, every few seconds) do not, so they cost no selection."""
        info = self.info
        return (True, info.since) if info.state == "up" else (False, None)

    def ready_to_program(self) -> bool:
        """Active, session up, and the switch's table complete (see :func:`table_complete`)."""
        info = self.info
        if not self._is_active() or info.state != "up" or not self._link.connected:
            return False
        if not info.ready:
            self._quiet.check(self._clock(), self.updates)  # an update since the last check counts now
            with self._rib_lock:
                received = self.table_paths_locked()
            quiet_s = needed_quiet(self._ready_quiet_s, self._quiet.longest_pause, received,
                                   self._known_size.paths)
            info.ready = table_complete(info, self._clock(), self._quiet.quiet_for,
                                        quiet_s=quiet_s, max_wait_s=self._ready_max_wait_s)
        return info.ready

    def switch_table_in(self) -> bool:
        """Whether the switch has sent its whole table on this session: its End-of-RIB for both
        families; for one family, SECOND_FAMILY_WAIT_S after it without the other's (a switch
        carrying one family never sends the other's); else ``ready_max_wait_s`` since the session
        came up (a switch that sends none). Stricter than :meth:`ready_to_program`, whose quiet
        rule may judge complete a table the switch still holds back (BIRD, to a restarted peer,
        for ~3 s)."""
        info = self.info
        if info.every_family_ended:
            return True
        now = self._clock()
        if info.first_eor_at is not None and now - info.first_eor_at >= SECOND_FAMILY_WAIT_S:
            return True
        return info.up_at is not None and now - info.up_at >= self._ready_max_wait_s

    async def watch_quiet(self, wake: Callable[[], None]) -> None:
        """Measure how long the switch's table has been quiet while the session waits for it."""
        while True:
            if self.info.state != "up" or self.info.ready:
                # nothing to measure until a session comes up: sleep (an idle switch costs no wake-ups)
                self._quiet.restart()
                self._session_up.clear()
                await self._session_up.wait()
                continue
            await asyncio.sleep(QUIET_CHECK_S)
            if self.info.state != "up" or self.info.ready:
                continue
            self._quiet.check(self._clock(), self.updates)
            if self.ready_to_program():
                wake()
