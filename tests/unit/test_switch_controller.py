"""The switch control loop without ExaBGP: preload, overrides, requests and pins into a selection."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Self

import pytest

from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.controller.config import TopfibConfig
from topfib.controller.program.plan import Step
from topfib.controller.selection.gate import SelectionGate
from topfib.controller.state.store import MemoryStore, Pin, RequestEntry
from topfib.controller.switch.bgp_session.session import SessionInfo, table_complete
from topfib.controller.switch.bgp_session.table_readiness import QuietClock
from topfib.controller.switch.controller import SwitchController
from topfib.controller.switch.programmer import _windows

TABLE = "\n".join(
    ["10.0.0.0\t16\t64500", "10.0.1.0\t24\t64501", "10.0.2.0\t24\t64502", "192.0.2.0\t24\t64503",
     "198.51.100.0\t24\t64504", "2001:db8::\t32\t64505"]
)


def _controller(tmp_path: Path, store: MemoryStore, clock: list[float],
                gate: SelectionGate | None = None) -> SwitchController:
    rib_file = tmp_path / "table.pfx2as.gz"
    rib_file.write_bytes(gzip.compress(TABLE.encode()))
    config = TopfibConfig.model_validate({
        "switch": [{
            "name": "sw1", "neighbor": "10.99.0.2", "local_address": "10.99.0.1", "local_as": 65000,
            "peer_as": 65000, "fib_cap_ipv4": 3, "fib_cap_ipv6": 1, "rib_file": str(rib_file),
            "min_dwell_s": 0, "sflow_agents": ["192.0.2.200"],
        }],
        "special_use": {"documentation": False},  # TABLE routes documentation prefixes
    })
    rates = PrefixRates(fast_half_life_s=30.0, slow_half_life_s=3600.0)
    return SwitchController(
        config.switch[0], config, rates, store, threading.Lock(), tmp_path / "run",
        clock=lambda: clock[0], wall_clock=lambda: 1_000_000.0 + clock[0], gate=gate,
    )


def test_preloaded_table_ranks_traffic_but_nothing_is_programmed_without_a_session(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = MemoryStore()
        clock = [100.0]
        ctl = _controller(tmp_path, store, clock)
        await ctl.start(active=False)
        try:
            assert ctl.rib.counts().ipv4_prefixes == 5
            assert ctl.rib.longest_match("10.0.1.9") == "10.0.1.0/24"
            for prefix, nbytes in (("192.0.2.0/24", 9e6), ("198.51.100.0/24", 5e6), ("10.0.2.0/24", 1e6)):
                ctl.rates.add("sw1", prefix, nbytes, nbytes / 1500, clock[0])
            await store.set_pin(Pin(prefix="10.0.1.0/24", by="op", since=0.0))
            await store.add_requests(
                [RequestEntry(switch="sw1", ip="2001:db8::7", ap="ap1", requested_at=1_000_050.0,
                              expires_at=1_000_700.0)],
                {"sw1": 10}, 1_000_100.0,
            )
            await ctl.tick()
            assert ctl.selection is not None
            routes = ctl.selection.routes
            assert routes["10.0.1.0/24"].reason == "pinned"
            assert routes["2001:db8::/32"].reason == "request"
            topn = sorted(p for p, r in routes.items() if r.reason == "topn")
            assert topn == ["192.0.2.0/24", "198.51.100.0/24"]  # cap 3 = pin + the two hottest
            assert not ctl.ready_to_program()
            assert ctl.installed == {}  # no session: nothing counts as installed

            # an operator lowers the cap: selection follows at the next tick
            await store.update_config_overrides("sw1", {"fib_cap_ipv4": 2, "min_swap_gain": 0.25}, ())
            clock[0] += 1.0
            await ctl.tick()
            assert ctl.policy.cap_ipv4 == 2
            assert ctl.policy.min_swap_gain == 0.25
            v4 = [p for p in ctl.selection.routes if ":" not in p]
            assert len(v4) == 2 and "10.0.1.0/24" in v4
        finally:
            await ctl.stop()

    asyncio.run(scenario())


# --- reacting to the switch between loop iterations, readiness ----------------------------------

NEIGHBOR = "10.99.0.2"
HEAD = ('{ "exabgp": "5.0.0", "time": 1.0, "host": "t", "pid": 1, "ppid": 1, "counter": 1, "type": "%s", '
        '"neighbor": { "address": { "local": "10.99.0.1", "peer": "10.99.0.2" }, '
        '"asn": { "local": 65000, "peer": 65000 }, "router-id": "10.99.0.1", %s } }')


def _state(state: str) -> str:
    return HEAD % ("state", f'"state": "{state}"')


def _update(body: str) -> str:
    return HEAD % ("update", f'"direction": "receive", "message": {{ {body} }}')


def _announce(next_hop: str, *paths: tuple[str, int]) -> str:
    nlri = ", ".join(f'{{ "nlri": "{p}", "path-information": "0.0.0.{i}" }}' for p, i in paths)
    return _update('"update": { "attribute": { "origin": "igp", "as-path": {}, "local-preference": 100 }, '
                   f'"announce": {{ "ipv4 unicast": {{ "{next_hop}": [ {nlri} ] }} }} }}')


def _withdraw(*paths: tuple[str, int]) -> str:
    nlri = ", ".join(f'{{ "nlri": "{p}", "path-information": "0.0.0.{i}" }}' for p, i in paths)
    return _update(f'"update": {{ "withdraw": {{ "ipv4 unicast": [ {nlri} ] }} }}')


def _eor(afi: str) -> str:
    return _update(f'"eor": {{ "afi": "{afi}", "safi": "unicast" }}')


class Switch:
    """The bridge's socket end, playing ExaBGP: sends messages, acks every command with done."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.commands: list[str] = []
        self.refuse: set[str] = set()  # commands answered with error
        self.acking = asyncio.Event()
        self.acking.set()
        self._task = asyncio.create_task(self._ack_all())

    @classmethod
    async def connect(cls, path: Path) -> Self:
        reader, writer = await asyncio.open_unix_connection(str(path))
        switch = cls(reader, writer)
        await switch.say("#topfib-bridge pid=4242 pgid=4242 dropped=0")
        return switch

    async def say(self, *lines: str) -> None:
        self.writer.write("".join(line + "\n" for line in lines).encode())
        await self.writer.drain()

    async def _ack_all(self) -> None:
        while line := await self.reader.readline():
            await self.acking.wait()
            command = line.decode().strip()
            self.commands.append(command)
            await self.say("error" if command in self.refuse else "done")

    async def close(self) -> None:
        self._task.cancel()
        self.writer.close()


async def _wait(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def _live_controller(tmp_path: Path, *, settle_quiet_s: float = 0.1, settle_max_s: float = 1.0,
                     ready_quiet_s: float = 2.0) -> SwitchController:
    config = TopfibConfig.model_validate({
        "switch": [{
            "name": "sw1", "neighbor": NEIGHBOR, "local_address": "10.99.0.1", "local_as": 65000,
            "peer_as": 65000, "fib_cap_ipv4": 10, "fib_cap_ipv6": 2, "min_dwell_s": 0,
        }],
    })
    rates = PrefixRates(fast_half_life_s=30.0, slow_half_life_s=3600.0)
    ctl = SwitchController(config.switch[0], config, rates, MemoryStore(), threading.Lock(), tmp_path / "run",
                           settle_quiet_s=settle_quiet_s, settle_max_s=settle_max_s,
                           ready_quiet_s=ready_quiet_s)
    ctl.active = True  # as if ExaBGP ran: the test plays it through the link
    return ctl


@contextlib.asynccontextmanager
async def _running(ctl: SwitchController, kind: type[Switch] = Switch) -> AsyncIterator[Switch]:
    """``ctl`` started as the active controller (as if ExaBGP ran: the test plays it through the
    link) with a ``kind`` switch stand-in on its bridge socket; both stopped afterwards."""
    await ctl.start(active=False)
    ctl.active = True
    switch = await kind.connect(ctl.link.socket_path)
    try:
        yield switch
    finally:
        await switch.close()
        await ctl.stop()


P1, P2, P3 = "16.0.1.0/24", "16.0.2.0/24", "16.0.3.0/24"
NH1, NH2 = "192.168.50.11", "192.168.50.12"


async def _installed(ctl: SwitchController, switch: Switch) -> None:
    """Session up, P1 (paths via NH1 and NH2), P2 (NH1 only), P3 (NH2), all pinned and installed."""
    await switch.say(_state("up"), _announce(NH1, (P1, 1), (P2, 1)), _announce(NH2, (P1, 2), (P3, 2)),
                     _eor("ipv4"), _eor("ipv6"))
    assert await _wait(ctl.ready_to_program)
    for prefix in (P1, P2, P3):
        await ctl.store.set_pin(Pin(prefix=prefix, by="op", since=0.0))
    await ctl.tick()
    assert ctl.installed == {P1: NH1, P2: NH1, P3: NH2}
    switch.commands.clear()


def test_a_prefix_losing_its_last_path_is_withdrawn_without_a_loop_iteration(tmp_path: Path) -> None:
    async def scenario() -> None:
        ctl = _live_controller(tmp_path)
        async with _running(ctl) as switch:
            await _installed(ctl, switch)
            loops = ctl.selection
            await switch.say(_withdraw((P2, 1)))
            assert await _wait(lambda: P2 not in ctl.installed), "never withdrawn"
            assert switch.commands == [f"neighbor {NEIGHBOR} withdraw attributes nlri {P2}"]
            assert ctl.selection is loops  # no selection ran for it
            assert ctl.installed == {P1: NH1, P3: NH2}

    asyncio.run(scenario())


def test_a_moved_best_path_is_re_pointed_once_the_burst_settles_and_never_if_the_prefix_goes(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        ctl = _live_controller(tmp_path, settle_quiet_s=0.3, settle_max_s=2.0)
        async with _running(ctl) as switch:
            await _installed(ctl, switch)
            # P1 loses its installed path (NH1): the switch forwards to a dead exit, so it is
            # re-pointed to NH2 once the burst is quiet for 50 ms, not the 0.3 s of a mere move
            began = time.monotonic()
            await switch.say(_withdraw((P1, 1)))
            assert await _wait(lambda: ctl.installed.get(P1) == NH2), "never re-pointed"
            assert 0.04 <= time.monotonic() - began < 0.25
            assert switch.commands == [f"neighbor {NEIGHBOR} announce attributes next-hop {NH2} nlri {P1}"]
            switch.commands.clear()
            # P1 back on NH1 (best again, NH2 still alive): re-pointed after 0.3 s of quiet
            began = time.monotonic()
            await switch.say(_announce(NH1, (P1, 1)))
            assert await _wait(lambda: ctl.installed.get(P1) == NH1)
            assert time.monotonic() - began >= 0.25
            switch.commands.clear()
            # a burst: P3 loses its only path (withdrawn at once), P1 its installed path, then its last
            await switch.say(_withdraw((P3, 2), (P1, 1)))
            await switch.say(_withdraw((P1, 2)))  # well within the burst's 50 ms
            assert await _wait(lambda: P3 not in ctl.installed)
            assert await _wait(lambda: P1 not in ctl.installed)
            await asyncio.sleep(0.5)  # past the settle time: nothing else may follow
            assert all("announce" not in command for command in switch.commands), switch.commands
            assert ctl.installed == {P2: NH1}

    asyncio.run(scenario())


def test_no_programming_before_end_of_rib_or_quiet_and_eor_wakes_the_loop(tmp_path: Path) -> None:
    async def scenario() -> None:
        ctl = _live_controller(tmp_path, ready_quiet_s=60.0)
        async with _running(ctl) as switch:
            await switch.say(_state("up"), _announce(NH1, (P1, 1)))
            await ctl.store.set_pin(Pin(prefix=P1, by="op", since=0.0))
            assert await _wait(lambda: P1 in ctl.rib)
            await ctl.tick()
            assert not ctl.ready_to_program() and ctl.installed == {} and switch.commands == []
            ctl.wake_event.clear()
            await switch.say(_eor("ipv4"))
            await asyncio.sleep(0.05)
            assert not ctl.ready_to_program()  # one family is not the table
            await switch.say(_eor("ipv6"))
            assert await _wait(ctl.wake_event.is_set), "End-of-RIB did not wake the loop"
            assert ctl.ready_to_program()
            await ctl.tick()
            assert ctl.installed == {P1: NH1}

    asyncio.run(scenario())


def test_without_end_of_rib_a_quiet_table_starts_programming(tmp_path: Path) -> None:
    async def scenario() -> None:
        ctl = _live_controller(tmp_path, ready_quiet_s=0.4)
        async with _running(ctl) as switch:
            await switch.say(_state("up"))
            for i in range(6):  # a table trickling in: never quiet for 0.4 s
                await switch.say(_announce(NH1, (f"16.0.{i}.0/24", 1)))
                await asyncio.sleep(0.15)
                assert not ctl.ready_to_program(), f"ready while routes still came ({i})"
            began = time.monotonic()
            assert await _wait(ctl.wake_event.is_set), "quiet did not wake the loop"
            assert ctl.ready_to_program() and time.monotonic() - began >= 0.2

    asyncio.run(scenario())


def test_the_table_counts_as_complete_on_eor_on_quiet_or_after_the_longest_wait() -> None:
    up = SessionInfo(state="up", up_at=100.0)
    assert not table_complete(SessionInfo(), 1000.0, 999.0)
    assert not table_complete(up, 101.0, 0.9, quiet_s=1.0)
    assert table_complete(up, 101.0, 1.0, quiet_s=1.0)
    assert table_complete(up, 160.0, 0.0, quiet_s=1.0, max_wait_s=60.0)  # never quiet: the longest wait
    both = SessionInfo(state="up", up_at=100.0, eor_families={"ipv4 unicast", "ipv6 unicast"})
    assert table_complete(both, 100.0, 0.0, quiet_s=1.0)
    one = SessionInfo(state="up", up_at=100.0, eor_families={"ipv4 unicast"})
    assert not table_complete(one, 100.5, 0.0, quiet_s=1.0)


def test_quiet_is_only_what_checks_close_together_saw_without_a_change() -> None:
    quiet = QuietClock(max_gap_s=0.3)
    assert quiet.check(0.0, 0) == 0.0
    assert quiet.check(0.1, 0) == pytest.approx(0.1)
    assert quiet.check(0.3, 0) == pytest.approx(0.3)
    assert quiet.check(0.4, 5) == 0.0  # a change: start again
    assert quiet.check(0.5, 5) == pytest.approx(0.1)
    # the event loop was blocked for 2 s: messages may be waiting unread, so that is not quiet
    assert quiet.check(2.5, 5) == pytest.approx(0.1)
    assert quiet.check(2.6, 9) == 0.0  # ... and indeed they were
    quiet.restart()
    assert quiet.check(3.0, 9) == 0.0


def test_announce_windows_split_steps_and_keep_their_order() -> None:
    steps = [Step("announce", 4, NH1, tuple(f"16.0.{i}.0/24" for i in range(5))),
             Step("announce", 4, NH2, tuple(f"16.1.{i}.0/24" for i in range(4)))]
    windows = _windows(steps, 3)
    assert [[len(s.prefixes) for s in w] for w in windows] == [[3], [2, 1], [3]]
    flat = [(s.next_hop, p) for w in windows for s in w for p in s.prefixes]
    assert flat == [(s.next_hop, p) for s in steps for p in s.prefixes]
    assert _windows([], 3) == []


def test_a_slow_selection_takes_at_most_half_the_loop_and_a_deferred_iteration_comes_back(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        store = MemoryStore()
        clock = [100.0]
        # no session: select anyway (see test_selection_gate)
        ctl = _controller(tmp_path, store, clock, gate=SelectionGate(idle_select_s=0.0))
        await ctl.start(active=False)
        try:
            await ctl.tick()
            first = ctl.selection
            ctl.schedule.selection_cost = 0.1  # quick: every wake-up selects again
            await ctl.tick()
            assert ctl.selection is not first
            second = ctl.selection
            ctl.schedule.selection_cost = 0.3  # slow: the next one waits until 0.6 s after this began
            ctl.wake_event.clear()
            await ctl.tick()
            assert ctl.selection is second, "a slow selection ran again at once"
            assert not ctl.wake_event.is_set()
            assert await _wait(ctl.wake_event.is_set, 2.0), "the deferred iteration never came back"
            clock[0] += 0.7
            await ctl.tick()
            assert ctl.selection is not second
        finally:
            await ctl.stop()

    asyncio.run(scenario())


def test_follow_observed_paths_installs_the_path_traffic_takes(tmp_path: Path) -> None:
    """ADD-PATH: two live paths for a prefix; sampled traffic leaves by the second one."""
    import numpy as np

    from topfib.collector.accounting.path_rates import PathRates
    from topfib.collector.rib.paths import BgpPath

    async def scenario(follow: bool) -> str:
        config = TopfibConfig.model_validate({"switch": [{
            "name": "sw1", "neighbor": "10.99.0.2", "local_address": "10.99.0.1", "local_as": 65000,
            "peer_as": 65000, "fib_cap_ipv4": 3, "fib_cap_ipv6": 1, "min_dwell_s": 0,
            "follow_observed_paths": follow,
        }], "special_use": {"documentation": False}})
        clock = [100.0]
        path_rates = PathRates(30.0, 3600.0)
        ctl = SwitchController(
            config.switch[0], config, PrefixRates(30.0, 3600.0), MemoryStore(), threading.Lock(),
            tmp_path / f"run-{follow}", clock=lambda: clock[0], wall_clock=lambda: 1e6 + clock[0],
            path_rates=path_rates,
        )
        prefix = "198.51.100.0/24"
        ctl.rib.announce("live", prefix, BgpPath("192.0.2.1", (65001,), peer="10.99.0.2", path_id=1))
        ctl.rib.announce("live", prefix, BgpPath("192.0.2.2", (65002, 65003), peer="10.99.0.2", path_id=2))
        ctl.rates.add("sw1", prefix, 9e6, 6e3, clock[0])
        samples = 20
        path_rates.add_batch(
            "sw1", np.zeros(samples, np.int64), np.zeros(samples, np.int64), lambda _: prefix, ["192.0.2.2"],
            np.full(samples, 1e5), np.full(samples, 70.0), clock[0], object(),
        )
        await ctl.tick()
        assert ctl.selection is not None
        return ctl.selection.desired()[prefix]

    assert asyncio.run(scenario(follow=False)) == "192.0.2.1"  # the best path by default
    assert asyncio.run(scenario(follow=True)) == "192.0.2.2"


CLEAR = f"neighbor {NEIGHBOR} clear adj-rib out"


def test_exabgp_forgets_what_it_announced_when_the_session_ends_before_anything_new_is_programmed(
        tmp_path: Path) -> None:
    """ExaBGP replays its adj-rib-out on the next session: it is cleared at the down (or at the up,
    when the down went unseen), and nothing is programmed before ExaBGP confirmed the clear."""
    async def scenario() -> None:
        ctl = _live_controller(tmp_path)
        async with _running(ctl) as switch:
            await _installed(ctl, switch)
            await switch.say(_state("down"))
            assert await _wait(lambda: switch.commands == [CLEAR]), switch.commands
            assert ctl.installed == {}
            switch.commands.clear()
            # a session that ends with no announce since the clear leaves nothing to clear
            await switch.say(_state("up"), _announce(NH1, (P1, 1), (P2, 1)), _eor("ipv4"), _eor("ipv6"))
            assert await _wait(ctl.ready_to_program)
            await ctl.tick()
            assert ctl.installed == {P1: NH1, P2: NH1} and CLEAR not in switch.commands
            # the down is never seen (e.g. the bridge dropped it): the up finds the replay pending
            switch.commands.clear()
            switch.acking.clear()  # ExaBGP busy: the clear is not confirmed yet
            await switch.say(_state("up"), _announce(NH1, (P1, 1), (P2, 1)), _eor("ipv4"), _eor("ipv6"))
            assert await _wait(ctl.ready_to_program)
            await ctl.tick()
            await asyncio.sleep(0.2)
            assert ctl.installed == {} and ctl.link.pending_acks == 1, "programmed before the clear"
            switch.acking.set()
            assert await _wait(lambda: ctl.link.pending_acks == 0)
            await ctl.tick()
            assert switch.commands[0] == CLEAR, switch.commands
            assert ctl.installed == {P1: NH1, P2: NH1}

    asyncio.run(scenario())


def test_a_refused_clear_keeps_programming_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        ctl = _live_controller(tmp_path)
        async with _running(ctl) as switch:
            await _installed(ctl, switch)
            switch.refuse.add(CLEAR)
            await switch.say(_state("down"))
            assert await _wait(lambda: switch.commands == [CLEAR])
            await switch.say(_state("up"), _announce(NH1, (P1, 1)), _eor("ipv4"), _eor("ipv6"))
            assert await _wait(ctl.ready_to_program)
            await ctl.tick()
            assert set(switch.commands) == {CLEAR}, "programmed although ExaBGP may replay"
            assert ctl.installed == {}
            switch.refuse.clear()
            switch.commands.clear()
            await ctl.tick()  # the clear again first, confirmed now, then the plan
            announce = f"neighbor {NEIGHBOR} announce attributes next-hop {NH1} nlri {P1}"
            assert switch.commands == [CLEAR, announce]
            assert ctl.installed == {P1: NH1}

    asyncio.run(scenario())


SHUTDOWN = '{ "exabgp": "5.0.0", "time": 1.0, "host": "t", "pid": 1, "ppid": 1, "counter": 9, ' \
           '"type": "notification", "notification": "shutdown" }'


@pytest.mark.parametrize("active", [True, False])
def test_exabgp_shutting_down_is_a_warning_only_when_topfib_did_not_stop_it(
        tmp_path: Path, active: bool, caplog: pytest.LogCaptureFixture) -> None:
    ctl = _live_controller(tmp_path)
    ctl.ingest.on_message(_state("up"))
    ctl.active = active  # deactivate() clears it before it stops ExaBGP
    with caplog.at_level("INFO", logger="topfib.controller.switch"):
        ctl.ingest.on_message(_state("down"))
        ctl.ingest.on_message(SHUTDOWN)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    if active:  # ExaBGP stopped by someone else: worth a warning
        assert len(warnings) == 2, warnings
    else:
        assert warnings == [], warnings
        assert any("shutdown" in r.getMessage() for r in caplog.records)
