"""uvicorn's HTTP protocol with a deadline for receiving each request and a cap on its head.

uvicorn closes a kept-alive connection that stays silent, but any byte cancels that timer and
nothing bounds the time a request takes to arrive: a client trickling one header byte every few
seconds held its connection (and a file descriptor) indefinitely. Here a client has
``api.request_read_timeout_s`` to send a complete request (head and body), counted from the
connection's start or from the end of the previous response; the time the app takes to answer
is not counted. The deadline runs whenever the server waits for the client's bytes, including a
body still arriving after an early answer (401, 413) and a pipelined request still arriving.

uvicorn queues every pipelined request parsed from what has arrived (12,000 from one 256 KiB
read, ~17 MB); past :data:`MAX_PIPELINED` queued requests the connection is aborted (clients that
pipeline at all keep a few in flight).

httptools buffers a request line and headers without limit until the head is complete (27 MB
in 0.8 s over loopback from one connection); here a head over :data:`MAX_HEAD_BYTES` gets 431
and the connection is closed. The cap counts bytes, so it bounds the number of headers too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from topfib.api.metrics import CONNECTIONS_DROPPED

MAX_HEAD_BYTES = 64 * 1024  # request line and headers (nginx's default buffers hold 32 KiB)
FEED_SLICE_BYTES = 8 * 1024  # the parser is fed in slices so a head is measured to within one
MAX_PIPELINED = 32  # requests queued behind the one being answered


class DeadlineHttpProtocol(HttpToolsProtocol):
    """One connection: uvicorn's httptools protocol plus the request deadline, the head cap and a
    close hook."""

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any], *,
                 read_timeout_s: float, on_close: Callable[[], None]) -> None:
        super().__init__(config, server_state, app_state)
        self._read_timeout_s = read_timeout_s
        self._on_close = on_close
        self._deadline: asyncio.TimerHandle | None = None
        self._in_head = False  # between a request's first byte and the end of its headers
        self._head_bytes = 0
        self._upgrade_refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        for start in range(0, len(data), FEED_SLICE_BYTES):
            piece = data[start:start + FEED_SLICE_BYTES]
            super().data_received(piece)
            if self.transport.is_closing() or self._upgrade_refused:
                return  # a parse error answered 400, or the parser stopped at an Upgrade head
            if self._in_head:
                self._head_bytes += len(piece)
                if self._head_bytes > MAX_HEAD_BYTES:
                    self._refuse_head()
                    return

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self.transport.is_closing():
            return  # aborted earlier in this read: queue nothing more
        super().on_headers_complete()
        if len(self.pipeline) > MAX_PIPELINED:
            CONNECTIONS_DROPPED.inc(reason="pipeline_too_deep")
            self.transport.abort()

    def _unsupported_upgrade_warning(self) -> None:
        self._upgrade_refused = True  # the rest of this read is not HTTP to the parser
        super()._unsupported_upgrade_warning()

    def on_message_complete(self) -> None:
        if self.cycle.response_complete:
            # the body of a request answered early (401, 413) has arrived: the next request's
            # time starts now; the deadline must keep running (uvicorn's idle timer is cancelled
            # by every byte received)
            self._arm()
        else:
            self._disarm()  # the whole request is in: from here the app's time, not the client's
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # the client owes bytes unless a complete pipelined request is next in line
        client_owes = not self.pipeline or self.cycle.more_body
        super().on_response_complete()
        if client_owes and not self.transport.is_closing():
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

    def _refuse_head(self) -> None:
        CONNECTIONS_DROPPED.inc(reason="head_too_large")
        message = f"request line and headers larger than {MAX_HEAD_BYTES} bytes".encode("ascii")
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                             b"content-type: text/plain; charset=utf-8\r\n"
                             b"content-length: " + str(len(message)).encode("ascii") + b"\r\n"
                             b"connection: close\r\n\r\n" + message)
        self.transport.close()
