"""``topfib ctl`` against a real ``topfib run`` (in-memory store, RIB preloaded from a pfx2as file,
its ExaBGP dialling a loopback port where no switch listens).

Most commands run in-process through typer's runner (the HTTP calls are real); one test runs the
installed ``topfib`` entry point to check the exit codes a shell sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.run_support import Running, free_port, running_topfib, topfib_command
from topfib.controller.cli.app import app
from topfib.controller.cli.ctl_client import ExitCode

pytestmark = pytest.mark.slow

OPERATOR, VIEWER, AP = "tfb_ctl-operator", "tfb_ctl-viewer", "tfb_ctl-ap"
TOKENS = {OPERATOR: ("ops", "operator"), VIEWER: ("watch", "viewer"), AP: ("ap1", "ap")}


@pytest.fixture(scope="module")
def topfib(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running_topfib(tmp_path_factory.mktemp("ctl"), TOKENS) as running:
        yield running


def ctl(topfib: Running, *args: str, token: str | None = OPERATOR) -> tuple[int, str, str]:
    env = {"TOPFIB_URL": topfib.url, "COLUMNS": "200"}
    if token is not None:
        env["TOPFIB_TOKEN"] = token
    result = CliRunner().invoke(app, ["ctl", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def ctl_json(topfib: Running, *args: str, token: str = OPERATOR) -> Any:
    code, out, err = ctl(topfib, *args, "--json", token=token)
    assert code == 0, err
    return json.loads(out)


def test_reads_status_fib_top_and_rib(topfib: Running) -> None:
    status = ctl_json(topfib, "status", token=VIEWER)
    assert [sw["name"] for sw in status["switches"]] == ["edge1"]
    assert status["switches"][0]["occupancy"]["ipv4"]["cap"] == 1000
    code, out, _ = ctl(topfib, "status", token=VIEWER)
    assert code == 0 and "edge1" in out and "/1000" in out and "collector:" in out

    rib = ctl_json(topfib, "rib", "185.10.20.7", token=VIEWER)
    assert rib["matches"][0]["prefix"] == "185.10.20.0/24"
    assert rib["matches"][0]["paths"][0]["as_path"] == [64500]
    code, out, _ = ctl(topfib, "rib", "2a0b:4000:1::5", token=VIEWER)
    assert code == 0 and "2a0b:4000:1::/48" in out and "64502" in out

    assert ctl_json(topfib, "fib", token=VIEWER)["switch"] == "edge1"
    assert ctl_json(topfib, "top", "-n", "5", "--switch", "edge1", token=VIEWER)["switch"] == "edge1"


def test_pins_add_list_and_del(topfib: Running) -> None:
    pinned = ctl_json(topfib, "pin", "add", "185.10.21.0/24", "--note", "ctl test [/] [red]")
    assert pinned["prefix"] == "185.10.21.0/24" and pinned["by"] == "ops"
    code, out, err = ctl(topfib, "pin", "list", token=VIEWER)
    assert code == 0 and "185.10.21.0/24" in out and "ctl test [/] [red]" in out, err
    assert ctl(topfib, "pin", "del", "185.10.21.0/24")[0] == ExitCode.OK
    code, _, err = ctl(topfib, "pin", "del", "185.10.21.0/24")
    assert code == ExitCode.REFUSED and "HTTP 404: prefix is not pinned" in err


def test_requests_add_list_and_del(topfib: Running) -> None:
    results = ctl_json(topfib, "request", "add", "185.10.20.7", "--ttl", "60", token=AP)["results"]
    assert [(r["switch"], r["prefix"], r["ttl_s"]) for r in results] == [("edge1", "185.10.20.0/24", 60.0)]
    assert results[0]["status"] in ("pending", "installed")
    listed = ctl_json(topfib, "request", "list", token=VIEWER)["requests"]
    assert [(r["ip"], r["ap"]) for r in listed] == [("185.10.20.7", "ap1")]
    code, out, _ = ctl(topfib, "request", "del", "185.10.20.7", token=AP)
    assert code == ExitCode.OK and "ended" in out
    code, _, err = ctl(topfib, "request", "del", "185.10.20.7", token=AP)
    assert code == ExitCode.REFUSED and "404" in err


def test_set_overrides_a_cap_that_status_then_shows_and_default_restores_it(topfib: Running) -> None:
    answer = ctl_json(topfib, "set", "edge1", "cap_ipv4=500", "margin=0.3")
    assert answer["settings"]["fib_cap_ipv4"] == 500 and answer["overrides"] == {"fib_cap_ipv4": 500,
                                                                                  "margin": 0.3}
    deadline = time.monotonic() + 10
    while ctl_json(topfib, "status")["switches"][0]["occupancy"]["ipv4"]["cap"] != 500:
        assert time.monotonic() < deadline, "the controller never applied the new cap"
        time.sleep(0.2)
    code, out, _ = ctl(topfib, "set", "edge1", "cap_ipv4=default", "margin=default")
    assert code == 0 and "override" not in out
    assert ctl_json(topfib, "set", "edge1", "cap_ipv4=default")["settings"]["fib_cap_ipv4"] == 1000


def test_a_rejected_request_exits_1(topfib: Running) -> None:
    ctl_json(topfib, "set", "edge1", "max_requests_per_ap=1")
    try:
        code, out, _ = ctl(topfib, "request", "add", "185.10.20.8", "185.10.21.9", token=AP)
        assert code == ExitCode.REFUSED and "rejected" in out
    finally:
        ctl_json(topfib, "set", "edge1", "max_requests_per_ap=default")
        for ip in ("185.10.20.8", "185.10.21.9"):
            ctl(topfib, "request", "del", ip, token=AP)


@pytest.mark.parametrize(("args", "token", "code", "says"), [
    (("status",), None, ExitCode.AUTH, "set TOPFIB_TOKEN"),
    (("status",), "tfb_wrong", ExitCode.AUTH, "HTTP 401"),
    (("pin", "add", "185.10.20.0/24"), VIEWER, ExitCode.AUTH, "HTTP 403: role 'viewer'"),
    (("fib",), AP, ExitCode.AUTH, "HTTP 403"),
    (("pin", "add", "185.10.20.1/24"), OPERATOR, ExitCode.REFUSED, "HTTP 422: prefix: not a prefix"),
    (("rib", "not-an-ip"), VIEWER, ExitCode.REFUSED, "HTTP 422: ip:"),
    (("set", "edge1", "cap_ipv4=0"), OPERATOR, ExitCode.REFUSED, "HTTP 422: fib_cap_ipv4:"),
    (("set", "nosuch", "cap_ipv4=10"), OPERATOR, ExitCode.REFUSED, "HTTP 404: unknown switch 'nosuch'"),
    (("fib", "--switch", "nosuch"), VIEWER, ExitCode.REFUSED, "HTTP 404: unknown switch"),
    (("set", "edge1", "cap_ipv5=10"), OPERATOR, ExitCode.USAGE, "'cap_ipv5=10': want KEY=VALUE"),
    (("set", "edge1", "cap_ipv4=lots"), OPERATOR, ExitCode.USAGE, "not a number"),
    (("rib", "../status"), VIEWER, ExitCode.USAGE, "not an address or prefix"),
])
def test_refusals_exit_with_their_code_and_say_why(
    topfib: Running, args: tuple[str, ...], token: str | None, code: int, says: str
) -> None:
    exit_code, out, err = ctl(topfib, *args, token=token)
    assert (exit_code, out) == (code, "") and says in err, err


def test_the_entry_point_exit_codes(topfib: Running, tmp_path: Path) -> None:
    """What a shell script sees: 0 and JSON; 4 on a bad token; 3 with nothing listening; 2 on usage."""
    token_file = tmp_path / "token"
    token_file.write_text(VIEWER + "\n")
    env = {**os.environ, "TOPFIB_URL": topfib.url, "TOPFIB_TOKEN_FILE": str(token_file)}
    env.pop("TOPFIB_TOKEN", None)

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*topfib_command(), "ctl", *args], env={**env, **extra}, capture_output=True,
                              text=True, timeout=60, check=False)

    ok = run("status", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["switches"][0]["name"] == "edge1"
    assert run("status", TOPFIB_TOKEN_FILE="", TOPFIB_TOKEN="tfb_wrong").returncode == ExitCode.AUTH
    down = run("status", TOPFIB_URL=f"http://127.0.0.1:{free_port()}")
    assert down.returncode == ExitCode.UNREACHABLE and "Connection refused" in down.stderr
    assert run("pin").returncode == ExitCode.USAGE
    assert run("status", TOPFIB_URL="ftp://127.0.0.1/").returncode == ExitCode.USAGE
