"""Graceful restart in the switch loop: End-of-RIB after the first programming of each session,
and routes the switch may still hold as stale counted against the caps until then."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

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
    _running,
    _state,
    _wait,
)
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.controller.config import TopfibConfig
from topfib.controller.state.store import MemoryStore, Pin
from topfib.controller.switch.controller import SwitchController
from topfib.controller.switch.programmer import STALE_PRUNE_S

EOR_LINES = [f"neighbor {NEIGHBOR} announce eor {family} unicast" for family in ("ipv4", "ipv6")]
PATHS = (_announce(NH1, (P1, 1), (P2, 1)), _announce(NH2, (P3, 2)), _eor("ipv4"), _eor("ipv6"))


def _controller(tmp_path: Path, graceful_restart_s: int, cap_v4: int = 10,
                clock: list[float] | None = None, ready_quiet_s: float | None = None) -> SwitchController:
    config = TopfibConfig.model_validate({
        "switch": [{
            "name": "sw1", "neighbor": NEIGHBOR, "local_address": "10.99.0.1", "local_as": 65000,
            "peer_as": 65000, "fib_cap_ipv4": cap_v4, "fib_cap_ipv6": 2, "min_dwell_s": 0,
            "graceful_restart_s": graceful_restart_s,
        }],
    })
    rates = PrefixRates(fast_half_life_s=30.0, slow_half_life_s=3600.0)
    if ready_quiet_s is not None:  # the quiet rule needs a running clock
        return SwitchController(config.switch[0], config, rates, MemoryStore(), threading.Lock(),
                                tmp_path / "run", ready_quiet_s=ready_quiet_s)
    now = clock or [time.monotonic()]
    return SwitchController(config.switch[0], config, rates, MemoryStore(), threading.Lock(),
                            tmp_path / "run", clock=lambda: now[0])


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
        async with _running(ctl) as switch:
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

    asyncio.run(scenario())


def test_end_of_rib_waits_for_a_programming_made_with_the_switchs_whole_table(tmp_path: Path) -> None:
    """The quiet rule may judge the table complete before the switch sent it (BIRD holds it back
    3 s from a restarted peer): that programming has no path to announce the stale routes again
    with, and an End-of-RIB after it would make the switch flush them all. It waits for a
    programming selected after the switch's End-of-RIB for both families."""
    async def scenario() -> None:
        ctl = _controller(tmp_path, 120, ready_quiet_s=0.2)
        async with _running(ctl) as switch:
            await _pin(ctl, P1, P2)
            await switch.say(_state("up"))
            assert await _wait(ctl.ready_to_program)  # quiet, and no path yet
            await ctl.tick()
            assert not any(" announce eor " in line for line in switch.commands), switch.commands
            await switch.say(*PATHS)
            assert await _wait(lambda: {"ipv4 unicast", "ipv6 unicast"} <= ctl.session.eor_families)
            await ctl.tick()
            assert ctl.installed == {P1: NH1, P2: NH1}
            assert switch.commands[-2:] == EOR_LINES, switch.commands

    asyncio.run(scenario())


def test_stale_routes_count_against_the_cap_until_the_switch_pruned_them(tmp_path: Path) -> None:
    """Cap 2, P1 and P2 installed; the session flaps and P3 replaces P1 meanwhile. The switch holds
    P1 as stale until our End-of-RIB and prunes it a moment later: P3 waits until then (three
    routes otherwise)."""
    async def scenario() -> None:
        clock = [1000.0]
        ctl = _controller(tmp_path, 120, cap_v4=2, clock=clock)
        async with _running(ctl) as switch:
            announce_p3 = f"neighbor {NEIGHBOR} announce attributes next-hop {NH2} nlri {P3}"
            await _pin(ctl, P1, P2)
            await _session_up(ctl, switch)
            await ctl.tick()
            assert ctl.installed == {P1: NH1, P2: NH1}
            await switch.say(_state("down"))
            assert await _wait(lambda: CLEAR in switch.commands)
            await ctl.store.remove_pin(P1)
            await _pin(ctl, P3)
            switch.commands.clear()
            await switch.say(_state("up"), *PATHS)
            clock[0] += 1.0  # the table is complete: End-of-RIB from the switch came long ago
            assert await _wait(ctl.ready_to_program)
            await ctl.tick()
            assert ctl.installed == {P2: NH1}, "a new prefix went out while a stale one held its room"
            assert switch.commands[-2:] == EOR_LINES
            assert ctl.held_prefixes() == [P1, P2]
            assert ctl.occupancy()["ipv4"] == (2, 2), "occupancy: what counts against the cap, stale too"
            clock[0] += STALE_PRUNE_S / 2
            await ctl.tick()
            assert announce_p3 not in switch.commands  # the switch may not have pruned P1 yet
            clock[0] += STALE_PRUNE_S
            # reading (also from WarmKeeper's thread) changes nothing: pruning is the loop's job
            assert ctl.held_prefixes() == [P2]
            assert ctl.programmer.stale == {P1, P2} and ctl.programmer.stale_until is not None
            await ctl.tick()
            assert ctl.installed == {P2: NH1, P3: NH2}
            assert ctl.held_prefixes() == [P2, P3]
            assert ctl.occupancy()["ipv4"] == (2, 2)

    asyncio.run(scenario())


class PrefixRefusingSwitch(Switch):
    """Plays an ExaBGP answering ``error`` to every command that names a prefix in ``refused``."""

    refused: frozenset[str] = frozenset()

    async def _ack_all(self) -> None:
        while line := await self.reader.readline():
            command = line.decode().strip()
            self.commands.append(command)
            named = any(f" {prefix} " in f" {command} " for prefix in self.refused)
            await self.say("error" if named else "done")


async def _refusing_switch(ctl: SwitchController, *refused: str) -> PrefixRefusingSwitch:
    reader, writer = await asyncio.open_unix_connection(str(ctl.link.socket_path))
    switch = PrefixRefusingSwitch(reader, writer)
    switch.refused = frozenset(refused)
    await switch.say("#topfib-bridge pid=4242 pgid=4242 dropped=0")
    return switch


def test_a_refused_announce_line_does_not_stop_the_run_nor_end_of_rib(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a prefix a window: the refused P2 sits between P1's and P3's windows
    monkeypatch.setattr("topfib.controller.switch.programmer.ANNOUNCE_WINDOW_LINES", 1)
    monkeypatch.setattr("topfib.controller.switch.programmer.COMMAND_CHUNK", 1)

    async def scenario() -> None:
        ctl = _controller(tmp_path, 120)
        await ctl.start(active=False)
        ctl.active = True
        switch = await _refusing_switch(ctl, P2)
        try:
            await _pin(ctl, P1, P2, P3)
            await _session_up(ctl, switch)
            await ctl.tick()
            assert ctl.installed == {P1: NH1, P3: NH2}, "the windows after the refused one were not sent"
            assert switch.commands[-2:] == EOR_LINES, "no End-of-RIB after a run with a refused line"
        finally:
            await switch.close()
            await ctl.stop()

    asyncio.run(scenario())


def test_a_refused_withdraw_counts_as_held_and_the_run_goes_on(tmp_path: Path) -> None:
    """Cap 2, P1 and P2 installed; P3 replaces P1 but ExaBGP refuses P1's withdraw: P3 waits (the
    switch still holds P1), and the run still completes with End-of-RIB (refused at first)."""
    async def scenario() -> None:
        ctl = _controller(tmp_path, 120, cap_v4=2)
        await ctl.start(active=False)
        ctl.active = True
        switch = await _refusing_switch(ctl, "eor")
        try:
            await _pin(ctl, P1, P2)
            await _session_up(ctl, switch)
            await ctl.tick()
            assert ctl.installed == {P1: NH1, P2: NH1} and not ctl.session.end_of_rib_sent
            switch.refused = frozenset({P1})
            await ctl.store.remove_pin(P1)
            await _pin(ctl, P3)
            await ctl.tick()
            assert ctl.installed == {P1: NH1, P2: NH1}
            assert not any(f" {P3} " in command for command in switch.commands), "past the cap"
            assert ctl.session.end_of_rib_sent
        finally:
            await switch.close()
            await ctl.stop()

    asyncio.run(scenario())


def test_stale_routes_stop_counting_after_the_restart_time_even_without_end_of_rib(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = [1000.0]
        ctl = _controller(tmp_path, 120, clock=clock)
        await ctl.start(active=False)
        ctl.active = True
        switch = await _refusing_switch(ctl)
        try:
            await _pin(ctl, P1, P2)
            await _session_up(ctl, switch)
            await ctl.tick()
            await switch.say(_state("down"))
            assert await _wait(lambda: ctl.session.state == "down")
            assert ctl.held_prefixes() == [P1, P2]  # stale on the switch, no End-of-RIB will come
            clock[0] += 120 + STALE_PRUNE_S + 1
            assert ctl.held_prefixes() == [], "stale routes counted after the switch flushed them"
        finally:
            await switch.close()
            await ctl.stop()

    asyncio.run(scenario())


class CapLoweringSwitch(Switch):
    """Plays ExaBGP; ``on_first_announce`` runs before the first announce is acknowledged."""

    on_first_announce: Callable[[], Awaitable[None]] | None = None

    async def _ack_all(self) -> None:
        while line := await self.reader.readline():
            command = line.decode().strip()
            self.commands.append(command)
            if " announce attributes " in command and self.on_first_announce is not None:
                lower, self.on_first_announce = self.on_first_announce, None
                await lower()
            await self.say("done")


@pytest.mark.parametrize("how", ["sighup", "override"])
def test_a_cap_lowered_during_a_programming_run_trims_its_next_windows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    monkeypatch.setattr("topfib.controller.switch.programmer.ANNOUNCE_WINDOW_LINES", 1)
    monkeypatch.setattr("topfib.controller.switch.programmer.COMMAND_CHUNK", 1)

    async def scenario() -> None:
        ctl = _controller(tmp_path, 0, cap_v4=10)
        lowered = _controller(tmp_path, 0, cap_v4=1)

        async def lower_the_cap() -> None:
            if how == "sighup":
                ctl.reconfigure(lowered.switch, lowered.config)
            else:
                await ctl.store.update_config_overrides(ctl.name, {"fib_cap_ipv4": 1}, [])

        await ctl.start(active=False)
        ctl.active = True
        reader, writer = await asyncio.open_unix_connection(str(ctl.link.socket_path))
        switch = CapLoweringSwitch(reader, writer)
        switch.on_first_announce = lower_the_cap
        await switch.say("#topfib-bridge pid=4242 pgid=4242 dropped=0")
        try:
            await _pin(ctl, P1, P2, P3)
            await _session_up(ctl, switch)
            await ctl.tick()
            assert len(ctl.installed) == 1, f"past the lowered cap: {ctl.installed}"
            assert ctl.policy.caps()["ipv4"] == 1
        finally:
            await switch.close()
            await ctl.stop()

    asyncio.run(scenario())


def test_reconfigure_takes_the_new_caps_at_once(tmp_path: Path) -> None:
    ctl = _controller(tmp_path, 0, cap_v4=10)
    lowered = _controller(tmp_path, 0, cap_v4=3)
    ctl.inputs.last_overrides = {"fib_cap_ipv6": 1}  # the store's overrides as last read still apply
    ctl.reconfigure(lowered.switch, lowered.config)
    assert (ctl.policy.caps()["ipv4"], ctl.policy.caps()["ipv6"]) == (3, 1)
