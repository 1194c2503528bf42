"""Warm continuity of one switch's controller: the carried desired FIB stays until a selection is
programmed and no longer than state.max_age_s from its first snapshot; the held prefixes are
handed on only while the switch may still hold them (graceful_restart_s after the session loss)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from tests.unit.test_switch_controller import (
    NEIGHBOR,
    NH1,
    P1,
    P2,
    Switch,
    _announce,
    _eor,
    _running,
    _state,
    _wait,
)
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.controller.config import TopfibConfig
from topfib.controller.selection.model import SelectedRoute, new_route
from topfib.controller.service.warm_keeper import WarmKeeper
from topfib.controller.state.store import MemoryStore, Pin
from topfib.controller.state.warm_state import decode
from topfib.controller.switch.controller import SwitchController

MAX_AGE_S = 600.0
CARRIED_ROUTE = "10.7.0.0/16"


class SessionDropSwitch(Switch):
    """Plays an ExaBGP whose session drops while the first announce is in flight."""

    async def _ack_all(self) -> None:
        while line := await self.reader.readline():
            command = line.decode().strip()
            self.commands.append(command)
            if " announce attributes " in command:
                await self.say(_state("down"))
            await self.say("done")


def _setup(tmp_path: Path, wall: list[float], graceful_restart_s: int = 0,
           ) -> tuple[SwitchController, WarmKeeper]:
    config = TopfibConfig.model_validate({
        "state": {"directory": str(tmp_path / "state"), "max_age_s": MAX_AGE_S},
        "switch": [{
            "name": "sw1", "neighbor": NEIGHBOR, "local_address": "10.99.0.1", "local_as": 65000,
            "peer_as": 65000, "fib_cap_ipv4": 10, "fib_cap_ipv6": 2, "min_dwell_s": 0,
            "graceful_restart_s": graceful_restart_s,
        }],
    })
    rates = PrefixRates(fast_half_life_s=30.0, slow_half_life_s=3600.0)
    ctl = SwitchController(config.switch[0], config, rates, MemoryStore(), threading.Lock(),
                           tmp_path / "run", wall_clock=lambda: wall[0])
    keeper = WarmKeeper(config, rates, ctl.store, wall_clock=lambda: wall[0], clock=time.monotonic)
    keeper.prepare()
    return ctl, keeper


def _carried(taken_at: float) -> dict[str, SelectedRoute]:
    return {CARRIED_ROUTE: new_route(CARRIED_ROUTE, NH1, "topn", taken_at, 0.0)}


def test_the_carried_fib_stays_when_programming_did_not_complete(tmp_path: Path) -> None:
    async def scenario() -> None:
        wall = [1_000_000.0]
        ctl, _keeper = _setup(tmp_path, wall)
        async with _running(ctl, SessionDropSwitch) as switch:
            ctl.carry_incumbents(_carried(wall[0]))
            await switch.say(_state("up"), _announce(NH1, (P1, 1), (P2, 1)), _eor("ipv4"), _eor("ipv6"))
            assert await _wait(ctl.ready_to_program)
            await ctl.store.set_pin(Pin(prefix=P1, by="op", since=0.0))
            await ctl.tick()
            assert any(f" {P1} " in f"{command} " for command in switch.commands)
            assert ctl.installed == {}
            assert set(ctl.continuity_routes()) == {CARRIED_ROUTE}, "a failed programming dropped it"

    asyncio.run(scenario())


def test_a_carried_fib_expires_after_max_age_from_its_first_snapshot(tmp_path: Path) -> None:
    """The session never becomes ready; snapshots taken meanwhile keep the carried FIB's original
    time, so neither this controller nor the next one keeps it past state.max_age_s."""
    async def scenario() -> None:
        wall = [1_000_000.0]
        first_taken = wall[0] - 10.0
        ctl, keeper = _setup(tmp_path, wall)
        await ctl.start(active=False)
        ctl.active = True
        try:
            ctl.carry_incumbents(_carried(first_taken), desired_at=first_taken)
            await ctl.tick()
            wall[0] += MAX_AGE_S / 2
            assert await keeper.save(ctl)
            state = decode(keeper.path_of("sw1").read_text(), "sw1", (30.0, 3600.0))
            assert state.taken_at == wall[0] and state.desired_at == first_taken
            wall[0] += MAX_AGE_S / 2  # the next controller, from that snapshot: past max_age
            restarted, restarted_keeper = _setup(tmp_path, wall)
            assert await restarted_keeper.restore(restarted)
            assert restarted.continuity_routes() == {}, "the next controller carried it past max_age"
            await ctl.tick()  # this one drops it too
            assert ctl.continuity_routes() == {}, "carried past state.max_age_s"
        finally:
            await ctl.stop()

    asyncio.run(scenario())


def test_held_prefixes_are_handed_on_only_within_the_restart_time_of_the_session_loss(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        wall = [1_000_000.0]
        ctl, keeper = _setup(tmp_path, wall, graceful_restart_s=120)
        await ctl.start(active=False)
        ctl.active = True
        try:
            ctl.carry_incumbents(_carried(wall[0]), [P1])  # the previous controller's session is gone
            assert await keeper.save(ctl)
            state = decode(keeper.path_of("sw1").read_text(), "sw1", (30.0, 3600.0))
            assert state.held == [CARRIED_ROUTE, P1] and state.lost_at == wall[0]
            wall[0] += 121  # the switch's restart time ran out: it flushed them
            assert await keeper.save(ctl)
            state = decode(keeper.path_of("sw1").read_text(), "sw1", (30.0, 3600.0))
            assert state.held == [], "stale routes handed on after the switch flushed them"
        finally:
            await ctl.stop()

    asyncio.run(scenario())
