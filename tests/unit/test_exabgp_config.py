"""Rendering ExaBGP's configuration, checked by ExaBGP's own ``validate`` command."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from topfib.controller.config import SwitchConfig
from topfib.controller.exabgp.config import (
    BRIDGE_PATH,
    BridgeCommand,
    ExabgpConfigError,
    process_name,
    render_exabgp_config,
    write_exabgp_config,
)
from topfib.controller.exabgp.runner import default_exabgp_executable, exabgp_environment


def _switch(**overrides: object) -> SwitchConfig:
    fields: dict[str, object] = {
        "name": "edge1",
        "neighbor": "10.99.0.2",
        "local_address": "10.99.0.1",
        "local_as": 65000,
        "peer_as": 65000,
        "fib_cap_ipv4": 1000,
        "fib_cap_ipv6": 100,
    }
    fields.update(overrides)
    return SwitchConfig.model_validate(fields)


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [default_exabgp_executable(), "validate", "-n", str(path)],
        env=exabgp_environment(None), capture_output=True, text=True, timeout=60, check=False,
    )


def _statements(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_active_switch_renders_every_required_statement(tmp_path: Path) -> None:
    text = render_exabgp_config(_switch(), BridgeCommand(tmp_path / "edge1.sock"))
    statements = _statements(text)
    for expected in (
        "neighbor 10.99.0.2 {",
        "router-id 10.99.0.1;",
        "local-address 10.99.0.1;",
        "local-as 65000;",
        "peer-as 65000;",
        "connect 179;",
        "ipv4 unicast;",
        "ipv6 unicast;",
        "add-path receive;",
        "graceful-restart disable;",
        "encoder json;",
        "neighbor-changes;",
        "parsed;",
        "update;",
        f"processes [ {process_name(_switch())} ];",
        f"run {BridgeCommand(tmp_path / 'edge1.sock').python} {BRIDGE_PATH} {tmp_path / 'edge1.sock'};",
    ):
        assert expected in statements, expected
    assert "passive;" not in statements
    assert "$" not in text


def test_passive_switch_listens_on_its_port(tmp_path: Path) -> None:
    statements = _statements(render_exabgp_config(_switch(passive=True, bgp_port=1790),
                                                  BridgeCommand(tmp_path / "s.sock")))
    assert "passive;" in statements
    assert "listen 1790;" in statements
    assert not any(s.startswith("connect") for s in statements)


@pytest.mark.parametrize("overrides", [{}, {"passive": True, "bgp_port": 1790},
                                       {"neighbor": "2001:db8::2", "local_address": "2001:db8::1",
                                        "router_id": "192.0.2.1"},
                                       {"graceful_restart_s": 120}])
def test_exabgp_validate_accepts_rendered_config(tmp_path: Path, overrides: dict[str, object]) -> None:
    conf = write_exabgp_config(_switch(**overrides), BridgeCommand(tmp_path / "s.sock"), tmp_path / "e.conf")
    result = _validate(conf)
    assert result.returncode == 0, result.stdout + result.stderr


def test_exabgp_validate_rejects_a_broken_render(tmp_path: Path) -> None:
    # The check above is only meaningful if validate can fail on our kind of file.
    text = render_exabgp_config(_switch(), BridgeCommand(tmp_path / "s.sock"))
    conf = tmp_path / "bad.conf"
    conf.write_text(text.replace("add-path receive;", "add-path sideways;"))
    assert _validate(conf).returncode != 0


def test_ipv6_local_address_needs_router_id(tmp_path: Path) -> None:
    switch = _switch(neighbor="2001:db8::2", local_address="2001:db8::1")
    with pytest.raises(ExabgpConfigError, match="router_id"):
        render_exabgp_config(switch, BridgeCommand(tmp_path / "s.sock"))


@pytest.mark.parametrize("bad", ["/tmp/with space.sock", "/tmp/semi;colon.sock", "/tmp/{x}.sock"])
def test_socket_path_exabgp_cannot_tokenise_is_refused(bad: str) -> None:
    with pytest.raises(ExabgpConfigError, match="cannot parse"):
        render_exabgp_config(_switch(), BridgeCommand(Path(bad)))


@pytest.mark.parametrize("hold", [1, 2, 70000])
def test_out_of_range_hold_time_is_refused(tmp_path: Path, hold: int) -> None:
    with pytest.raises(ExabgpConfigError, match="hold time"):
        render_exabgp_config(_switch(), BridgeCommand(tmp_path / "s.sock"), hold_time_s=hold)


def test_environment_disables_privilege_drop_and_sets_speed() -> None:
    env = exabgp_environment(0.1, base={"PATH": "/usr/bin"})
    assert env["exabgp_daemon_drop"] == "false"
    assert env["exabgp_reactor_speed"] == "0.1"
    assert env["exabgp_api_ack"] == "true"
    assert env["PATH"] == "/usr/bin"
    assert "exabgp_reactor_speed" not in exabgp_environment(None, base={})


def test_graceful_restart_off_by_default_lets_exabgp_send_end_of_rib(tmp_path: Path) -> None:
    statements = _statements(render_exabgp_config(_switch(), BridgeCommand(tmp_path / "s.sock")))
    assert "graceful-restart disable;" in statements
    assert not any(s.startswith("manual-eor") for s in statements)


def test_graceful_restart_advertises_the_time_and_leaves_end_of_rib_to_topfib(tmp_path: Path) -> None:
    # ExaBGP's own End-of-RIB on a new session would make the switch flush the stale routes
    # before topfib re-announced them: topfib sends it (manual-eor)
    statements = _statements(render_exabgp_config(_switch(graceful_restart_s=120),
                                                  BridgeCommand(tmp_path / "s.sock")))
    assert "graceful-restart 120;" in statements
    assert "manual-eor true;" in statements
    assert "graceful-restart disable;" not in statements

