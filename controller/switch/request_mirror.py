"""The control loop's copy of one switch's on-demand requests, kept current by reading only what
changed in the store (:meth:`topfib.controller.state.store.Store.request_changes`).

Reading every active request each iteration cost 0.65–1.8 s of event-loop time at 100k requests
in Redis (bench/bench_request_reads.py); a read of the changes costs what changed. Everything is
read again at start, after the store was unreachable (Redis may be back empty or restored from
elsewhere) and when the store says the reader is too far behind or on another generation.
Entries expire here at their own time, as they do in the store.

The control loop shares the event loop with the API: a second's worth of changes (thousands
while access points are busy) is applied in slices of ``APPLY_SLICE`` with the loop handed back
between them, and :attr:`RequestMirror.version` tells the selection gate whether the wanted set
changed without hashing tens of thousands of requests.
"""

from __future__ import annotations

import asyncio
import heapq

from topfib.controller.selection.model import OnDemandRequest
from topfib.controller.state.store import (
    OFFLOAD_ENTRIES,
    RequestChanges,
    RequestCursor,
    RequestEntry,
    Store,
    StoreUnavailable,
)

# Changes applied between two returns to the event loop (~1-3 ms of it at a few µs each).
APPLY_SLICE = 500


def newest_of(entries: dict[str, RequestEntry]) -> RequestEntry:
    """The entry that speaks for an IP asked for by several APs: the newest (ties: first AP)."""
    return min(entries.values(), key=lambda e: (-e.requested_at, e.ap))


class RequestMirror:
    """One switch's active requests as the selection wants them: per IP, the newest entry."""

    def __init__(self, switch: str) -> None:
        self.switch = switch
        self._cursor: RequestCursor | None = None
        # ip → its entry, or ap → entry once several APs asked for it: no dict per IP in the usual
        # case, one long-lived object fewer per request for the garbage collector to scan
        self._by_ip: dict[str, RequestEntry | dict[str, RequestEntry]] = {}
        self._wanted: dict[str, OnDemandRequest] = {}  # ip → what selection gets
        self._expiries: list[tuple[float, str, str]] = []  # (expires_at, ip, ap); stale items skipped
        self._held = 0  # entries in _by_ip
        self.full_reads = 0  # how often everything was read (start, outage, generation)
        self._arrived: set[str] = set()  # IPs whose wanted request is new or renewed (take_arrived)
        # moves whenever the wanted set does, and only then (the selection gate's input)
        self.version = 0
        # the request fast path's task and the control loop both refresh: one read at a time
        self._reading = asyncio.Lock()

    async def refresh(self, store: Store, now: float) -> list[OnDemandRequest]:
        """The requests active at ``now`` after :meth:`update`."""
        await self.update(store, now)
        return self.wanted()

    async def update(self, store: Store, now: float) -> None:
        """Read the store's changes and expire what ended by ``now``; during a store outage keep
        the ones held (still expiring on time), and read everything again once it answers."""
        async with self._reading:
            await self._update(store, now)

    async def _update(self, store: Store, now: float) -> None:
        try:
            changes = await store.request_changes(self.switch, self._cursor, now)
        except StoreUnavailable:
            self._cursor = None
        except Exception:
            self._cursor = None  # whatever went wrong, the next read starts over
            raise
        else:
            if changes.full and len(changes.active) > OFFLOAD_ENTRIES:
                await asyncio.to_thread(self._apply, changes)  # no other refresh meanwhile (_reading)
            elif changes.full:
                self._apply(changes)
            else:
                await self._apply_in_slices(changes)
        self._expire(now)

    async def _apply_in_slices(self, changes: RequestChanges) -> None:
        """Changes since the cursor, the event loop handed back every APPLY_SLICE of them (one
        refresh at a time writes the mirror, so what the API does in between cannot interleave).
        Ends before actives, as :meth:`_apply`. The cursor moves once all are in: a refresh
        cancelled midway reads everything next time."""
        self._cursor = None
        ended, active = changes.ended, changes.active
        for start in range(0, len(ended) + len(active), APPLY_SLICE):
            if start:
                await asyncio.sleep(0)
            self._apply_entries(ended[start:start + APPLY_SLICE],
                                active[max(0, start - len(ended)):max(0, start + APPLY_SLICE - len(ended))])
        self._cursor = changes.cursor

    def _apply(self, changes: RequestChanges) -> None:
        before: dict[str, OnDemandRequest] | None = None
        version = self.version
        if changes.full:
            self.full_reads += 1
            self._by_ip.clear()
            before, self._wanted = self._wanted, {}
            self._expiries.clear()
            self._held = 0
        self._apply_entries(changes.ended, changes.active, full=changes.full)
        if before is not None:  # settled afresh from nothing: moved only if it ends up otherwise
            self.version = version + (before != self._wanted)
        self._cursor = changes.cursor

    def _apply_entries(self, ended: list[tuple[str, str]], active: list[RequestEntry], *,
                       full: bool = False) -> None:
        touched: set[str] = set()
        for ap, ip in ended:
            if self._release(ip, ap):
                self._held -= 1
                touched.add(ip)
        for entry in active:
            self._held += self._hold(entry)
            if full:
                self._expiries.append((entry.expires_at, entry.ip, entry.ap))
            else:
                heapq.heappush(self._expiries, (entry.expires_at, entry.ip, entry.ap))
            touched.add(entry.ip)
        if full:
            heapq.heapify(self._expiries)  # linear: cheaper than a push each
        for ip in touched:
            self._settle(ip)
        if len(self._expiries) > 2 * self._held + 1024:  # refreshed entries left their old expiries
            self._expiries = [(e.expires_at, e.ip, e.ap) for e in self.held_entries()]
            heapq.heapify(self._expiries)

    def held_entries(self) -> list[RequestEntry]:
        """Every entry held (of every AP, not only the newest per IP)."""
        held: list[RequestEntry] = []
        for group in self._by_ip.values():
            if isinstance(group, RequestEntry):
                held.append(group)
            else:
                held += group.values()
        return held

    def _hold(self, entry: RequestEntry) -> bool:
        """Hold ``entry`` in place of its AP's entry for its IP; True when that AP held none."""
        held = self._by_ip.get(entry.ip)
        if held is None:
            self._by_ip[entry.ip] = entry
            return True
        if isinstance(held, RequestEntry):
            if held.ap == entry.ap:
                self._by_ip[entry.ip] = entry
                return False
            self._by_ip[entry.ip] = {held.ap: held, entry.ap: entry}
            return True
        new = entry.ap not in held
        held[entry.ap] = entry
        return new

    def _entry(self, ip: str, ap: str) -> RequestEntry | None:
        held = self._by_ip.get(ip)
        if isinstance(held, RequestEntry):
            return held if held.ap == ap else None
        return held.get(ap) if held is not None else None

    def _release(self, ip: str, ap: str) -> bool:
        """Drop ``ap``'s entry for ``ip``; True when there was one."""
        held = self._by_ip.get(ip)
        if held is None:
            return False
        if isinstance(held, RequestEntry):
            if held.ap != ap:
                return False
            del self._by_ip[ip]
            return True
        if held.pop(ap, None) is None:
            return False
        if len(held) == 1:
            self._by_ip[ip] = next(iter(held.values()))
        return True

    def _expire(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            expires_at, ip, ap = heapq.heappop(self._expiries)
            entry = self._entry(ip, ap)
            if entry is not None and entry.expires_at == expires_at:
                self._release(ip, ap)
                self._held -= 1
                self._settle(ip)

    def _settle(self, ip: str) -> None:
        held = self._by_ip.get(ip)
        if held is None:
            if self._wanted.pop(ip, None) is not None:
                self.version += 1
            return
        newest = held if isinstance(held, RequestEntry) else newest_of(held)
        request = OnDemandRequest(ip=ip, expires_at=newest.expires_at, created_at=newest.requested_at)
        if self._wanted.get(ip) != request:
            self._wanted[ip] = request
            self.version += 1
        self._arrived.add(ip)

    def wanted(self) -> list[OnDemandRequest]:
        """The requests held now (as the last refresh, or one under way, left them)."""
        return list(self._wanted.values())

    def take_arrived(self, limit: int) -> list[OnDemandRequest] | None:
        """The active requests new or renewed since the last call (the request fast path's work,
        proportional to what arrived); None when more than ``limit`` did (a full read: left to
        the selection)."""
        arrived, self._arrived = self._arrived, set()
        if len(arrived) > limit:
            return None
        return [self._wanted[ip] for ip in arrived if ip in self._wanted]
