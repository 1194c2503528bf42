"""Why a switch's BGP session is not up, as far as topfib can tell: for ``/v1/status`` and the log.

A TCP-MD5 (RFC 2385) password mismatch or a GTSM (RFC 5082) TTL check never reaches BGP: the
kernel drops the segments and ExaBGP sees only a connection that never completes. The kernel
counts those drops per network namespace (``TcpExt`` in ``/proc/PID/net/netstat``); read through
ExaBGP's PID they are the counters of the namespace the session lives in. A rise since the
session went down names the cause. Without one (when topfib dials, the switch's kernel drops our
segments and ours counts nothing), a session still down after ``connect_grace_s`` gets a reason
that says which of these protections is on and what to check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from topfib.controller.config import SwitchConfig

log = logging.getLogger(__name__)

CONNECT_GRACE_S = 15.0  # ExaBGP retries every few seconds; past this a session is "not coming up"

# TcpExt counter → what a rise in it means (in the namespace ExaBGP's session lives in)
_DROP_CAUSES: dict[str, str] = {
    "TCPMD5Failure": "TCP-MD5 signature mismatch ({n} segments dropped): the switch's password "
                     "differs from switch[].md5_password",
    "TCPMD5NotFound": "{n} segments without a TCP-MD5 signature dropped: switch[].md5_password is set "
                      "but the switch sends no signature (no password configured there)",
    "TCPMD5Unexpected": "{n} segments with a TCP-MD5 signature dropped: the switch uses a password but "
                        "switch[].md5_password is not set",
    "TCPMinTTLDrop": "{n} segments below the GTSM minimum TTL dropped: the switch is more than "
                     "switch[].ttl_security hops away or does not send with TTL 255",
}

CounterReader = Callable[[int], Mapping[str, int]]


def read_tcp_drop_counters(pid: int) -> dict[str, int]:
    """The :data:`_DROP_CAUSES` counters of ``pid``'s network namespace ({} when unreadable)."""
    try:
        lines = Path(f"/proc/{pid}/net/netstat").read_text().splitlines()
    except OSError:
        return {}
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        names, numbers = header.split(), values.split()
        if names and names[0] == "TcpExt:":
            return {name: int(number) for name, number in zip(names[1:], numbers[1:], strict=False)
                    if name in _DROP_CAUSES}
    return {}


class SessionDiagnosis:
    """Keeps the reason a switch's session is down; logs it once each time it changes."""

    def __init__(
        self,
        switch: SwitchConfig,
        exabgp_pid: Callable[[], int | None],
        *,
        clock: Callable[[], float] = time.monotonic,
        connect_grace_s: float = CONNECT_GRACE_S,
        read_counters: CounterReader = read_tcp_drop_counters,
    ) -> None:
        self.switch = switch
        self._exabgp_pid = exabgp_pid
        self._clock = clock
        self._connect_grace_s = connect_grace_s
        self._read_counters = read_counters
        self._down_since: float | None = None
        self._baseline: Mapping[str, int] = {}
        self._kind: tuple[str, ...] = ()  # what the reason is about, without its counts: logged on change
        self.reason: str | None = None

    def update(self, session_state: str, last_down_reason: str = "") -> str | None:
        """The reason for ``session_state`` now (None while up or still within the grace time)."""
        if session_state == "up":
            self.clear()
            return None
        now = self._clock()
        pid = self._exabgp_pid()
        counters = self._read_counters(pid) if pid is not None else {}
        if self._down_since is None:
            self._down_since, self._baseline = now, counters
        rising = [name for name in _DROP_CAUSES if counters.get(name, 0) > self._baseline.get(name, 0)]
        if rising:
            return self._set(tuple(rising), "; ".join(
                _DROP_CAUSES[name].format(n=counters[name] - self._baseline.get(name, 0)) for name in rising))
        if now - self._down_since < self._connect_grace_s:
            return self._set((), None)
        if pid is None:
            return self._set(("not running",), "ExaBGP is not running")
        return self._set(("not coming up", session_state, last_down_reason),
                         self._not_coming_up(session_state, last_down_reason))

    def clear(self) -> None:
        """The session is up (or topfib does not run this switch's ExaBGP): nothing to explain."""
        self._down_since = None
        self._set((), None)

    def _not_coming_up(self, session_state: str, last_down_reason: str) -> str:
        switch = self.switch
        grace = f"{self._connect_grace_s:g} s"
        if session_state == "connected":  # TCP is up: BGP itself (OPEN, AS numbers) is refusing
            first = f"TCP connected to {switch.neighbor} but no BGP session within {grace}"
        elif switch.passive:
            first = f"the switch has not connected to port {switch.bgp_port} within {grace}"
        else:
            first = f"no TCP connection to {switch.neighbor} port {switch.bgp_port} within {grace}"
        parts = [first]
        if last_down_reason:
            parts.append(f"last down: {last_down_reason}")
        if switch.md5_password is not None:
            parts.append("TCP-MD5 is on: a password mismatch makes the switch drop the connection "
                         "silently, check its password")
        if switch.ttl_security:
            parts.append(f"GTSM is on ({switch.ttl_security} hop(s)): the switch must use TTL security too")
        return "; ".join(parts)

    def _set(self, kind: tuple[str, ...], reason: str | None) -> str | None:
        if kind != self._kind:  # not on every new count: one line per change of cause
            if reason is not None:
                log.warning("switch %s: BGP session not up: %s", self.switch.name, reason)
            self._kind = kind
        self.reason = reason
        return reason
