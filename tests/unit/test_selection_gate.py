"""No selection while nothing can be programmed and none of its inputs changed (issue 21)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.unit.test_switch_controller import _controller
from topfib.controller.selection.gate import IDLE_SELECT_S
from topfib.controller.state.store import MemoryStore, Pin, RequestEntry
from topfib.controller.switch.loop_metrics import _m_skipped


def _skipped() -> float:
    return _m_skipped.value(switch="sw1")


def test_without_a_session_selection_runs_only_when_an_input_changed_or_the_view_is_stale(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        store = MemoryStore()
        clock = [100.0]
        ctl = _controller(tmp_path, store, clock)
        await ctl.start(active=False)
        try:
            ctl.rates.add("sw1", "192.0.2.0/24", 9e6, 6000, clock[0])
            await ctl.tick()
            first = ctl.selection
            assert first is not None and not ctl.ready_to_program()
            skipped = _skipped()
            for _ in range(3):  # traffic alone changes nothing programmable: no selection
                clock[0] += 1.0
                ctl.rates.add("sw1", "198.51.100.0/24", 5e6, 3000, clock[0])
                await ctl.tick()
                assert ctl.selection is first
            assert _skipped() == skipped + 3

            await store.set_pin(Pin(prefix="10.0.1.0/24", by="op", since=0.0))  # a new pin
            clock[0] += 1.0
            await ctl.tick()
            pinned = ctl.selection
            assert pinned is not None and pinned is not first and "10.0.1.0/24" in pinned.routes

            await store.add_requests(  # a new request
                [RequestEntry(switch="sw1", ip="2001:db8::7", ap="ap1", requested_at=1_000_100.0,
                              expires_at=1_000_700.0)],
                {"sw1": 10}, 1_000_100.0,
            )
            clock[0] += 1.0
            await ctl.tick()
            requested = ctl.selection
            assert requested is not None and requested is not pinned
            assert "2001:db8::/32" in requested.routes

            await store.update_config_overrides("sw1", {"fib_cap_ipv4": 2}, ())  # a new cap
            clock[0] += 1.0
            await ctl.tick()
            capped = ctl.selection
            assert capped is not requested and ctl.policy.cap_ipv4 == 2

            clock[0] += 1.0
            await ctl.tick()
            assert ctl.selection is capped
            clock[0] += IDLE_SELECT_S  # the dashboard's view is refreshed now and then
            await ctl.tick()
            refreshed = ctl.selection
            assert refreshed is not None and refreshed is not capped
            assert "198.51.100.0/24" in refreshed.routes
        finally:
            await ctl.stop()

    asyncio.run(scenario())


def test_without_a_session_a_burst_of_changed_inputs_selects_at_most_once_per_view_interval() -> None:
    """Access points posting requests wake the loop per request; while nothing can be programmed a
    selection per wake-up would only hold the event loop (and the API) for the dashboard's view."""
    from topfib.controller.selection.gate import VIEW_MIN_S, SelectionGate, SelectionInputs
    from topfib.controller.selection.model import SelectionPolicy

    def inputs(requests: int, ready: bool = False) -> SelectionInputs:
        return SelectionInputs(ready_to_program=ready, policy=SelectionPolicy(cap_ipv4=10, cap_ipv6=10),
                               requests=0, pins=tuple(str(i) for i in range(requests)),
                               rib_changes=0)

    gate = SelectionGate()
    assert gate.needed(inputs(0), 100.0)
    gate.selected(inputs(0), 100.0)
    assert not gate.needed(inputs(1), 100.0 + VIEW_MIN_S / 2)  # changed, but too soon
    assert not gate.needed(inputs(2), 100.0 + VIEW_MIN_S * 0.9)
    assert gate.needed(inputs(2), 100.0 + VIEW_MIN_S)  # the change is not lost: selected now
    gate.selected(inputs(2), 100.0 + VIEW_MIN_S)
    assert gate.needed(inputs(2, ready=True), 100.0 + VIEW_MIN_S)  # programmable: always


def test_a_session_drop_alone_is_a_changed_input() -> None:
    """A dropped session empties the switch's RIB without a route update: the view must not keep
    showing the old selection for IDLE_SELECT_S."""
    from topfib.controller.selection.gate import VIEW_MIN_S, SelectionGate, SelectionInputs
    from topfib.controller.selection.model import SelectionPolicy

    def inputs(session: tuple[bool, float | None]) -> SelectionInputs:
        return SelectionInputs(ready_to_program=False, policy=SelectionPolicy(cap_ipv4=10, cap_ipv6=10),
                               requests=0, pins=(), rib_changes=7, session=session)

    gate = SelectionGate()
    gate.selected(inputs((True, 50.0)), 100.0)
    assert not gate.needed(inputs((True, 50.0)), 100.0 + VIEW_MIN_S)
    assert gate.needed(inputs((False, None)), 100.0 + VIEW_MIN_S)
