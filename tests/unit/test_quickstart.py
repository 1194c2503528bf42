"""The README's quickstart is exactly two commands, both present and executable, and CI runs the second."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _quickstart_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "no ```sh block in the Quickstart section"
    return [line.split("#", 1)[0].strip() for line in block[1].splitlines() if line.split("#", 1)[0].strip()]


def test_quickstart_is_the_demo_and_the_test_suite() -> None:
    assert _quickstart_commands() == ["./scripts/demo.sh", "./scripts/test.sh"]


def test_quickstart_scripts_are_executable_bash_that_set_up_first() -> None:
    for command in _quickstart_commands():
        script = REPO / command
        assert script.is_file() and os.access(script, os.X_OK), f"{command} is not executable"
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n")
        assert "set -euo pipefail" in text
        assert ". scripts/setup.sh" in text, f"{command} must do its own set-up"
        assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0


def test_demo_script_runs_topfib_demo_with_its_arguments() -> None:
    text = (REPO / "scripts" / "demo.sh").read_text()
    assert 'exec .venv/bin/topfib demo "$@"' in text


def test_setup_installs_what_the_demo_and_tests_need() -> None:
    text = (REPO / "scripts" / "setup.sh").read_text()
    packages = re.search(r'APT_PACKAGES="([^"]*)"', text)
    assert packages is not None
    assert {"bird2", "redis-server", "iproute2"} <= set(packages[1].split())
    assert "pip install -q -e '.[dev]'" in text


def test_ci_runs_the_readme_test_command() -> None:
    ci = REPO / ".ci" / "run"
    assert os.access(ci, os.X_OK)
    text = ci.read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert lines[-1] == "exec ./scripts/test.sh", lines
