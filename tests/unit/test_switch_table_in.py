"""When the switch's whole table is in (controller/switch/bgp_session/session.py switch_table_in): End-of-RIB
for both families; one family's and no other within SECOND_FAMILY_WAIT_S (a one-family switch);
or ready_max_wait_s after the session came up (a switch that sends none)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from topfib.collector.rib.rib import Rib
from topfib.controller.switch.bgp_session.session import SECOND_FAMILY_WAIT_S, SessionTracker
from topfib.controller.switch.bgp_session.table_readiness import QUIET_CHECK_S


class _NoLink:
    connected = True


def _tracker(tmp_path: Path, clock: list[float]) -> SessionTracker:
    return SessionTracker(Rib(), threading.Lock(), _NoLink(), tmp_path / "size",  # type: ignore[arg-type]
                          is_active=lambda: True, clock=lambda: clock[0], wall_clock=lambda: clock[0],
                          ready_max_wait_s=120.0)


def test_both_families_end_of_rib_is_the_whole_table(tmp_path: Path) -> None:
    clock = [100.0]
    sessions = _tracker(tmp_path, clock)
    sessions.came_up()
    assert not sessions.switch_table_in()
    sessions.end_of_rib("ipv4 unicast")
    assert not sessions.switch_table_in()  # the other family may still come
    sessions.end_of_rib("ipv6 unicast")
    assert sessions.switch_table_in()


def test_a_one_family_switch_is_in_once_the_other_family_stayed_away(tmp_path: Path) -> None:
    clock = [100.0]
    sessions = _tracker(tmp_path, clock)
    sessions.came_up()
    clock[0] += 3.0
    sessions.end_of_rib("ipv4 unicast")
    clock[0] += SECOND_FAMILY_WAIT_S * 0.9
    assert not sessions.switch_table_in()
    clock[0] += SECOND_FAMILY_WAIT_S * 0.1
    assert sessions.switch_table_in()
    sessions.came_up()  # a new session starts over
    assert not sessions.switch_table_in()


def test_without_any_end_of_rib_the_table_counts_in_after_ready_max_wait(tmp_path: Path) -> None:
    clock = [100.0]
    sessions = _tracker(tmp_path, clock)
    sessions.came_up()
    clock[0] += 119.0
    assert not sessions.switch_table_in()
    clock[0] += 1.0
    assert sessions.switch_table_in()


def test_the_quiet_watch_sleeps_until_a_session_comes_up_then_wakes_the_loop_once_ready(
        tmp_path: Path) -> None:
    async def body() -> None:
        clock = [100.0]
        sessions = SessionTracker(Rib(), threading.Lock(), _NoLink(), tmp_path / "size",  # type: ignore[arg-type]
                                  is_active=lambda: True, clock=lambda: clock[0],
                                  wall_clock=lambda: clock[0], ready_quiet_s=1.0, ready_max_wait_s=5.0)
        restarts = 0
        restart = sessions._quiet.restart

        def counted() -> None:
            nonlocal restarts
            restarts += 1
            restart()

        sessions._quiet.restart = counted  # type: ignore[method-assign]
        woken = asyncio.Event()
        watch = asyncio.create_task(sessions.watch_quiet(woken.set))
        await asyncio.sleep(QUIET_CHECK_S * 5)
        assert restarts <= 1  # no session: it waits, no wake-ups (it used to poll every QUIET_CHECK_S)
        sessions.came_up()
        sessions.end_of_rib("ipv4 unicast")
        sessions.end_of_rib("ipv6 unicast")
        clock[0] += 6.0  # past ready_max_wait_s: the table counts as complete
        await asyncio.wait_for(woken.wait(), QUIET_CHECK_S * 20)
        assert sessions.info.ready
        sessions.went_down("test")
        restarts_when_down = restarts
        await asyncio.sleep(QUIET_CHECK_S * 5)
        assert restarts - restarts_when_down <= 1  # asleep again
        watch.cancel()

    asyncio.run(body())


def test_the_session_identity_moves_with_an_up_session_not_with_failed_attempts(tmp_path: Path) -> None:
    """The selection gate's session input: a switch that refuses every connect (ExaBGP retries every
    few seconds: connected, then down) costs no selection; a drop and a new session do."""
    clock = [100.0]
    sessions = _tracker(tmp_path, clock)
    never_up = sessions.identity()
    for _ in range(3):
        clock[0] += 5.0
        sessions.changed_to("connected")
        sessions.went_down("closing connection")
        assert sessions.identity() == never_up
    sessions.came_up()
    first = sessions.identity()
    assert first != never_up
    clock[0] += 5.0
    sessions.went_down("hold timer expired")
    assert sessions.identity() == never_up  # the drop moved it
    sessions.came_up()
    assert sessions.identity() not in (first, never_up)
