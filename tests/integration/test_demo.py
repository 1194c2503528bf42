"""`topfib demo` end to end, as a user runs it: a subprocess, stopped by --duration or by Ctrl-C.

Each run must get routes into the BIRD switch's kernel FIB within the cap, answer the access-point
requests, measure coverage, and leave nothing behind: no namespace, no process whose command line
names the run's work directory (BIRD, ExaBGP and the bridge all do), ExaBGP's PID gone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

import pytest

from topfib.controller.demo.demo import CAP_V4, CAP_V6, SUMMARY_TAG
from topfib.controller.demo.netns_lab import unavailable_reason

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# --duration of the runs that stop by it: the demo settles (routes in the FIB, every request
# answered, coverage measured) within ~5 s, even on the full table (the Ctrl-C test)
DEMO_DURATION_S = 12


@pytest.fixture
def _needs_root_and_bird() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"the namespace demo needs root, ip and BIRD 2: {reason}")


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from topfib.controller.cli.app import main; main()", "demo", *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})},
    )


def _summary(output: str) -> dict[str, Any]:
    lines = [line for line in output.splitlines() if line.startswith(SUMMARY_TAG)]
    assert len(lines) == 1, output[-3000:]
    summary: dict[str, Any] = json.loads(lines[0].removeprefix(SUMMARY_TAG))
    return summary


def _processes_naming(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _assert_worked_and_left_nothing(summary: dict[str, Any], output: str, min_coverage: float = 0.3) -> None:
    assert summary["session_state"] == "up", output[-3000:]
    fib = summary["max_switch_fib"]
    assert 0 < fib["ipv4"] <= CAP_V4 and 0 < fib["ipv6"] <= CAP_V6, summary
    assert summary["max_installed"]["ipv4"] <= CAP_V4 and summary["max_installed"]["ipv6"] <= CAP_V6
    assert not summary["cap_guard_fired"], "BIRD's import limit fired: topfib exceeded the cap"
    assert summary["max_coverage"] > min_coverage, summary
    # coverage is read against the best FIB of the same caps on the same traffic, which it cannot beat
    assert summary["coverage"] <= summary["oracle_coverage"] <= 1.0, summary
    assert re.search(r"coverage=[0-9.]+ % of [0-9.]+ % possible", output), output[-3000:]
    assert 0.0 < summary["routed_share"] < 1.0, "some traffic has a peer path, the rest goes by default"
    statuses = sorted(summary["requests"].values())
    assert statuses.count("installed") == 3 and statuses.count("no-route") == 1, summary["requests"]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    for namespace in summary["namespaces"]:
        assert namespace not in listed, f"namespace {namespace} left behind"
    assert _processes_naming(summary["workdir"]) == [], "processes of the demo left behind"
    assert not Path(f"/proc/{summary['exabgp_pid']}").exists()


def _setup_would_reinstall() -> bool:
    """scripts/setup.sh's own test: the venv marker is missing or older than what it installs."""
    marker = REPO / ".venv" / ".installed"
    if not marker.is_file():
        return True
    sources = [REPO / name for name in ("pyproject.toml", "setup.py", "collector/sflow/_sflow_fast.c")]
    return any(path.exists() and path.stat().st_mtime > marker.stat().st_mtime for path in sources)


@pytest.mark.usefixtures("_needs_root_and_bird")
def test_the_readme_demo_command_with_duration_on_the_bundled_table(tmp_path: Path) -> None:
    """``./scripts/demo.sh --duration S`` as the README gives it (its set-up is a no-op once
    scripts/test.sh set the checkout up, as CI does from a fresh clone); TOPFIB_CORPUS without the
    table falls back to the bundled extract."""
    if _setup_would_reinstall():
        pytest.skip("scripts/setup.sh would reinstall the venv here: run the suite through scripts/test.sh")
    proc = subprocess.Popen([str(REPO / "scripts" / "demo.sh"), "--duration", str(DEMO_DURATION_S)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TOPFIB_CORPUS": str(tmp_path)})
    output, _ = proc.communicate(timeout=150)
    assert proc.returncode == 0, output[-3000:]
    assert "bundled extract" in output
    _assert_worked_and_left_nothing(_summary(output), output)


def _settled(line: str) -> bool:
    """A status line showing routes in the switch's FIB and all four requests answered for good."""
    if "switch_fib=v4:" not in line or "switch_fib=v4:0," in line or "requests=" not in line:
        return False
    answers = [item.rsplit(":", 1)[1] for item in line.rsplit("requests=", 1)[1].strip().split(",")]
    return len(answers) == 4 and all(answer in ("installed", "no-route") for answer in answers)


def _read_until_settled(stream: IO[str], seen: list[str], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            return False
        seen.append(line)
        if _settled(line):
            return True
    return False


def _dashboard_is_served(output: str) -> None:
    """The printed dashboard URL serves the page, and its viewer token reads the live status."""
    match = re.search(r"dashboard: (http://[^/]+)/#token=(\S+)", output)
    assert match is not None, output[-3000:]
    base, token = match[1], match[2]
    with urllib.request.urlopen(f"{base}/", timeout=10) as page:
        assert page.status == 200 and "text/html" in page.headers["Content-Type"]
    request = urllib.request.Request(f"{base}/v1/status", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        status = json.loads(response.read())
    (switch,) = status["switches"]
    assert switch["session_state"] == "up"
    assert switch["occupancy"]["ipv4"]["installed"] > 0
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{base}/v1/status", timeout=10)
    refused.value.close()
    assert refused.value.code == 401


@pytest.mark.usefixtures("_needs_root_and_bird")
def test_demo_on_the_full_table_stops_cleanly_on_ctrl_c() -> None:
    proc = _start([])
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        ready = _read_until_settled(proc.stdout, seen, timeout_s=150)
        assert ready, "".join(seen)[-3000:]
        _dashboard_is_served("".join(seen))
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    output = "".join(seen) + rest
    assert proc.returncode == 0, output[-3000:]
    assert "full table" in output
    _assert_worked_and_left_nothing(_summary(output), output)


def test_demo_with_the_exabgp_stand_in(tmp_path: Path) -> None:
    """The switch stand-in used without root: a second ExaBGP on 127.0.0.2 counts what it receives."""
    proc = _start(["--duration", str(DEMO_DURATION_S)],
                  env={"TOPFIB_CORPUS": str(tmp_path), "TOPFIB_DEMO_SWITCH": "exabgp"})
    output, _ = proc.communicate(timeout=150)
    assert proc.returncode == 0, output[-3000:]
    assert "a second ExaBGP on 127.0.0.2" in output
    summary = _summary(output)
    assert summary["namespaces"] == []
    _assert_worked_and_left_nothing(summary, output, min_coverage=0.2)
    assert not Path(f"/proc/{summary['standin_pid']}").exists()
