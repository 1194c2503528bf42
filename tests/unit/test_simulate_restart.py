"""``topfib simulate --restart-at``: a warm restart costs no more churn than the steady state."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.unit.test_simulate import FAST, _pfx2as, sim_rib, stream
from topfib.controller.sim.restart import profile_line
from topfib.controller.sim.simulate import run_simulate, simulate

PREFIXES = [f"10.{i // 256}.{i % 256}.0/24" for i in range(600)]
CAP = 60


def test_after_a_warm_restart_churn_stays_at_the_steady_state() -> None:
    settings = dataclasses.replace(FAST, warmup_s=3 * 3600.0, duration_s=2 * 3600.0, loop_period_s=60.0,
                                   restart_at_s=3 * 3600.0)
    (warm,) = simulate(sim_rib(PREFIXES), stream(len(PREFIXES), 1.0), [CAP], settings)[0]
    cold_first_hour, *_ = warm.hourly_changes
    steady = max(warm.hourly_changes[1:3])  # the two hours before the restart
    after = warm.hourly_changes[3]
    assert cold_first_hour >= CAP  # a cold start fills the FIB (and trades it up)
    assert after <= max(steady, 1), warm.hourly_changes
    line = profile_line(CAP, warm.hourly_changes, 3 * 3600.0)
    assert line.startswith(f"cap {CAP}: warm restart in hour 4: changes per hour from it, % of cap: ")


def test_restart_at_must_lie_within_the_simulated_time(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    rib = _pfx2as(tmp_path)
    assert run_simulate(rib, "zipf:1.0", [10], False, None, 300.0, 1, 300.0, restart_at=600.0) == 2
    assert "--restart-at" in capsys.readouterr().err
    assert run_simulate(rib, "zipf:1.0", [10], False, None, 600.0, 1, 300.0, restart_at=600.0) == 0
    assert "warm restart in hour 1" in capsys.readouterr().out
