"""Config values that reach ExaBGP's config or the token table verbatim are checked strictly.

``ipaddress`` takes anything after ``%`` as a scope id, so ``neighbor = "fe80::1%x {\\n}…"`` used
to pass check-config and inject statements into ExaBGP's configuration; two ``[[token]]`` tables
with the same name or hash used to be accepted (the last one winning).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_config import GOOD
from topfib.api.tokens import TokenTable
from topfib.controller.addresses import parse_ip
from topfib.controller.config import ConfigError, TokenConfig, parse_config

INJECTED = 'fe80::1%x {\\n}\\nprocess evil { run evil.sh; encoder json; }\\nneighbor 10.0.0.2 {'
LONG_NAME = "e" * 16  # one past Linux's interface name limit
HASH_A = "a" * 64
HASH_B = "b" * 64


def _token(name: str, sha256: str, role: str = "ap") -> str:
    return f'\n[[token]]\nname = "{name}"\nrole = "{role}"\nsha256 = "{sha256}"\n'


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('neighbor = "10.0.0.2"', f'neighbor = "{INJECTED}"', "switch.0.neighbor"),
        ('neighbor = "10.0.0.2"', 'neighbor = "fe80::2%eth0"', "switch.0.neighbor"),  # ExaBGP takes no scope
        ('local_address = "10.0.0.1"', 'local_address = "fe80::1%a;b"', "switch.0.local_address"),
        ('sflow_agents = ["10.0.0.2"]', 'sflow_agents = ["fe80::2%eth0 }"]', "switch.0.sflow_agents"),
        ('sflow_agents = ["10.0.0.2"]', f'sflow_agents = ["fe80::2%{LONG_NAME}"]', "switch.0.sflow_agents"),
        ('listen = "127.0.0.1:8080"', 'listen = "[fe80::1%lo\\n]:8080"', "api.listen"),
        ('sflow_listen = ["0.0.0.0:6343"]', 'sflow_listen = ["[fe80::1%{]:6343"]', "collector.sflow_listen"),
    ],
)
def test_bad_scope_ids_are_refused_naming_the_key(old: str, new: str, key: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError) as info:
        parse_config(GOOD.replace(old, new))
    assert str(info.value).startswith(key)


def test_interface_scope_ids_stay_accepted_where_a_socket_can_use_them() -> None:
    config = parse_config(GOOD.replace('sflow_agents = ["10.0.0.2"]', 'sflow_agents = ["fe80::2%eth0.100"]')
                          .replace('"0.0.0.0:6343"', '"[fe80::1%3]:6343"'))
    assert config.switch[0].sflow_agents == ["fe80::2%eth0.100"]
    assert str(parse_ip("fe80::1%br-lan_2")) == "fe80::1%br-lan_2"


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (_token("ap1", HASH_A) + _token("ap1", HASH_B),
         "token: .*token\\[1\\]\\.name 'ap1' repeats token\\[0\\]"),
        (_token("ap1", HASH_A) + _token("ops", HASH_A, "operator"),
         "token: .*token\\[1\\]\\.sha256 repeats token\\[0\\]\\.sha256"),
    ],
)
def test_duplicate_token_names_or_hashes_are_refused(tokens: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(GOOD + tokens)


def test_token_table_refuses_a_hash_twice() -> None:
    # the same hash for an AP and an operator would authenticate as whichever came last
    with pytest.raises(ValueError, match="sha256 repeats"):
        TokenTable([TokenConfig(name="ap1", role="ap", sha256=HASH_A),
                    TokenConfig(name="ops", role="operator", sha256=HASH_A)])


@pytest.mark.parametrize("bad", [GOOD.replace('neighbor = "10.0.0.2"', f'neighbor = "{INJECTED}"'),
                                 GOOD + _token("ap1", HASH_A) + _token("ap1", HASH_B)])
def test_check_config_exits_2_naming_the_key(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(bad)
    result = subprocess.run([sys.executable, "-m", "topfib.controller.cli.app", "check-config", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "switch.0.neighbor" in result.stderr or "token: " in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("line", "key"), [
    ("min_dwell_s = inf", "switch.0.min_dwell_s"),
    ("request_ttl_max_s = inf", "switch.0.request_ttl_max_s"),
    ("loop_period_s = inf", "switch.0.loop_period_s"),
    ("margin = inf", "switch.0.margin"),
    ("min_swap_gain = nan", "switch.0.min_swap_gain"),
])
def test_infinite_or_nan_values_are_refused_naming_the_key(line: str, key: str) -> None:
    """TOML spells inf and nan; an infinite TTL passed check-config and then made every
    computation of the settings in force raise (API answers 500, every loop iteration failed)."""
    with pytest.raises(ConfigError, match=rf"{key}: .*finite"):
        parse_config(GOOD + line + "\n")
