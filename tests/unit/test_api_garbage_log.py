"""A real ``topfib run`` receiving garbage TCP connections on its API port: uvicorn logs a WARNING
for each one, and topfib's log budget lets a handful through (was: every one)."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.run_support import running_topfib

pytestmark = pytest.mark.slow
GARBAGE_CONNECTIONS = 100


def test_garbage_connections_to_the_api_log_a_handful_of_lines(tmp_path: Path) -> None:
    with running_topfib(tmp_path, {}) as topfib:
        address = urlsplit(topfib.url)
        for _ in range(GARBAGE_CONNECTIONS):
            with socket.create_connection((address.hostname, address.port), timeout=5.0) as client:
                client.sendall(b"\x16\x03\x01garbage, not HTTP\r\n\r\n")
                client.recv(1024)  # uvicorn answers 400 and closes
        time.sleep(0.5)
        lines = [line for line in topfib.log.read_text().splitlines() if "Invalid HTTP request" in line]
    assert 1 <= len(lines) <= 5
