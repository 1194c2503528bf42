"""A BGP session flap while the desired set changes: the switch must end with exactly that set.

ExaBGP keeps what it announced (its adj-rib-out) and replays it when the session comes back up.
When the desired set did not change meanwhile, the replay is the set topfib announces again (and
ExaBGP does not resend identical routes), so a plain flap looks right whatever topfib believes.
Here the cap is lowered, pins are removed and a request is deleted while the session is down: any
replayed route topfib does not know about stays on the switch as an orphan, above the cap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.integration.fault_support import PeakWatcher, host_in, watch_fib_peak
from tests.integration.frr_lab import FrrLab, frr_unavailable_reason
from tests.integration.lab import Lab, async_wait_until, lab_unavailable_reason
from tests.integration.test_faults import _assert_within_cap, _converged, _desired, _pin, running
from topfib.controller.state.store import RequestEntry

pytestmark = pytest.mark.integration

CAP_V4, CAP_V6 = 40, 8
LOWER_CAP_V4, LOWER_CAP_V6 = 20, 4


@pytest.fixture(params=["bird", "frr"])
def flap_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    reason = lab_unavailable_reason() or (frr_unavailable_reason() if request.param == "frr" else None)
    if reason is not None:
        pytest.skip(reason)
    # The switch's limit is per family there: IPv6 gets the IPv4 figure; the watcher checks IPv6.
    kind = FrrLab if request.param == "frr" else Lab
    with kind(routes_v4=300, routes_v6=40, import_limit=CAP_V4) as built:
        yield built


async def _flap_while_desired_set_changes(lab: Lab, how: str) -> None:
    slash24 = [p for p in lab.prefixes_v4 if p.endswith("/24")]
    slash48 = [p for p in lab.prefixes_v6 if p.endswith("/48")]
    requested_v4, requested_v6 = slash24[100], slash48[20]
    async with running(lab, CAP_V4, CAP_V6) as service, watch_fib_peak(lab) as watch:
        ctl = next(iter(service.controllers.values()))
        assert await async_wait_until(ctl.ready_to_program, 30.0)
        if isinstance(lab, FrrLab):  # the peers' sessions to the switch come up on their own time
            assert await async_wait_until(lab.peers_established, 30.0, 0.5), "FRR's peers not up"
        now = time.time()
        entries = [RequestEntry(ctl.name, host_in(prefix), "ap1", now, now + 600)
                   for prefix in (requested_v4, requested_v6)]
        assert all(await service.store.add_requests(entries, {ctl.name: 10}, now))
        await _pin(service, slash24[:30] + slash48[:6])
        # the requests may be installed first on their own (the request fast path): wait for the pins too
        assert await watch.wait_for(lambda fib: len(fib) == 31 + 7 and fib == _desired(service), 20.0)
        before = dict(watch.routes)
        assert requested_v4 in before and requested_v6 in before
        assert len(before) == 31 + 7

        if how == "disable":
            await asyncio.to_thread(lab.disable_session)
        else:
            await asyncio.to_thread(lab.stop_bird)
        assert await watch.wait_for(lambda fib: not fib, 5.0), "the switch kept routes of a dead session"
        assert await async_wait_until(lambda: ctl.session.state == "down", 5.0)
        # While the session is down: a lower cap, fewer pins, the request deleted.
        await service.store.update_config_overrides(
            ctl.name, {"fib_cap_ipv4": LOWER_CAP_V4, "fib_cap_ipv6": LOWER_CAP_V6}, ())
        for prefix in slash24[25:30] + slash48[3:6]:  # 25 pins left: above the lower cap
            await service.store.remove_pin(prefix)
        await service.store.remove_requests("ap1", host_in(requested_v4), time.time())
        ctl.wake()
        async with watch_fib_peak(lab) as after:  # the peak from the re-established session on
            began = time.monotonic()
            if how == "disable":
                await asyncio.to_thread(lab.enable_session)
            else:
                await asyncio.to_thread(lab.start_bird)
            assert await async_wait_until(lab.session_established, 15.0), "session not re-established"
            assert await _converged(after, service, 20.0), (
                f"FIB {len(after.routes)} routes != desired {len(_desired(service))}: "
                f"orphans {sorted(set(after.routes) - set(_desired(service)))[:5]}")
            rebuilt_s = time.monotonic() - began
            await asyncio.sleep(1.0)  # nothing comes back later either (e.g. a late replay)
            fib = dict(after.routes)
            assert fib == _desired(service), f"stray {sorted(set(fib) - set(_desired(service)))[:5]}"
            assert requested_v4 not in fib, "a request deleted while the session was down stayed"
            assert requested_v6 in fib
            assert len([p for p in fib if ":" not in p]) == LOWER_CAP_V4
            assert set(fib) == {p for p in ctl.installed}, "installed (as reported) != the switch's FIB"
            _assert_within_cap(lab, after, LOWER_CAP_V4, LOWER_CAP_V6)
            print(f"\n{type(lab).__name__} flap ({how}) with a changed desired set: exact desired set "
                  f"{rebuilt_s:.2f}s after the switch's session was back on offer; peak after "
                  f"re-establishment v4={after.peak_v4} v6={after.peak_v6}")
        _assert_peak_sane(watch)


def _assert_peak_sane(watch: PeakWatcher) -> None:
    assert watch.peak_v4 <= CAP_V4 and watch.peak_v6 <= CAP_V6


@pytest.mark.parametrize("how", ["disable", "restart"])
def test_flap_while_the_desired_set_changes_leaves_exactly_the_desired_set(flap_lab: Lab, how: str) -> None:
    asyncio.run(_flap_while_desired_set_changes(flap_lab, how))
