"""A global budget for warnings: at most ``budget`` lines per reason and window; what was
suppressed is reported on the next line of that reason ("(N similar suppressed)") or by
:meth:`LogBudget.flush`.

The reason must be a fixed word chosen by the code (``"malformed:truncated"``), never a value
taken from the network: a budget keyed on a spoofable address gives every spoofed address its
own budget, which is no budget at all. The number of reasons is capped too, for the same cause
(reasons past the cap share one budget).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_log = logging.getLogger("topfib.collector.common.log_budget")
MAX_REASONS = 256
OVERFLOW_REASON = "other"


@dataclass
class _Window:
    started: float
    logged: int = 0
    suppressed: int = 0


class LogBudget:
    """Warnings per reason: ``budget`` per ``interval_s``; the rest counted and reported once."""

    def __init__(
        self, interval_s: float = 60.0, budget: int = 5, logger: logging.Logger | None = None
    ) -> None:
        self._interval_s = interval_s
        self._budget = budget
        self._logger = logger or _log
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()  # warnings come from the receiver and accounting threads

    def warn(self, reason: str, now: float, message: str) -> None:
        """Log ``message`` at WARNING unless ``reason`` has used its budget in this window."""
        suppressed = self.admit(reason, now)
        if suppressed is not None:
            suffix = f" ({suppressed} similar suppressed)" if suppressed else ""
            self._logger.warning("%s%s", message, suffix)

    def admit(self, reason: str, now: float) -> int | None:
        """None when ``reason`` has used its budget in this window; else how many of its lines the
        previous window suppressed (to be said on this line)."""
        with self._lock:
            return self._admit(reason, now)

    def _admit(self, reason: str, now: float) -> int | None:
        window = self._windows.get(reason)
        if window is None:
            if len(self._windows) >= MAX_REASONS:
                reason = OVERFLOW_REASON
                window = self._windows.get(reason)
            if window is None:
                window = self._windows[reason] = _Window(now)
        suppressed = 0
        if now - window.started >= self._interval_s:
            suppressed = window.suppressed
            window.started, window.logged, window.suppressed = now, 0, 0
        if window.logged >= self._budget:
            window.suppressed += 1
            return None
        window.logged += 1
        return suppressed

    def flush(self, now: float) -> None:
        """Report what was suppressed in windows that have ended (call now and then)."""
        ended: list[tuple[str, int]] = []
        with self._lock:
            for reason, window in self._windows.items():
                if now - window.started >= self._interval_s and window.suppressed:
                    ended.append((reason, window.suppressed))
                    window.started, window.logged, window.suppressed = now, 0, 0
        for reason, suppressed in ended:
            self._logger.warning(
                "suppressed %d similar warning(s) of reason %s in %.0f s",
                suppressed,
                reason,
                self._interval_s,
            )


class LogBudgetFilter(logging.Filter):
    """The same budget for another library's WARNING-and-above records, as a logging.Filter.

    The reason is the logger's name and the record's message template (fixed by the library's
    code, e.g. uvicorn's "Invalid HTTP request received." logged once per garbage connection).
    Install it on the logger: ``logging.getLogger("uvicorn.error").addFilter(LogBudgetFilter())``.
    """

    def __init__(
        self, interval_s: float = 60.0, budget: int = 5, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._budget = LogBudget(interval_s, budget)
        self._clock = clock

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if record.levelno >= logging.ERROR and record.exc_info:
            return True  # a crash in our code, not a message a client can provoke at will
        suppressed = self._budget.admit(f"{record.name}:{record.msg}", self._clock())
        if suppressed is None:
            return False
        if suppressed:
            record.msg = f"{record.msg} ({suppressed} similar suppressed)"
        return True


class LogLimiter(LogBudget):
    """One line per reason and interval: for rare events (RIB files, ExaBGP JSON)."""

    def __init__(self, interval_s: float = 60.0) -> None:
        super().__init__(interval_s, budget=1)
