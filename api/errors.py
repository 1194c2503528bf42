"""Error answers: 422 naming the field, 503 when the store is down, a generic 500 for the rest.

Nothing internal reaches the client: exception text and tracebacks go to the log only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from topfib.api.metrics import INTERNAL_ERRORS, STORE_UNAVAILABLE
from topfib.controller.state.store import StoreUnavailable

log = logging.getLogger(__name__)

STORE_DOWN_DETAIL = "state store unavailable: the change was not recorded; retry later"
STORE_DOWN_READ_DETAIL = "state store unavailable and no earlier state to serve; retry later"


def field_name(loc: Sequence[int | str]) -> str:
    """``("body", "ips", 3)`` → ``"ips.3"``; the location kind (body/query/path) is dropped."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else list(loc)
    return ".".join(str(p) for p in parts) or str(loc[0] if loc else "body")


def validation_error(
    loc: tuple[int | str, ...], msg: str, kind: str = "value_error"
) -> RequestValidationError:
    """A 422 raised by a handler, shaped like the ones FastAPI produces."""
    return RequestValidationError([{"loc": loc, "msg": msg, "type": kind}])


def body_validation_error(exc: ValidationError) -> RequestValidationError:
    """A pydantic error from validating a request body, located under ``body`` as FastAPI does."""
    return RequestValidationError([
        {"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ])


def _validation_body(errors: Sequence[Any]) -> list[dict[str, Any]]:
    # Only loc, msg and type: pydantic's "input" echoes client data back and "ctx" may hold
    # exception objects that are neither JSON nor meant for clients.
    return [
        {"field": field_name(tuple(e.get("loc", ()))), "loc": list(e.get("loc", ())),
         "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in errors
    ]


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _validation_body(exc.errors())}, status_code=422)


class _OutageLog:
    """One warning per interval while the store is down (each refusal is counted in the metric)."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self._interval_s = interval_s
        self._last = float("-inf")
        self._suppressed = 0

    def warn(self, request: Request, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last < self._interval_s:
            self._suppressed += 1
            return
        log.warning("%s %s refused, store unavailable: %s (%d similar refusals not logged)",
                    request.method, request.url.path, exc, self._suppressed)
        self._last, self._suppressed = now, 0


_outage_log = _OutageLog()


async def _on_store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    STORE_UNAVAILABLE.inc()
    _outage_log.warn(request, exc)
    # Reads fail only when nothing was cached yet (e.g. Redis down since start-up).
    detail = STORE_DOWN_READ_DETAIL if request.method in ("GET", "HEAD") else STORE_DOWN_DETAIL
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "1"})


async def _on_unhandled(request: Request, exc: Exception) -> JSONResponse:
    INTERNAL_ERRORS.inc()
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StoreUnavailable, _on_store_unavailable)
    app.add_exception_handler(Exception, _on_unhandled)
