"""How ``topfib run`` logs: ``text`` for a terminal, ``json`` (one object per line) for collectors.

A JSON line has ``time`` (UTC, ISO 8601, milliseconds), ``level``, ``logger`` and ``message``, the
fields a call passed with ``extra=``, and ``exception`` (the traceback) when there is one.
Newlines and quotes in messages (which may carry text from the network) stay inside the JSON
string, so no message can forge a line of its own.
"""

from __future__ import annotations

import json
import logging
import time
from enum import StrEnum
from typing import Any


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# what every LogRecord carries: anything else on a record came from ``extra=``
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        seconds = time.gmtime(record.created)
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: an extra that is not JSON (an address object, an exception) is still logged
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(log_format: LogFormat, level: int = logging.INFO) -> None:
    """The root logger writes to stderr in ``log_format``; every topfib (and uvicorn) logger
    propagates to it."""
    handler = logging.StreamHandler()
    json_lines = log_format is LogFormat.JSON
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
