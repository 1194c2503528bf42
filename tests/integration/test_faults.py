"""Faults in the namespace lab, topfib in this process: ExaBGP SIGKILLed mid-programming, the BGP
session flapped ten times, a peer withdrawing thousands of routes at once.

Each test follows the switch's kernel FIB by ``ip monitor route`` (every route the kernel adds is
counted as it happens) and asserts that it never held more than the cap and that BIRD's
``import limit`` safety net never fired. Route counts are CI-sized; set TOPFIB_FAULT_ROUTES to run
them at full scale (figures in docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.integration.fault_support import PeakWatcher, free_port, scale, watch_fib_peak
from tests.integration.frr_lab import FrrLab, frr_unavailable_reason
from tests.integration.lab import (
    LAB_SPECIAL_USE,
    Lab,
    async_wait_until,
    lab_unavailable_reason,
    paths_of,
    runqueue_wait_s,
)
from tests.integration.paused_feed import PausedFeedFrrLab, withdraw_commands
from topfib.controller.config import TopfibConfig
from topfib.controller.service.run import Service
from topfib.controller.state.store import Pin
from topfib.controller.switch.bgp_session.table_readiness import READY_QUIET_S

pytestmark = pytest.mark.integration


def _lab(switch: str = "bird", **kwargs: int) -> Iterator[Lab]:
    reason = lab_unavailable_reason() or (frr_unavailable_reason() if switch != "bird" else None)
    if reason is not None:
        pytest.skip(reason)
    kind = {"bird": Lab, "frr": FrrLab, "frr-fed": PausedFeedFrrLab}[switch]
    with kind(**kwargs) as built:  # type: ignore[arg-type]
        yield built


@asynccontextmanager
async def running(lab: Lab, cap_v4: int, cap_v6: int) -> AsyncIterator[Service]:
    switch = lab.switch_config(fib_cap_ipv4=cap_v4, fib_cap_ipv6=cap_v6, loop_period_s=0.2, min_dwell_s=0.0)
    config = TopfibConfig.model_validate({
        "api": {"listen": f"127.0.0.1:{free_port()}"},
        "collector": {"sflow_listen": [f"127.0.0.1:{free_port()}"], "receive_buffer_bytes": 1 << 20},
        "switch": [switch.model_dump()],
        "special_use": LAB_SPECIAL_USE,
    })
    service = Service(config, runtime_dir=lab.workdir / "topfib", netns=lab.ctl)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def _pin(service: Service, prefixes: list[str]) -> None:
    now = time.time()
    for prefix in prefixes:
        await service.store.set_pin(Pin(prefix, "ops", now))
    next(iter(service.controllers.values())).wake()


def _desired(service: Service) -> dict[str, str]:
    ctl = next(iter(service.controllers.values()))
    return ctl.selection.desired() if ctl.selection else {}


async def _converged(watch: PeakWatcher, service: Service, timeout_s: float) -> bool:
    """The FIB equals what selection wants (same prefixes, same next-hops), and that is not empty."""
    return await watch.wait_for(lambda fib: bool(fib) and fib == _desired(service), timeout_s)


def _assert_within_cap(lab: Lab, watch: PeakWatcher, cap_v4: int, cap_v6: int) -> None:
    assert not lab.import_limit_fired(), "BIRD's import limit fired: topfib sent more than the cap"
    # The peak is only as good as the event stream: it must end where the kernel is. (ip monitor
    # loses events in bursts of ~20k routes; the test then fails here rather than trust its peak.)
    dumped = lab.fib_next_hops()
    assert watch.routes == dumped, (f"ip monitor lost events: watcher {len(watch.routes)} routes, kernel "
                                    f"{len(dumped)}; its peak ({watch.peak_v4}) cannot be trusted")
    assert watch.peak_v4 <= cap_v4, f"IPv4 FIB reached {watch.peak_v4} > cap {cap_v4}"
    assert watch.peak_v6 <= cap_v6, f"IPv6 FIB reached {watch.peak_v6} > cap {cap_v6}"
    assert not lab.import_limit_fired(), "BIRD's import limit fired: topfib sent more than the cap"


# --- ExaBGP SIGKILLed while it programs the switch --------------------------------------------

KILL_ROUTES = scale(3000)
KILL_CAP = KILL_ROUTES * 2 // 3


@pytest.fixture
def kill_lab() -> Iterator[Lab]:
    yield from _lab(routes_v4=KILL_ROUTES, routes_v6=20, import_limit=KILL_CAP)


async def _exabgp_sigkill_mid_programming(lab: Lab) -> None:
    cap_v6 = 10
    wanted = [p for p in lab.prefixes_v4 if p.endswith("/24")]  # more than the cap: selection trims
    async with running(lab, KILL_CAP, cap_v6) as service, watch_fib_peak(lab) as watch:
        ctl = next(iter(service.controllers.values()))
        assert await async_wait_until(ctl.ready_to_program, 30.0), "session never came up"
        await _pin(service, wanted + lab.prefixes_v6[1:15])
        # Kill ExaBGP's whole group as soon as the first routes reach the kernel.
        assert await watch.wait_for(lambda fib: len(fib) >= 1, 30.0), "programming never started"
        pid = ctl.runner.pid
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)
        at_kill = len(watch.routes)
        killed_at = time.monotonic()
        assert at_kill < KILL_CAP, f"programming had finished ({at_kill} routes) before the kill"
        assert await watch.wait_for(lambda fib: not fib, 10.0), "switch kept routes of a dead ExaBGP"
        emptied_s = time.monotonic() - killed_at
        stages: dict[str, float] = {}
        rib_at_ready: list[int] = []

        async def follow_restart() -> None:  # where the rebuild time goes
            while "first route" not in stages:
                now = time.monotonic() - killed_at
                if "restarted" not in stages and ctl.runner.pid not in (None, pid):
                    stages["restarted"] = now
                if "session down" not in stages and ctl.session.state == "down":
                    stages["session down"] = now
                if "session down" not in stages:
                    pass  # the old session's state until topfib has seen it go
                elif "session up" not in stages and ctl.session.state == "up":
                    stages["session up"] = now
                elif "session up" in stages and "ready" not in stages and ctl.session.ready:
                    stages["ready"] = now
                    with service.lock:
                        rib_at_ready.append(ctl.rib.counts().ipv4_prefixes)
                if "ready" in stages and watch.routes:
                    stages["first route"] = now
                await asyncio.sleep(0.02)

        follower = asyncio.create_task(follow_restart())
        assert await async_wait_until(lambda: ctl.runner.pid not in (None, pid), 15.0), "not restarted"
        # Programming starts once the switch's table is complete (End-of-RIB), in one plan.
        rebuilt = await watch.wait_for(
            lambda fib: fib == _desired(service) and watch.count(4) == KILL_CAP and watch.count(6) == cap_v6,
            30.0 + KILL_ROUTES / 200)
        desired = _desired(service)
        if not rebuilt:  # ip monitor may lose events in a 20k-route burst: ask the kernel itself
            dumped = await asyncio.to_thread(lab.fib_next_hops)
            print(f"\nwatcher saw {len(watch.routes)} routes, the kernel holds {len(dumped)}")
            rebuilt = await lab.wait_fib(lambda fib: fib == _desired(service), 60.0, interval_s=2.0)
        assert rebuilt, (f"FIB not rebuilt to the desired set: FIB {len(watch.routes)}, "
                         f"desired {len(desired)}, "
                         f"acked {len(ctl.installed)}, missing {len(desired.keys() - watch.routes.keys())}, "
                         f"extra {len(watch.routes.keys() - desired.keys())}, session {ctl.session.state}, "
                         f"peak {watch.peak_v4}")
        rebuilt_s = time.monotonic() - killed_at
        follower.cancel()
        print(f"\nrebuilt {rebuilt_s:.1f}s after the kill; stages {stages}")
        # The RIB was complete when programming began: every peer prefix was in it.
        assert rib_at_ready == [KILL_ROUTES], f"programming began with {rib_at_ready} of {KILL_ROUTES} routes"
        in_kernel = await asyncio.to_thread(lab.fib_next_hops)
        v6 = sum(1 for prefix in in_kernel if ":" in prefix)
        assert (len(in_kernel) - v6, v6) == (KILL_CAP, cap_v6)
        _assert_within_cap(lab, watch, KILL_CAP, cap_v6)
        print(f"\nexabgp-sigkill: routes={KILL_ROUTES} cap={KILL_CAP} at_kill={at_kill} "
              f"emptied={emptied_s:.2f}s rebuilt={rebuilt_s:.2f}s peak_v4={watch.peak_v4} "
              f"watcher overflows={watch.overflows} resyncs={watch.resyncs}")


def test_exabgp_sigkill_mid_programming_rebuilds_without_exceeding_the_cap(kill_lab: Lab) -> None:
    asyncio.run(_exabgp_sigkill_mid_programming(kill_lab))


# --- the BGP session flapped ten times -----------------------------------------------------------

FLAP_CAP_V4, FLAP_CAP_V6 = 40, 8


@pytest.fixture(params=["bird", "frr"])
def flap_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    yield from _lab(request.param, routes_v4=300, routes_v6=40, import_limit=FLAP_CAP_V4)


async def _ten_flaps(lab: Lab) -> None:
    # import_limit is per channel in BIRD: the v6 channel gets the v4 figure; the watcher checks v6.
    async with running(lab, FLAP_CAP_V4, FLAP_CAP_V6) as service, watch_fib_peak(lab) as watch:
        ctl = next(iter(service.controllers.values()))
        assert await async_wait_until(ctl.ready_to_program, 30.0)
        await _pin(service, [p for p in lab.prefixes_v4 if p.endswith("/24")][:60] + lab.prefixes_v6[1:12])
        assert await _converged(watch, service, 20.0)
        started = time.monotonic()
        times = []
        for flap in range(10):
            flapped_at = time.monotonic()
            if flap % 2 == 0:
                await asyncio.to_thread(lab.disable_session)
                assert await watch.wait_for(lambda fib: not fib, 5.0), f"flap {flap}: routes stayed"
                await asyncio.to_thread(lab.enable_session)
            else:
                await asyncio.to_thread(lab.restart_bird)
            assert await _converged(watch, service, 20.0), f"flap {flap}: did not converge"
            fib = dict(watch.routes)
            assert fib == _desired(service), f"flap {flap}: stray or missing routes"
            assert len([p for p in fib if ":" not in p]) == FLAP_CAP_V4
            times.append(time.monotonic() - flapped_at)
        total = time.monotonic() - started
        _assert_within_cap(lab, watch, FLAP_CAP_V4, FLAP_CAP_V6)
        # Stray routes: everything installed has a live peer path (the switch's own static routes).
        live = set(lab.prefixes_v4) | set(lab.prefixes_v6)
        assert set(lab.fib_next_hops()) <= live
        print(f"\n{type(lab).__name__} flaps: 10 in {total:.1f}s, convergence max {max(times):.2f}s "
              f"median {sorted(times)[5]:.2f}s (session disabled: max {max(times[0::2]):.2f}s, switch "
              f"restarted: max {max(times[1::2]):.2f}s) peak_v4={watch.peak_v4} peak_v6={watch.peak_v6}")
        # FRR sends topfib no End-of-RIB (see README): each flap waits for the 2 s quiet rule.
        limit = 60.0 + (10 * READY_QUIET_S if isinstance(lab, FrrLab) else 0.0)
        assert total < limit, f"ten flaps took {total:.1f} s"


def test_ten_session_flaps_in_a_minute_converge_every_time(flap_lab: Lab) -> None:
    asyncio.run(_ten_flaps(flap_lab))


# --- a peer withdraws thousands of routes at once -------------------------------------------------

WITHDRAW_ROUTES = scale(10000)  # the figure: 10k withdrawn, the FIB clear within 5 s
WITHDRAW_BAR_S = 5.0
OVERSUBSCRIBED_S = 1.0


@pytest.fixture(params=["bird", "frr"])
def withdraw_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    # On FRR the peers get their routes from an API process, so that they can withdraw some
    # (BIRD's peers are reconfigured; restarting FRR's peers would withdraw every route).
    kind = "frr-fed" if request.param == "frr" else "bird"
    for lab in _lab(kind, routes_v4=WITHDRAW_ROUTES, routes_v6=20, import_limit=WITHDRAW_ROUTES):
        if isinstance(lab, PausedFeedFrrLab):
            lab.release_feed()
        yield lab


async def _mass_withdraw(lab: Lab) -> None:
    slash24 = [p for p in lab.prefixes_v4 if p.endswith("/24")]
    async with running(lab, WITHDRAW_ROUTES, 20) as service, watch_fib_peak(lab) as watch:
        ctl = next(iter(service.controllers.values()))
        assert await async_wait_until(ctl.ready_to_program, 30.0)
        await _pin(service, slash24)
        assert await watch.wait_for(lambda fib: set(slash24) <= set(fib), 60.0), "pins not installed"
        keep = slash24[:10]
        gone = set(slash24) - set(keep)
        remaining = [p for p in lab.prefixes_v4 if p not in gone]
        stages: dict[str, float] = {}

        async def follow_stages() -> None:  # where the time goes: RIB, ExaBGP's acks, the FIB
            while "rib" not in stages or "acked" not in stages:
                with service.lock:
                    if "rib" not in stages and not any(p in ctl.rib for p in gone):
                        stages["rib"] = time.monotonic() - started
                if "acked" not in stages and not any(p in ctl.installed for p in gone):
                    stages["acked"] = time.monotonic() - started
                await asyncio.sleep(0.02)

        sends: list[tuple[float, str, int, float]] = []
        if os.environ.get("TOPFIB_FAULT_DEBUG"):
            original = ctl.programmer.send_steps

            async def timed(steps: list[Any]) -> bool:
                t0 = time.monotonic()
                ok = await original(steps)
                sends.append((round(t0 - started, 2), steps[0].action, sum(len(st.prefixes) for st in steps),
                              round(time.monotonic() - t0, 2)))
                return ok

            ctl.programmer.send_steps = timed  # type: ignore[method-assign]
        switch_done: asyncio.Task[None] | None = None
        if isinstance(lab, PausedFeedFrrLab):  # FRR's own share: until its table lost them
            held = (sum(paths_of(i) for i in range(len(lab.prefixes_v4)))
                    + sum(paths_of(i) for i in range(len(lab.prefixes_v6))))
            assert await async_wait_until(lambda: lab.peer_prefixes_received() == held, 60.0, 0.5), (
                f"FRR holds {lab.peer_prefixes_received()} of the peers' {held} paths")
            target = held - sum(paths_of(i) for i, p in enumerate(lab.prefixes_v4) if p in gone)

            async def follow_switch() -> None:
                while await asyncio.to_thread(lab.peer_prefixes_received) > target:
                    await asyncio.sleep(0.05)
                stages["switch"] = time.monotonic() - started

            switch_done = asyncio.create_task(follow_switch())
        started = time.monotonic()
        follower = asyncio.create_task(follow_stages())
        exabgp_pid = ctl.runner.pid
        waited_before = runqueue_wait_s(exabgp_pid)
        if isinstance(lab, PausedFeedFrrLab):  # the peers withdraw them (one UPDATE per 1000)
            await asyncio.to_thread(lab.send_to_peers, withdraw_commands(lab.prefixes_v4, gone))
        else:
            await asyncio.to_thread(lab.replace_peer_routes, remaining, lab.prefixes_v6)
        configured = time.monotonic() - started  # the switch has been told (BIRD: has dropped them)
        withdrawn = await watch.wait_for(lambda fib: not any(p in fib for p in gone), 30.0)
        took = time.monotonic() - started
        # On a shared machine ExaBGP (single-threaded, the bottleneck) may wait for a CPU: say so.
        starved = runqueue_wait_s(exabgp_pid) - waited_before
        await asyncio.wait_for(follower, 30.0) if withdrawn else follower.cancel()
        if switch_done is not None:
            # The lab's peers (one ExaBGP, on a shared CPU) take seconds to send 10k withdraws:
            # neither FRR's time nor topfib's. The bar runs from FRR's table losing the routes
            # (polled every ~0.1 s, so topfib's RIB may see it first).
            await asyncio.wait_for(switch_done, 30.0)
            configured = min(stages["switch"], stages.get("rib", stages["switch"]))
        print(f"\n{type(lab).__name__} mass-withdraw: {len(gone)} routes; the switch had them out "
              f"{configured:.2f}s, "
              f"stages {stages}, FIB {'clear' if withdrawn else 'NOT clear'} at {took:.2f}s; ExaBGP waited "
              f"{starved:.2f}s for a CPU")
        if sends:
            print("sends (start s, action, prefixes, took s):", sends)
        assert withdrawn, f"{len(gone & set(watch.routes))} withdrawn routes still in the FIB (blackholes)"
        # The bar is 5 s of wall time. On an oversubscribed machine (other jobs kept ExaBGP, the
        # single-threaded bottleneck, waiting for a CPU for over a second) the time it waited is
        # not topfib's and is taken off, within a hard limit of 15 s.
        lost = starved if starved > OVERSUBSCRIBED_S else 0.0
        assert took - configured - lost <= WITHDRAW_BAR_S, (
            f"withdrawn routes took {took - configured:.2f} s to leave the FIB "
            f"(ExaBGP waited {starved:.2f} s of it for a CPU)")
        assert took - configured <= 3 * WITHDRAW_BAR_S, f"{took - configured:.2f} s even on a busy machine"
        assert set(keep) <= set(watch.routes), "routes that kept their peer path were withdrawn too"
        _assert_within_cap(lab, watch, WITHDRAW_ROUTES, 20)


def test_peer_withdrawing_thousands_of_routes_leaves_no_blackhole(withdraw_lab: Lab) -> None:
    asyncio.run(_mass_withdraw(withdraw_lab))
