"""The request fast path (controller/switch/fast_request.py) with the fake switch: a new request's prefix is
announced before the next selection when that is safe, the cap holds at every command, pins are never
displaced, a prefix with more-specifics waits for the full selection, and that selection agrees."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import topfib.controller.switch.controller as switch_controller
from tests.unit.test_switch_controller import NEIGHBOR, Switch, _announce, _eor, _state, _wait
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.controller.config import TopfibConfig
from topfib.controller.selection.select import select
from topfib.controller.state.store import MemoryStore, Pin, RequestEntry
from topfib.controller.switch.controller import SwitchController

NH1, NH2 = "192.168.50.11", "192.168.50.12"
COVER, INSIDE = "16.0.0.0/16", "16.0.9.0/24"  # INSIDE via another next hop: the cover's unit needs it
P = [f"16.1.{i}.0/24" for i in range(6)]
WALL = 1_000_000.0


def _controller(tmp_path: Path, cap_v4: int) -> SwitchController:
    config = TopfibConfig.model_validate({
        "switch": [{
            "name": "sw1", "neighbor": NEIGHBOR, "local_address": "10.99.0.1", "local_as": 65000,
            "peer_as": 65000, "fib_cap_ipv4": cap_v4, "fib_cap_ipv6": 2, "min_dwell_s": 0,
        }],
    })
    rates = PrefixRates(fast_half_life_s=30.0, slow_half_life_s=3600.0)
    ctl = SwitchController(config.switch[0], config, rates, MemoryStore(), threading.Lock(), tmp_path / "run",
                           ready_quiet_s=2.0, wall_clock=lambda: WALL)
    ctl.active = True  # as if ExaBGP ran: the test plays it through the link
    return ctl


def _fib_sizes(commands: list[str]) -> list[int]:
    """The switch's FIB size after each command topfib sent (announces and withdraws)."""
    fib: set[str] = set()
    sizes = []
    for command in commands:
        prefixes = re.findall(r"unicast (\S+)", command)
        if " announce " in command:
            fib.update(prefixes)
        elif " withdraw " in command:
            fib.difference_update(prefixes)
        sizes.append(len(fib))
    return sizes


async def _request(ctl: SwitchController, ip: str, requested_at: float = WALL) -> None:
    await ctl.store.add_requests(
        [RequestEntry(switch="sw1", ip=ip, ap="ap1", requested_at=requested_at, expires_at=WALL + 600)],
        {"sw1": 10}, WALL,
    )


async def _pin_and_two_topn(ctl: SwitchController) -> float:
    """P[0] pinned, P[1] and P[2] (the lowest) TopN, one selection; returns the rates' clock."""
    await ctl.store.set_pin(Pin(prefix=P[0], by="op", since=0.0))
    now = time.monotonic()
    ctl.rates.add("sw1", P[1], 9e6, 6e3, now)
    ctl.rates.add("sw1", P[2], 1e6, 7e2, now)  # the lowest TopN route
    await ctl.tick()
    return now


def _run(tmp_path: Path, cap_v4: int, body: Any) -> None:
    """Session up with P[0..5] via NH1, COVER via NH1 and INSIDE via NH2; ``body(ctl, switch, calls)``
    where ``calls`` holds, per selection, the commands sent before it."""
    async def scenario() -> None:
        ctl = _controller(tmp_path, cap_v4)
        await ctl.start(active=False)
        ctl.active = True
        switch = await Switch.connect(ctl.link.socket_path)
        calls: list[list[str]] = []
        real_select = select

        def counting_select(**kwargs: Any) -> Any:
            calls.append(list(switch.commands))
            return real_select(**kwargs)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(switch_controller, "select", counting_select)
            try:
                await switch.say(_state("up"), _announce(NH1, *[(p, 1) for p in (*P, COVER)]),
                                 _announce(NH2, (INSIDE, 1)), _eor("ipv4"), _eor("ipv6"))
                assert await _wait(ctl.ready_to_program)
                await body(ctl, switch, calls)
            finally:
                await switch.close()
                await ctl.stop()

    asyncio.run(scenario())


def test_a_request_displaces_the_lowest_topn_route_before_a_selection_which_agrees(tmp_path: Path) -> None:
    async def body(ctl: SwitchController, switch: Switch, calls: list[list[str]]) -> None:
        await _pin_and_two_topn(ctl)
        assert ctl.installed == {P[0]: NH1, P[1]: NH1, P[2]: NH1}
        calls.clear()
        await _request(ctl, "16.1.4.9")
        await ctl.tick()
        # the withdraw of P[2], then the announce of P[4], without a selection (it keeps its period)
        assert calls == []
        withdraw = next(i for i, c in enumerate(switch.commands) if " withdraw " in c and P[2] in c)
        announce = next(i for i, c in enumerate(switch.commands) if " announce " in c and P[4] in c)
        assert withdraw < announce
        assert max(_fib_sizes(switch.commands)) <= 3  # never above the cap, at any command
        assert ctl.installed == {P[0]: NH1, P[1]: NH1, P[4]: NH1}
        ctl.schedule.last_selection -= ctl.switch.loop_period_s  # the period is over
        before_selection = list(switch.commands)
        await ctl.tick()
        # the selection agreed: it wanted what the fast path installed and sent nothing more
        assert len(calls) == 1
        assert ctl.selection is not None and ctl.selection.desired() == ctl.installed
        routes = ctl.selection.routes
        assert routes[P[4]].reason == "request" and routes[P[0]].reason == "pinned"
        assert len(switch.commands) == len(before_selection)

    _run(tmp_path, 3, body)


def test_pins_and_requests_are_never_displaced_the_full_selection_answers(tmp_path: Path) -> None:
    async def body(ctl: SwitchController, switch: Switch, calls: list[list[str]]) -> None:
        await ctl.store.set_pin(Pin(prefix=P[0], by="op", since=0.0))
        await ctl.store.set_pin(Pin(prefix=P[1], by="op", since=0.0))
        await _request(ctl, "16.1.2.9", WALL - 10)
        await ctl.tick()
        assert ctl.installed == {P[0]: NH1, P[1]: NH1, P[2]: NH1}
        start = len(switch.commands)
        calls.clear()
        await _request(ctl, "16.1.5.9")  # cap full of pins and an older request: nothing may go
        await ctl.tick()
        assert len(calls) == 1 and len(calls[0]) == start  # the fast path sent nothing
        assert not any(P[0] in c or P[1] in c for c in switch.commands[start:])  # pins untouched
        assert ctl.selection is not None
        answers = {a.ip: a.status for a in ctl.selection.requests}
        assert answers["16.1.5.9"] == "installed" and answers["16.1.2.9"] == "rejected"  # newest first
        # ...by the full selection, which does displace the older request (withdraw before announce)
        assert max(_fib_sizes(switch.commands)) <= 3
        assert ctl.installed == {P[0]: NH1, P[1]: NH1, P[5]: NH1}

    _run(tmp_path, 3, body)


def test_a_request_whose_prefix_has_more_specifics_waits_for_the_full_selection(tmp_path: Path) -> None:
    async def body(ctl: SwitchController, switch: Switch, calls: list[list[str]]) -> None:
        await ctl.store.set_pin(Pin(prefix=P[0], by="op", since=0.0))
        await ctl.tick()
        calls.clear()
        start = len(switch.commands)
        await _request(ctl, "16.0.200.1")  # COVER: INSIDE must come with it (no cache hiding)
        await ctl.tick()
        assert len(calls) == 1 and len(calls[0]) == start  # nothing was sent before the selection
        assert ctl.installed == {P[0]: NH1, COVER: NH1, INSIDE: NH2}
        assert ctl.selection is not None and ctl.selection.routes[INSIDE].reason == "dependency"

    _run(tmp_path, 4, body)


def test_no_room_and_no_topn_route_to_displace_leaves_the_request_to_the_selection(tmp_path: Path) -> None:
    async def body(ctl: SwitchController, switch: Switch, calls: list[list[str]]) -> None:
        await ctl.store.set_pin(Pin(prefix=P[0], by="op", since=0.0))
        now = time.monotonic()
        ctl.rates.add("sw1", COVER, 9e6, 6e3, now)  # a TopN route with a dependency: not displaced
        await ctl.tick()
        assert ctl.installed == {P[0]: NH1, COVER: NH1, INSIDE: NH2}
        calls.clear()
        start = len(switch.commands)
        await _request(ctl, "16.1.3.9")
        await ctl.tick()
        assert len(calls) == 1 and len(calls[0]) == start  # nothing was sent before the selection
        assert max(_fib_sizes(switch.commands)) <= 3
        assert ctl.installed[P[0]] == NH1

    _run(tmp_path, 3, body)


def test_a_cap_lowered_since_the_last_selection_holds_for_the_fast_path(tmp_path: Path) -> None:
    async def body(ctl: SwitchController, switch: Switch, calls: list[list[str]]) -> None:
        await _pin_and_two_topn(ctl)
        assert ctl.installed == {P[0]: NH1, P[1]: NH1, P[2]: NH1}  # cap 4: one free
        await ctl.store.update_config_overrides("sw1", {"fib_cap_ipv4": 3}, set())  # an operator's PUT
        calls.clear()
        start = len(switch.commands)
        await _request(ctl, "16.1.4.9")
        await ctl.tick()
        assert max(_fib_sizes(switch.commands)[start:]) <= 3  # the new cap, at every command
        assert len(ctl.installed) == 3 and P[4] in ctl.installed and P[2] not in ctl.installed
        withdraw = next(i for i, c in enumerate(switch.commands) if " withdraw " in c and P[2] in c)
        announce = next(i for i, c in enumerate(switch.commands) if " announce " in c and P[4] in c)
        assert withdraw < announce and calls == []  # by the fast path, under the new cap

    _run(tmp_path, 4, body)


def test_a_request_arriving_is_announced_by_its_own_task_without_waiting_for_a_tick(tmp_path: Path) -> None:
    async def body(ctl: SwitchController, switch: Switch, calls: list[list[str]]) -> None:
        await ctl.store.set_pin(Pin(prefix=P[0], by="op", since=0.0))
        await ctl.tick()
        calls.clear()
        ctl.wake_event.clear()  # the service's loop clears it before each tick
        await _request(ctl, "16.1.4.9")
        ctl.request_arrived()  # what the API does after storing it; no tick runs here
        assert await _wait(lambda: P[4] in ctl.installed)
        assert calls == [] and not ctl.wake_event.is_set()  # all taken: the selection keeps its period

    _run(tmp_path, 3, body)


def test_a_request_announced_while_a_selection_reads_its_inputs_is_kept_by_that_selection(
        tmp_path: Path) -> None:
    """The selection's inputs lack the request: its programming must not withdraw what the fast
    path announced meanwhile (a flap), and the cap holds at every command."""
    async def body(ctl: SwitchController, switch: Switch, calls: list[list[str]]) -> None:
        now = await _pin_and_two_topn(ctl)
        assert ctl.installed == {P[0]: NH1, P[1]: NH1, P[2]: NH1}
        start = len(switch.commands)
        read = ctl.inputs.read

        async def read_then_a_request_arrives(wall_now: float) -> Any:
            inputs = await read(wall_now)
            await _request(ctl, "16.1.4.9")
            assert await ctl.fast_path.admit()  # as the request task would, meanwhile
            return inputs

        ctl.inputs.read = read_then_a_request_arrives  # type: ignore[method-assign]
        ctl.schedule.last_selection -= ctl.switch.loop_period_s  # the period is over
        ctl.rates.add("sw1", P[3], 5e6, 3e3, now)  # a changed input: the selection runs
        await ctl.tick()
        assert len(calls) == 2  # that selection ran (after the first one)
        sent = switch.commands[start:]
        assert not any(" withdraw " in c and P[4] in c for c in sent)  # kept: no flap
        assert P[4] in ctl.installed
        assert max(_fib_sizes(switch.commands)) <= 3  # never above the cap, at any command
        assert ctl.selection is not None and ctl.selection.routes[P[4]].reason == "request"

    _run(tmp_path, 3, body)


def test_two_fast_admissions_between_selections_count_the_first_one(tmp_path: Path) -> None:
    async def body(ctl: SwitchController, switch: Switch, calls: list[list[str]]) -> None:
        await _pin_and_two_topn(ctl)
        assert ctl.installed == {P[0]: NH1, P[1]: NH1, P[2]: NH1}  # cap 4: one free
        # the selection was indexed as it was made, not on the first request's way
        assert ctl.selection is not None and ctl.fast_path._routes_index._routes is ctl.selection.routes
        calls.clear()
        await _request(ctl, "16.1.4.9")
        await ctl.tick()  # the free slot
        assert ctl.installed == {P[0]: NH1, P[1]: NH1, P[2]: NH1, P[4]: NH1} and calls == []
        await _request(ctl, "16.1.5.9")
        await ctl.tick()
        # the table is full with the first admission: the lowest TopN route goes, still no selection
        # (counted as free, the announce was trimmed to the cap and the request waited for one)
        assert calls == []
        assert ctl.installed == {P[0]: NH1, P[1]: NH1, P[4]: NH1, P[5]: NH1}
        assert max(_fib_sizes(switch.commands)) <= 4

    _run(tmp_path, 4, body)


def test_a_request_served_by_a_topn_route_keeps_it_against_a_later_fast_admission(tmp_path: Path) -> None:
    async def body(ctl: SwitchController, switch: Switch, calls: list[list[str]]) -> None:
        await _pin_and_two_topn(ctl)  # cap 3: P0 pinned, P1 and P2 (the lowest) TopN, all installed
        assert ctl.installed == {P[0]: NH1, P[1]: NH1, P[2]: NH1}
        calls.clear()
        await _request(ctl, "16.1.2.9")  # a user inside P2
        assert await ctl.fast_path.admit()  # placed already: the selection keeps its period
        assert ctl.selection is not None and ctl.selection.routes[P[2]].reason == "request"
        await _request(ctl, "16.1.4.9", requested_at=WALL + 1)
        assert await ctl.fast_path.admit()
        assert calls == []  # no selection ran
        assert ctl.installed == {P[0]: NH1, P[2]: NH1, P[4]: NH1}  # P1 made room, not P2

    _run(tmp_path, 3, body)


def test_a_full_switch_withdraws_a_route_the_selection_dropped_not_one_it_wants(tmp_path: Path) -> None:
    async def body(ctl: SwitchController, switch: Switch, calls: list[list[str]]) -> None:
        await _pin_and_two_topn(ctl)  # cap 3: P0 pinned, P1 and P2 (the lowest) TopN, all installed
        assert ctl.selection is not None and ctl.installed == {P[0]: NH1, P[1]: NH1, P[2]: NH1}
        # a selection dropped P1; its programming run (P1's withdraw) has yet to come
        routes = {prefix: route for prefix, route in ctl.selection.routes.items() if prefix != P[1]}
        ctl.selection = dataclasses.replace(ctl.selection, routes=routes)
        await _request(ctl, "16.1.4.9")
        assert await ctl.fast_path.admit()
        assert max(_fib_sizes(switch.commands)) <= 3
        assert ctl.installed == {P[0]: NH1, P[2]: NH1, P[4]: NH1}  # P2, still wanted, stays
        assert set(ctl.selection.desired()) == {P[0], P[2], P[4]}

    _run(tmp_path, 3, body)
