"""The simulator: RIB indexing, Zipf traffic, coverage bookkeeping and the CLI body."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from topfib.collector.common.prefixes import contains
from topfib.collector.common.shares import top_k_shares
from topfib.collector.rib.paths import BgpPath
from topfib.controller.sim.simulate import (
    SimulationRib,
    SimulationSettings,
    ZipfStream,
    run_simulate,
    simulate,
    synthetic_peer_rib,
)
from topfib.controller.sim.zipf import ZipfTraffic, parse_zipf

PREFIXES = [
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.3.0/24",
    "10.2.0.0/16",
    "11.0.0.0/8",
    "11.0.0.0/9",
    "2001:db8::/32",
    "2001:db8:1::/48",
]


def sim_rib(prefixes: list[str]) -> SimulationRib:
    routes = {p: BgpPath(next_hop="0.0.0.0", as_path=(64500 + i,)) for i, p in enumerate(prefixes)}
    return SimulationRib(synthetic_peer_rib(routes))


def test_ancestors_and_covered_match_brute_force() -> None:
    rib = sim_rib(PREFIXES)
    for index, prefix in enumerate(rib.prefixes):
        expected = sorted(
            (p for p in rib.prefixes if p != prefix and contains(p, prefix)),
            key=lambda p: -int(p.split("/")[1]),
        )
        found = [rib.prefixes[int(row[index])] for row in rib.ancestors if row[index] < len(rib)]
        assert found == expected
    covered = rib.covered(["10.1.0.0/16", "2001:db8::/32"])
    assert {rib.prefixes[i] for i in np.flatnonzero(covered)} == {
        "10.1.0.0/16",
        "10.1.2.0/24",
        "10.1.3.0/24",
        "2001:db8::/32",
        "2001:db8:1::/48",
    }


def test_synthetic_peers_follow_the_origin_as() -> None:
    rib = synthetic_peer_rib(
        {"10.0.0.0/8": BgpPath("0.0.0.0", as_path=(3, 9)), "2001:db8::/32": BgpPath("::", (17,))}
    )
    best = rib.best("10.0.0.0/8")
    assert best is not None and best.next_hop == "192.0.2.2"
    best6 = rib.best("2001:db8::/32")
    assert best6 is not None and best6.next_hop == "2001:db8::2"


def test_zipf_shares_and_samples() -> None:
    zipf = ZipfTraffic.build(1000, 1.0, seed=3)
    share = zipf.share()
    assert share.sum() == pytest.approx(1.0)
    assert share.max() == pytest.approx(1.0 / sum(1.0 / r for r in range(1, 1001)))
    ids, nbytes = zipf.sample(200_000, 1000, np.random.default_rng(5))
    top = int(np.argmax(share))
    assert np.mean(ids == top) == pytest.approx(share[top], rel=0.05)
    assert set(np.unique(nbytes).tolist()) <= {64_000.0, 576_000.0, 1_500_000.0}
    assert parse_zipf("zipf:1.2") == 1.2
    assert parse_zipf("capture.pcap") is None
    with pytest.raises(ValueError):
        parse_zipf("zipf:-1")


def test_traffic_curve_is_the_cumulative_top_k_share() -> None:
    assert top_k_shares(np.array([1.0, 0.0, 3.0])).tolist() == [0.75, 1.0]


FAST = SimulationSettings(duration_s=300.0, warmup_s=300.0, loop_period_s=30.0)


def stream(prefix_count: int, alpha: float) -> ZipfStream:
    return ZipfStream(ZipfTraffic.build(prefix_count, alpha, 1), samples_per_s=2000.0, sampling_rate=1000)


def test_a_cap_holding_every_prefix_covers_everything() -> None:
    rib = sim_rib(PREFIXES)
    results, window = simulate(rib, stream(len(rib), 1.0), [100], FAST)
    (result,) = results
    assert result.coverage == 1.0 and result.oracle_coverage == 1.0
    assert result.max_installed == len(PREFIXES)
    assert result.churn_per_hour == 0.0
    assert window.sum() > 0
    # the first fill, in the warm-up, is the only change; hours count from the start
    assert result.hourly_changes == (len(PREFIXES),)


def test_hourly_changes_cover_warm_up_and_measured_hours() -> None:
    prefixes = [f"10.{i // 256}.{i % 256}.0/24" for i in range(400)]
    settings = dataclasses.replace(FAST, warmup_s=3600.0, duration_s=3600.0, loop_period_s=60.0)
    (result,) = simulate(sim_rib(prefixes), stream(len(prefixes), 1.2), [50], settings)[0]
    assert len(result.hourly_changes) == 2
    assert result.hourly_changes[0] >= 50  # the first fill
    assert result.hourly_changes[1] == round(result.churn_per_hour)  # the measured hour
    assert result.settling() == " ".join(f"{2 * changes:.2f}" for changes in result.hourly_changes)


def test_small_caps_cover_less_than_large_ones_and_stay_within_the_cap() -> None:
    prefixes = [f"10.{i // 256}.{i % 256}.0/24" for i in range(400)]
    rib = sim_rib(prefixes)
    results, _ = simulate(rib, stream(len(rib), 1.2), [5, 50], FAST)
    small, large = results
    assert small.max_installed <= 5 and large.max_installed <= 50
    assert 0.0 < small.coverage < large.coverage < 1.0
    assert small.oracle_coverage < large.oracle_coverage
    assert small.coverage <= small.oracle_coverage * 1.05


def _pfx2as(tmp_path: Path) -> Path:
    path = tmp_path / "rib.pfx2as.gz"
    lines = [f"10.{i // 256}.{i % 256}.0\t24\t{64500 + i}" for i in range(300)] + ["10.0.0.0\t16\t64499"]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def test_cli_json_one_object_per_cap_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "curve.png"
    assert run_simulate(_pfx2as(tmp_path), "zipf:1.1", [10, 400], True, out, 60.0, 7, 60.0) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [sorted(r) for r in rows] == [
        ["cap", "churn_per_hour", "coverage", "max_installed", "oracle_coverage"]
    ] * 2
    assert [r["cap"] for r in rows] == [10, 400]
    assert rows[0]["max_installed"] <= 10 < rows[1]["max_installed"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_text_report_states_its_assumptions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_simulate(_pfx2as(tmp_path), "zipf:1.0", [20], False, None, 60.0, 1, 60.0) == 0
    text = capsys.readouterr().out
    assert "samples/s" in text and "zipf α=1" in text and "ratio" in text
    assert "cap 20: changes per hour from the start, % of cap: " in text


@pytest.mark.parametrize(
    ("traffic", "caps", "duration", "message"),
    [
        ("zipf:x", [10], 60.0, "--traffic"),
        ("zipf:1.0", [0], 60.0, "--cap"),
        ("zipf:1.0", [10], 0.0, "--duration"),
    ],
)
def test_cli_rejects_bad_arguments(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    traffic: str,
    caps: list[int],
    duration: float,
    message: str,
) -> None:
    assert run_simulate(_pfx2as(tmp_path), traffic, caps, False, None, duration, 1) == 2
    assert message in capsys.readouterr().err


def test_cli_warmup_default_is_the_simulators_and_a_negative_one_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from topfib.controller.cli.simulate import DEFAULT_WARMUP_S

    assert SimulationSettings.warmup_s == DEFAULT_WARMUP_S
    assert run_simulate(_pfx2as(tmp_path), "zipf:1.0", [10], False, None, 60.0, 1, -1.0) == 2
    assert "--warmup" in capsys.readouterr().err
    assert run_simulate(_pfx2as(tmp_path), "zipf:1.0", [10], False, None, 60.0, 1, 90.0) == 0
    assert "90 s warm-up then 60 s measured" in capsys.readouterr().out


def test_cli_rejects_a_missing_rib(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_simulate(tmp_path / "nope.gz", "zipf:1.0", [10], False, None, 60.0, 1) == 2
    assert "--rib" in capsys.readouterr().err


def test_capture_replay_maps_destinations_and_spreads_samples(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from topfib.controller.sim.capture_traffic import load_capture

    capture = corpus / "sflow" / "akvorado__data-1140.pcap"
    rib = sim_rib(["45.90.160.0/22", "2a0c:8880::/32"])
    traffic = load_capture(capture, lambda ip: -1 if rib.rib.longest_match(ip) is None else 0, total_s=50.0)
    # 5 samples: 3 to the IPv6 host (1518-byte frames), one to 45.90.161.46 (439), one unrouted (64)
    assert traffic.prefix_ids.tolist() == [0, 0, 0, -1, 0]
    assert traffic.nbytes.tolist() == [1518 * 1024, 439 * 1024, 1518 * 1024, 64 * 1024, 1518 * 1024]
    rng = np.random.default_rng(0)
    assert sum(len(traffic.draw(t, t + 10.0, rng)[0]) for t in range(0, 50, 10)) == 5

    pfx2as = tmp_path / "rib.pfx2as"
    pfx2as.write_text("45.90.160.0\t22\t64500\n2a0c:8880::\t32\t64501\n")
    assert run_simulate(pfx2as, str(capture), [1], True, None, 60.0, 1, 60.0) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["cap"] == 1 and row["max_installed"] == 2  # the cap holds per address family


def test_cli_rejects_traffic_that_is_neither_zipf_nor_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_simulate(_pfx2as(tmp_path), str(tmp_path / "missing.pcap"), [10], False, None, 60.0, 1) == 2
    assert "neither zipf" in capsys.readouterr().err


def test_selection_gets_the_evidence_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    import topfib.controller.sim.simulate as simulate_module

    seen: list[bool] = []
    real_select = simulate_module.__dict__["select"]

    def spy(**kwargs: Any) -> Any:
        seen.append(kwargs.get("evidence") is not None)
        return real_select(**kwargs)

    monkeypatch.setattr(simulate_module, "select", spy)
    rib = sim_rib(PREFIXES)
    short = dataclasses.replace(FAST, duration_s=60.0, warmup_s=60.0)
    simulate(rib, stream(len(rib), 1.0), [5], short)
    assert seen[:-1] and all(seen[:-1])  # the last call is the hindsight oracle: scores only
    seen.clear()
    simulate(rib, stream(len(rib), 1.0), [5], dataclasses.replace(short, use_evidence=False))
    assert seen and not any(seen)
