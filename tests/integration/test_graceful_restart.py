"""Graceful restart in the BIRD lab (``graceful restart on``): ``topfib run`` stopped and started
again under steady Zipf sFlow with ``switch[].graceful_restart_s`` keeps the switch's kernel FIB
at ≥ 99 % of its routes all along (watched with ``ip monitor``); with it off (BIRD still able to do
graceful restart) the switch drops topfib's routes as before.

Traffic goes to topfib's sFlow port on 127.0.0.1 only; the lab's namespaces are the test's own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.fault_support import PeakWatcher, TopfibProcess, write_config
from tests.integration.lab import Lab, async_wait_until, lab_unavailable_reason
from tests.integration.test_warm_restart import CAP_V4, CAP_V6, SETTLE_S, ZipfSflow, _sflow_port, jaccard

pytestmark = pytest.mark.integration

GRACEFUL_RESTART_S = 60
END_OF_RIB_LOGGED = "End-of-RIB sent"
SUSTAINED_S = 0.25


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    # as many prefixes as the caps: the selection cannot change across the restart, so what
    # leaves the FIB is what graceful restart lets go (swaps would dip it by more than 1 % of 70)
    with Lab(routes_v4=CAP_V4, routes_v6=CAP_V6, import_limit=CAP_V4 + CAP_V6,
             graceful_restart=True) as built:
        yield built


class LowWatcher(PeakWatcher):
    """A :class:`PeakWatcher` that also records the FIB's size at each change since
    :meth:`mark_low`: the fewest routes at any instant, and the fewest held for a while.

    The second because BIRD, on turning a restarting peer's routes stale, may rewrite them in the
    kernel as a delete and an add (all gone for ~70 ms, the same routes back): not a route leaving."""

    def __init__(self, routes: dict[str, str]) -> None:
        self.sizes: list[tuple[float, int]] | None = None
        super().__init__(routes)

    def mark_low(self) -> None:
        self.sizes = [(time.monotonic(), len(self.routes))]

    def reset(self, routes: dict[str, str]) -> None:
        super().reset(routes)
        self._note_size()

    def apply(self, line: str) -> None:
        super().apply(line)
        self._note_size()

    def _note_size(self) -> None:
        if self.sizes is not None and len(self.routes) != self.sizes[-1][1]:
            self.sizes.append((time.monotonic(), len(self.routes)))

    def low(self, sustained_s: float = 0.0) -> int:
        """The fewest routes seen for at least ``sustained_s`` (0: at any instant)."""
        assert self.sizes is not None
        ends = [at for at, _ in self.sizes[1:]] + [time.monotonic()]
        return min(size for (began, size), ended in zip(self.sizes, ends, strict=True)
                   if ended - began >= sustained_s)


@dataclass(frozen=True)
class PlannedRestart:
    before: int  # FIB routes before the restart
    low: int  # the fewest held ≥ SUSTAINED_S from the stop until End-of-RIB and 5 s more
    instant_low: int  # the fewest at any instant (BIRD's kernel rewrite of stale routes included)
    overlap: float  # Jaccard of the FIB after with the one before
    sent_end_of_rib_s: float  # from the stop to the new controller's End-of-RIB

    @property
    def low_fraction(self) -> float:
        return self.low / self.before


def _config(lab: Lab, tag: str, graceful_restart_s: int) -> Path:
    state = lab.workdir / "state"
    return write_config(lab, lab.workdir / f"{tag}.toml", cap_v4=CAP_V4, cap_v6=CAP_V6,
                        runtime_dir=lab.workdir / f"run-{tag}",
                        extra=f'flow_sources = ["127.0.0.1"]\ngraceful_restart_s = {graceful_restart_s}\n'
                        f'[state]\nsnapshot_interval_s = 1.0\ndirectory = "{state}"')


async def planned_restart(lab: Lab, *, sigkill: bool = False, settle_s: float = SETTLE_S,
                          graceful_restart_s: int = GRACEFUL_RESTART_S) -> PlannedRestart:
    """Fill the FIB under steady sFlow, stop topfib (SIGTERM, or SIGKILL) and start it again with
    graceful restart on (or, for comparison, off): the fewest routes the switch's kernel FIB
    held meanwhile."""
    config = _config(lab, "gr", graceful_restart_s)
    first = TopfibProcess(config, lab.workdir / "gr-first.log")
    second = TopfibProcess(config, lab.workdir / "gr-second.log")
    try:
        with ZipfSflow(_sflow_port(config), lab.prefixes_v4 + lab.prefixes_v6):
            async with lab.watch_fib(LowWatcher) as watch:
                first.start()
                await asyncio.to_thread(first.wait_healthy)
                full = CAP_V4 + CAP_V6
                assert await watch.wait_for(lambda fib: len(fib) >= full, 60.0), (
                    f"FIB never filled: {len(watch.routes)} routes {first.log()[-3000:]}")
                if graceful_restart_s:
                    assert await async_wait_until(lambda: END_OF_RIB_LOGGED in first.log(), 10.0), (
                        first.log()[-2000:])
                await asyncio.sleep(settle_s)
                before = set(watch.routes)
                assert watch.peak_v4 <= CAP_V4 and watch.peak_v6 <= CAP_V6, "over a cap before the restart"
                watch.mark_low()
                stopped = time.monotonic()
                first.kill() if sigkill else first.stop()
                second.start()
                await asyncio.to_thread(second.wait_healthy)
                if graceful_restart_s:
                    assert await async_wait_until(lambda: END_OF_RIB_LOGGED in second.log(), 60.0), (
                        f"no End-of-RIB after the restart: {second.log()[-3000:]}")
                else:  # off (the bench's comparison): until the FIB is back
                    refilled = await watch.wait_for(lambda fib: len(fib) >= len(before), 60.0)
                    assert refilled, second.log()[-3000:]
                sent = time.monotonic() - stopped
                await asyncio.sleep(5.0)  # the switch flushes stale routes on End-of-RIB: watch it do so
                assert watch.peak_v4 <= CAP_V4 and watch.peak_v6 <= CAP_V6, (
                    f"peaks {watch.peak_v4}/{watch.peak_v6}: {second.log()[-4000:]}")
                return PlannedRestart(len(before), watch.low(SUSTAINED_S), watch.low(),
                                      jaccard(before, set(watch.routes)), sent)
    finally:
        first.stop()
        second.stop()


def test_a_planned_restart_with_graceful_restart_keeps_the_switch_fib(lab: Lab) -> None:
    result = asyncio.run(planned_restart(lab))
    print(f"\ngraceful restart (SIGTERM + start): FIB low {result.low}/{result.before} "
          f"({result.low_fraction:.3f}) for ≥ {SUSTAINED_S} s, {result.instant_low} at an instant, "
          f"Jaccard after {result.overlap:.3f}, "
          f"End-of-RIB {result.sent_end_of_rib_s:.1f} s after the stop")
    assert result.low_fraction >= 0.99
    assert result.overlap >= 0.98


def test_without_graceful_restart_the_switch_drops_topfibs_routes_at_once(lab: Lab) -> None:
    """BIRD does graceful restart, topfib does not advertise it (the default): unchanged behaviour."""
    async def scenario() -> None:
        config = _config(lab, "nogr", 0)
        proc = TopfibProcess(config, lab.workdir / "nogr.log")
        try:
            with ZipfSflow(_sflow_port(config), lab.prefixes_v4 + lab.prefixes_v6):
                async with lab.watch_fib(LowWatcher) as watch:
                    proc.start()
                    await asyncio.to_thread(proc.wait_healthy)
                    full = CAP_V4 + CAP_V6
                    assert await watch.wait_for(lambda fib: len(fib) >= full, 60.0), proc.log()[-3000:]
                    proc.stop()
                    assert await watch.wait_for(lambda fib: not fib, 10.0), "stale routes kept without it"
                    assert END_OF_RIB_LOGGED not in proc.log()
        finally:
            proc.stop()

    asyncio.run(scenario())
