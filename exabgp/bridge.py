"""The helper ExaBGP runs as its API ``process``: relay lines between ExaBGP and topfib.

    bridge.py SOCKET_PATH            (or TOPFIB_BRIDGE_SOCKET=SOCKET_PATH bridge.py)

ExaBGP → topfib: every line read on stdin (JSON messages and the plain-text ``done``/``error`` acks)
is sent to topfib's unix socket. topfib → ExaBGP: every line read from the socket is written to
stdout. Standard library only: ExaBGP starts this with its own interpreter.

Why it is shaped like this:
- stdin is ALWAYS drained, connected or not. If it stopped, ExaBGP would block after ~64 KiB,
  stop sending keepalives, and the switch would drop every route at hold-timer expiry. While
  topfib is away, messages queue up to a byte bound, then newer ones are dropped and counted.
- Every command written to ExaBGP gets exactly one ack. Acks for commands of a connection that
  has gone are swallowed, so a reconnected topfib never sees an ack meant for its predecessor.
- All fds are non-blocking and served by one selector loop: a slow ExaBGP (full stdout pipe)
  pauses reading from topfib instead of blocking the stdin drain.
- On connect the bridge sends ``#topfib-bridge pid=… pgid=… dropped=…`` so topfib can kill the
  bridge's process group even after ExaBGP itself was SIGKILLed.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys
import time
from collections import deque

HELLO_PREFIX = b"#topfib-bridge"
ACK_LINES = frozenset({b"done", b"error"})
DEFAULT_BUFFER_BYTES = 64 * 1024 * 1024
STDOUT_PAUSE_BYTES = 1024 * 1024  # stop reading topfib's commands while this much is unwritten
READ_CHUNK = 256 * 1024
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 1.0


class Bridge:
    def __init__(self, socket_path: str, buffer_bytes: int) -> None:
        self.socket_path = socket_path
        self.buffer_bytes = buffer_bytes
        self.selector = selectors.DefaultSelector()
        self.sock: socket.socket | None = None
        self.connecting = False
        self.next_attempt = 0.0
        self.backoff_s = BACKOFF_MIN_S
        self.stdin_partial = b""
        self.sock_partial = b""
        self.to_topfib: deque[bytes] = deque()  # whole lines, newline included
        self.to_topfib_bytes = 0
        self.to_topfib_offset = 0  # bytes of to_topfib[0] already sent
        self.to_exabgp = bytearray()
        self.acks_owed = 0  # commands from the live connection not yet acked
        self.acks_orphaned = 0  # commands from dead connections not yet acked
        self.dropped = 0
        self.drop_reported = 0
        self.stdin_open = True
        os.set_blocking(0, False)
        os.set_blocking(1, False)
        self.selector.register(0, selectors.EVENT_READ, "stdin")

    # --- ExaBGP side -------------------------------------------------------------------

    def read_stdin(self) -> None:
        try:
            chunk = os.read(0, READ_CHUNK)
        except BlockingIOError:
            return
        if not chunk:
            self.stdin_open = False
            return
        lines = (self.stdin_partial + chunk).split(b"\n")
        self.stdin_partial = lines.pop()
        for line in lines:
            self.from_exabgp(line.rstrip(b"\r"))

    def from_exabgp(self, line: bytes) -> None:
        if line.strip() in ACK_LINES:
            if self.acks_orphaned:
                self.acks_orphaned -= 1
                return
            if not self.acks_owed:
                return  # an ack nobody waits for: forwarding it would shift every later ack
            self.acks_owed -= 1
            self.queue_for_topfib(line, always=True)
            return
        self.queue_for_topfib(line, always=False)

    def queue_for_topfib(self, line: bytes, always: bool) -> None:
        # Acks bypass the bound: they are few (one per command topfib sent) and must never be lost.
        if not always and self.to_topfib_bytes + len(line) + 1 > self.buffer_bytes:
            self.dropped += 1
            return
        self.to_topfib.append(line + b"\n")
        self.to_topfib_bytes += len(line) + 1

    def write_stdout(self) -> None:
        try:
            written = os.write(1, self.to_exabgp)
        except BlockingIOError:
            return
        del self.to_exabgp[:written]

    # --- topfib side -------------------------------------------------------------------

    def try_connect(self, now: float) -> None:
        if self.sock is not None or now < self.next_attempt:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(self.socket_path)
        except OSError:  # no listener yet (absent, refused, or its backlog full): retry later
            sock.close()
            self.next_attempt = now + self.backoff_s
            self.backoff_s = min(self.backoff_s * 2, BACKOFF_MAX_S)
            return
        self.sock = sock
        self.backoff_s = BACKOFF_MIN_S
        self.drop_reported = self.dropped
        hello = b"%s pid=%d pgid=%d dropped=%d\n" % (HELLO_PREFIX, os.getpid(), os.getpgrp(), self.dropped)
        # The hello goes first; a line half-sent to the previous connection is restarted whole.
        self.to_topfib_offset = 0
        self.to_topfib.appendleft(hello)
        self.to_topfib_bytes += len(hello)
        self.selector.register(sock, selectors.EVENT_READ, "sock")

    def disconnect(self, now: float) -> None:
        if self.sock is None:
            return
        if self.sock in self.selector.get_map():
            self.selector.unregister(self.sock)
        self.sock.close()
        self.sock = None
        self.sock_partial = b""
        self.acks_orphaned += self.acks_owed
        self.acks_owed = 0
        # Acks already queued belong to the dead connection: drop them, keep everything else.
        kept: deque[bytes] = deque()
        for line in self.to_topfib:
            if line.rstrip(b"\r\n").strip() not in ACK_LINES and not line.startswith(HELLO_PREFIX):
                kept.append(line)
        self.to_topfib = kept
        self.to_topfib_bytes = sum(len(line) for line in kept)
        self.to_topfib_offset = 0
        self.next_attempt = now + self.backoff_s

    def read_sock(self, now: float) -> None:
        assert self.sock is not None
        try:
            chunk = self.sock.recv(READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            self.disconnect(now)
            return
        if not chunk:
            self.disconnect(now)
            return
        lines = (self.sock_partial + chunk).split(b"\n")
        self.sock_partial = lines.pop()
        for line in lines:
            command = line.strip()
            if command:  # ExaBGP acks blank lines inconsistently; never send one
                self.to_exabgp += command + b"\n"
                self.acks_owed += 1

    def write_sock(self, now: float) -> None:
        assert self.sock is not None
        if self.dropped != self.drop_reported and self.to_topfib_bytes < self.buffer_bytes // 2:
            self.drop_reported = self.dropped
            self.queue_for_topfib(b"%s dropped=%d" % (HELLO_PREFIX, self.dropped), always=True)
        while self.to_topfib:
            head = self.to_topfib[0]
            try:
                sent = self.sock.send(head[self.to_topfib_offset :])
            except BlockingIOError:
                return
            except OSError:
                self.disconnect(now)
                return
            self.to_topfib_offset += sent
            if self.to_topfib_offset < len(head):
                return
            self.to_topfib.popleft()
            self.to_topfib_bytes -= len(head)
            self.to_topfib_offset = 0

    # --- loop ----------------------------------------------------------------------------

    def update_interest(self) -> None:
        if self.sock is not None:
            events = 0
            if len(self.to_exabgp) < STDOUT_PAUSE_BYTES:
                events |= selectors.EVENT_READ  # else: ExaBGP is slow, let topfib wait
            if self.to_topfib:
                events |= selectors.EVENT_WRITE
            registered = self.sock in self.selector.get_map()
            if events and registered:
                self.selector.modify(self.sock, events, "sock")
            elif events:
                self.selector.register(self.sock, events, "sock")
            elif registered:
                self.selector.unregister(self.sock)
        stdout_registered = 1 in self.selector.get_map()
        if self.to_exabgp and not stdout_registered:
            self.selector.register(1, selectors.EVENT_WRITE, "stdout")
        elif not self.to_exabgp and stdout_registered:
            self.selector.unregister(1)

    def run(self) -> int:
        while self.stdin_open:
            now = time.monotonic()
            self.try_connect(now)
            self.update_interest()
            timeout = None if self.sock is not None else max(0.0, self.next_attempt - now)
            for key, events in self.selector.select(timeout):
                now = time.monotonic()
                if key.data == "stdin":
                    self.read_stdin()
                elif key.data == "stdout":
                    self.write_stdout()
                elif key.data == "sock" and self.sock is not None:
                    if events & selectors.EVENT_WRITE:
                        self.write_sock(now)
                    if events & selectors.EVENT_READ and self.sock is not None:
                        self.read_sock(now)
            if self.sock is not None and self.to_topfib:
                self.write_sock(time.monotonic())
        return 0


def main(argv: list[str]) -> int:
    socket_path = argv[1] if len(argv) > 1 else os.environ.get("TOPFIB_BRIDGE_SOCKET", "")
    if not socket_path:
        print("usage: bridge.py SOCKET_PATH (or TOPFIB_BRIDGE_SOCKET)", file=sys.stderr)
        return 2
    buffer_bytes = int(os.environ.get("TOPFIB_BRIDGE_BUFFER_BYTES", DEFAULT_BUFFER_BYTES))
    try:
        return Bridge(socket_path, buffer_bytes).run()
    except BrokenPipeError:
        return 0  # ExaBGP closed our stdout: it is gone, and so are we
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
