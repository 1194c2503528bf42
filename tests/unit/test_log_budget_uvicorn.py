"""uvicorn logs one WARNING per garbage connection; behind LogBudgetFilter a flood of them gives a
handful of lines. A real uvicorn server on loopback, real TCP connections."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

from topfib.collector.common.log_budget import LogBudgetFilter

GARBAGE_CONNECTIONS = 200


async def app(scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
              send: Callable[[MutableMapping[str, Any]], Awaitable[None]]) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


class Recorder(logging.Handler):
    """Keeps the records that reach the logger's handlers (uvicorn's loggers do not propagate)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def invalid_request_lines(log_filter: logging.Filter | None) -> list[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    logger = logging.getLogger("uvicorn.error")
    installed_before = logger.filters[:]  # a budget an earlier test's API server left on the logger
    for installed in installed_before:
        logger.removeFilter(installed)
    recorder = Recorder()
    try:
        deadline = time.monotonic() + 10.0
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        if log_filter is not None:
            logger.addFilter(log_filter)  # after uvicorn configured its logging, as the service would
        logger.addHandler(recorder)
        for _ in range(GARBAGE_CONNECTIONS):
            with socket.create_connection(("127.0.0.1", port), timeout=5.0) as client:
                client.sendall(b"\x16\x03\x01garbage, not HTTP\r\n\r\n")
                client.recv(1024)  # the server answers 400 and closes
        time.sleep(0.2)
    finally:
        logger.removeHandler(recorder)
        server.should_exit = True
        thread.join(10.0)
        if log_filter is not None:
            logger.removeFilter(log_filter)
        for installed in installed_before:
            logger.addFilter(installed)
        sock.close()
    return [m for m in recorder.messages if "Invalid HTTP request" in m]


def test_garbage_connections_log_a_handful_of_lines_behind_the_filter() -> None:
    now = [0.0]
    lines = invalid_request_lines(LogBudgetFilter(budget=5, clock=lambda: now[0]))
    assert len(lines) == 5


def test_without_the_filter_uvicorn_logs_every_one() -> None:
    """The flood the filter is for (so the test above can fail)."""
    assert len(invalid_request_lines(None)) == GARBAGE_CONNECTIONS


def test_the_filter_says_what_it_suppressed_in_the_next_window() -> None:
    now = [0.0]
    log_filter = LogBudgetFilter(interval_s=60.0, budget=1, clock=lambda: now[0])
    message = "Invalid HTTP request received."
    record = logging.LogRecord("uvicorn.error", logging.WARNING, __file__, 1, message, None, None)
    assert [log_filter.filter(record) for _ in range(4)] == [True, False, False, False]
    now[0] = 61.0
    assert log_filter.filter(record)
    assert record.getMessage() == "Invalid HTTP request received. (3 similar suppressed)"
    info = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "Started server", None, None)
    assert all(log_filter.filter(info) for _ in range(10))  # the budget is for warnings
