"""topfib's end of the ExaBGP bridge: a unix-socket server per switch, asyncio, never blocking.

The bridge (exabgp/bridge.py, run by ExaBGP) connects here. Lines from it are sorted into
- ``#topfib-bridge …``: the bridge's hello (its PID and process group) or a drop report;
- ``done`` / ``error``: ExaBGP's ack for one command, matched in order to what :meth:`send` wrote;
- anything else: an ExaBGP message (JSON), handed to ``on_message`` in arrival order.

Reading never stops while a bridge is connected, whatever the consumer or a sender does: a
stalled reader would stall the bridge, then ExaBGP, then the BGP keepalives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from topfib.collector.common.metrics import REGISTRY
from topfib.collector.common.safe_files import ensure_private_dir

log = logging.getLogger(__name__)

COMMANDS = REGISTRY.counter("topfib_exabgp_commands_total",
                            "Commands sent to ExaBGP by outcome (done, error, unconfirmed)",
                            ("switch", "result"))
MESSAGES = REGISTRY.counter("topfib_exabgp_messages_total", "Messages received from ExaBGP", ("switch",))
BRIDGE_CONNECTIONS = REGISTRY.counter("topfib_exabgp_bridge_connections_total",
                                      "Bridge connections accepted", ("switch",))
BRIDGE_CONNECTED = REGISTRY.gauge("topfib_exabgp_bridge_connected",
                                  "1 while ExaBGP's bridge is connected", ("switch",))
BRIDGE_DROPPED = REGISTRY.counter("topfib_exabgp_bridge_dropped_total",
                                  "ExaBGP messages the bridge dropped while topfib was not reading",
                                  ("switch",))

HELLO_PREFIX = "#topfib-bridge"
READ_CHUNK = 256 * 1024
MAX_LINE_BYTES = 16 * 1024 * 1024  # far above any JSON UPDATE ExaBGP can produce
DEFAULT_ACK_STALL_S = 60.0
MAX_COMMAND_BYTES = 512 * 1024  # ExaBGP's own limit is 1 MiB per line; stay well under it

MessageHandler = Callable[[str], None]
ConnectionHandler = Callable[[bool], None]


class ExabgpLinkDown(ConnectionError):
    """No bridge is connected, so nothing was sent."""


@dataclass(slots=True)
class LinkStats:
    """Counters a service can export; they only grow."""

    messages: int = 0
    acks_done: int = 0
    acks_error: int = 0
    acks_unexpected: int = 0
    commands_unconfirmed: int = 0  # pending when the bridge went away or stalled
    connections: int = 0
    disconnects: int = 0
    oversized_lines: int = 0
    consumer_errors: int = 0
    bridge_dropped: int = 0  # messages the bridge dropped while its buffer was full


@dataclass(slots=True)
class BridgeInfo:
    pid: int
    pgid: int
    dropped_at_connect: int


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    pending: deque[tuple[str, asyncio.Future[bool]]] = field(default_factory=deque)
    info: BridgeInfo | None = None
    closed: bool = False


# ExaBGP schedules these and acks them in order; it answers anything else at once.
_PIPELINED = re.compile(
    r"^(?:neighbor \S+(?: [\w-]+ \S+)* )?(?:announce|withdraw) (?:route|attributes?|ipv4|ipv6) \S"
)


def is_pipelined_command(command: str) -> bool:
    return _PIPELINED.match(command) is not None


def parse_hello(line: str) -> dict[str, int]:
    """``#topfib-bridge pid=1 pgid=1 dropped=0`` → {"pid": 1, "pgid": 1, "dropped": 0}."""
    fields: dict[str, int] = {}
    for token in line[len(HELLO_PREFIX) :].split():
        key, sep, value = token.partition("=")
        if sep and value.isdigit():
            fields[key] = int(value)
    return fields


class ExabgpLink:
    """The socket server one switch's bridge connects to. Inert until :meth:`start`."""

    def __init__(
        self,
        socket_path: Path,
        on_message: MessageHandler,
        *,
        on_connection: ConnectionHandler | None = None,
        switch_name: str = "",
        ack_stall_s: float = DEFAULT_ACK_STALL_S,
    ) -> None:
        self.socket_path = socket_path
        self.switch_name = switch_name
        self.stats = LinkStats()
        self._on_message = on_message
        self._on_connection = on_connection
        self._ack_stall_s = ack_stall_s
        self._server: asyncio.Server | None = None
        self._conn: _Connection | None = None
        self._connected_event = asyncio.Event()
        self._exclusive = asyncio.Lock()
        self._dropped_by_bridge: dict[int, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        ensure_private_dir(self.socket_path.parent)  # nobody else may swap the socket
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # a stale socket from a previous run
        self._server = await asyncio.start_unix_server(self._accept, path=str(self.socket_path))
        os.chmod(self.socket_path, 0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._conn is not None:
            self._drop(self._conn, "link stopped")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    # --- state -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    @property
    def bridge(self) -> BridgeInfo | None:
        """The connected bridge's PID and process group (from its hello), if known."""
        return self._conn.info if self._conn is not None else None

    @property
    def pending_acks(self) -> int:
        return len(self._conn.pending) if self._conn is not None else 0

    async def wait_connected(self, timeout_s: float) -> bool:
        """True once a bridge has connected and said hello; False after ``timeout_s``."""
        try:
            await asyncio.wait_for(self._connected_event.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    # --- sending ---------------------------------------------------------------------------

    async def send(self, lines: list[str]) -> list[bool]:
        """Write commands; one result per line: True on ``done``, False on ``error``.

        Route commands (``[neighbor X] announce|withdraw route|attribute(s)|ipv4|ipv6 …``) are
        pipelined: ExaBGP acks them in order. Any other line is sent alone once every earlier
        ack is in, because ExaBGP answers those (and lines it does not understand) at once,
        ahead of route commands still queued. So prefer route commands in bulk.

        A line is also False when the bridge goes away or ExaBGP acks nothing for
        ``ack_stall_s`` (the connection is then dropped, so no later ack can be misattributed;
        the bridge reconnects by itself). When :attr:`connected` is False afterwards, the outcome
        of the unconfirmed lines is unknown. Raises :class:`ExabgpLinkDown` when no bridge is
        connected at the call.
        """
        conn = self._conn
        if conn is None or conn.closed:
            raise ExabgpLinkDown(f"switch {self.switch_name}: no ExaBGP bridge connected")
        commands = [line.strip() for line in lines]
        if any(not c or "\n" in c or "\r" in c for c in commands):
            raise ValueError("commands must be non-empty single lines")
        if any(len(c) > MAX_COMMAND_BYTES for c in commands):
            # ExaBGP treats a line over 1 MiB as a broken helper and restarts the bridge.
            raise ValueError(f"command over {MAX_COMMAND_BYTES} bytes: split its prefixes over more lines")
        results: list[bool] = []
        start = 0
        while start < len(commands):
            end = start
            while end < len(commands) and is_pipelined_command(commands[end]):
                end += 1
            if end > start:
                async with self._exclusive:  # not while a stop-and-wait command is in flight
                    futures = self._write(conn, commands[start:end])
                results += await self._collect(conn, futures)
                start = end
            else:
                async with self._exclusive:
                    await self._quiesce(conn)
                    futures = self._write(conn, [commands[start]])
                    results += await self._collect(conn, futures)
                start += 1
        return results

    def _write(self, conn: _Connection, commands: list[str]) -> list[asyncio.Future[bool]]:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[bool]] = []
        for command in commands:
            future: asyncio.Future[bool] = loop.create_future()
            if conn.closed:
                self.stats.commands_unconfirmed += 1
                COMMANDS.inc(switch=self.switch_name, result="unconfirmed")
                future.set_result(False)
            else:
                conn.pending.append((command, future))
            futures.append(future)
        if not conn.closed:
            # One write, so concurrent senders never interleave inside each other's batches.
            conn.writer.write("".join(c + "\n" for c in commands).encode())
        return futures

    async def _collect(self, conn: _Connection, futures: list[asyncio.Future[bool]]) -> list[bool]:
        if not conn.closed:
            try:
                await conn.writer.drain()
            except (ConnectionError, RuntimeError):
                self._drop(conn, "write failed")
        results: list[bool] = []
        for future in futures:
            if not future.done():
                try:
                    await asyncio.wait_for(asyncio.shield(future), self._ack_stall_s)
                except TimeoutError:
                    self._drop(conn, f"no ack from ExaBGP for {self._ack_stall_s:g} s")
            results.append(future.result())
        return results

    async def _quiesce(self, conn: _Connection) -> None:
        """Wait until every command already written has its ack (or the connection is gone)."""
        while conn.pending and not conn.closed:
            _, last = conn.pending[-1]
            try:
                await asyncio.wait_for(asyncio.shield(last), self._ack_stall_s)
            except TimeoutError:
                self._drop(conn, f"no ack from ExaBGP for {self._ack_stall_s:g} s")

    # --- receiving -------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(reader, writer)
        if self._conn is not None and not self._conn.closed:
            # A newer bridge (ExaBGP restarted) replaces the old one.
            self._drop(self._conn, "replaced by a new bridge connection")
        self._conn = conn
        self.stats.connections += 1
        BRIDGE_CONNECTIONS.inc(switch=self.switch_name)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._read_loop(conn)
        except asyncio.CancelledError:
            pass
        finally:
            self._drop(conn, "bridge disconnected")
            if task is not None:
                self._tasks.discard(task)

    async def _read_loop(self, conn: _Connection) -> None:
        partial = b""
        skipping = False  # inside an oversized line: discard up to its newline
        while not conn.closed:
            try:
                chunk = await conn.reader.read(READ_CHUNK)
            except ConnectionError:
                return
            if not chunk:
                return
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop()
            for raw in lines:
                if skipping:
                    skipping = False
                    continue
                self._dispatch(conn, raw.decode("utf-8", "replace").strip())
            if len(partial) > MAX_LINE_BYTES:
                self.stats.oversized_lines += 1
                log.warning("switch %s: line from bridge over %d bytes, discarded",
                            self.switch_name, MAX_LINE_BYTES)
                partial = b""
                skipping = True

    def _dispatch(self, conn: _Connection, line: str) -> None:
        if not line:
            return
        if line in ("done", "error"):
            self._ack(conn, line == "done")
        elif line.startswith(HELLO_PREFIX):
            self._hello(conn, line)
        else:
            self.stats.messages += 1
            MESSAGES.inc(switch=self.switch_name)
            try:
                self._on_message(line)
            except Exception:
                self.stats.consumer_errors += 1
                log.exception("switch %s: message consumer failed", self.switch_name)

    def _ack(self, conn: _Connection, done: bool) -> None:
        if not conn.pending:
            self.stats.acks_unexpected += 1
            log.warning("switch %s: ack %r with no command pending", self.switch_name, done)
            return
        command, future = conn.pending.popleft()
        COMMANDS.inc(switch=self.switch_name, result="done" if done else "error")
        if done:
            self.stats.acks_done += 1
        else:
            self.stats.acks_error += 1
            log.error("switch %s: ExaBGP rejected command: %s", self.switch_name, command[:500])
        if not future.done():
            future.set_result(done)

    def _hello(self, conn: _Connection, line: str) -> None:
        fields = parse_hello(line)
        if "pid" in fields and conn.info is None:
            conn.info = BridgeInfo(fields["pid"], fields.get("pgid", fields["pid"]), fields.get("dropped", 0))
            log.info("switch %s: bridge connected (pid %d)", self.switch_name, fields["pid"])
            self._connected_event.set()
            BRIDGE_CONNECTED.set(1, switch=self.switch_name)
            if self._on_connection is not None:
                self._on_connection(True)
        if conn.info is None or "dropped" not in fields:
            return
        # The bridge reports a running total per bridge process; count only what is new.
        seen = self._dropped_by_bridge.get(conn.info.pid, 0)
        if fields["dropped"] > seen:
            new = fields["dropped"] - seen
            log.error("switch %s: bridge dropped %d ExaBGP messages while topfib was not reading "
                      "(the RIB may be incomplete)", self.switch_name, new)
            BRIDGE_DROPPED.inc(new, switch=self.switch_name)
            self.stats.bridge_dropped += new
            self._dropped_by_bridge[conn.info.pid] = fields["dropped"]

    def _drop(self, conn: _Connection, reason: str) -> None:
        """Close one connection and fail what it still owes; idempotent."""
        if conn.closed:
            return
        conn.closed = True
        if conn.pending:
            log.warning("switch %s: %s; %d command(s) unconfirmed",
                        self.switch_name, reason, len(conn.pending))
        while conn.pending:
            _, future = conn.pending.popleft()
            self.stats.commands_unconfirmed += 1
            COMMANDS.inc(switch=self.switch_name, result="unconfirmed")
            if not future.done():
                future.set_result(False)
        conn.writer.close()
        if self._conn is conn:
            self.stats.disconnects += 1
            self._connected_event.clear()
            BRIDGE_CONNECTED.set(0, switch=self.switch_name)
            if conn.info is not None and self._on_connection is not None:
                self._on_connection(False)
