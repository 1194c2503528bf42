"""Races between the request fast path (its own task) and a selection's programming: room the selection
has claimed, a programming run's later windows, a selection reading its inputs meanwhile."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_switch_controller import Switch
from tests.unit.test_switch_controller_fast_request import (
    COVER,
    INSIDE,
    NH1,
    NH2,
    P,
    _pin_and_two_topn,
    _request,
    _run,
)
from topfib.controller.state.store import Pin
from topfib.controller.switch.controller import SwitchController


def _states(commands: list[str]) -> list[dict[str, str]]:
    fib: dict[str, str] = {}
    out = []
    for command in commands:
        prefixes = re.findall(r"unicast (\S+)", command)
        hop = re.search(r"next-hop (\S+)", command)
        for prefix in prefixes:
            if " announce " in command:
                fib[prefix] = hop.group(1) if hop else "?"
            else:
                fib.pop(prefix, None)
        out.append(dict(fib))
    return out


def test_late_admission_merged_on_a_full_selection_makes_it_desire_more_than_the_cap(tmp_path: Path) -> None:
    """A request admitted while the selection reads its inputs is merged on top of a full
    selection that re-took the displaced P2: cap+1 desired (only within_caps keeps the switch in)."""
    async def body(ctl: SwitchController, switch: Switch, calls: list[list[str]]) -> None:
        await ctl.store.set_pin(Pin(prefix=P[0], by="op", since=0.0))
        now = time.monotonic()
        ctl.rates.add("sw1", P[1], 9e6, 6e3, now)
        ctl.rates.add("sw1", P[2], 1e6, 7e2, now)
        ctl.rates.add("sw1", P[3], 5e6, 3e3, now)
        await ctl.tick()
        assert ctl.installed == {P[0]: NH1, P[1]: NH1, P[2]: NH1, P[3]: NH1}
        read = ctl.inputs.read

        async def read_then_a_request_arrives(wall_now: float) -> Any:
            inputs = await read(wall_now)
            await _request(ctl, "16.1.4.9")
            assert await ctl.fast_path.admit()  # the request task, during this await
            return inputs

        ctl.inputs.read = read_then_a_request_arrives  # type: ignore[method-assign]
        ctl.schedule.last_selection -= ctl.switch.loop_period_s
        await ctl.tick()
        assert ctl.selection is not None
        assert len(ctl.selection.desired()) <= 4, ctl.selection.desired()  # cap 4

    _run(tmp_path, 4, body)


def test_fast_path_takes_room_a_programming_run_reserved_between_windows(tmp_path: Path) -> None:
    """A programming run announces COVER in one window and INSIDE (its dependency, other next
    hop) in the next; between them the program lock is free and the request task counts the
    slot INSIDE needs as free room: INSIDE is then trimmed by within_caps, COVER stays alone."""
    import topfib.controller.switch.programmer as programmer_module

    async def body(ctl: SwitchController, switch: Switch, calls: list[list[str]]) -> None:
        await ctl.store.set_pin(Pin(prefix=P[0], by="op", since=0.0))
        await ctl.tick()
        assert ctl.installed == {P[0]: NH1}
        real_send = ctl.programmer.send_steps

        async def send(steps: Any) -> bool:
            if any(COVER in step.prefixes for step in steps):  # a request arrives meanwhile
                await _request(ctl, "16.1.4.9")
                ctl.request_arrived()
            return await real_send(steps)

        ctl.programmer.send_steps = send  # type: ignore[method-assign]
        ctl.schedule.last_selection -= ctl.switch.loop_period_s
        ctl.rates.add("sw1", COVER, 9e7, 6e4, time.monotonic())
        await ctl.tick()
        await asyncio.sleep(0.2)  # the request task settles
        assert max(len(s) for s in _states(switch.commands)) <= 3
        # once the run and the fast path are done, COVER is never left without INSIDE
        assert COVER not in ctl.installed or ctl.installed.get(INSIDE) == NH2, ctl.installed

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(programmer_module, "ANNOUNCE_WINDOW_LINES", 1)
        patch.setattr(programmer_module, "COMMAND_CHUNK", 1)
        _run(tmp_path, 3, body)


def test_fast_path_admitting_between_select_and_program_over_fills_the_selection(tmp_path: Path) -> None:
    """The selection fills the free room with COVER + INSIDE; before its programming takes the
    lock (until_settled awaits) the request task sees that room free (installed only) and adds a
    request to that very selection: cap+1 desired, and within_caps trims INSIDE (NH2 sorts last)."""
    async def body(ctl: SwitchController, switch: Switch, calls: list[list[str]]) -> None:
        await ctl.store.set_pin(Pin(prefix=P[0], by="op", since=0.0))
        await ctl.tick()
        real_settled = ctl.reactor.until_settled

        async def settled() -> None:
            await _request(ctl, "16.1.4.9")
            ctl.request_arrived()
            await asyncio.sleep(0.1)  # the request task runs in this await
            await real_settled()

        ctl.reactor.until_settled = settled  # type: ignore[method-assign]
        ctl.schedule.last_selection -= ctl.switch.loop_period_s
        ctl.rates.add("sw1", COVER, 9e7, 6e4, time.monotonic())
        await ctl.tick()
        assert ctl.selection is not None
        over = len(ctl.selection.desired()) > 3
        assert COVER not in ctl.installed or ctl.installed.get(INSIDE) == NH2, ctl.installed
        assert not over, ctl.selection.desired()

    _run(tmp_path, 3, body)


def test_a_selection_made_during_the_victims_withdraw_decides_what_the_fast_path_announces(
        tmp_path: Path) -> None:
    """While the victim's withdraw is out, two new pins take the room and a selection answers the
    request 'rejected': the fast path must not force the request into that selection (cap+1
    desired, a pin trimmed), only announce what it placed."""
    async def body(ctl: SwitchController, switch: Switch, calls: list[list[str]]) -> None:
        await _pin_and_two_topn(ctl)  # cap 3: P0 pinned, P1 and P2 TopN
        assert ctl.installed == {P[0]: NH1, P[1]: NH1, P[2]: NH1}
        real_send = ctl.programmer.send_steps
        selecting: list[asyncio.Task[None]] = []

        async def send(steps: Any) -> bool:
            if not selecting and any(step.action == "withdraw" for step in steps):
                await ctl.store.set_pin(Pin(prefix=P[3], by="op", since=0.0))
                await ctl.store.set_pin(Pin(prefix=P[5], by="op", since=0.0))
                before = ctl.selection
                ctl.schedule.last_selection -= ctl.switch.loop_period_s
                selecting.append(asyncio.create_task(ctl._select_and_program(ctl._clock())))
                for _ in range(300):  # until it selected; its programming waits for the lock
                    if ctl.selection is not before:
                        break
                    await asyncio.sleep(0.01)
            return await real_send(steps)

        ctl.programmer.send_steps = send  # type: ignore[method-assign]
        await _request(ctl, "16.1.4.9")
        await ctl.fast_path.admit()
        await selecting[0]
        assert ctl.selection is not None
        assert {a.ip: a.status for a in ctl.selection.requests}["16.1.4.9"] == "rejected"
        assert len(ctl.selection.desired()) <= 3, ctl.selection.desired()
        assert max(len(state) for state in _states(switch.commands)) <= 3
        assert ctl.installed == {P[0]: NH1, P[3]: NH1, P[5]: NH1}

    _run(tmp_path, 3, body)
