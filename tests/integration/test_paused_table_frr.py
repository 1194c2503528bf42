"""FRR sends topfib no End-of-RIB: after a restart, a table that arrives in two halves with a 3 s
pause between them must not be programmed half-way (then churned when the rest arrives).

The switch (bgpd and zebra) and its peers restart; the peers announce half their routes, pause,
then the rest. topfib knows the size of the table it had before, so the half is not complete.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.integration.fault_support import watch_fib_peak
from tests.integration.frr_lab import frr_unavailable_reason
from tests.integration.lab import async_wait_until, lab_unavailable_reason, paths_of
from tests.integration.paused_feed import PausedFeedFrrLab
from tests.integration.test_faults import _assert_within_cap, _converged, _desired, _pin, running
from topfib.controller.switch.controller import SwitchController

pytestmark = pytest.mark.integration

CAP_V4, CAP_V6 = 40, 8
PAUSE_S = 5.0  # the first half takes ~1-2 s to come through: the pause topfib sees stays > 2 s


@pytest.fixture
def paused_lab() -> Iterator[PausedFeedFrrLab]:
    reason = lab_unavailable_reason() or frr_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    lab = PausedFeedFrrLab(routes_v4=300, routes_v6=40, import_limit=CAP_V4, pause_s=PAUSE_S)
    with lab:
        yield lab


def _table_paths(ctl: SwitchController) -> int:
    counts = ctl.rib.session_path_counts()
    return sum(n for session, n in counts.items() if session != ctl.rib.preload_session)


@dataclass
class Sample:
    at: float
    paths: int
    installed: int
    ready: bool


async def _sample(ctl: SwitchController, samples: list[Sample], stop: asyncio.Event) -> None:
    while not stop.is_set():
        if ctl.session.state == "up":
            samples.append(Sample(time.monotonic(), _table_paths(ctl), len(ctl.installed), ctl.session.ready))
        await asyncio.sleep(0.02)


async def _restart_with_a_paused_dump(lab: PausedFeedFrrLab) -> None:
    full = (sum(paths_of(i) for i in range(len(lab.prefixes_v4)))
            + sum(paths_of(i) for i in range(len(lab.prefixes_v6))))
    def halves(prefixes: list[str], length: str, count: int) -> list[str]:
        """``count`` prefixes of that length from each half of the feed (split by index)."""
        half = len(prefixes) // 2
        return ([p for p in prefixes[:half] if p.endswith(length)][:count]
                + [p for p in prefixes[half:] if p.endswith(length)][:count])

    pins = halves(lab.prefixes_v4, "/24", 15) + halves(lab.prefixes_v6, "/48", 3)
    async with running(lab, CAP_V4, CAP_V6) as service, watch_fib_peak(lab) as watch:
        ctl = next(iter(service.controllers.values()))
        assert await async_wait_until(lambda: ctl.session.state == "up", 30.0)
        lab.release_feed()
        assert await async_wait_until(lambda: _table_paths(ctl) == full, 60.0, 0.1), (
            f"first table: {_table_paths(ctl)} of {full} paths")
        assert await async_wait_until(ctl.ready_to_program, 30.0)
        await _pin(service, pins)
        assert await _converged(watch, service, 20.0)
        assert len(watch.routes) == len(pins)

        await asyncio.to_thread(lab.stop_bird)
        await asyncio.to_thread(lab._stop_peers)
        lab.hold_feed()
        assert await watch.wait_for(lambda fib: not fib, 5.0), "the switch kept routes of a dead session"
        assert await async_wait_until(lambda: ctl.session.state == "down", 5.0)
        changes_before = len(ctl.changes)
        samples: list[Sample] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample(ctl, samples, stop))
        async with watch_fib_peak(lab) as after:
            began = time.monotonic()
            await asyncio.to_thread(lab.start_bird)  # the peers too: their feed pauses again
            try:
                assert await async_wait_until(lambda: ctl.session.state == "up", 30.0)
                lab.release_feed()
                assert await async_wait_until(lambda: _table_paths(ctl) == full, 60.0, 0.1), (
                    f"table after the restart: {_table_paths(ctl)} of {full} paths")
                table_in = time.monotonic()
                assert await _converged(after, service, 40.0)
                fib_in = time.monotonic()
            finally:
                stop.set()
                await sampler
            partial = [s for s in samples if 0 < s.paths < full]
            assert partial and partial[-1].at - partial[0].at >= 2.0, (
                "topfib never saw the dump pause (the test proves nothing): "
                f"{len(partial)} samples with a partial table")
            early = [s for s in partial if s.ready or s.installed]
            assert not early, (f"programming started on {early[0].paths} of {full} paths "
                               f"({early[0].installed} installed)")
            assert len(ctl.changes) < 1000, "the change log wrapped"
            new_changes = list(ctl.changes)[changes_before:]
            withdraws = [c for c in new_changes if c[1] == "withdraw"]
            announces = [c for c in new_changes if c[1] == "announce"]
            assert not withdraws, f"churn: {withdraws[:5]}"
            assert len(announces) == len(_desired(service)) == len(pins), len(announces)
            assert dict(after.routes) == _desired(service)
            _assert_within_cap(lab, after, CAP_V4, CAP_V6)
            print(f"\nFRR restart, table of {full} paths in two halves {PAUSE_S:.0f} s apart: whole table "
                  f"{table_in - began:.2f}s after the restart, full FIB {fib_in - table_in:.2f}s after the "
                  f"table ({fib_in - began:.2f}s in all), {len(announces)} announces, 0 withdraws; topfib "
              f"saw a partial table for {partial[-1].at - partial[0].at:.2f}s")


def test_a_paused_dump_after_a_restart_is_programmed_once_whole(paused_lab: PausedFeedFrrLab) -> None:
    asyncio.run(_restart_with_a_paused_dump(paused_lab))
