"""When a loop iteration selects: a pure decision on plain values (see :func:`selection_delay`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from topfib.controller.selection.gate import SelectionGate

MAX_DEFER_S = 10.0  # longest a loop iteration's selection waits for the reactor
TABLE_WAIT_SELECT_S = 5.0  # selection period while the switch's table is still coming in
SLOW_SELECTION_S = 0.25  # from here on selection takes at most half the event loop's time
BUSY_RECHECK_S = 0.1  # a loop iteration deferred for the reactor looks again this soon


def selection_delay(*, since: float, session_up: bool, table_in: bool, selected_on_partial_table: bool,
                    selection_cost: float, reactor_busy: bool) -> float:
    """Seconds this iteration waits (0: select now), ``since`` seconds after the last selection
    began. Selection blocks the event loop (ExaBGP's messages and acks, the reactor, the API all
    wait behind it): it runs when worth it.

    - At most half the time once it is slow: after a selection (and its snapshots) that took
      c = ``selection_cost`` ≥ SLOW_SELECTION_S seconds, the next one waits until 2c after the
      last began (a 20k-pin selection can take seconds; a quick one answers every wake-up).
    - Not while the reactor withdraws (``reactor_busy``: the program lock is taken, or a big
      batch ended a moment ago) or a burst of changes to installed prefixes settles: its result
      could not be programmed before that anyway.
    - Only every TABLE_WAIT_SELECT_S while the switch's table is still coming in (``session_up``
      and not ``table_in``: nothing can be programmed; the dashboard still gets a view), and at
      once when the table is in (``selected_on_partial_table``: the last one ran before that).
    The last two never for longer than MAX_DEFER_S / TABLE_WAIT_SELECT_S.
    """
    if session_up and not table_in:
        return max(0.0, TABLE_WAIT_SELECT_S - since)
    fresh_table = table_in and selected_on_partial_table  # select on the full table now
    if selection_cost >= SLOW_SELECTION_S and since < 2 * selection_cost and not fresh_table:
        return 2 * selection_cost - since
    return min(BUSY_RECHECK_S, MAX_DEFER_S - since) if reactor_busy and since < MAX_DEFER_S else 0.0


class SelectionSchedule:
    """The loop's selection timing: when the last one began and what it cost, the deferred
    iteration's return, and the gate that skips a selection when no input changed."""

    def __init__(self, clock: Callable[[], float], wake: Callable[[], None],
                 gate: SelectionGate | None = None) -> None:
        self._clock = clock
        self._wake = wake
        self.gate = gate or SelectionGate()
        self.last_selection = clock()
        self.selection_cost = 0.0  # seconds the last selection (with its snapshots) took
        self._programming_time = 0.0  # of which waiting on ExaBGP: the loop was free
        self._selected_on_partial_table = True
        self._rewake: asyncio.TimerHandle | None = None  # a deferred iteration's return

    def delay(self, now: float, *, session_up: bool, table_in: bool, reactor_busy: bool) -> float:
        """:func:`selection_delay` now."""
        return selection_delay(since=now - self.last_selection, session_up=session_up, table_in=table_in,
                               selected_on_partial_table=self._selected_on_partial_table,
                               selection_cost=self.selection_cost, reactor_busy=reactor_busy)

    def defer(self, delay: float) -> None:
        """Come back in ``delay`` seconds (a wake-up is never lost)."""
        self.cancel()
        self._rewake = asyncio.get_running_loop().call_later(delay, self._wake)

    def cancel(self) -> None:
        if self._rewake is not None:
            self._rewake.cancel()

    def began(self, now: float, *, table_in: bool) -> None:
        self.last_selection = now
        self._selected_on_partial_table = not table_in
        self._programming_time = 0.0

    def programmed(self, seconds: float) -> None:
        self._programming_time = seconds

    def ended(self, began: float) -> None:
        self.selection_cost = self._clock() - began - self._programming_time
