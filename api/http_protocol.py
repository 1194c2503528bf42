"""uvicorn's HTTP protocol with a deadline for receiving each request (slowloris).

uvicorn closes a kept-alive connection that stays silent, but any byte cancels that timer and
nothing bounds the time a request takes to arrive: a client trickling one header byte every few
seconds held its connection (and a file descriptor) indefinitely. Here a client has
``api.request_read_timeout_s`` to send a complete request (head and body), counted from the
connection's start or from the end of the previous response; the time the app takes to answer
is not counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from api.metrics import CONNECTIONS_DROPPED


class DeadlineHttpProtocol(HttpToolsProtocol):
    """One connection: uvicorn's httptools protocol plus the request deadline and a close hook."""

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any], *,
                 read_timeout_s: float, on_close: Callable[[], None]) -> None:
        super().__init__(config, server_state, app_state)
        self._read_timeout_s = read_timeout_s
        self._on_close = on_close
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_complete(self) -> None:
        self._disarm()  # the whole request is in: from here the app's time, not the client's
        super().on_message_complete()

    def on_response_complete(self) -> None:
        queued = bool(self.pipeline)  # a pipelined request already received starts now
        super().on_response_complete()
        if not queued and not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        try:
            super().connection_lost(exc)
        finally:
            self._on_close()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self._read_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            CONNECTIONS_DROPPED.inc(reason="request_timeout")
            self.transport.abort()  # close() would wait for a client that does not read to drain
