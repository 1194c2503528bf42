"""What counts as installed after ExaBGP's acks: exactly the prefixes of the lines it confirmed."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tests.unit.test_switch_controller import (
    NEIGHBOR,
    NH1,
    P1,
    P2,
    P3,
    Switch,
    _announce,
    _eor,
    _live_controller,
    _running,
    _state,
    _wait,
)
from topfib.controller.state.store import Pin


class RefusingSwitch(Switch):
    """Plays ExaBGP, answering ``error`` to every command that names ``refused``."""

    refused = P2

    async def _ack_all(self) -> None:
        while line := await self.reader.readline():
            command = line.decode().strip()
            self.commands.append(command)
            await self.say("error" if f" {self.refused} " in f" {command} " else "done")


def test_an_error_for_one_prefix_leaves_only_that_prefix_uninstalled(tmp_path: Path) -> None:
    async def scenario() -> None:
        ctl = _live_controller(tmp_path)
        async with _running(ctl, RefusingSwitch) as switch:
            await switch.say(_state("up"), _announce(NH1, (P1, 1), (P2, 1), (P3, 1)),
                             _eor("ipv4"), _eor("ipv6"))
            assert await _wait(ctl.ready_to_program)
            for prefix in (P1, P2, P3):
                await ctl.store.set_pin(Pin(prefix=prefix, by="op", since=0.0))
            await ctl.tick()
            # the refused line is sent again a prefix a line: only the refused prefix is left out
            head = f"neighbor {NEIGHBOR} announce attributes next-hop {NH1} nlri"
            assert switch.commands == [f"{head} {P1} {P2} {P3}", *(f"{head} {p}" for p in (P1, P2, P3))]
            assert ctl.installed == {P1: NH1, P3: NH1}
            await ctl.tick()  # tried again at the next iteration, never counted as installed
            assert P2 not in ctl.installed
            assert switch.commands[-1] == f"neighbor {NEIGHBOR} announce attributes next-hop {NH1} nlri {P2}"

    asyncio.run(scenario())


class BrokenSwitch(Switch):
    """Plays an ExaBGP that answers ``error`` to everything."""

    async def _ack_all(self) -> None:
        while line := await self.reader.readline():
            self.commands.append(line.decode().strip())
            await self.say("error")


def test_an_exabgp_refusing_everything_gets_each_prefix_once_a_tick_and_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        ctl = _live_controller(tmp_path)
        async with _running(ctl, BrokenSwitch) as switch:
            await switch.say(_state("up"), _announce(NH1, (P1, 1), (P2, 1), (P3, 1)),
                             _eor("ipv4"), _eor("ipv6"))
            assert await _wait(ctl.ready_to_program)
            for prefix in (P1, P2, P3):
                await ctl.store.set_pin(Pin(prefix=prefix, by="op", since=0.0))
            for tick in range(1, 4):
                caplog.clear()
                with caplog.at_level(logging.ERROR, logger="topfib.controller.switch.programmer"):
                    await ctl.tick()
                # the line, then each prefix alone once: no resend loop, nothing counted as installed
                assert len(switch.commands) == 4 * tick
                assert ctl.installed == {}
                refusals = [r for r in caplog.records if "did not confirm" in r.getMessage()]
                assert len(refusals) == 1 and "3 line(s) of 3 prefix(es)" in refusals[0].getMessage()

    asyncio.run(scenario())


class DownBeforeAckSwitch(Switch):
    """Plays an ExaBGP whose session drops while an announce is in flight: the ``done`` comes
    after the session's ``down``."""

    async def _ack_all(self) -> None:
        while line := await self.reader.readline():
            command = line.decode().strip()
            self.commands.append(command)
            if " announce attributes " in command and len(self.commands) == 1:
                await self.say(_state("down"))
            await self.say("done")


def test_an_ack_after_the_session_ended_is_never_counted_as_installed(tmp_path: Path) -> None:
    async def scenario() -> None:
        ctl = _live_controller(tmp_path)
        async with _running(ctl, DownBeforeAckSwitch) as switch:
            await switch.say(_state("up"), _announce(NH1, (P1, 1)), _eor("ipv4"), _eor("ipv6"))
            assert await _wait(ctl.ready_to_program)
            await ctl.store.set_pin(Pin(prefix=P1, by="op", since=0.0))
            await ctl.tick()
            assert switch.commands == [f"neighbor {NEIGHBOR} announce attributes next-hop {NH1} nlri {P1}"]
            assert ctl.session.state == "down"
            assert ctl.installed == {}, "a route acked after the session ended counted as installed"
            # ExaBGP holds it in its adj-rib-out: forgotten before the next session is programmed
            assert ctl.programmer.replay_pending

    asyncio.run(scenario())
