"""The README stays the reference: every config key, metric and CLI command is documented there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from topfib.controller.config import (
    ApiConfig,
    CollectorConfig,
    ExabgpConfig,
    MatrixConfig,
    SpecialUseConfig,
    StoreConfig,
    SwitchConfig,
    TokenConfig,
)

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("api", ApiConfig),
    ("collector", CollectorConfig),
    ("store", StoreConfig),
    ("exabgp", ExabgpConfig),
    ("matrix", MatrixConfig),
    ("special_use", SpecialUseConfig),
    ("switch[]", SwitchConfig),
    ("token[]", TokenConfig),
]


def _metric_names() -> set[str]:
    names: set[str] = set()
    for package in ("collector", "controller", "api"):
        for source in (REPO / package).rglob("*.py"):
            names.update(re.findall(r'"(topfib_[a-z0-9_]+)"', source.read_text()))
    return names


@pytest.mark.parametrize(("section", "model"), SECTIONS)
def test_every_config_key_is_documented(section: str, model: type[BaseModel]) -> None:
    for key in model.model_fields:
        assert f"`{section}.{key}`" in README or re.search(
            rf"`{re.escape(section)}\.[^`]*\b{key}\b", README
        ), f"config key {section}.{key} is not in README.md"


def test_every_metric_is_documented() -> None:
    missing = sorted(name for name in _metric_names() if f"`{name}`" not in README)
    assert not missing, f"metrics missing from README.md: {missing}"


def test_every_cli_command_is_documented() -> None:
    from typer.main import get_command

    from topfib.controller.cli.app import app

    group = get_command(app)
    commands = getattr(group, "commands", {})
    assert commands, "the CLI has no commands"
    for name, command in commands.items():
        sub = getattr(command, "commands", None)
        for full in ([f"{name} {s}" for s in sub] if sub else [name]):
            assert f"topfib {full}" in README, f"`topfib {full}` is not in README.md"


def test_quickstart_commands_exist_and_ci_runs_the_test_command() -> None:
    for script in ("scripts/demo.sh", "scripts/test.sh"):
        assert f"./{script}" in README
        assert (REPO / script).exists()
    assert "scripts/test.sh" in (REPO / ".ci" / "run").read_text()
