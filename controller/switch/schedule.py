"""When a loop iteration selects: a pure decision on plain values (see :func:`selection_delay`)."""

from __future__ import annotations

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
