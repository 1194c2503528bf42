"""Graceful restart in the switch loop: End-of-RIB after the first programming of each session,
and routes the switch may still hold as stale counted against the caps until then."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from collector.accounting import PrefixRates
from controller.config import TopfibConfig
from controller.store import MemoryStore, Pin
from controller.switch_controller import SwitchController
from tests.unit.test_switch_controller import (
    CLEAR,
    NEIGHBOR,
    NH1,
    NH2,
    P1,
    P2,
    P3,
    Switch,
    _announce,
    _eor,
    _state,
    _wait,
)

EOR_LINES = [f"neighbor {NEIGHBOR} announce eor {family} unicast" for family in ("ipv4", "ipv6")]
PATHS = (_announce(NH1, (P1, 1), (P2, 1)), _announce(NH2, (P3, 2)), _eor("ipv4"), _eor("ipv6"))


def _controller(tmp_path: Path, graceful_restart_s: int, cap_v4: int = 10) -> SwitchController:
    config = TopfibConfig.model_validate({
        "switch": [{
            "name": "sw1", "neighbor": NEIGHBOR, "local_address": "10.99.0.1", "local_as": 65000,
            "peer_as": 65000, "fib_cap_ipv4": cap_v4, "fib_cap_ipv6": 2, "min_dwell_s": 0,
            "graceful_restart_s": graceful_restart_s,
        }],
    })
    rates = PrefixRates(fast_half_life_s=30.0, slow_half_life_s=3600.0)
    return SwitchController(config.switch[0], config, rates, MemoryStore(), threading.Lock(),
                            tmp_path / "run")


async def _pin(ctl: SwitchController, *prefixes: str) -> None:
    for prefix in prefixes:
        await ctl.store.set_pin(Pin(prefix=prefix, by="op", since=0.0))


async def _session_up(ctl: SwitchController, switch: Switch) -> None:
    await switch.say(_state("up"), *PATHS)
    assert await _wait(ctl.ready_to_program)


@pytest.mark.parametrize("graceful_restart_s", [0, 120])
def test_end_of_rib_follows_the_first_programming_of_each_session_only_with_graceful_restart(
        tmp_path: Path, graceful_restart_s: int) -> None:
    async def scenario() -> None:
        ctl = _controller(tmp_path, graceful_restart_s)
        await ctl.start(active=False)
        ctl.active = True
        switch = await Switch.connect(ctl.link.socket_path)
        try:
            await _pin(ctl, P1, P2)
            for _session in range(2):
                await _session_up(ctl, switch)
                await ctl.tick()
                await ctl.tick()  # nothing new: no second End-of-RIB on the same session
                eors = [line for line in switch.commands if " announce eor " in line]
                assert ctl.installed == {P1: NH1, P2: NH1}
                if graceful_restart_s:
                    # after the routes (the switch flushes stale ones not announced again), once
                    assert switch.commands[-2:] == EOR_LINES and eors == EOR_LINES, switch.commands
                else:
                    assert eors == []  # ExaBGP sends it by itself, as before
                await switch.say(_state("down"))
                assert await _wait(lambda: CLEAR in switch.commands), switch.commands
                switch.commands.clear()
        finally:
            await switch.close()
            await ctl.stop()

    asyncio.run(scenario())


def test_routes_the_switch_keeps_as_stale_count_against_the_cap_until_end_of_rib(tmp_path: Path) -> None:
    """Cap 2, P1 and P2 installed; the session flaps and P3 replaces P1 meanwhile. The switch still
    holds P1 (stale) until End-of-RIB: announcing P3 before it would make three routes."""
    async def scenario() -> None:
        ctl = _controller(tmp_path, 120, cap_v4=2)
        await ctl.start(active=False)
        ctl.active = True
        switch = await Switch.connect(ctl.link.socket_path)
        try:
            await _pin(ctl, P1, P2)
            await _session_up(ctl, switch)
            await ctl.tick()
            assert ctl.installed == {P1: NH1, P2: NH1}
            await switch.say(_state("down"))
            assert await _wait(lambda: CLEAR in switch.commands)
            await ctl.store.remove_pin(P1)
            await _pin(ctl, P3)
            switch.commands.clear()
            await _session_up(ctl, switch)
            await ctl.tick()
            assert ctl.installed == {P2: NH1}, "a new prefix went out while the stale one still counts"
            assert switch.commands[-2:] == EOR_LINES
            await ctl.tick()  # End-of-RIB went out: P1 is gone from the switch, P3 fits
            assert ctl.installed == {P2: NH1, P3: NH2}
        finally:
            await switch.close()
            await ctl.stop()

    asyncio.run(scenario())
