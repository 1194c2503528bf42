"""contrib/systemd/topfib.service: hardened, starts the CLI form that exists, and systemd accepts it.

``systemd-analyze verify`` checks every directive (unknown keys and bad values are reported, not
fatal, so the test fails on any message about the unit) and that the commands exist: the unit is
verified with its ``/opt/topfib/venv`` paths pointed at this environment's real ``topfib``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from tests.conftest import REPO_ROOT
from topfib.controller.cli.app import app

UNIT = REPO_ROOT / "contrib" / "systemd" / "topfib.service"
INSTALLED_TOPFIB = "/opt/topfib/venv/bin/topfib"
CONFIG = "/etc/topfib/topfib.toml"
# What binding BGP's port 179 (passive sessions) or an API/flow port under 1024 needs; nothing else.
ALLOWED_CAPABILITIES = {"CAP_NET_BIND_SERVICE"}


def directives() -> dict[str, list[str]]:
    """Key -> values in file order (systemd keys may repeat, e.g. SystemCallFilter)."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_service_runs_as_an_unprivileged_user_with_a_read_only_system() -> None:
    unit = directives()
    assert unit.get("DynamicUser") == ["yes"] or unit.get("User") == ["topfib"]
    assert "User" not in unit or unit["User"] != ["root"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["NoNewPrivileges"] == ["yes"]
    for directory in ("StateDirectory", "RuntimeDirectory", "ConfigurationDirectory"):
        assert unit[directory] == ["topfib"], directory
    assert int(unit["LimitNOFILE"][0]) >= 65536


def test_capabilities_are_only_what_binding_low_ports_needs() -> None:
    unit = directives()
    for key in ("CapabilityBoundingSet", "AmbientCapabilities"):
        (value,) = unit[key]
        assert set(value.split()) <= ALLOWED_CAPABILITIES, key


def test_exec_lines_use_commands_the_cli_has() -> None:
    unit = directives()
    assert unit["ExecStart"] == [f"{INSTALLED_TOPFIB} run --config {CONFIG}"]
    assert unit["ExecStartPre"] == [f"{INSTALLED_TOPFIB} check-config {CONFIG}"]
    assert unit["RestartPreventExitStatus"] == ["2"]  # check-config's exit status for a bad config
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # topfib run reloads its config on SIGHUP
    commands = getattr(get_command(app), "commands", {})
    assert "--config" in [opt for param in commands["run"].params for opt in param.opts]
    assert "check-config" in commands


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    return path


def unit_with_this_topfib(tmp_path: Path) -> Path:
    topfib = Path(sys.executable).parent / "topfib"
    if not topfib.is_file():
        pytest.skip(f"no topfib console script beside {sys.executable} (pip install -e . first)")
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace(INSTALLED_TOPFIB, str(topfib)))
    return copy


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    tool = systemd_analyze()
    unit = unit_with_this_topfib(tmp_path)
    result = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60,
                            check=False)
    complaints = [line for line in result.stderr.splitlines() if UNIT.name in line]
    assert result.returncode == 0 and not complaints, result.stderr


def test_systemd_rates_the_exposure_ok(tmp_path: Path) -> None:
    tool = systemd_analyze()
    unit = unit_with_this_topfib(tmp_path)
    # --threshold is in tenths of systemd's 0-10 exposure scale: 20 = 2.0, "OK" (the unit scores 1.7)
    result = subprocess.run([tool, "security", "--offline=true", "--threshold=20", str(unit)],
                            capture_output=True, text=True, timeout=60, check=False)
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("systemd-analyze too old for security --offline (systemd < 250)")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
