"""``topfib run --log-format json``: one JSON object per line, from the formatter up to a real run."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from tests.run_support import running_topfib
from topfib.controller.service.log_format import JsonFormatter, LogFormat, configure_logging


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("topfib.test")
    return logger.makeRecord("topfib.test", logging.WARNING, __file__, 1, message, args, None, extra=extra)


def test_a_line_has_time_level_logger_message_and_the_extra_fields() -> None:
    record = _record("switch %s: session %s", "edge1", "down", switch="edge1", peer_as=65000)
    record.created, record.msecs = 1_800_000_000.25, 250.0
    entry = json.loads(JsonFormatter().format(record))
    assert entry == {"time": "2027-01-15T08:00:00.250Z", "level": "WARNING", "logger": "topfib.test",
                     "message": "switch edge1: session down", "switch": "edge1", "peer_as": 65000}


def test_a_message_with_newlines_stays_one_line_and_odd_extras_are_strings() -> None:
    line = JsonFormatter().format(_record('bad datagram "x"\n{"level": "forged"}', source=Path("/x")))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == 'bad datagram "x"\n{"level": "forged"}' and entry["source"] == "/x"


def test_an_exception_travels_as_its_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        info = sys.exc_info()
        record = logging.getLogger("t").makeRecord("t", logging.ERROR, __file__, 1, "failed", (), info)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "failed" and "ValueError: boom" in entry["exception"]


def test_configure_logging_puts_one_handler_on_the_root() -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        configure_logging(LogFormat.JSON)
        assert len(root.handlers) == 1 and isinstance(root.handlers[0].formatter, JsonFormatter)
        configure_logging(LogFormat.TEXT)
        assert not isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:], root.level = saved, level


@pytest.mark.slow
def test_topfib_run_with_log_format_json_writes_only_json_lines(tmp_path: Path) -> None:
    with running_topfib(tmp_path, {}, "--log-format", "json") as running:
        pass  # started, ready, then stopped: the start and stop messages are in the log
    assert running.process.returncode == 0
    lines = running.log.read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line: a non-JSON line fails here
    assert entries and all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert any(e["logger"] == "topfib.controller.service.run" and e["message"].startswith("topfib running")
               for e in entries), lines
