"""Config: every bad config exits non-zero naming the key; nothing starts half-way."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from topfib.controller.config import ConfigError, parse_config

GOOD = """
[api]
listen = "127.0.0.1:8080"

[collector]
sflow_listen = ["0.0.0.0:6343"]

[[switch]]
name = "edge1"
neighbor = "10.0.0.2"
local_address = "10.0.0.1"
local_as = 65000
peer_as = 65000
sflow_agents = ["10.0.0.2"]
fib_cap_ipv4 = 16000
fib_cap_ipv6 = 4000
"""


def test_good_config_parses_with_documented_defaults() -> None:
    config = parse_config(GOOD)
    switch = config.switch[0]
    assert switch.loop_period_s == 1.0
    assert switch.bgp_port == 179
    assert switch.graceful_restart_s == 0  # off, as before
    assert config.store.url == "memory://"
    assert config.collector.fast_half_life_s == 30.0
    assert config.collector.slow_half_life_s == 3600.0


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda t: t.replace('fib_cap_ipv4 = 16000\n', ""), "switch.0.fib_cap_ipv4"),  # missing
        (lambda t: t.replace("fib_cap_ipv4 = 16000", 'fib_cap_ipv4 = "lots"'), "switch.0.fib_cap_ipv4"),
        (lambda t: t.replace("fib_cap_ipv4 = 16000", "fib_cap_ipv4 = 0"), "switch.0.fib_cap_ipv4"),
        (lambda t: t.replace("fib_cap_ipv6 = 4000", "fib_cap_ipv6 = -1"), "switch.0.fib_cap_ipv6"),
        (lambda t: t + "\nsurprise = 1\n", "switch.0.surprise"),  # unknown key inside the table
        (lambda t: "bogus = true\n" + t, "bogus"),  # unknown top-level key
        (lambda t: t.replace('neighbor = "10.0.0.2"', 'neighbor = "10.0.0.300"'), "switch.0.neighbor"),
        (lambda t: t.replace('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1"'), "api.listen"),
        (lambda t: t.replace('"0.0.0.0:6343"', '"0.0.0.0:8080"'), "api.listen and collector.sflow_listen"),
        (lambda t: t.replace("local_as = 65000", "local_as = 4294967296"), "switch.0.local_as"),
        (lambda t: t.replace('sflow_agents = ["10.0.0.2"]', 'sflow_agents = ["x"]'), "switch.0.sflow_agents"),
        (lambda t: t.replace("[[switch]]", "[switch]"), "switch"),
        (lambda t: t.replace("peer_as = 65000", 'peer_as = "65000"'), "switch.0.peer_as"),  # no coercion
        # RFC 4724's Restart Time has 12 bits
        (lambda t: t + "graceful_restart_s = 4096\n", "switch.0.graceful_restart_s"),
        (lambda t: t + "graceful_restart_s = -1\n", "switch.0.graceful_restart_s"),
    ],
)
def test_bad_config_names_the_key(change: Callable[[str], str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(change(GOOD))
    assert key in str(info.value)


def test_duplicate_switch_names_and_agents_are_refused() -> None:
    second = GOOD[GOOD.index("[[switch]]"):]
    with pytest.raises(ConfigError, match="switch names must be unique"):
        parse_config(GOOD + second)
    renamed = second.replace('name = "edge1"', 'name = "edge2"')
    with pytest.raises(ConfigError, match=r"sflow agent 10\.0\.0\.2"):
        parse_config(GOOD + renamed)


def test_not_toml_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[[switch]\nname=")


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_cli_exits_non_zero_naming_the_key(tmp_path: Path, command: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("fib_cap_ipv4 = 16000", "fib_cap_ipv4 = 0"))
    argv = [sys.executable, "-m", "topfib.controller.cli.app", command]
    argv += [str(bad)] if command == "check-config" else ["--config", str(bad)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "switch.0.fib_cap_ipv4" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    result = subprocess.run(
        [sys.executable, "-m", "topfib.controller.cli.app", "check-config", str(good)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr


def test_matrix_defaults_to_memory_and_api_only() -> None:
    matrix = parse_config(GOOD).matrix
    assert (matrix.enabled, matrix.interval_s, matrix.directory, matrix.format) == (True, 60, None, "jsonl")
    assert (matrix.keep_intervals, matrix.max_rows, matrix.keep_files) == (60, 10_000, 1440)
    assert matrix.effective_file_interval_s == 60
    hourly = parse_config(GOOD + '\n[matrix]\ndirectory = "/tmp/m"\nformat = "csv"\nfile_interval_s = 3600\n')
    assert (hourly.matrix.directory, hourly.matrix.effective_file_interval_s) == ("/tmp/m", 3600)


@pytest.mark.parametrize(
    ("matrix", "key"),
    [
        ('format = "xml"', "matrix.format"),
        ("interval_s = 0", "matrix.interval_s"),
        ('interval_s = "60"', "matrix.interval_s"),  # no coercion
        ("interval_s = 90.5", "matrix.interval_s"),
        ("max_rows = 0", "matrix.max_rows"),
        ("keep_intervals = 0", "matrix.keep_intervals"),
        ("keep_files = 0", "matrix.keep_files"),
        ('directory = ""', "matrix.directory"),
        ("file_interval_s = 90", "matrix.file_interval_s"),  # not a multiple of interval_s
        ('enabled = false\ndirectory = "/tmp/m"', "matrix.directory"),
        ("surprise = 1", "matrix.surprise"),
    ],
)
def test_bad_matrix_settings_name_the_key(matrix: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(GOOD + f"\n[matrix]\n{matrix}\n")
    assert key in str(info.value)
