"""The ExaBGP launcher: the reactor does not sleep in poll() while API commands are queued, and a
route handed to ExaBGP is copied without a deep copy when nothing in it is rewritten."""

from __future__ import annotations

import gc
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from topfib.controller.exabgp import launch
from topfib.controller.exabgp.launch import (
    COMMAND_STEPS_PER_TURN,
    GC_FIRST_GENERATION_THRESHOLD,
    collect_garbage_less_often,
    copy_routes_without_deep_copy,
    run_more_command_steps_a_turn,
    skip_wait_while_api_work_is_queued,
)
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


@pytest.fixture
def recorded_remove_self() -> Iterator[list[Any]]:
    """Neighbor.remove_self replaced by a recorder of what reaches ExaBGP's own path, then wrapped."""
    from exabgp.bgp.neighbor import Neighbor

    original = Neighbor.remove_self
    reached: list[Any] = []

    def recorder(neighbor: Any, change: Any) -> Any:
        reached.append(change)
        return change

    Neighbor.remove_self = recorder
    try:
        assert copy_routes_without_deep_copy()
        assert copy_routes_without_deep_copy()  # twice: wrapped once only
        yield reached
    finally:
        Neighbor.remove_self = original


def _parsed(statements: str) -> list[Any]:
    """Routes as ExaBGP 5's API parses ``announce ipv4 STATEMENTS``."""
    from exabgp.configuration.configuration import Configuration
    from exabgp.environment import getenv
    from exabgp.logger import log

    log.init(getenv())
    log.silence()
    configuration: Any = Configuration([])
    configuration.static.clear()
    assert configuration.partial("ipv4", statements, "announce")
    configuration.scope.to_context()
    changes: list[Any] = configuration.scope.pop_routes()
    return changes


def test_a_route_with_its_own_next_hop_gets_its_own_nlri_and_shares_its_attributes(
        recorded_remove_self: list[Any]) -> None:
    from exabgp.bgp.message import Action
    from exabgp.bgp.neighbor import Neighbor

    change = _parsed("unicast 10.0.0.0/24 next-hop 192.0.2.1 local-preference 200")[0]
    change.nlri.action = Action.ANNOUNCE
    before = (change.index(), change.extensive(), change.attributes.index())
    copied = Neighbor.remove_self(None, change)
    assert not recorded_remove_self
    assert copied is not change and copied.nlri is not change.nlri and copied.attributes is change.attributes
    assert (copied.index(), copied.extensive(), copied.attributes.index()) == before
    copied.nlri.action = Action.WITHDRAW  # what ExaBGP does to the copy must not reach the original
    assert change.nlri.action == Action.ANNOUNCE


def test_next_hop_self_and_internal_attributes_take_exabgps_own_path(recorded_remove_self: list[Any]) -> None:
    from exabgp.bgp.neighbor import Neighbor

    own = _parsed("unicast 10.0.0.0/24 next-hop self")[0]
    watched = _parsed("unicast 10.0.1.0/24 next-hop 192.0.2.1 watchdog w1")[0]
    assert Neighbor.remove_self(None, own) is own
    assert Neighbor.remove_self(None, watched) is watched
    assert recorded_remove_self == [own, watched]


def test_more_command_steps_a_turn_and_fewer_collections_keep_the_older_generations() -> None:
    from exabgp.reactor.asynchronous import ASYNC

    limit, thresholds = ASYNC.LIMIT, gc.get_threshold()
    try:
        assert run_more_command_steps_a_turn()
        assert collect_garbage_less_often()
        assert ASYNC.LIMIT == COMMAND_STEPS_PER_TURN
        assert gc.get_threshold() == (GC_FIRST_GENERATION_THRESHOLD, *thresholds[1:])
    finally:
        ASYNC.LIMIT = limit
        gc.set_threshold(*thresholds)


def test_an_interpreter_without_gc_thresholds_keeps_its_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launch, "gc", SimpleNamespace(collect=gc.collect))  # PyPy's gc has no thresholds
    thresholds = gc.get_threshold()
    assert not collect_garbage_less_often()
    assert gc.get_threshold() == thresholds


@pytest.fixture
def hooks_restored() -> Iterator[None]:
    from exabgp.bgp.neighbor import Neighbor
    from exabgp.reactor.asynchronous import ASYNC
    from exabgp.rib.outgoing import OutgoingRIB

    wait, remove_self, updates = loop.Reactor._wait_for_io, Neighbor.remove_self, OutgoingRIB.updates
    limit, thresholds = ASYNC.LIMIT, gc.get_threshold()
    try:
        yield
    finally:
        loop.Reactor._wait_for_io, Neighbor.remove_self, OutgoingRIB.updates = wait, remove_self, updates
        ASYNC.LIMIT = limit
        gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("hooks_restored")
def test_main_installs_every_hook_before_exabgps_main_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import exabgp.application.main
    from exabgp.bgp.neighbor import Neighbor
    from exabgp.reactor.asynchronous import ASYNC
    from exabgp.rib.outgoing import OutgoingRIB

    def installed() -> list[bool]:
        return [getattr(loop.Reactor._wait_for_io, "skips_queued_wait", False),
                getattr(Neighbor.remove_self, "copies_nlri_only", False),
                getattr(OutgoingRIB.updates, "sends_latest_only", False),
                getattr(OutgoingRIB.updates, "sends_withdraws_first", False),
                ASYNC.LIMIT == COMMAND_STEPS_PER_TURN, gc.get_threshold()[0] == GC_FIRST_GENERATION_THRESHOLD]

    assert not any(installed())
    seen: list[list[bool]] = []

    def exabgp_main() -> int:
        seen.append(installed())
        return 3

    monkeypatch.setattr(exabgp.application.main, "main", exabgp_main)
    monkeypatch.setattr(sys, "argv", ["launch.py", "version"])
    assert launch.main() == 3
    assert seen == [[True] * 6]
    assert sys.argv == ["exabgp", "version"]


@pytest.mark.skipif(shutil.which("pypy3") is None, reason="no pypy3 on this machine")
def test_the_launcher_runs_exabgp_under_pypy(tmp_path: Path) -> None:
    """As ``bench_injection --exabgp-python pypy3`` runs it: ExaBGP's package alone on the path."""
    (tmp_path / "exabgp").symlink_to(Path(loop.__file__).parent.parent)
    code = ("import importlib.util as u, sys; "
            f"s = u.spec_from_file_location('topfib_launch', {str(LAUNCHER)!r}); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); sys.exit(m.main())")
    done = subprocess.run(["pypy3", "-c", code, "version"], capture_output=True, text=True, timeout=120,
                          check=False, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "PyPy" in done.stdout, done.stderr
