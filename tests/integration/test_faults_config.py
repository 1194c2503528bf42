"""``topfib run`` with a bad config, or with its ports taken, stops before anything starts.

tests/unit/test_config.py covers the validation messages (every bad key named) and one CLI run.
Here the real command runs under ``strace``: a bad config must exit 2 naming the key, without
binding any socket or starting ExaBGP (a stand-in executable leaves a mark when started). A good
config whose API or sFlow port is already taken must also exit non-zero naming the key, with no
traceback and without having started ExaBGP.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.fault_support import free_port, topfib_executable

pytestmark = pytest.mark.integration


def _good(tmp_path: Path) -> str:
    """A valid config (ports still as @API@ / @SFLOW@) whose ExaBGP is a stand-in that leaves a mark."""
    stand_in = tmp_path / "fake-exabgp"
    stand_in.write_text(f'#!/bin/sh\necho "$$" >> {tmp_path / "exabgp-started"}\nexec sleep 60\n')
    stand_in.chmod(0o755)
    return f"""
[api]
listen = "127.0.0.1:@API@"
[collector]
sflow_listen = ["127.0.0.1:@SFLOW@"]
[exabgp]
executable = "{stand_in}"
runtime_dir = "{tmp_path / 'run'}"
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


BAD: list[tuple[str, Callable[[str], str], str]] = [
    ("missing", lambda t: t.replace("fib_cap_ipv4 = 16000\n", ""), "switch.0.fib_cap_ipv4"),
    ("wrong-type", lambda t: t.replace('sflow_agents = ["10.0.0.2"]', 'sflow_agents = "10.0.0.2"'),
     "switch.0.sflow_agents"),
    ("unknown-key", lambda t: t.replace("[collector]", "[collector]\nsflow_port = 6343"),
     "collector.sflow_port"),
    ("cap-zero", lambda t: t.replace("fib_cap_ipv6 = 4000", "fib_cap_ipv6 = 0"), "switch.0.fib_cap_ipv6"),
    ("cap-negative", lambda t: t.replace("fib_cap_ipv4 = 16000", "fib_cap_ipv4 = -5"),
     "switch.0.fib_cap_ipv4"),
    ("overlapping-ports", lambda t: t.replace("@SFLOW@", "@API@"), "api.listen and collector.sflow_listen"),
    ("not-toml", lambda t: t.replace("[[switch]]", "[[switch]"), "not valid TOML"),
]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
@pytest.mark.parametrize(("change", "key"), [(c, k) for _, c, k in BAD], ids=[name for name, _, _ in BAD])
def test_bad_config_exits_naming_the_key_before_binding_or_starting_anything(
    tmp_path: Path, change: Callable[[str], str], key: str
) -> None:
    config = tmp_path / "bad.toml"
    text = change(_good(tmp_path))
    ports = {"@API@": str(free_port()), "@SFLOW@": str(free_port(socket.SOCK_DGRAM))}
    config.write_text(text.replace("@API@", ports["@API@"]).replace("@SFLOW@", ports["@SFLOW@"]))
    trace = tmp_path / "strace.log"
    result = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=bind,listen,execve", "-o", str(trace),
         *topfib_executable(), "run", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert key in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    calls = trace.read_text()
    assert "bind(" not in calls and "listen(" not in calls, "a socket was bound before the config was checked"
    assert "fake-exabgp" not in calls and not (tmp_path / "exabgp-started").exists(), "ExaBGP was started"
    assert not (tmp_path / "run").exists(), "the runtime directory was created"


@pytest.mark.parametrize("taken", ["api.listen", "collector.sflow_listen"])
def test_a_taken_port_exits_naming_the_key_without_starting_exabgp(tmp_path: Path, taken: str) -> None:
    kind = socket.SOCK_STREAM if taken == "api.listen" else socket.SOCK_DGRAM
    holder = socket.socket(socket.AF_INET, kind)
    holder.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        holder.listen()
    port = holder.getsockname()[1]
    try:
        api_port = port if taken == "api.listen" else free_port()
        sflow_port = port if taken != "api.listen" else free_port(socket.SOCK_DGRAM)
        config = tmp_path / "busy.toml"
        config.write_text(_good(tmp_path).replace("@API@", str(api_port)).replace("@SFLOW@", str(sflow_port)))
        process = subprocess.Popen([*topfib_executable(), "run", "--config", str(config)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
            pytest.fail(f"topfib kept running with {taken} taken: {stderr[-2000:]}")
    finally:
        holder.close()
    assert process.returncode != 0
    assert taken in stderr, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    assert not (tmp_path / "exabgp-started").exists(), f"ExaBGP was started although {taken} was taken"
