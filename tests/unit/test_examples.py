"""Every example config is valid, as `topfib check-config` (the real CLI) says, and says what it claims."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from topfib.controller.config import load_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.toml"))


def test_the_examples_the_readme_promises_exist() -> None:
    names = {path.name for path in EXAMPLES}
    assert {"single-switch.toml", "two-switches-redis.toml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_passes_check_config(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "topfib.controller.cli.app", "check-config", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"{path}: ok" in result.stdout


def test_check_config_rejects_a_broken_copy_of_an_example(tmp_path: Path) -> None:
    """The check above can fail: an unknown key in an otherwise valid example is named."""
    broken = tmp_path / "broken.toml"
    broken.write_text((REPO / "examples" / "single-switch.toml").read_text() + "\n[api2]\nlisten = 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "topfib.controller.cli.app", "check-config", str(broken)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "api2" in result.stderr


def test_single_switch_uses_the_in_memory_store() -> None:
    config = load_config(REPO / "examples" / "single-switch.toml")
    assert config.store.url == "memory://"
    assert len(config.switch) == 1


def test_two_switches_share_redis() -> None:
    config = load_config(REPO / "examples" / "two-switches-redis.toml")
    assert config.store.url.startswith("redis://")
    assert [sw.name for sw in config.switch] == ["edge1", "edge2"]
    assert len({sw.neighbor for sw in config.switch}) == 2
