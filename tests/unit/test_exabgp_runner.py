"""ExabgpRunner supervising a stand-in executable: restart with backoff, output capture, clean stop.

The stand-in is a small Python script that behaves like ``exabgp server CONF`` as far as the
runner can tell: it prints, then either exits (crash) or waits to be signalled. It also starts a
child in a new process group, the way ExaBGP starts its helper, whose group the runner must kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from topfib.collector.common.metrics import REGISTRY
from topfib.controller.exabgp.runner import ExabgpRunner

STAND_IN = """#!{python}
import os, subprocess, sys, time
mode = open({mode_file!r}).read().strip()
if mode == "stubborn":
    import signal
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("stand-in started", sys.argv[1:], "speed", os.environ.get("exabgp_reactor_speed"), flush=True)
# Like the bridge, the crash-mode helper exits when its stdin closes; the other one hangs on,
# as a wedged bridge would, and only the runner's kill removes it.
body = "import sys; sys.stdin.read()" if mode == "crash" else "import time; time.sleep(60)"
helper = subprocess.Popen([sys.executable, "-c", body, "bridge.py"], stdin=subprocess.PIPE,
                          start_new_session=True)
open({helper_file!r}, "a").write(f"{{helper.pid}}\\n")
if mode == "crash":
    sys.exit(3)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _setup(tmp_path: Path, mode: str) -> tuple[Path, Path, Path]:
    mode_file = tmp_path / "mode"
    mode_file.write_text(mode)
    helper_file = tmp_path / "helpers"
    helper_file.write_text("")
    exe = tmp_path / "fake-exabgp"
    exe.write_text(STAND_IN.format(python=sys.executable, mode_file=str(mode_file),
                                   helper_file=str(helper_file)))
    exe.chmod(0o755)
    return exe, mode_file, helper_file


def _helpers(helper_file: Path) -> list[int]:
    return [int(line) for line in helper_file.read_text().split()]


def _kill_helpers(helper_file: Path) -> None:
    for pid in _helpers(helper_file):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def _until(condition: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


def test_crashing_exabgp_is_restarted_with_growing_backoff(tmp_path: Path) -> None:
    exe, mode_file, helper_file = _setup(tmp_path, "crash")
    metric = REGISTRY.counter("topfib_exabgp_restarts_total", "", ("switch",))
    before = metric.value(switch="crashy")

    async def main() -> None:
        runner = ExabgpRunner(tmp_path / "conf", switch_name="crashy", executable=str(exe),
                              reactor_speed=0.1, backoff_min_s=0.05, backoff_max_s=0.2)
        await runner.start()
        started = time.monotonic()
        await _until(lambda: runner.restarts >= 3)
        assert time.monotonic() - started >= 0.05 + 0.1  # backoff grew: 0.05, 0.1, …
        mode_file.write_text("run")
        await _until(lambda: runner.running)
        await runner.stop()
        assert not runner.running

    asyncio.run(main())
    assert metric.value(switch="crashy") - before >= 3
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in _helpers(helper_file)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in _helpers(helper_file)), "a helper of a crashed ExaBGP survived"


def test_output_is_captured_and_stop_kills_exabgp_and_the_bridge_group(tmp_path: Path) -> None:
    exe, _, helper_file = _setup(tmp_path, "run")
    log_path = tmp_path / "exabgp.log"

    async def main() -> None:
        runner = ExabgpRunner(tmp_path / "x.conf", switch_name="edge1", executable=str(exe),
                              reactor_speed=0.1, log_path=log_path)
        await runner.start()
        await _until(lambda: bool(_helpers(helper_file)))
        helper = _helpers(helper_file)[0]
        runner.note_bridge_group(os.getpgid(helper))
        pid = runner.pid
        assert pid is not None and os.getpgid(pid) == pid  # its own process group
        await _until(lambda: any("stand-in started" in line for line in runner.recent_output))
        await runner.stop()
        assert not _alive(pid)
        assert not _alive(helper)

    asyncio.run(main())
    text = log_path.read_text()
    assert "'server', '" in text and "x.conf" in text and "speed 0.1" in text


def test_exabgp_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    exe, _, helper_file = _setup(tmp_path, "stubborn")

    async def main() -> None:
        runner = ExabgpRunner(tmp_path / "c", switch_name="edge1", executable=str(exe), stop_grace_s=0.3)
        await runner.start()
        await _until(lambda: any("stand-in" in line for line in runner.recent_output))
        pid = runner.pid
        assert pid is not None
        started = time.monotonic()
        await runner.stop()
        assert 0.25 <= time.monotonic() - started < 3
        assert not _alive(pid)
        assert runner.restarts == 0

    try:
        asyncio.run(main())
    finally:
        _kill_helpers(helper_file)


def test_missing_executable_is_retried_not_fatal(tmp_path: Path) -> None:
    async def main() -> None:
        runner = ExabgpRunner(tmp_path / "c", switch_name="edge1", executable=str(tmp_path / "nope"),
                              backoff_min_s=0.01, backoff_max_s=0.02)
        await runner.start()
        await _until(lambda: runner.restarts >= 2)
        await runner.stop()

    asyncio.run(main())


def test_netns_prefixes_the_command(tmp_path: Path) -> None:
    runner = ExabgpRunner(tmp_path / "c.conf", switch_name="s", executable="/x/exabgp", netns="tf1ctl")
    conf = str(tmp_path / "c.conf")
    assert runner.command() == ["ip", "netns", "exec", "tf1ctl", "/x/exabgp", "server", conf]


def test_exabgp_dies_with_topfib_even_on_sigkill(tmp_path: Path) -> None:
    """An ExaBGP outliving topfib would keep routes nobody manages on the switch."""
    exe, _, helper_file = _setup(tmp_path, "run")
    pid_file = tmp_path / "exabgp.pid"
    topfib = subprocess.Popen([sys.executable, "-c", f"""
import asyncio, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from pathlib import Path
from topfib.controller.exabgp.runner import ExabgpRunner
async def main():
    runner = ExabgpRunner(Path("c"), switch_name="s", executable={str(exe)!r})
    await runner.start()
    Path({str(pid_file)!r}).write_text(str(runner.pid))
    await asyncio.sleep(60)
asyncio.run(main())
"""])
    try:
        deadline = time.monotonic() + 10
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "runner did not start"
            time.sleep(0.02)
        exabgp_pid = int(pid_file.read_text())
        while not _helpers(helper_file):  # past its start-up output: only a signal can end it now
            assert time.monotonic() < deadline, "stand-in did not start"
            time.sleep(0.02)
        assert _alive(exabgp_pid)
        topfib.kill()
        topfib.wait()
        deadline = time.monotonic() + 5
        while _alive(exabgp_pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(exabgp_pid)
    finally:
        if topfib.poll() is None:
            topfib.kill()
            topfib.wait()
        _kill_helpers(helper_file)  # its "wedged bridge": nobody else knows this one


def test_a_refused_output_log_is_reported_and_the_output_still_drained(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    # a symlink planted where ExaBGP's log goes: never followed, and ExaBGP must not block on a
    # pipe nobody reads because the log could not be opened
    exe, _, helper_file = _setup(tmp_path, "run")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    log_path = tmp_path / "exabgp.log"
    log_path.symlink_to(victim)

    async def main() -> None:
        runner = ExabgpRunner(tmp_path / "x.conf", switch_name="edge1", executable=str(exe),
                              log_path=log_path)
        await runner.start()
        try:
            await _until(lambda: any("stand-in started" in line for line in runner.recent_output))
        finally:
            await runner.stop()
            _kill_helpers(helper_file)

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    assert victim.read_text() == "precious\n"
    assert f"not writing ExaBGP's output to a file: {log_path} is a symlink" in caplog.text
