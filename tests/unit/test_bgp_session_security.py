"""TCP-MD5 and GTSM on the BGP session: config, ExaBGP rendering, the secret kept secret, diagnosis.

The lab tests (tests/integration/test_bgp_session_security.py) show the session with BIRD; here:
the password is validated without being echoed, reaches ExaBGP's config only in base64 in a 0600
file ExaBGP accepts, never shows in the API or metrics, and a session kept down by the kernel's
MD5/GTSM drops is explained from its counters.
"""

from __future__ import annotations

import base64
import logging
import re
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.api_support import (  # noqa: F401  (anyio_backend: a fixture)
    OPERATOR_TOKEN,
    FakeClock,
    anyio_backend,
    auth,
    client,
    make_config,
    make_view,
)
from tests.unit.test_config import GOOD
from topfib.api.app import create_app
from topfib.controller.config import ConfigError, SwitchConfig, parse_config
from topfib.controller.exabgp.config import BridgeCommand, write_exabgp_config
from topfib.controller.exabgp.runner import default_exabgp_executable, exabgp_environment
from topfib.controller.state.store import MemoryStore
from topfib.controller.switch.bgp_session.session_diagnosis import SessionDiagnosis, read_tcp_drop_counters

# every character ExaBGP's tokeniser treats as syntax or escape
PASSWORD = 'To p"s\\e{c}r;e#t\'[x]'


def _switch(**overrides: object) -> SwitchConfig:
    fields: dict[str, object] = {"name": "edge1", "neighbor": "10.99.0.2", "local_address": "10.99.0.1",
                                 "local_as": 65000, "peer_as": 65000, "fib_cap_ipv4": 10, "fib_cap_ipv6": 10}
    fields.update(overrides)
    return SwitchConfig.model_validate(fields)


# --- config -----------------------------------------------------------------------------------------


def test_the_password_is_kept_as_a_secret() -> None:
    switch = _switch(md5_password=PASSWORD)
    assert switch.md5_password is not None and switch.md5_password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(switch) and PASSWORD not in str(switch.model_dump(mode="json"))


@pytest.mark.parametrize("bad", ["", "x" * 81, "line\nbreak", "tab\there", "caf\u00e9", "nul\x00"])
def test_a_bad_password_is_refused_naming_the_key_but_not_the_value(bad: str) -> None:
    toml_value = bad.replace("\n", "\\n").replace("\t", "\\t").replace("\x00", "\\u0000")
    with pytest.raises(ConfigError) as info:
        parse_config(GOOD + f'md5_password = "{toml_value}"\n')
    assert str(info.value).startswith("switch.0.md5_password: ")
    if bad:
        assert bad not in str(info.value)


@pytest.mark.parametrize("hops", [-1, 255])
def test_ttl_security_hops_out_of_range_are_refused(hops: int) -> None:
    with pytest.raises(ConfigError, match=r"switch\.0\.ttl_security"):
        parse_config(GOOD + f"ttl_security = {hops}\n")


# --- ExaBGP's config ----------------------------------------------------------------------------------


def test_the_password_is_rendered_in_base64_only_into_a_0600_file_exabgp_accepts(tmp_path: Path) -> None:
    conf = write_exabgp_config(_switch(md5_password=PASSWORD, ttl_security=1),
                               BridgeCommand(tmp_path / "s.sock"), tmp_path / "e.conf")
    text = conf.read_text()
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert PASSWORD not in text
    [encoded] = re.findall(r'^\s+md5-password "([A-Za-z0-9+/=]+)";$', text, re.MULTILINE)
    assert base64.b64decode(encoded).decode("ascii") == PASSWORD
    assert re.search(r"^\s+md5-base64 true;$", text, re.MULTILINE)
    assert re.search(r"^\s+outgoing-ttl 255;$", text, re.MULTILINE)
    assert re.search(r"^\s+incoming-ttl 255;$", text, re.MULTILINE)  # 1 hop: nothing routed gets in
    result = subprocess.run([default_exabgp_executable(), "validate", "-n", str(conf)],
                            env=exabgp_environment(None), capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gtsm_minimum_follows_the_hop_count_and_nothing_is_rendered_when_off(tmp_path: Path) -> None:
    text = write_exabgp_config(_switch(ttl_security=3), BridgeCommand(tmp_path / "s.sock"),
                               tmp_path / "e.conf").read_text()
    assert "incoming-ttl 253;" in text
    plain = write_exabgp_config(_switch(), BridgeCommand(tmp_path / "s.sock"), tmp_path / "p.conf")
    assert "md5" not in plain.read_text() and "-ttl" not in plain.read_text()


# --- never shown --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_password_never_appears_in_api_answers_or_metrics() -> None:
    config = make_config(switch_extra={"md5_password": PASSWORD, "ttl_security": 1})
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    app = create_app(config, MemoryStore(), make_view(), clock=FakeClock(), wall_clock=FakeClock(1.7e9))
    async with client(app) as http:
        for path in ("/v1/config", "/v1/status", "/metrics", "/openapi.json"):
            response = await http.get(path, headers=auth(OPERATOR_TOKEN))
            assert response.status_code == 200, path
            assert PASSWORD not in response.text and encoded not in response.text, path


# --- diagnosis ----------------------------------------------------------------------------------------


class Counters:
    def __init__(self) -> None:
        self.values: dict[str, int] = {}

    def __call__(self, pid: int) -> Mapping[str, int]:
        return dict(self.values)


def test_kernel_md5_drops_since_the_session_went_down_name_the_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, counters = FakeClock(), Counters()
    counters.values = {"TCPMD5Failure": 7}  # from before: not this session's
    switch = _switch(md5_password=PASSWORD)
    diagnosis = SessionDiagnosis(switch, lambda: 4242, clock=clock, read_counters=counters)
    assert diagnosis.update("down") is None
    counters.values = {"TCPMD5Failure": 9}
    with caplog.at_level(logging.WARNING):
        reason = diagnosis.update("down")
        counters.values = {"TCPMD5Failure": 12}
        assert diagnosis.update("down") == ("TCP-MD5 signature mismatch (5 segments dropped): the switch's "
                                            "password differs from switch[].md5_password")
    assert reason is not None and "(2 segments dropped)" in reason
    assert len([r for r in caplog.records if "TCP-MD5 signature mismatch" in r.getMessage()]) == 1  # once
    assert PASSWORD not in caplog.text
    assert diagnosis.update("up") is None and diagnosis.reason is None


@pytest.mark.parametrize(("counter", "words"), [("TCPMD5NotFound", "the switch sends no signature"),
                                                ("TCPMD5Unexpected", "switch[].md5_password is not set"),
                                                ("TCPMinTTLDrop", "GTSM minimum TTL")])
def test_each_kernel_drop_counter_has_its_own_reason(counter: str, words: str) -> None:
    counters = Counters()
    diagnosis = SessionDiagnosis(_switch(), lambda: 1, clock=FakeClock(), read_counters=counters)
    diagnosis.update("down")
    counters.values = {counter: 1}
    reason = diagnosis.update("connected")
    assert reason is not None and words in reason


def test_without_a_counted_drop_a_session_down_past_the_grace_time_gets_the_hints() -> None:
    clock = FakeClock()
    switch = _switch(md5_password=PASSWORD, ttl_security=1)
    diagnosis = SessionDiagnosis(switch, lambda: 1, clock=clock, connect_grace_s=15, read_counters=Counters())
    assert diagnosis.update("down", "hold timer expired") is None
    clock.advance(16)
    reason = diagnosis.update("down", "hold timer expired")
    assert reason == ("no TCP connection to 10.99.0.2 port 179 within 15 s; last down: hold timer expired; "
                      "TCP-MD5 is on: a password mismatch makes the switch drop the connection silently, "
                      "check its password; GTSM is on (1 hop(s)): the switch must use TTL security too")
    assert SessionDiagnosis(switch, lambda: None, clock=FakeClock(-100.0), read_counters=Counters()).update(
        "down") is None  # within the grace time


def test_counters_are_read_from_the_process_network_namespace() -> None:
    import os

    counters = read_tcp_drop_counters(os.getpid())
    assert set(counters) == {"TCPMD5Failure", "TCPMD5NotFound", "TCPMD5Unexpected", "TCPMinTTLDrop"}
    assert read_tcp_drop_counters(2**22 + 12345) == {}  # no such process: nothing, no error


def test_a_tcp_connection_without_a_bgp_session_is_told_apart() -> None:
    clock = FakeClock()
    diagnosis = SessionDiagnosis(_switch(), lambda: 1, clock=clock, connect_grace_s=15,
                                 read_counters=Counters())
    diagnosis.update("connected")
    clock.advance(20)
    assert diagnosis.update("connected") == "TCP connected to 10.99.0.2 but no BGP session within 15 s"
