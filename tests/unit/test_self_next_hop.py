"""Paths whose next hop is the switch itself never reach the RIB, so never get announced back."""

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
    _announce,
    _eor,
    _live_controller,
    _running,
    _state,
    _wait,
)
from topfib.collector.common.metrics import REGISTRY
from topfib.collector.rib.events import Event, RouteUpdate, SessionState
from topfib.collector.rib.paths import BgpPath
from topfib.controller.config import SwitchConfig
from topfib.controller.state.store import Pin
from topfib.controller.switch.bgp_session.self_next_hop import SelfNextHopFilter

OWN_V6 = "fd99::2"


def _switch(**extra: object) -> SwitchConfig:
    return SwitchConfig.model_validate({
        "name": "sw1", "neighbor": NEIGHBOR, "local_address": "10.99.0.1", "local_as": 65000,
        "peer_as": 65000, "fib_cap_ipv4": 10, "fib_cap_ipv6": 2, **extra})


def _update(next_hop: str, path_id: int = 1, prefix: str = P1) -> RouteUpdate:
    return RouteUpdate(NEIGHBOR, "ipv4 unicast", prefix, path_id, BgpPath(next_hop, (64500,), peer=NEIGHBOR,
                                                                           path_id=path_id))


def test_announces_via_the_switch_become_withdraws_of_their_path_the_rest_is_untouched(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = [0.0]
    only = SelfNextHopFilter(_switch(own_addresses=["FD99::0:2"]), clock=lambda: clock[0])
    assert only.addresses == {NEIGHBOR, OWN_V6}  # canonical forms
    usable, state = _update(NH1), SessionState(NEIGHBOR, "up", "")
    events: list[Event] = [usable, state]
    assert only(events) is events  # nothing to drop: the same list, no copy
    with caplog.at_level(logging.WARNING):
        burst: list[Event] = [usable, _update(NEIGHBOR, 2), _update(OWN_V6, 3, "2001:db8::/32")]
        out = only(burst * 3)
    assert out[0] is usable
    assert out[1] == RouteUpdate(NEIGHBOR, "ipv4 unicast", P1, 2, None)
    assert out[2] == RouteUpdate(NEIGHBOR, "ipv4 unicast", "2001:db8::/32", 3, None)
    assert only.ignored == 6
    warnings = [r.getMessage() for r in caplog.records if "own address" in r.getMessage()]
    assert len(warnings) == 1, warnings  # a budget: one line a minute, not one per path
    assert REGISTRY.render().count('topfib_self_next_hop_paths_total{switch="sw1"}') == 1


def test_own_addresses_must_be_addresses() -> None:
    with pytest.raises(ValueError, match="own_addresses"):
        _switch(own_addresses=["not-an-address"])


def test_a_better_path_via_the_switch_loses_to_a_usable_one_and_is_never_announced(tmp_path: Path) -> None:
    async def scenario() -> None:
        ctl = _live_controller(tmp_path)
        async with _running(ctl) as switch:
            # P1: via NH1, and a path via the switch itself (next-hop-self) that would rank first
            # (lower next hop); P2: only via the switch
            await switch.say(_state("up"), _announce(NH1, (P1, 1)), _announce(NEIGHBOR, (P1, 2), (P2, 1)),
                             _eor("ipv4"), _eor("ipv6"))
            assert await _wait(ctl.ready_to_program)
            for prefix in (P1, P2):
                await ctl.store.set_pin(Pin(prefix=prefix, by="op", since=0.0))
            await ctl.tick()
            assert ctl.installed == {P1: NH1}, "a route via the switch itself reported installed"
            assert P2 not in ctl.rib and all(NEIGHBOR not in c.split("next-hop")[-1] for c in switch.commands)
            assert ctl.self_next_hops.ignored == 2
            # ADD-PATH implicit replace: P1's usable path-id now via the switch: P1 has no path left
            await switch.say(_announce(NEIGHBOR, (P1, 1)))
            assert await _wait(lambda: P1 not in ctl.installed), "kept a route whose path went"
            assert P1 not in ctl.rib

    asyncio.run(scenario())
