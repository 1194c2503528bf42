"""The ExaBGP launcher: the reactor does not sleep in poll() while API commands are queued."""

from __future__ import annotations

import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from topfib.controller.exabgp.launch import skip_wait_while_api_work_is_queued
from topfib.controller.exabgp.runner import LAUNCHER, ExabgpRunner, default_exabgp_argv

loop = pytest.importorskip("exabgp.reactor.loop")


@pytest.fixture
def patched_reactor() -> Iterator[Any]:
    reactor = loop.Reactor
    original = reactor._wait_for_io
    assert skip_wait_while_api_work_is_queued()
    try:
        yield reactor
    finally:
        reactor._wait_for_io = original


def _waited(reactor: Any, queued: bool, sleep_ms: int) -> float:
    fake = SimpleNamespace(_poller=select.poll(), asynchronous=SimpleNamespace(ready=lambda: not queued),
                           _prevent_spin=lambda: False)
    began = time.monotonic()
    assert list(reactor._wait_for_io(fake, sleep_ms)) == []
    return time.monotonic() - began


def test_no_idle_wait_while_commands_are_queued_and_the_full_wait_otherwise(patched_reactor: Any) -> None:
    assert _waited(patched_reactor, queued=True, sleep_ms=1000) < 0.5
    assert _waited(patched_reactor, queued=False, sleep_ms=200) >= 0.19
    assert skip_wait_while_api_work_is_queued()  # twice: wrapped once only
    assert _waited(patched_reactor, queued=False, sleep_ms=200) >= 0.19


def test_the_venv_exabgp_runs_through_the_launcher_and_a_configured_one_as_it_is(tmp_path: Path) -> None:
    argv = default_exabgp_argv()
    assert argv == [sys.executable, "-P", str(LAUNCHER)]
    runner = ExabgpRunner(tmp_path / "c.conf", switch_name="s")
    assert runner.command() == [*argv, "server", str(tmp_path / "c.conf")]
    runner = ExabgpRunner(tmp_path / "c.conf", switch_name="s", executable="/x/exabgp")
    assert runner.command()[:2] == ["/x/exabgp", "server"]
    # run from its own directory, the launcher must not import controller/selection/select.py as ``select``
    done = subprocess.run([*argv, "version"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "ExaBGP" in done.stdout, done.stderr
