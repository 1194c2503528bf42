"""ExaBGP's JSON lines into one switch's RIB, and the session events among them.

The RIB takes every event in order: paths, a session's up/down (drops its paths), and End-of-RIB
(drops the preloaded file paths of that family once the live table is in). Changes to installed
prefixes go to the reactor; session ups and downs to the controller's callbacks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from topfib.collector.rib.events import EndOfRib, Notification, RouteUpdate, SessionState
from topfib.collector.rib.exabgp_json import ExabgpJsonParser
from topfib.collector.rib.rib import Rib, RibChange
from topfib.controller.switch.bgp_session.self_next_hop import SelfNextHopFilter
from topfib.controller.switch.bgp_session.session import SessionTracker

log = logging.getLogger(__name__)


class ExabgpIngest:
    """Applies ExaBGP's messages for one switch (event loop only)."""

    def __init__(
        self,
        name: str,
        rib: Rib,
        rib_lock: threading.Lock,
        parser: ExabgpJsonParser,
        self_next_hops: SelfNextHopFilter,
        sessions: SessionTracker,
        *,
        neighbor: Callable[[], str],
        is_active: Callable[[], bool],
        on_rib_changes: Callable[[list[RibChange]], None],
        on_session_up: Callable[[], None],
        on_session_down: Callable[[str], None],
        wake: Callable[[], None],
    ) -> None:
        self._name = name
        self._rib = rib
        self._rib_lock = rib_lock
        self._parser = parser
        self._self_next_hops = self_next_hops
        self._sessions = sessions
        self._neighbor = neighbor
        self._is_active = is_active
        self._on_rib_changes = on_rib_changes
        self._on_session_up = on_session_up
        self._on_session_down = on_session_down
        self._wake = wake

    def on_message(self, line: str) -> None:
        """One JSON line from ExaBGP (through the bridge)."""
        sessions = self._sessions
        # The parser asks the LPM table whether a prefix is known: under the lock as well.
        with self._rib_lock:
            parsed = self._parser.parse_line(line)
            sessions.count_updates(sum(isinstance(event, RouteUpdate) for event in parsed))
            if sessions.info.ready and any(isinstance(event, SessionState) for event in parsed):
                sessions.remember_table_size_locked()  # before a "down" drops them
            events = self._self_next_hops(parsed)
            changes = self._rib.apply_all(events)
        if changes:
            self._on_rib_changes(changes)
        for event in events:
            if isinstance(event, SessionState):
                self._on_session_state(event)
            elif isinstance(event, EndOfRib):
                sessions.end_of_rib(event.family)
                if sessions.ready_to_program():
                    self._wake()  # the table is in: program now, not at the end of the period
            elif isinstance(event, Notification):
                # ExaBGP's shutdown notice (code 0) after we stopped it is expected: no warning
                ours = event.neighbor is None and event.code == 0 and not self._is_active()
                log.log(logging.INFO if ours else logging.WARNING,
                        "switch %s: BGP notification %s/%s %s", self._name, event.code, event.subcode,
                        event.message)

    def _on_session_state(self, event: SessionState) -> None:
        if event.neighbor != self._neighbor():
            return
        if event.state == "up":
            self._sessions.came_up()
            self._on_session_up()
            log.info("switch %s: BGP session up", self._name)
        elif event.state == "down":
            self._on_session_down(event.reason or "session down")
        else:
            self._sessions.changed_to(event.state)
