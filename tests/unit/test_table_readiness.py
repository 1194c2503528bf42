"""When a switch that sends no End-of-RIB (FRR to a peer without graceful restart) has sent its
whole table: quiet on update arrival, longer after a pause in the dump, and a table much smaller
than the last complete one waits for the rest."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.unit.test_switch_controller import (
    NH1,
    Switch,
    _announce,
    _live_controller,
    _running,
    _state,
    _wait,
)
from topfib.controller.switch.bgp_session.table_readiness import (
    MIN_TABLE_SHARE,
    PAUSE_FACTOR,
    SHORT_TABLE_QUIET_S,
    KnownTableSize,
    QuietClock,
    needed_quiet,
)
from topfib.controller.switch.controller import SwitchController


def test_the_longest_pause_is_the_longest_quiet_an_update_ended() -> None:
    quiet = QuietClock(max_gap_s=0.3)  # a fake clock: the times are the checks'
    quiet.check(0.0, 0)
    for step in range(1, 16):  # 1.5 s without an update, then one arrives
        quiet.check(step * 0.1, 0)
    assert quiet.longest_pause == 0.0  # still quiet: not a pause (yet)
    assert quiet.check(1.6, 1) == 0.0
    assert quiet.longest_pause == pytest.approx(1.5)
    quiet.check(1.7, 1)
    quiet.check(1.8, 2)  # a shorter pause keeps the longest
    assert quiet.longest_pause == pytest.approx(1.5)
    quiet.restart()  # a new session: its dump starts afresh
    assert quiet.longest_pause == 0.0 and quiet.check(5.0, 2) == 0.0


def test_the_quiet_needed_grows_with_the_dumps_pauses_and_for_a_short_table() -> None:
    assert needed_quiet(2.0, 0.0, 1000, None) == 2.0  # nothing known: the plain rule
    assert needed_quiet(2.0, 0.4, 1000, None) == 2.0
    assert needed_quiet(2.0, 1.5, 1000, None) == pytest.approx(PAUSE_FACTOR * 1.5)
    known = 1000
    short = int(MIN_TABLE_SHARE * known) - 1
    assert needed_quiet(2.0, 0.0, short, known) == SHORT_TABLE_QUIET_S
    assert needed_quiet(2.0, 0.0, short + 1, known) == 2.0
    assert needed_quiet(2.0, 0.0, 2 * known, known) == 2.0  # grown: fine
    # the size decides where it is known: a table that reached it is not held back by its pauses
    assert needed_quiet(2.0, 20.0, short, known) == SHORT_TABLE_QUIET_S
    assert needed_quiet(2.0, 20.0, known, known) == 2.0


def test_the_known_table_size_survives_a_restart_and_a_damaged_file_means_unknown(tmp_path: Path) -> None:
    path = tmp_path / "sw1.table-size"
    assert KnownTableSize(path).paths is None
    KnownTableSize(path).remember(3450)
    assert KnownTableSize(path).paths == 3450
    assert not path.with_name("sw1.table-size.tmp").exists()
    for damaged in ("", "many\n", "-5\n", "0\n"):
        path.write_text(damaged)
        assert KnownTableSize(path).paths is None
    unwritable = KnownTableSize(tmp_path / "missing-dir" / "sw1.table-size")
    unwritable.remember(7)  # logged, kept in memory
    assert unwritable.paths == 7


def test_updates_that_change_no_best_path_still_keep_the_table_incomplete(tmp_path: Path) -> None:
    async def scenario() -> None:
        ctl = _live_controller(tmp_path, ready_quiet_s=0.4)
        async with _running(ctl) as switch:
            await switch.say(_state("up"))
            for i in range(6):  # the same path again and again: no best path changes
                await switch.say(_announce(NH1, ("16.0.1.0/24", 1)))
                await asyncio.sleep(0.15)
                assert not ctl.ready_to_program(), f"ready while updates still came ({i})"
            assert await _wait(ctl.ready_to_program, 2.0)

    asyncio.run(scenario())


def _prefixes(count: int) -> list[tuple[str, int]]:
    return [(f"16.0.{i}.0/24", 1) for i in range(count)]


async def _session_with_table(ctl: SwitchController, switch: Switch, paths: list[tuple[str, int]]) -> None:
    await switch.say(_state("up"), _announce(NH1, *paths))
    assert await _wait(ctl.ready_to_program, 3.0)


def test_after_a_restart_half_a_table_then_a_pause_is_not_complete(tmp_path: Path) -> None:
    async def scenario() -> None:
        ctl = _live_controller(tmp_path, ready_quiet_s=0.3)
        async with _running(ctl) as switch:
            await _session_with_table(ctl, switch, _prefixes(20))
            await switch.say(_state("down"))
            assert await _wait(lambda: ctl.session.state == "down")
        assert (tmp_path / "run" / "sw1.table-size").read_text() == "20\n"

        # topfib restarted: the new process knows the table had 20 paths
        ctl = _live_controller(tmp_path, ready_quiet_s=0.3)
        async with _running(ctl) as switch:
            await switch.say(_state("up"), _announce(NH1, *_prefixes(10)))
            await asyncio.sleep(1.0)  # the dump pauses for more than three times the quiet
            assert not ctl.ready_to_program(), "half a table counted as complete"
            began = time.monotonic()
            await switch.say(_announce(NH1, *_prefixes(20)[10:]))
            assert await _wait(ctl.ready_to_program, 5.0)
            # the known size is reached: the plain quiet, not twice the pause
            assert 0.25 <= time.monotonic() - began < PAUSE_FACTOR * 0.9

    asyncio.run(scenario())


def test_on_a_first_session_a_paused_dump_needs_twice_its_pause_of_quiet(tmp_path: Path) -> None:
    async def scenario() -> None:
        ctl = _live_controller(tmp_path, ready_quiet_s=0.6)
        async with _running(ctl) as switch:
            await switch.say(_state("up"), _announce(NH1, *_prefixes(10)))
            await asyncio.sleep(0.5)  # a pause, shorter than the quiet: measured 0.4-0.5 s
            assert not ctl.ready_to_program()
            await switch.say(_announce(NH1, *_prefixes(20)[10:]))
            began = time.monotonic()
            assert await _wait(ctl.ready_to_program, 3.0)
            ready_after = time.monotonic() - began
            assert PAUSE_FACTOR * 0.4 - 0.05 <= ready_after < PAUSE_FACTOR * 0.5 + 0.3, ready_after

    asyncio.run(scenario())
