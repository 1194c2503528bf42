"""When the switch's table counts as complete on a session that sends no End-of-RIB.

FRR sends End-of-RIB only to peers that advertise graceful restart, which topfib never does, so
there topfib has to judge from the updates alone. A fixed quiet time is not enough: a full table
from a loaded switch can pause for seconds mid-dump, and programming what came in before the
pause fills the FIB with the wrong prefixes, to be churned once the rest arrives. So:

- quiet is measured on the arrival of updates (any path announced or withdrawn), not on best-path
  changes: extra paths for known prefixes are the dump going on too;
- after a session that had a complete table of N paths (a flap, a switch restart, a topfib
  restart: the size is kept in a file), a new table short of :data:`MIN_TABLE_SHARE` × N needs
  :data:`SHORT_TABLE_QUIET_S` of quiet: a table that really shrank (a peer of the switch gone
  meanwhile) is programmed then, a dump that merely paused is not programmed half-way; one that
  reached that share needs the plain quiet only (the FIB is back soon after the table is);
- with no size known (the first session), a dump that already paused for p seconds may pause
  that long again: the quiet needed grows to :data:`PAUSE_FACTOR` × p (the longest wait still
  bounds it).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from topfib.collector.common.safe_files import write_atomically

log = logging.getLogger(__name__)

# Without End-of-RIB for both families, the switch's table counts as complete once no update
# arrived for READY_QUIET_S (or longer, see needed_quiet), and programming starts
# READY_MAX_WAIT_S after the session came up whatever happens.
READY_QUIET_S = 2.0
READY_MAX_WAIT_S = 120.0
# Quiet is observed by checks this far apart; a longer gap (the event loop was busy, e.g. with a
# big selection, and messages may sit unread) adds nothing: a stalled topfib is not a quiet switch.
QUIET_CHECK_S = 0.1
PAUSE_FACTOR = 2.0
MIN_TABLE_SHARE = 0.9
SHORT_TABLE_QUIET_S = 30.0


class QuietClock:
    """How long no update has been seen, by checks at most ``max_gap_s`` apart, and the longest
    such quiet that ended in an update (a pause in the dump) since :meth:`restart`.

    A gap between checks longer than ``max_gap_s`` (the event loop was blocked, so messages from
    ExaBGP may be waiting unread) does not count as quiet; an update resets the count.
    """

    def __init__(self, max_gap_s: float = 3 * QUIET_CHECK_S) -> None:
        self.max_gap_s = max_gap_s
        self.quiet_for = 0.0
        self.longest_pause = 0.0
        self._checked: float | None = None
        self._updates_seen = 0

    def check(self, now: float, updates: int) -> float:
        """Note a check at ``now`` with ``updates`` (a running count) updates so far."""
        if self._checked is None or updates != self._updates_seen:
            if self._checked is not None:
                self.longest_pause = max(self.longest_pause, self.quiet_for)
            self.quiet_for = 0.0
        elif now - self._checked <= self.max_gap_s:
            self.quiet_for += now - self._checked
        self._checked, self._updates_seen = now, updates
        return self.quiet_for

    def restart(self) -> None:
        self.quiet_for, self.longest_pause, self._checked = 0.0, 0.0, None


def needed_quiet(quiet_s: float, longest_pause: float, received: int, known_size: int | None) -> float:
    """Seconds without an update after which a table of ``received`` paths counts as complete,
    given the longest pause seen in its dump and the size of the last complete table (None:
    unknown). See the module's docstring for why."""
    if known_size is None:
        return max(quiet_s, PAUSE_FACTOR * longest_pause)
    if received < MIN_TABLE_SHARE * known_size:
        return max(quiet_s, SHORT_TABLE_QUIET_S)
    return quiet_s


class KnownTableSize:
    """The size (paths) of the switch's last complete table, kept in a file so that a restarted
    topfib knows it too. A missing or unreadable file means unknown (the plain quiet rule)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.paths: int | None = None
        with contextlib.suppress(OSError, ValueError):
            value = int(path.read_text(encoding="ascii").strip())
            if value > 0:
                self.paths = value

    def remember(self, paths: int) -> None:
        if paths <= 0 or paths == self.paths:
            return
        self.paths = paths
        try:
            write_atomically(self.path, f"{paths}\n".encode("ascii"))
        except OSError as exc:  # kept in memory: only a topfib restart loses it
            log.warning("cannot save the table size to %s: %s", self.path, exc)
