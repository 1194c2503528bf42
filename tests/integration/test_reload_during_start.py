"""``systemctl reload`` (SIGHUP) while ``topfib run`` is still starting: it must not kill it.

SIGHUP's default action ends a process, and systemd does not restart a service that a SIGHUP
ended (a clean signal for Restart=on-failure). The start is held here on a preloaded RIB file
that is a FIFO, so the signal deterministically lands while the switch starts."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.run_support import PFX2AS, Running, _wait_ready, stop, topfib_command, write_config

pytestmark = pytest.mark.integration


def _writer_once_read(fifo: Path) -> int | None:
    """A write end of ``fifo`` once the process opens it to read (it then waits for the data)."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: no reader yet
        return None


def test_a_sighup_while_starting_is_applied_once_started_not_fatal(tmp_path: Path) -> None:
    config, url = write_config(tmp_path, {"tfb_start-token": ("ops", "operator")})
    rib = tmp_path / "rib.pfx2as"
    rib.unlink()
    os.mkfifo(rib)
    log = tmp_path / "topfib.log"
    with log.open("wb") as out:
        process = subprocess.Popen([*topfib_command(), "run", "--config", str(config)],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    running = Running(url, process, log)
    try:
        deadline = time.monotonic() + 30
        while (writer := _writer_once_read(rib)) is None:  # the switch's start reads the RIB now
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        try:
            process.send_signal(signal.SIGHUP)
            time.sleep(0.3)
            assert process.poll() is None, f"killed by SIGHUP while starting: {process.returncode}"
            os.write(writer, PFX2AS.encode())
        finally:
            os.close(writer)
        _wait_ready(running)
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
            metrics = answer.read().decode()
        assert 'topfib_config_reloads_total{result="ok"} 1' in metrics  # applied once started
    finally:
        stop(running)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
