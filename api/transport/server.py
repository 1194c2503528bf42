"""The API's HTTP server: uvicorn's protocol and app handling behind topfib's own accept loop.

asyncio's ``create_server`` (what uvicorn uses) is replaced because of what it does at the edges:

- when file descriptors run out, its accept handler logs one traceback per pending connection
  per wake-up (847k lines in 15 s); here accepting pauses briefly and the log has a budget;
- it cannot stop accepting: uvicorn's ``limit_concurrency`` holds every socket and answers 503,
  so idle clients still take all descriptors. Here past ``api.max_connections`` accepting pauses
  (the kernel's backlog holds newcomers) until a connection closes;
- one client address may hold at most ``api.max_connections_per_client`` of them
  (:mod:`topfib.api.transport.client_slots`), so a stranger cannot take every slot; past it its new
  connections
  are reset at once;
- TLS: each connection takes the context current when it is accepted, so a SIGHUP reload
  (:class:`topfib.api.transport.tls.TlsContexts`) reaches new connections only; handshakes get the request
  deadline.

Every accepted socket gets TCP_NODELAY: responses leave in more than one write, and with Nagle's
algorithm the second waited for the client's delayed ACK (~40 ms per kept-alive request).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import socket
import struct
from collections.abc import Callable

import uvicorn
from starlette.types import ASGIApp

from topfib.api.metrics import ACCEPT_PAUSES, CONNECTIONS_DROPPED, CONNECTIONS_OPEN
from topfib.api.transport.client_slots import ClientKey, ClientSlots
from topfib.api.transport.http_protocol import DeadlineHttpProtocol
from topfib.api.transport.tls import TlsContexts
from topfib.collector.common.log_budget import LogBudgetFilter
from topfib.controller.config import ApiConfig

log = logging.getLogger(__name__)
ACCEPT_BATCH = 64  # connections accepted per wake-up, so one busy listener cannot starve the loop
RESOURCE_PAUSE_S = 0.25  # accept retry delay after EMFILE and the like
RESERVED_FDS = 128  # descriptors kept for everything else: Redis, ExaBGP pipes, files, sFlow sockets
LOG_INTERVAL_S = 60.0
MAIN_LOOP_TICK_S = 1.0  # uvicorn ticks every 0.1 s; see ApiServer.main_loop


def install_log_budget() -> None:
    """One line per message template and minute on this module's and uvicorn's loggers: uvicorn
    warns once per malformed request, which a client controls."""
    for name in (__name__, "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, LogBudgetFilter) for f in logger.filters):
            logger.addFilter(LogBudgetFilter(LOG_INTERVAL_S, budget=1))


def connection_limit(max_connections: int) -> int:
    """Raise the soft open-file limit to what ``max_connections`` needs besides :data:`RESERVED_FDS`
    (no further: children such as ExaBGP inherit it), within the hard limit; ``max_connections``,
    or less if the limit cannot hold that many (with a warning naming the key)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < wanted and (hard == resource.RLIM_INFINITY or hard > soft):
        target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    room = max(1, soft - RESERVED_FDS)
    if room < max_connections:
        log.warning("api.max_connections %d lowered to %d: the open-file limit is %d", max_connections,
                    room, soft)
        return room
    return max_connections


class Acceptor:
    """Accepts on ``sock`` and hands each connection to ``serve``; at most ``limit`` open at once."""

    def __init__(self, sock: socket.socket, serve: Callable[[socket.socket, Callable[[], None]], None],
                 limit: int, per_client: ClientSlots | None = None) -> None:
        self._sock = sock
        self._serve = serve
        self._limit = limit
        self._per_client = per_client
        self._loop = asyncio.get_running_loop()
        self._open = 0
        self._reading = False
        self._closed = False
        self._retry: asyncio.TimerHandle | None = None
        sock.setblocking(False)

    @property
    def open_connections(self) -> int:
        return self._open

    def start(self) -> None:
        self._resume()

    def close(self) -> None:
        self._closed = True
        self._pause()
        if self._retry is not None:
            self._retry.cancel()

    def _resume(self) -> None:
        self._retry = None
        if not self._reading and not self._closed:
            self._loop.add_reader(self._sock.fileno(), self._accept_ready)
            self._reading = True

    def _pause(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._sock.fileno())
            self._reading = False

    def _accept_ready(self) -> None:
        for _ in range(ACCEPT_BATCH):
            if self._open >= self._limit:
                self._pause()  # resumed by the next connection to close
                ACCEPT_PAUSES.inc(reason="max_connections")
                log.warning("API: %d connections open (api.max_connections): not accepting until one "
                            "closes", self._open)
                return
            try:
                conn, peer = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                self._accept_failed(exc)
                return
            admitted, client = (True, None) if self._per_client is None else self._per_client.take(peer[0])
            if not admitted:
                self._refuse(conn, peer[0])
                continue
            self._open += 1
            CONNECTIONS_OPEN.set(self._open)
            try:
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # the peer is already gone
                conn.close()
                self._closed_one(client)
                continue
            self._serve(conn, self._release_once(client))

    def _refuse(self, conn: socket.socket, address: str) -> None:
        """A client over its share: reset (no FIN_WAIT/TIME_WAIT kept for it), count, log in budget."""
        CONNECTIONS_DROPPED.inc(reason="max_connections_per_client")
        log.warning("API: %s has api.max_connections_per_client connections open: refusing more", address)
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    def _accept_failed(self, exc: OSError) -> None:
        """Out of descriptors or memory (or anything else): pause, retry shortly, log within budget."""
        reason = errno.errorcode.get(exc.errno or 0, "other")
        ACCEPT_PAUSES.inc(reason=reason)
        log.warning("API: accept failed (%s), pausing accept for %.2f s: %s", reason, RESOURCE_PAUSE_S,
                    exc.strerror or exc)
        self._pause()
        if self._retry is None and not self._closed:
            self._retry = self._loop.call_later(RESOURCE_PAUSE_S, self._resume)

    def _release_once(self, client: ClientKey) -> Callable[[], None]:
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._closed_one(client)

        return release

    def _closed_one(self, client: ClientKey) -> None:
        if self._per_client is not None:
            self._per_client.give(client)
        self._open -= 1
        CONNECTIONS_OPEN.set(self._open)
        if self._open < self._limit and self._retry is None:
            self._resume()


class ApiServer(uvicorn.Server):
    """uvicorn's server (app, shutdown, Date header) over one bound socket and :class:`Acceptor`.

    ``serve(sockets=[sock])`` with the socket bound (not yet listening) by the caller.
    """

    def __init__(self, app: ASGIApp, api: ApiConfig, tls: TlsContexts | None, max_connections: int) -> None:
        super().__init__(uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", http="httptools", ws="none",
            timeout_keep_alive=api.keep_alive_timeout_s,
            log_config=None))  # uvicorn logs through the root logger, in topfib's --log-format
        self._api = api
        self.tls = tls
        self._max_connections = max_connections
        self.acceptor: Acceptor | None = None
        self._handshakes: set[asyncio.Task[None]] = set()
        self._exit_requested = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if sockets is None or len(sockets) != 1:
            raise ValueError("ApiServer serves exactly one bound socket")
        await self.lifespan.startup()
        install_log_budget()
        self.servers = []  # uvicorn's shutdown closes these; the acceptor is closed below instead
        sock = sockets[0]
        sock.listen(self.config.backlog)
        self.acceptor = Acceptor(sock, self._serve_connection, self._max_connections,
                                 ClientSlots(self._api.max_connections_per_client))
        self.acceptor.start()
        self.started = True

    def _protocol(self, on_close: Callable[[], None]) -> DeadlineHttpProtocol:
        return DeadlineHttpProtocol(self.config, self.server_state, self.lifespan.state,
                                    read_timeout_s=self._api.request_read_timeout_s, on_close=on_close)

    def _serve_connection(self, conn: socket.socket, release: Callable[[], None]) -> None:
        task = asyncio.get_running_loop().create_task(self._connect(conn, release))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _connect(self, conn: socket.socket, release: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        context = self.tls.current if self.tls is not None else None
        try:
            if context is None:
                await loop.connect_accepted_socket(lambda: self._protocol(release), conn)
            else:
                await loop.connect_accepted_socket(
                    lambda: self._protocol(release), conn, ssl=context,
                    ssl_handshake_timeout=self._api.request_read_timeout_s)
        except OSError:
            # a failed or slow TLS handshake (plain HTTP on this port included): the transport has
            # closed the socket; the protocol never started, so its close hook will not run
            if context is not None:
                CONNECTIONS_DROPPED.inc(reason="tls_handshake")
            release()
        except BaseException:
            release()
            conn.close()
            raise

    def request_exit(self) -> None:
        """Stop serving now (uvicorn's ``should_exit``, and :meth:`main_loop` woken at once)."""
        self.should_exit = True
        self._exit_requested.set()

    async def main_loop(self) -> None:
        """uvicorn's loop, ticking once a second instead of ten times: its tick only refreshes
        the Date header (once a second anyway) and checks ``should_exit``, which
        :meth:`request_exit` answers at once. An idle process stays asleep."""
        tick = 0
        while not await self.on_tick(tick):
            tick = (tick + 10) % 864000  # on_tick refreshes the Date header when tick % 10 == 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_requested.wait(), MAIN_LOOP_TICK_S)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.acceptor is not None:
            self.acceptor.close()
        for task in list(self._handshakes):
            task.cancel()
        await super().shutdown(sockets=sockets)
