"""The wheel is the product: built with ``pip wheel --no-deps``, installed into a fresh venv (its
dependencies from the configured index / PIP_FIND_LINKS), and run from a directory outside the
checkout with no PYTHONPATH, so only what the wheel ships can be imported or read.

``topfib check-config`` passes every examples/*.toml and ``topfib demo --duration 20`` gets routes
into the namespace BIRD switch through the installed ExaBGP bridge and template.
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

from tests.integration.test_demo import DEMO_DURATION_S, _assert_worked_and_left_nothing, _summary
from tests.wheel_support import REPO, build_wheel
from topfib.controller.demo.netns_lab import unavailable_reason

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INSTALL_TIMEOUT_S = 300.0


def _outside_env(**extra: str) -> dict[str, str]:
    """The environment a user has: nothing pointing at the checkout."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ directory of a fresh venv holding the wheel and its dependencies."""
    work = tmp_path_factory.mktemp("wheel-install")
    wheel = build_wheel(work)
    venv.create(work / "venv", with_pip=True)
    bin_dir = work / "venv" / "bin"
    result = subprocess.run([str(bin_dir / "pip"), "install", "--quiet", str(wheel)], cwd=work,
                            env=_outside_env(), capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
                            check=False)
    assert result.returncode == 0, f"pip install failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return bin_dir


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory with nothing of the checkout in it."""
    run = tmp_path / "run"
    run.mkdir()
    return run


def test_the_installed_packages_and_exabgp_files_come_from_the_venv(installed: Path, outside: Path) -> None:
    probe = ("import importlib.util, topfib.api.routes, topfib.collector; "
             "import topfib.controller.exabgp.config as c; "
             "print(topfib.api.routes.__file__); print(c.TEMPLATE_PATH); print(c.BRIDGE_PATH); "
             "assert not any(importlib.util.find_spec(n) for n in ('api', 'collector', 'controller')), "
             "'a generic top-level name is installed'")
    result = subprocess.run([str(installed / "python"), "-c", probe], cwd=outside, env=_outside_env(),
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    venv_root = installed.parent.resolve()
    for line in result.stdout.split():
        path = Path(line)
        assert path.is_file() and path.resolve().is_relative_to(venv_root), line
        assert not path.resolve().is_relative_to(REPO), line


@pytest.mark.parametrize("example", sorted(p.name for p in (REPO / "examples").glob("*.toml")))
def test_check_config_passes_each_example(installed: Path, outside: Path, example: str) -> None:
    result = subprocess.run([str(installed / "topfib"), "check-config", str(REPO / "examples" / example)],
                            cwd=outside, env=_outside_env(), capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ": ok (" in result.stdout


def test_the_demo_runs_from_the_installed_wheel(installed: Path, outside: Path) -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"the namespace demo needs root, ip and BIRD 2: {reason}")
    # TOPFIB_CORPUS without the table: the demo uses the extract shipped in the wheel
    proc = subprocess.run([str(installed / "topfib"), "demo", "--duration", str(DEMO_DURATION_S)],
                          cwd=outside, env=_outside_env(TOPFIB_CORPUS=str(outside)), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=150, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "bundled extract" in proc.stdout
    _assert_worked_and_left_nothing(_summary(proc.stdout), proc.stdout)
