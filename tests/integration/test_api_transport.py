"""The API as a client meets it through ``topfib run``: kept-alive connections over loopback.

Access points keep HTTP connections open in a pool; each request after the first used to wait
~40 ms for the client's delayed ACK (Nagle's algorithm on the accepted socket, TCP_NODELAY unset).
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
from pathlib import Path

import pytest

from tests.integration.api_transport_support import AP_TOKEN, api_address, running_topfib, standalone_config

pytestmark = pytest.mark.integration


def _timed_requests(host: str, port: int, method: str, path: str, body: bytes | None,
                    count: int) -> list[float]:
    """Milliseconds per request, all on one kept-alive connection."""
    headers = {"Authorization": f"Bearer {AP_TOKEN}", "Content-Type": "application/json"}
    connection = http.client.HTTPConnection(host, port, timeout=10)
    times = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            assert response.status in (200, 201), response.status
            assert not response.will_close, "the server closed a kept-alive connection"
            times.append((time.perf_counter() - started) * 1000)
    finally:
        connection.close()
    return times


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/healthz", None),
    ("POST", "/v1/requests", json.dumps({"ips": ["198.18.0.1"], "ttl_s": 600}).encode()),
])
def test_kept_alive_requests_do_not_wait_for_the_delayed_ack(
    tmp_path: Path, method: str, path: str, body: bytes | None
) -> None:
    with running_topfib(standalone_config(tmp_path)) as topfib:
        host, port = api_address(topfib)
        _timed_requests(host, port, method, path, body, 3)  # warm-up: first-request costs aside
        times = _timed_requests(host, port, method, path, body, 20)
    # The stall is ≥ 40 ms per request (Linux's minimum delayed-ACK time); a loaded CI machine
    # answers in a few ms. The median is robust to a few slow requests either way.
    assert statistics.median(times[1:]) < 20, [round(t, 1) for t in times]
