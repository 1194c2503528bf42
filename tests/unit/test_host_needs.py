"""Non-Python needs are checked at start with a clear message: ExaBGP for ``run`` and ``demo`` (exit 2
before anything is bound or started), matplotlib only for ``simulate --plot`` (the ``[plot]`` extra)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from topfib.controller.cli import simulate as simulate_cli
from topfib.controller.cli.app import app
from topfib.controller.demo.demo import run_demo
from topfib.controller.exabgp.runner import exabgp_missing_reason
from topfib.controller.service.run import run_service

REPO = Path(__file__).resolve().parents[2]


def _no_exabgp_anywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing beside the interpreter, nothing on PATH."""
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))


def _free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    with socket.socket(type=kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_executable_that_exists_is_enough(tmp_path: Path) -> None:
    exe = tmp_path / "exabgp"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert exabgp_missing_reason(str(exe)) is None


def test_the_configured_executable_missing_names_the_key(tmp_path: Path) -> None:
    reason = exabgp_missing_reason(str(tmp_path / "exabgp"))
    assert reason is not None and "exabgp.executable" in reason and "ExaBGP not found" in reason


def test_the_default_missing_says_where_it_looked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_exabgp_anywhere(monkeypatch, tmp_path)
    reason = exabgp_missing_reason()
    assert reason is not None and "on PATH" in reason and str(tmp_path / "python") in reason


def test_run_without_exabgp_exits_2_before_binding(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port, sflow_port = _free_port(), _free_port(socket.SOCK_DGRAM)
    text = (REPO / "examples" / "single-switch.toml").read_text()
    text = text.replace('listen = "127.0.0.1:8080"', f'listen = "127.0.0.1:{port}"')
    text = text.replace('sflow_listen = ["0.0.0.0:6343"]', f'sflow_listen = ["127.0.0.1:{sflow_port}"]')
    config = tmp_path / "topfib.toml"
    config.write_text(text + f'\n[exabgp]\nexecutable = "{tmp_path / "no-exabgp"}"\n')
    assert run_service(config) == 2
    err = capsys.readouterr().err
    assert str(config) in err and "exabgp.executable" in err and "ExaBGP not found" in err
    with socket.socket() as api, socket.socket(type=socket.SOCK_DGRAM) as sflow:  # nothing was bound
        api.bind(("127.0.0.1", port))
        sflow.bind(("127.0.0.1", sflow_port))


def test_demo_without_exabgp_exits_2_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_exabgp_anywhere(monkeypatch, tmp_path)
    assert run_demo(1.0) == 2
    assert "ExaBGP not found" in capsys.readouterr().err


def test_plot_without_matplotlib_points_at_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(simulate_cli, "find_spec", lambda name: None)
    result = CliRunner().invoke(app, ["simulate", "--rib", str(tmp_path / "rib"), "--traffic", "zipf:1.0",
                                          "--cap", "10", "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 2
    assert "pip install 'topfib[plot]'" in result.output
    assert not (tmp_path / "p.png").exists()
