"""The state store: what the API writes and the controller reads, behind one interface.

Two implementations share the :class:`Store` protocol and one contract test suite:
:class:`MemoryStore` here (the embedded default, state dies with the process) and
``topfib.controller.state.redis_store.RedisStore`` (state survives restarts and is shared by API replicas).

What it holds:

- on-demand requests, keyed by (switch, access point, IP), each with a wall-clock expiry. The same
  AP asking for the same IP again replaces its entry (newest wins, even with a shorter TTL); each
  AP may hold at most a per-switch number of active entries, checked atomically with the write;
- operator pins (global: a pinned prefix is installed on every switch that has a path for it);
- per-switch config overrides (the operator's partial updates of the switch's tunables);
- per-switch snapshots (desired and installed FIB, top prefixes, rates) as opaque JSON text, so
  stateless API replicas can serve what the active controller last published.

Each switch's requests also carry a change log, so the control loop reads only what changed
since its last read (:meth:`Store.request_changes`) instead of every active request each
iteration: a cursor (the log's generation and sequence number) says where a reader is; a new
generation (a new store, a Redis that lost its data) or a cursor older than the log keeps
(``CHANGE_LOG_MAX`` changes) gets a full read instead.

Times are wall-clock seconds (``time.time()``) passed in by the caller: expiries must mean the
same thing to every process and across restarts, which a monotonic clock does not.
"""

from __future__ import annotations

import heapq
import secrets
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

SettingValue = int | float
SnapshotKind = Literal["desired_fib", "installed_fib", "top", "rates"]
# Changes each switch's log keeps (past them by a tenth, its oldest are trimmed); a reader
# further behind reads everything again.
CHANGE_LOG_MAX = 50_000
# Past this many entries, the readers of a full read do its Python work in a thread (it would
# otherwise hold the event loop for up to a second at 100k entries).
OFFLOAD_ENTRIES = 5_000


def change_log_slack(change_log_max: int) -> int:
    """How far a change log may grow past its maximum before it is trimmed back to it."""
    return change_log_max // 10 + 1


class StoreUnavailable(Exception):
    """The backing store cannot be reached: writes are refused; reads serve the last state seen."""


@dataclass(frozen=True, slots=True)
class RequestEntry:
    """One access point's request for one IP on one switch."""

    switch: str
    ip: str
    ap: str
    requested_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class Pin:
    """An operator's pin: ``prefix`` stays installed wherever it has a live path."""

    prefix: str
    by: str
    since: float
    note: str = ""


@dataclass(frozen=True, slots=True)
class RequestCursor:
    """Where a reader of one switch's request changes is: the log's generation and sequence, and
    the mark of the write that sequence stands for (a store whose writes cannot be lost, as the
    memory store, need not mark them)."""

    generation: str
    sequence: int
    mark: str = ""


@dataclass(frozen=True, slots=True)
class RequestChanges:
    """One switch's requests since a cursor. ``full``: ``active`` is every active entry (replace
    what you had); else ``active`` holds the entries added or refreshed since the cursor and
    ``ended`` the (ap, ip) of entries that ended or expired since (some may be unknown to you)."""

    cursor: RequestCursor
    full: bool
    active: list[RequestEntry]
    ended: list[tuple[str, str]] = field(default_factory=list)


def needs_full_read(since: RequestCursor, now_at: RequestCursor, trimmed: int,
                    mark_at_since: str = "") -> bool:
    """Whether a reader at ``since`` must read everything (as one that has read nothing yet): the
    log is of another generation, it lost the changes after ``since`` (trimmed), or the log went
    back (a store restored from an older copy): to before ``since``, or past it again with other
    writes (``since``'s sequence now marked by another write, ``mark_at_since``)."""
    return (since.generation != now_at.generation or since.sequence < trimmed
            or since.sequence > now_at.sequence or since.mark != mark_at_since)


class Store(Protocol):
    async def add_requests(
        self, entries: Sequence[RequestEntry], max_per_ap: Mapping[str, int], now: float
    ) -> list[bool]:
        """Write entries in order; False where the AP already holds ``max_per_ap[switch]`` others.

        Refreshing an entry the AP already holds is always accepted (it does not add to the count).
        """
        ...

    async def remove_requests(self, ap: str, ip: str, now: float) -> int:
        """End ``ap``'s requests for ``ip`` on every switch; the number of active entries ended."""
        ...

    async def active_requests(self, switch: str | None, now: float) -> list[RequestEntry]:
        """Unexpired entries (of one switch, or all), newest first."""
        ...

    async def request_changes(self, switch: str, since: RequestCursor | None, now: float) -> RequestChanges:
        """``switch``'s requests changed since ``since`` (all of them when None, when ``since`` is
        of another generation or older than the change log keeps). Raises StoreUnavailable
        rather than answering from a cache: the caller keeps what it has and starts over."""
        ...

    async def set_pin(self, pin: Pin) -> None: ...

    async def remove_pin(self, prefix: str) -> bool: ...

    async def pins(self) -> list[Pin]:
        """All pins, sorted by prefix string."""
        ...

    async def config_overrides(self) -> dict[str, dict[str, SettingValue]]:
        """switch name → {setting: value}, for switches with at least one override."""
        ...

    async def update_config_overrides(
        self, switch: str, set_values: Mapping[str, SettingValue], clear_keys: Collection[str]
    ) -> dict[str, SettingValue]:
        """Apply one operator change atomically; returns the switch's overrides afterwards."""
        ...

    async def put_snapshot(self, switch: str, kind: SnapshotKind, payload: str) -> None: ...

    async def snapshot(self, switch: str, kind: SnapshotKind) -> str | None: ...

    async def ping(self) -> bool:
        """True when the backing store answers now."""
        ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """The in-process store. Not shared, not persistent; never unavailable."""

    def __init__(self, change_log_max: int = CHANGE_LOG_MAX) -> None:
        # (switch, ap, ip) → entry; the heap holds (expires_at, key) and may hold stale items,
        # which purge skips when the entry's expiry no longer matches.
        self._requests: dict[tuple[str, str, str], RequestEntry] = {}
        self._changes: dict[str, _ChangeLog] = {}
        self._change_log_max = change_log_max
        self._generation = secrets.token_hex(8)
        self._per_ap: dict[tuple[str, str], int] = {}
        self._expiries: list[tuple[float, tuple[str, str, str]]] = []
        self._pins: dict[str, Pin] = {}
        self._overrides: dict[str, dict[str, SettingValue]] = {}
        self._snapshots: dict[tuple[str, str], str] = {}

    def _purge(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            expires_at, key = heapq.heappop(self._expiries)
            entry = self._requests.get(key)
            if entry is not None and entry.expires_at == expires_at:
                self._drop(key)

    def _drop(self, key: tuple[str, str, str]) -> None:
        del self._requests[key]
        ap_key = (key[0], key[1])
        self._per_ap[ap_key] -= 1
        if not self._per_ap[ap_key]:
            del self._per_ap[ap_key]

    async def add_requests(
        self, entries: Sequence[RequestEntry], max_per_ap: Mapping[str, int], now: float
    ) -> list[bool]:
        self._purge(now)
        accepted: list[bool] = []
        for entry in entries:
            key = (entry.switch, entry.ap, entry.ip)
            ap_key = (entry.switch, entry.ap)
            if key not in self._requests:
                if self._per_ap.get(ap_key, 0) >= max_per_ap[entry.switch]:
                    accepted.append(False)
                    continue
                self._per_ap[ap_key] = self._per_ap.get(ap_key, 0) + 1
            self._requests[key] = entry
            heapq.heappush(self._expiries, (entry.expires_at, key))
            self._log_change(key)
            accepted.append(True)
        return accepted

    def _log_change(self, key: tuple[str, str, str]) -> None:
        # keyed by the request's own key tuple: no other tuple per write for the collector to track
        log = self._changes.setdefault(key[0], _ChangeLog())
        log.sequence += 1
        log.members[key] = log.sequence
        log.members.move_to_end(key)
        if len(log.members) > self._change_log_max + change_log_slack(self._change_log_max):
            while len(log.members) > self._change_log_max:
                log.trimmed = log.members.popitem(last=False)[1]

    async def request_changes(self, switch: str, since: RequestCursor | None, now: float) -> RequestChanges:
        self._purge(now)
        log = self._changes.get(switch, _ChangeLog())
        cursor = RequestCursor(self._generation, log.sequence)
        if since is None or needs_full_read(since, cursor, log.trimmed):
            active = [e for e in self._requests.values() if e.switch == switch]
            return RequestChanges(cursor, True, active)
        active, ended = [], []
        for key, sequence in reversed(log.members.items()):
            if sequence <= since.sequence:
                break
            entry = self._requests.get(key)
            if entry is None:
                ended.append((key[1], key[2]))
            else:
                active.append(entry)
        return RequestChanges(cursor, False, active, ended)

    async def remove_requests(self, ap: str, ip: str, now: float) -> int:
        self._purge(now)
        keys = [k for k in self._requests if k[1] == ap and k[2] == ip]
        for key in keys:
            self._drop(key)
            self._log_change(key)
        return len(keys)

    async def active_requests(self, switch: str | None, now: float) -> list[RequestEntry]:
        self._purge(now)
        found = [e for e in self._requests.values() if switch is None or e.switch == switch]
        return sorted(found, key=request_order)

    async def set_pin(self, pin: Pin) -> None:
        self._pins[pin.prefix] = pin

    async def remove_pin(self, prefix: str) -> bool:
        return self._pins.pop(prefix, None) is not None

    async def pins(self) -> list[Pin]:
        return [self._pins[p] for p in sorted(self._pins)]

    async def config_overrides(self) -> dict[str, dict[str, SettingValue]]:
        return {switch: dict(values) for switch, values in self._overrides.items() if values}

    async def update_config_overrides(
        self, switch: str, set_values: Mapping[str, SettingValue], clear_keys: Collection[str]
    ) -> dict[str, SettingValue]:
        values = self._overrides.setdefault(switch, {})
        for key in clear_keys:
            values.pop(key, None)
        values.update(set_values)
        return dict(values)

    async def put_snapshot(self, switch: str, kind: SnapshotKind, payload: str) -> None:
        self._snapshots[(switch, kind)] = payload

    async def snapshot(self, switch: str, kind: SnapshotKind) -> str | None:
        return self._snapshots.get((switch, kind))

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


@dataclass(slots=True)
class _ChangeLog:
    """One switch's request changes: (switch, ap, ip) → sequence of its last change, oldest first."""

    sequence: int = 0
    trimmed: int = 0  # the newest sequence dropped from ``members``
    members: OrderedDict[tuple[str, str, str], int] = field(default_factory=OrderedDict)


def request_order(entry: RequestEntry) -> tuple[float, str, str, str]:
    """Newest first, then by switch, IP and AP so equal times still sort the same everywhere."""
    return (-entry.requested_at, entry.switch, entry.ip, entry.ap)


class FirstTimes:
    """Keys seen before, bounded (cleared when full): "log this once" for keys that outsiders
    (another Redis client, an edited config file) choose."""

    def __init__(self, limit: int = 1024) -> None:
        self._limit = limit
        self._seen: set[object] = set()

    def first(self, key: object) -> bool:
        """True the first time ``key`` is offered (again after the set was full and cleared)."""
        if key in self._seen:
            return False
        if len(self._seen) >= self._limit:
            self._seen.clear()
        self._seen.add(key)
        return True
