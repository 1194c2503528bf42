"""The same end-to-end run on both lab switches, BIRD 2 and FRR: pins and a request reach the
switch's kernel FIB under the cap with topfib's best next hops; a peer going away takes its
only-path prefixes out of the kernel at once and re-points those with another path; it coming
back re-points them again. Times are printed (ip monitor route on the switch's kernel).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests.integration.fault_support import host_in, watch_fib_peak
from tests.integration.frr_lab import FrrLab, frr_unavailable_reason
from tests.integration.lab import (
    NEXT_HOPS_V4,
    NEXT_HOPS_V6,
    Lab,
    async_wait_until,
    lab_unavailable_reason,
    paths_of,
)
from tests.integration.test_faults import _assert_within_cap, _converged, _desired, _pin, running
from topfib.controller.state.store import RequestEntry
from topfib.controller.switch.controller import SwitchController

pytestmark = pytest.mark.integration

CAP_V4, CAP_V6 = 60, 20


@pytest.fixture(params=["bird", "frr", "frr-ipv6-session"])
def any_switch(request: pytest.FixtureRequest) -> Iterator[Lab]:
    frr = request.param.startswith("frr")
    reason = lab_unavailable_reason() or (frr_unavailable_reason() if frr else None)
    if reason is not None:
        pytest.skip(reason)
    v6_session = request.param.endswith("session")
    lab = (FrrLab(routes_v4=300, routes_v6=60, import_limit=CAP_V4, session_v6=v6_session)
           if frr else Lab(routes_v4=300, routes_v6=60, import_limit=CAP_V4))
    with lab:
        yield lab


async def _best_paths_differ(lab: FrrLab, ctl: SwitchController, timeout_s: float) -> list[str]:
    """Prefixes whose best next hop FRR and topfib disagree on, once they agree or after
    ``timeout_s`` (both tables still filling). The first peer's higher MED on some prefixes must
    not count: its paths come from another neighbour AS (RFC 4271, FRR's default)."""
    prefixes = set(lab.prefixes_v4) | set(lab.prefixes_v6)
    deadline = time.monotonic() + timeout_s
    while True:
        theirs = await asyncio.to_thread(lab.best_next_hops)
        with ctl.rib_lock:
            ours = {p: best.next_hop for p in prefixes if (best := ctl.rib.best(p)) is not None}
        differ = sorted(p for p in prefixes if theirs.get(p) != ours.get(p))
        if not differ or time.monotonic() > deadline:
            return [f"{p}: FRR {theirs.get(p)}, topfib {ours.get(p)}" for p in differ]
        await asyncio.sleep(0.5)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


async def _end_to_end(lab: Lab) -> None:
    index = {p: i for i, p in enumerate(lab.prefixes_v4)} | {p: i for i, p in enumerate(lab.prefixes_v6)}
    pins = [p for p in lab.prefixes_v4 if p.endswith("/24")][:40] + [p for p in lab.prefixes_v6
                                                                       if p.endswith("/48")][:12]
    gone_hops = {NEXT_HOPS_V4[0], NEXT_HOPS_V6[0]}
    async with running(lab, CAP_V4, CAP_V6) as service, watch_fib_peak(lab) as watch:
        ctl = next(iter(service.controllers.values()))
        assert await async_wait_until(ctl.ready_to_program, 30.0)
        if isinstance(lab, FrrLab):
            assert await async_wait_until(lab.peers_established, 30.0, 0.5), "FRR's peers not up"
            differ = await _best_paths_differ(lab, ctl, 15.0)
            assert not differ, f"{len(differ)} prefixes where FRR's best path is not topfib's: {differ[:5]}"
        await _pin(service, pins)
        assert await _converged(watch, service, 20.0)
        assert set(pins) <= set(watch.routes)
        with service.lock:  # the kernel uses topfib's best path: on a tie, the lowest next hop
            for prefix, next_hop in watch.routes.items():
                best = ctl.rib.best(prefix)
                assert best is not None and best.next_hop == next_hop, prefix
                assert next_hop in gone_hops or paths_of(index[prefix]) == 1

        # an access point's request
        target = [p for p in lab.prefixes_v4 if p.endswith("/24")][100]
        began = time.monotonic()
        now = time.time()
        await service.store.add_requests([RequestEntry(ctl.name, host_in(target), "ap1", now, now + 600)],
                                         {ctl.name: 10}, now)
        ctl.wake()
        assert await watch.wait_for(lambda fib: target in fib, 10.0), "request not installed"
        request_s = time.monotonic() - began

        # peer 0 goes away: its only-path prefixes leave the kernel, the others move to peer 1
        only_path = [p for p in pins if paths_of(index[p]) == 1]
        moved = [p for p in pins if paths_of(index[p]) > 1]
        assert only_path and moved
        seen: dict[str, float] = {}  # when topfib's RIB had the switch's withdraws: FRR's or BIRD's share

        async def follow_rib() -> None:
            while len(seen) < 2:
                with service.lock:
                    if "withdrawn" not in seen and not any(p in ctl.rib for p in only_path):
                        seen["withdrawn"] = time.monotonic() - began
                    if "moved" not in seen and all(
                            (best := ctl.rib.best(p)) is not None and best.next_hop not in gone_hops
                            for p in moved):
                        seen["moved"] = time.monotonic() - began
                await asyncio.sleep(0.005)

        began = time.monotonic()
        follower = asyncio.create_task(follow_rib())
        await asyncio.to_thread(lab.disable_peer, 0)
        commanded_s = time.monotonic() - began  # birdc / vtysh returned
        assert await watch.wait_for(lambda fib: not any(p in fib for p in only_path), 10.0), "blackholes"
        withdraw_s = time.monotonic() - began
        assert await watch.wait_for(lambda fib: all(fib.get(p) not in (None, *gone_hops) for p in moved),
                                    10.0), "not re-pointed"
        repoint_s = time.monotonic() - began
        await asyncio.wait_for(follower, 5.0)
        assert await _converged(watch, service, 10.0)
        assert not gone_hops & set(watch.routes.values())

        # peer 0 is back: the lowest next hop is the best again
        began = time.monotonic()
        await asyncio.to_thread(lab.enable_peer, 0)
        assert await watch.wait_for(
            lambda fib: set(only_path) <= set(fib) and all(fib.get(p) in gone_hops for p in moved), 30.0)
        back_s = time.monotonic() - began
        assert await _converged(watch, service, 10.0)
        assert watch.routes == _desired(service)
        _assert_within_cap(lab, watch, CAP_V4, CAP_V6)
        print(f"\n{type(lab).__name__}: request -> kernel {_ms(request_s)}; peer gone -> its "
              f"{len(only_path)} only-path routes out of the kernel {_ms(withdraw_s)}, "
              f"{len(moved)} re-pointed {_ms(repoint_s)} (command returned {_ms(commanded_s)}; "
              f"in topfib's RIB: withdrawn "
              f"{_ms(seen['withdrawn'])}, moved {_ms(seen['moved'])}); "
              f"peer back -> all re-pointed {_ms(back_s)} "
              f"(incl. its session setup); "
              f"peak v4={watch.peak_v4} v6={watch.peak_v6}")


def test_pins_requests_and_a_peer_going_and_coming_back_on_bird_and_frr(any_switch: Lab) -> None:
    asyncio.run(_end_to_end(any_switch))


async def _exabgp_killed_then_topfib_stopped(lab: Lab) -> None:
    pins = [p for p in lab.prefixes_v4 if p.endswith("/24")][:40] + [p for p in lab.prefixes_v6
                                                                       if p.endswith("/48")][:12]
    async with watch_fib_peak(lab) as watch:
        async with running(lab, CAP_V4, CAP_V6) as service:
            ctl = next(iter(service.controllers.values()))
            assert await async_wait_until(ctl.ready_to_program, 30.0)
            if isinstance(lab, FrrLab):
                assert await async_wait_until(lab.peers_established, 30.0, 0.5), "FRR's peers not up"
            await _pin(service, pins)
            assert await _converged(watch, service, 20.0)
            pid = ctl.runner.pid
            assert pid is not None
            began = time.monotonic()
            os.killpg(pid, signal.SIGKILL)  # no graceful restart: the switch drops our routes
            assert await watch.wait_for(lambda fib: not fib, 10.0), "the switch kept a dead ExaBGP's routes"
            emptied_s = time.monotonic() - began
            assert await watch.wait_for(lambda fib: bool(fib) and fib == _desired(service), 30.0)
            rebuilt_s = time.monotonic() - began
        began = time.monotonic()  # topfib stopped (SIGTERM path): routes gone, defaults kept
        assert await watch.wait_for(lambda fib: not fib, 5.0), "routes stayed after topfib stopped"
        stopped_s = time.monotonic() - began
    assert all("default via" in route for route in lab.default_routes())
    _assert_within_cap(lab, watch, CAP_V4, CAP_V6)
    print(f"\n{type(lab).__name__}: ExaBGP SIGKILL -> kernel empty {_ms(emptied_s)}, full FIB again "
          f"{rebuilt_s:.2f}s (restart backoff, session, table wait); topfib stopped -> empty "
          f"{_ms(stopped_s)}")


def test_exabgp_killed_and_topfib_stopped_on_bird_and_frr(any_switch: Lab) -> None:
    asyncio.run(_exabgp_killed_then_topfib_stopped(any_switch))
