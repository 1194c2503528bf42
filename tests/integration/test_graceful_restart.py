"""Graceful restart: ``topfib run`` stopped and started again under steady Zipf sFlow with
``switch[].graceful_restart_s`` keeps the switch's kernel FIB at ≥ 99 % of its routes after every
single ``ip monitor`` event (no sampling: a route that leaves and comes back counts), in the BIRD
lab (``graceful restart on``) and in the FRR lab (graceful restart helper, FRR's default, plus
``bgp graceful-restart``); with it off (BIRD still able to do graceful restart) the switch drops
topfib's routes as before.

Traffic goes to topfib's sFlow port on 127.0.0.1 only; the labs' namespaces are the test's own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.fault_support import PeakWatcher, TopfibProcess, write_config
from tests.integration.frr_lab import FrrLab, frr_unavailable_reason
from tests.integration.lab import Lab, async_wait_until, lab_unavailable_reason, wait_until
from tests.integration.test_warm_restart import ZipfSflow, _sflow_port, jaccard

pytestmark = pytest.mark.integration

GRACEFUL_RESTART_S = 60
END_OF_RIB_LOGGED = "End-of-RIB sent"
# As many prefixes as the caps, so the selection cannot change: once the FIB is full, the next
# warm snapshot (every second) holds all of it; GR_SETTLE_S bounds the wait for that snapshot.
GR_SETTLE_S = 5.0
# The caps, and as many prefixes: 1 % of the FIB is two routes, so the bar can tell a switch that
# rewrites its routes one at a time (FRR's zebra: each IPv6 route a delete and an add, ~0.1 ms
# apart, when the restarted session announces it again) from one that lets 1 % of them go.
GR_CAP_V4, GR_CAP_V6 = 180, 20


def gr_lab(switch: str = "bird") -> Lab:
    """The lab with ``switch`` ("bird" or "frr") doing graceful restart, as many prefixes as the
    caps: the selection cannot change across the restart, so what leaves the FIB is what
    graceful restart lets go (swaps would dip it by more than 1 %)."""
    kind = FrrLab if switch == "frr" else Lab
    return kind(routes_v4=GR_CAP_V4, routes_v6=GR_CAP_V6, import_limit=GR_CAP_V4 + GR_CAP_V6,
                graceful_restart=True)


def _skip_unless_runs(switch: str) -> None:
    reason = frr_unavailable_reason() if switch == "frr" else lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def lab() -> Iterator[Lab]:
    _skip_unless_runs("bird")
    with gr_lab("bird") as built:
        yield built


@pytest.fixture(params=["bird", "frr"])
def switch_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    _skip_unless_runs(request.param)
    with gr_lab(request.param) as built:
        if isinstance(built, FrrLab):
            assert wait_until(built.peers_established, 30.0, 0.5), "FRR's peers not up"
        yield built


class LowWatcher(PeakWatcher):
    """A :class:`PeakWatcher` that also keeps the fewest routes the FIB held since
    :meth:`mark_low`, after every single ``ip monitor`` event: no sampling, so a route deleted
    and added back a millisecond later counts (a dump after lost events would hide it:
    ``overflows`` says whether that happened)."""

    def __init__(self, routes: dict[str, str]) -> None:
        self.low: int | None = None
        super().__init__(routes)

    def mark_low(self) -> None:
        self.low = len(self.routes)

    def reset(self, routes: dict[str, str]) -> None:
        super().reset(routes)
        self._note_low()

    def apply(self, line: str) -> None:
        super().apply(line)
        self._note_low()

    def _note_low(self) -> None:
        if self.low is not None:
            self.low = min(self.low, len(self.routes))


@dataclass(frozen=True)
class PlannedRestart:
    before: int  # FIB routes before the restart
    low: int  # the fewest after any ip monitor event from the stop until End-of-RIB and 5 s more
    overflows: int  # times ip monitor lost events meanwhile (0: low saw every event)
    overlap: float  # Jaccard of the FIB after with the one before
    sent_end_of_rib_s: float  # from the stop to the new controller's End-of-RIB

    @property
    def low_fraction(self) -> float:
        return self.low / self.before


def _cap(lab: Lab, family: int) -> int:
    """The lab's cap for ``family``: as many routes as it has prefixes (see :func:`gr_lab`)."""
    return len(lab.prefixes_v4 if family == 4 else lab.prefixes_v6)


def _snapshot_holds(lab: Lab, fib: set[str]) -> bool:
    """The warm snapshot in ``state.directory`` has every route of ``fib``, desired and rated."""
    try:
        doc = json.loads((lab.workdir / "state" / f"{lab.switch_config().name}.warm.json").read_text())
    except (OSError, ValueError):
        return False
    return fib <= {row[0] for row in doc["desired"]} and fib <= {row[0] for row in doc["rates"]}


def _config(lab: Lab, tag: str, graceful_restart_s: int) -> Path:
    state = lab.workdir / "state"
    return write_config(lab, lab.workdir / f"{tag}.toml", cap_v4=_cap(lab, 4), cap_v6=_cap(lab, 6),
                        runtime_dir=lab.workdir / f"run-{tag}",
                        extra=f'flow_sources = ["127.0.0.1"]\ngraceful_restart_s = {graceful_restart_s}\n'
                        f'[state]\nsnapshot_interval_s = 1.0\ndirectory = "{state}"')


async def planned_restart(lab: Lab, *, sigkill: bool = False, settle_s: float = GR_SETTLE_S,
                          graceful_restart_s: int = GRACEFUL_RESTART_S) -> PlannedRestart:
    """Fill the FIB under steady sFlow, stop topfib (SIGTERM, or SIGKILL) and start it again with
    graceful restart on (or, for comparison, off): the fewest routes the switch's kernel FIB
    held meanwhile, event by event."""
    config = _config(lab, "gr", graceful_restart_s)
    first = TopfibProcess(config, lab.workdir / "gr-first.log")
    second = TopfibProcess(config, lab.workdir / "gr-second.log")
    try:
        with ZipfSflow(_sflow_port(config), lab.prefixes_v4 + lab.prefixes_v6):
            async with lab.watch_fib(LowWatcher) as watch:
                first.start()
                await asyncio.to_thread(first.wait_healthy)
                cap_v4, cap_v6 = _cap(lab, 4), _cap(lab, 6)
                full = cap_v4 + cap_v6
                assert await watch.wait_for(lambda fib: len(fib) >= full, 60.0), (
                    f"FIB never filled: {len(watch.routes)} routes {first.log()[-3000:]}")
                if graceful_restart_s:
                    assert await async_wait_until(lambda: END_OF_RIB_LOGGED in first.log(), 10.0), (
                        first.log()[-2000:])
                assert await async_wait_until(lambda: _snapshot_holds(lab, set(watch.routes)), settle_s), (
                    "no warm snapshot with the whole FIB")
                before = set(watch.routes)
                assert watch.peak_v4 <= cap_v4 and watch.peak_v6 <= cap_v6, "over a cap before the restart"
                watch.mark_low()
                overflows = watch.overflows
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
                assert watch.peak_v4 <= cap_v4 and watch.peak_v6 <= cap_v6, (
                    f"peaks {watch.peak_v4}/{watch.peak_v6}: {second.log()[-4000:]}")
                assert watch.low is not None
                return PlannedRestart(len(before), watch.low, watch.overflows - overflows,
                                      jaccard(before, set(watch.routes)), sent)
    finally:
        first.stop()
        second.stop()


def test_a_planned_restart_with_graceful_restart_keeps_the_switch_fib(switch_lab: Lab) -> None:
    result = asyncio.run(planned_restart(switch_lab))
    switch = "FRR" if isinstance(switch_lab, FrrLab) else "BIRD"
    print(f"\ngraceful restart, {switch} (SIGTERM + start): FIB low "
          f"{result.low}/{result.before} ({result.low_fraction:.3f}) after any event, "
          f"Jaccard after {result.overlap:.3f}, End-of-RIB {result.sent_end_of_rib_s:.1f} s after the stop")
    assert result.overflows == 0, "ip monitor lost events: the low may have missed a dip"
    assert result.low_fraction >= 0.99
    # scale-free: at most the one route the switch is rewriting in place is missing at a time
    assert result.before - result.low <= 1
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
                    full = _cap(lab, 4) + _cap(lab, 6)
                    assert await watch.wait_for(lambda fib: len(fib) >= full, 60.0), proc.log()[-3000:]
                    proc.stop()
                    assert await watch.wait_for(lambda fib: not fib, 10.0), "stale routes kept without it"
                    assert END_OF_RIB_LOGGED not in proc.log()
        finally:
            proc.stop()

    asyncio.run(scenario())
