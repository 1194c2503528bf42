"""Transport-level ASGI middleware: the body size limit and HTTP response counting."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from topfib.api.metrics import HTTP_RESPONSES

# Label values come from this set only, so a client cannot grow the metric without bound.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: by Content-Length up front, else while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():  # servers reject this first; never trust it here either
                    response = JSONResponse({"detail": "invalid Content-Length"}, status_code=400)
                    await response(scope, receive, send)
                    return
                if int(value) > self._max:
                    await self._too_large(scope, receive, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max:
                    # Raised inside the body read; FastAPI passes HTTPException through as is.
                    raise HTTPException(413, f"request body larger than {self._max} bytes")
            return message

        await self._app(scope, limited_receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"detail": f"request body larger than {self._max} bytes"}, status_code=413)
        await response(scope, receive, send)


class ResponseCountMiddleware:
    """Counts responses by method, route template (never the raw path) and status code."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        status = 500

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, counting_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
            HTTP_RESPONSES.inc(method=method, route=template, code=str(status))
