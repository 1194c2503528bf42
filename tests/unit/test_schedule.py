"""The selection-delay decision (controller/switch/schedule.py), on plain values."""

from __future__ import annotations

from topfib.controller.switch.schedule import (
    BUSY_RECHECK_S,
    MAX_DEFER_S,
    TABLE_WAIT_SELECT_S,
    selection_delay,
)


def _delay(since: float, *, session_up: bool = True, table_in: bool = True, partial: bool = False,
           cost: float = 0.01, busy: bool = False) -> float:
    return selection_delay(since=since, session_up=session_up, table_in=table_in,
                           selected_on_partial_table=partial, selection_cost=cost, reactor_busy=busy)


def test_a_quick_selection_on_a_complete_table_runs_at_once() -> None:
    assert _delay(0.0) == 0.0


def test_while_the_table_comes_in_selection_runs_every_table_wait_period() -> None:
    assert _delay(1.0, table_in=False) == TABLE_WAIT_SELECT_S - 1.0
    assert _delay(TABLE_WAIT_SELECT_S + 1, table_in=False) == 0.0
    assert _delay(1.0, table_in=False, session_up=False) == 0.0  # no session: nothing to wait for


def test_a_slow_selection_takes_at_most_half_the_loop_unless_the_table_just_came_in() -> None:
    assert _delay(0.25, cost=0.5) == 0.75
    assert _delay(1.0, cost=0.5) == 0.0
    assert _delay(0.25, cost=0.5, partial=True) == 0.0


def test_a_busy_reactor_defers_selection_but_never_past_max_defer() -> None:
    assert _delay(1.0, busy=True) == BUSY_RECHECK_S
    assert abs(_delay(MAX_DEFER_S - 0.05, busy=True) - 0.05) < 1e-9
    assert _delay(MAX_DEFER_S, busy=True) == 0.0
