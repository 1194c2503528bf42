"""SIGHUP reloads the config file of a real ``topfib run``: tokens and caps change while ExaBGP
(and so the BGP session) keeps running; restart-only keys are logged and kept; an invalid file
changes nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.run_support import Running, running_topfib
from topfib.api.tokens import hash_token

pytestmark = pytest.mark.integration

OLD, NEW, LATER = "tfb_reload-old", "tfb_reload-new", "tfb_reload-later"


def _status(running: Running, token: str) -> int:
    request = urllib.request.Request(f"{running.url}/v1/status", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _cap_ipv4(running: Running) -> int:
    request = urllib.request.Request(f"{running.url}/v1/status", headers={"Authorization": f"Bearer {NEW}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        report: dict[str, Any] = json.load(answer)
    return int(report["switches"][0]["occupancy"]["ipv4"]["cap"])


def _reloads(running: Running, result: str) -> float:
    with urllib.request.urlopen(f"{running.url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    found = re.search(rf'^topfib_config_reloads_total\{{result="{result}"\}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _exabgp_pids(pid: int) -> set[int]:
    """The topfib process's children running ExaBGP."""
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children.update(int(c) for c in (task / "children").read_text().split())
    found = set()
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"exabgp" in cmdline:
            found.add(child)
    return found


def _wait(condition: Any, what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _token_entry(token: str, name: str) -> str:
    return f'[[token]]\nname = "{name}"\nrole = "operator"\nsha256 = "{hash_token(token)}"\n'


def test_sighup_reloads_tokens_and_caps_keeps_exabgp_and_refuses_a_broken_file(tmp_path: Path) -> None:
    with running_topfib(tmp_path, {OLD: ("old", "operator")}) as running:
        config = tmp_path / "topfib.toml"
        original = config.read_text()
        _wait(lambda: len(_exabgp_pids(running.process.pid)) == 1, "ExaBGP never started")
        exabgp = _exabgp_pids(running.process.pid)
        assert _status(running, OLD) == 200 and _status(running, NEW) == 401

        old_entry = original[original.index("[[token]]"):]
        edited = (original.replace(old_entry, _token_entry(NEW, "new"))
                  .replace("fib_cap_ipv4 = 1000", "fib_cap_ipv4 = 300")
                  .replace('neighbor = "127.0.0.2"', 'neighbor = "127.0.0.3"'))  # needs a restart
        config.write_text(edited)
        os.kill(running.process.pid, signal.SIGHUP)
        _wait(lambda: _status(running, NEW) == 200, "the new token was never accepted")
        assert _status(running, OLD) == 401
        _wait(lambda: _cap_ipv4(running) == 300, "the controller never applied the lowered cap")
        assert _reloads(running, "ok") == 1
        log = running.log.read_text()
        assert "switch[edge1].neighbor changed but needs a restart" in log
        assert "127.0.0.3" not in (tmp_path / "run" / "edge1.exabgp.conf").read_text()

        # invalid: nothing of it applies, not even its valid parts (a new token, a new cap)
        config.write_text(edited.replace("fib_cap_ipv4 = 300", "fib_cap_ipv4 = 0")
                          .replace("fib_cap_ipv6 = 100", "fib_cap_ipv6 = 50") + _token_entry(LATER, "later"))
        os.kill(running.process.pid, signal.SIGHUP)
        _wait(lambda: _reloads(running, "failed") == 1, "the broken file was not counted")
        assert "switch.0.fib_cap_ipv4" in running.log.read_text()
        assert _status(running, LATER) == 401 and _status(running, NEW) == 200
        assert _cap_ipv4(running) == 300
        assert running.process.poll() is None
        assert _exabgp_pids(running.process.pid) == exabgp  # the same ExaBGP: no session reset
