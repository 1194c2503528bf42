"""What a config reload applies and what it leaves for a restart (topfib.controller.service.reload)."""

from __future__ import annotations

from pathlib import Path

import pytest

from topfib.controller.config import ConfigError, load_config, parse_config
from topfib.controller.service.reload import plan_reload, prepare_reload

BASE = """
[api]
listen = "127.0.0.1:{port}"
top_max = {top_max}
request_batch_max = {batch}
[[switch]]
name = "edge1"
neighbor = "192.0.2.1"
local_address = "192.0.2.2"
local_as = 65000
peer_as = 65001
fib_cap_ipv4 = {cap}
fib_cap_ipv6 = 100
{extra}
"""
TOKEN = '[[token]]\nname = "ops"\nrole = "operator"\nsha256 = "{}"\n'


def config(port: int = 8080, cap: int = 1000, extra: str = "", top_max: int = 100, batch: int = 100) -> str:
    return BASE.format(port=port, cap=cap, extra=extra, top_max=top_max, batch=batch)


def test_reloadable_keys_apply_and_the_others_keep_their_running_value() -> None:
    running = parse_config(config())
    new = parse_config(config(port=9090, cap=500, top_max=50, batch=10,
                              extra="margin = 0.5\nttl_security = 1\n" + TOKEN.format("a" * 64)))
    plan = plan_reload(running, new)
    sw = plan.config.switch[0]
    assert (sw.fib_cap_ipv4, sw.margin, plan.config.api.top_max) == (500, 0.5, 50)
    assert [t.sha256 for t in plan.config.token] == ["a" * 64]
    assert plan.config.api.listen == "127.0.0.1:8080" and sw.ttl_security == 0
    assert plan.config.api.request_batch_max == 100  # the request route's body schema is built with it
    assert sorted(plan.needs_restart) == ["api.listen", "api.request_batch_max", "switch[edge1].ttl_security"]


def test_switches_added_or_removed_wait_for_a_restart() -> None:
    running = parse_config(config())
    renamed = parse_config(config(cap=10).replace('name = "edge1"', 'name = "edge2"'))
    plan = plan_reload(running, renamed)
    assert [sw.name for sw in plan.config.switch] == ["edge1"]
    assert plan.config.switch[0].fib_cap_ipv4 == 1000
    assert plan.needs_restart == ["switch[0] (edge1: removed)", "switch (edge2: added)"]


@pytest.mark.parametrize("text", ["not toml [", config(cap=0), config() + TOKEN.format("b" * 64) * 2])
def test_an_invalid_file_gives_no_reload_and_names_the_key(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "topfib.toml"
    path.write_text(text)
    assert prepare_reload(path, parse_config(config())) is None
    assert "config reload failed, still running on the previous config" in caplog.text


def test_a_missing_tls_file_fails_the_whole_reload_even_when_tls_waits_for_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "topfib.toml"
    path.write_text(config().replace("top_max = 100", f'top_max = 100\ntls_cert_file = "{tmp_path}/c.pem"\n'
                                                       f'tls_key_file = "{tmp_path}/k.pem"'))
    assert prepare_reload(path, parse_config(config())) is None
    assert "api.tls_cert_file: cannot read" in caplog.text


@pytest.mark.parametrize("where", ["file", "directory", "symlinked file"])
def test_a_config_anyone_may_rewrite_is_refused_at_start_and_reload(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The file holds the API tokens: a file (or a symlink's target) made world-writable, or one in
    a world-writable directory (anyone may replace it), would let any local user add an operator
    token at the next SIGHUP. Refused, and the running config stays."""
    directory = tmp_path / "etc"
    directory.mkdir()
    path = directory / "topfib.toml"
    path.write_text(config(cap=500) + TOKEN.format("c" * 64))
    if where == "file":
        path.chmod(0o666)
    elif where == "directory":
        directory.chmod(0o777)
    else:
        path.chmod(0o666)
        link = tmp_path / "link.toml"
        link.symlink_to(path)
        path = link
    with pytest.raises(ConfigError, match="writable by anyone"):
        load_config(path)
    assert prepare_reload(path, parse_config(config())) is None
    assert "writable by anyone" in caplog.text


def test_a_sticky_shared_directory_is_fine(tmp_path: Path) -> None:
    """/tmp-like directories (sticky) let nobody else replace the file."""
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(0o1777)
    path = directory / "topfib.toml"
    path.write_text(config())
    assert load_config(path).switch[0].fib_cap_ipv4 == 1000
