"""One switch's RIB: per session, per (prefix, peer, path-id), the path; the best path per prefix.

Sessions are named by the caller: a BGP neighbor's address for live paths, ``"file"`` for a
preloaded MRT/pfx2as table. A session's paths are keyed by (prefix, path.peer, path.path_id), so
one file session can hold many MRT peers' paths.

Changes come back as :class:`RibChange` (new best path, or ``None`` when the prefix is gone) and
also accumulate in a drainable set, for a consumer that polls. The :class:`LpmTable` holds exactly
the prefixes that have at least one path.

Memory, for a full table: per prefix one list slot (indexed by its LPM id, so no prefix string
and no dict entry is kept) holding its (session, path) pair, or a tuple of pairs best-first when
it has several (so ``best`` is an index, not a computation). Pairs are
interned by path identity and refcounted (churn does not leak); producers share one ``BgpPath`` per
distinct attribute set, so a million prefixes hold tens of thousands of paths.

Wiring for the service: parse with :class:`ExabgpJsonParser` (its events carry each prefix parsed,
so the RIB does not parse it again) and feed every event to :meth:`Rib.apply`; preload ``rib_file`` with
:func:`topfib.collector.rib.loaders.load_rib_file`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from topfib.collector.common.log_budget import LogLimiter
from topfib.collector.common.metrics import REGISTRY
from topfib.collector.common.prefixes import IPV4, IPV6, split_prefix
from topfib.collector.common.special_use import SpecialUseFilter, count_filtered
from topfib.collector.rib.events import EndOfRib, Event, Notification, RouteUpdate, SessionState
from topfib.collector.rib.keymap import IdSpaceExhausted
from topfib.collector.rib.lpm import LpmTable
from topfib.collector.rib.paths import DEFAULT_RULES, BestPathRules, BgpPath, SharedEntries
from topfib.collector.rib.paths import Entry as _Entry

PRELOAD_SESSION = "file"

log = logging.getLogger(__name__)
REFUSED_FULL = REGISTRY.counter(
    "topfib_rib_full_refused_total",
    "Announces of a new prefix refused because the RIB's prefix id space is exhausted",
)

# One path is stored as its entry itself (no 1-tuple around it: a full table is mostly single-path
# prefixes); several as a tuple of entries, best first.
_Stored = _Entry | tuple[_Entry, ...]


def _entries(stored: _Stored) -> tuple[_Entry, ...]:
    if type(stored[0]) is str:
        return (stored,)
    return cast(tuple[_Entry, ...], stored)


def _pack(entries: list[_Entry] | tuple[_Entry, ...]) -> _Stored:
    return entries[0] if len(entries) == 1 else tuple(entries)


@dataclass(frozen=True, slots=True)
class RibChange:
    """The best path of ``prefix`` is now ``best`` (None: the prefix has no path left)."""

    prefix: str
    best: BgpPath | None


@dataclass(frozen=True, slots=True)
class RibCounts:
    ipv4_prefixes: int
    ipv6_prefixes: int
    ipv4_paths: int
    ipv6_paths: int

    @property
    def paths(self) -> int:
        return self.ipv4_paths + self.ipv6_paths


_new_object = object.__new__
_set_change_prefix, _set_change_best = (getattr(RibChange, name).__set__ for name in RibChange.__slots__)


def _rib_change(prefix: str, best: BgpPath | None) -> RibChange:
    """``RibChange(prefix, best)`` without the frozen dataclass ``__init__`` (one per new prefix)."""
    change: RibChange = _new_object(RibChange)
    _set_change_prefix(change, prefix)
    _set_change_best(change, best)
    return change


class Rib:
    """Paths of every session of one switch, best path per prefix, and the prefix LPM table."""

    def __init__(self, preload_session: str = PRELOAD_SESSION,
                 special_use: SpecialUseFilter | None = None, rules: BestPathRules = DEFAULT_RULES) -> None:
        self.lpm = LpmTable()
        self.rules = rules
        self.preload_session = preload_session
        # With a filter, a prefix in special-use space (or a /0) never enters: nothing can then
        # select, resolve a request to, or announce it. Counted once per refused announce.
        self.special_use = special_use
        self.refused_special_use = 0
        # Announces of a new prefix refused because every prefix id is taken (see apply_all)
        self.refused_full = 0
        self._full_log = LogLimiter()
        # By LPM id (ids are stable, never reused): the prefix's paths, None while it has none.
        self._routes: list[_Stored | None] = []
        # The (session, path) pairs the slots hold, shared between prefixes and refcounted
        self._shared = SharedEntries(preload_session, rules)
        self._intern, self._release, self._ordered = (
            self._shared.intern, self._shared.release, self._shared.ordered)
        self._path_counts = {IPV4: 0, IPV6: 0}
        self._session_paths: dict[str, int] = {}
        # By LPM id, 1 where the best path changed since the last drain: a table load marks a
        # million prefixes without holding a million strings (named when drained).
        self._changed = bytearray()
        self._any_changed = False
        self._versions = np.zeros(1024, np.uint32)  # see path_versions

    # -- queries --------------------------------------------------------------------------------

    def _stored(self, prefix_id: int) -> _Stored | None:
        routes = self._routes
        return routes[prefix_id] if 0 <= prefix_id < len(routes) else None

    def best(self, prefix: str) -> BgpPath | None:
        stored = self._stored(self.lpm.locate(prefix)[1])
        return _entries(stored)[0][1] if stored is not None else None

    def paths(self, prefix: str) -> list[BgpPath]:
        """All paths of ``prefix``, best first."""
        stored = self._stored(self.lpm.locate(prefix)[1])
        return [path for _, path in _entries(stored)] if stored is not None else []

    def path_versions(self) -> npt.NDArray[np.uint32]:
        """Per LPM id of :attr:`lpm`, a number that changes whenever that prefix's paths do (0: not
        changed since the table was created; ids past the end: 0 too), so a cache of what the
        paths say is checked for a whole batch of ids in numpy. Read it under the RIB's lock."""
        return self._versions

    def sessions_of(self, prefix: str) -> list[tuple[str, BgpPath]]:
        """(session, path) pairs of ``prefix``, best first."""
        stored = self._stored(self.lpm.locate(prefix)[1])
        return list(_entries(stored)) if stored is not None else []

    def longest_match(self, ip: str) -> str | None:
        return self.lpm.lookup(ip)

    def longest_matches(self, family: int, addresses: Sequence[int]) -> list[str | None]:
        """:meth:`longest_match` of many addresses of one family (as ints) in one batch."""
        return self.lpm.lookup_batch(family, addresses)

    def more_specifics(self, prefix: str) -> list[str]:
        """Every RIB prefix strictly inside ``prefix``, in address order."""
        return self.lpm.more_specifics(prefix)

    def __contains__(self, prefix: object) -> bool:
        return isinstance(prefix, str) and self._stored(self.lpm.locate(prefix)[1]) is not None

    def __len__(self) -> int:
        return len(self.lpm)

    def __iter__(self) -> Iterator[str]:
        """Every prefix with a path, in LPM id order (strings made as they are reached)."""
        name = self.lpm.prefix_of_id
        return (name(prefix_id) for prefix_id, stored in enumerate(self._routes) if stored is not None)

    def counts(self) -> RibCounts:
        return RibCounts(self.lpm.count(IPV4), self.lpm.count(IPV6),
                         self._path_counts[IPV4], self._path_counts[IPV6])

    def session_path_counts(self) -> dict[str, int]:
        return dict(self._session_paths)

    def drain_changed(self) -> set[str]:
        """Prefixes whose best path changed (or which disappeared) since the last drain."""
        if not self._any_changed:
            return set()
        flags, self._changed, self._any_changed = self._changed, bytearray(len(self._changed)), False
        ids = np.flatnonzero(np.frombuffer(flags, dtype=np.uint8))
        return set(map(self.lpm.prefix_of_id, ids.tolist()))

    # -- events ---------------------------------------------------------------------------------

    def apply(self, event: Event) -> list[RibChange]:
        """Apply one parsed ExaBGP event.

        A session going ``down`` (or coming ``up``: a new session starts empty) drops its paths
        at once. End-of-RIB from a live session drops the preloaded file paths of that family:
        the live table has fully replaced them, with no gap in between.
        """
        if isinstance(event, RouteUpdate):
            if event.path is None:
                change = self.withdraw(event.neighbor, event.prefix, event.neighbor, event.path_id,
                                       event.parsed)
            else:
                try:
                    change = self.announce(event.neighbor, event.prefix, event.path, event.parsed)
                except IdSpaceExhausted as exc:  # refused, as in apply_all
                    self._refuse_full(event.prefix, exc)
                    return []
            return [change] if change is not None else []
        if isinstance(event, SessionState):
            if event.state in ("up", "down"):
                return self.drop_session(event.neighbor)
            return []
        if isinstance(event, EndOfRib):
            family = IPV6 if event.family.startswith("ipv6") else IPV4
            if event.neighbor != self.preload_session:
                return self.drop_session(self.preload_session, family)
            return []
        if isinstance(event, Notification):
            return []  # the session's "down" state follows and does the work
        raise TypeError(f"not a RIB event: {event!r}")

    def apply_all(self, events: Iterable[Event]) -> list[RibChange]:
        """:meth:`apply` each event in order; the changes of all of them.

        A new prefix the table has no id left for is refused (counted, logged within a budget)
        and the rest applied: one ExaBGP line's changes are returned whole, never half applied."""
        changes: list[RibChange] = []
        announce, withdraw = self.announce, self.withdraw
        for event in events:
            if type(event) is RouteUpdate:  # nearly every event: dispatched inline
                path = event.path
                if path is None:
                    change = withdraw(event.neighbor, event.prefix, event.neighbor, event.path_id,
                                      event.parsed)
                else:
                    try:  # free on the happy path (3.11's zero-cost exceptions)
                        change = announce(event.neighbor, event.prefix, path, event.parsed)
                    except IdSpaceExhausted as exc:
                        self._refuse_full(event.prefix, exc)
                        continue
                if change is not None:
                    changes.append(change)
            else:
                changes.extend(self.apply(event))
        return changes

    def _refuse_full(self, prefix: str, exc: IdSpaceExhausted) -> None:
        self.refused_full += 1
        REFUSED_FULL.inc()
        self._full_log.warn("rib-full", time.monotonic(),
                            f"RIB full, announce of {prefix} refused: {exc}")

    def announce(self, session: str, prefix: str, path: BgpPath,
                 parsed: tuple[int, int, int] | None = None) -> RibChange | None:
        """Add or replace the path (session, prefix, path.peer, path.path_id).

        ``prefix`` must be canonical (the loaders and the JSON parser ensure it); a new prefix is
        validated by the LPM table before anything is stored (:class:`PrefixError`), unless the
        caller passes ``parsed`` (its ``split_prefix`` result). A prefix the special-use filter
        refuses is not stored (None). A new prefix past the id space raises
        :class:`IdSpaceExhausted` before anything is stored.
        """
        parsed, prefix_id = self.lpm.locate(prefix, parsed)
        routes = self._routes
        stored = routes[prefix_id] if 0 <= prefix_id < len(routes) else None
        if stored is None:  # a new prefix (a whole table is loaded this way): cheap bookkeeping
            if parsed is None:
                parsed = split_prefix(prefix)  # raises PrefixError: not a prefix
            special_use = self.special_use
            if special_use is not None:
                refused = special_use.reason_parsed(*parsed)
                if refused is not None:
                    self.refused_special_use += 1
                    count_filtered("rib", refused)
                    return None
            prefix_id = self.lpm.add_located(parsed, prefix_id)
            entry = self._intern(session, path)
            if prefix_id == len(routes):  # the next id: the usual case
                routes.append(entry)
            elif prefix_id < len(routes):  # an id the table had before
                routes[prefix_id] = entry
            else:
                routes.extend([None] * (prefix_id - len(routes)))
                routes.append(entry)
            self._touch(prefix_id)
            self._path_counts[parsed[0]] += 1
            session_paths = self._session_paths
            session_paths[session] = session_paths.get(session, 0) + 1
            changed = self._changed
            if prefix_id < len(changed):  # _mark, inlined: once per new prefix of a table load
                changed[prefix_id] = 1
                self._any_changed = True
            else:
                self._mark(prefix_id)
            return _rib_change(prefix, path)
        entries = _entries(stored)
        old_best = entries[0][1]
        kept: list[_Entry] = []
        replaced = False
        for entry in entries:
            other_session, other = entry
            if other_session == session and other.peer == path.peer and other.path_id == path.path_id:
                if other is path:  # the same path again: nothing changes
                    return None
                replaced = True
                self._release(entry)
            else:
                kept.append(entry)
        if not replaced:
            self._count_path(prefix, session, +1)
        kept.append(self._intern(session, path))
        if len(kept) > 1:
            kept = self._ordered(kept)
        routes[prefix_id] = _pack(kept)
        self._touch(prefix_id)
        best = kept[0][1]
        return self._changed_to(prefix_id, prefix, best) if best != old_best else None

    def withdraw(self, session: str, prefix: str, peer: str, path_id: int,
                 parsed: tuple[int, int, int] | None = None) -> RibChange | None:
        """Remove one path; the prefix goes when its last path does. Unknown paths are ignored.
        ``parsed``: ``split_prefix(prefix)`` when the caller has it (trusted, as in :meth:`announce`)."""
        prefix_id = self.lpm.locate(prefix, parsed)[1]
        stored = self._stored(prefix_id)
        if stored is None:
            return None
        if type(stored[0]) is str:  # one path (most prefixes): no search, nothing left after
            owner, path = stored
            if owner != session or path.peer != peer or path.path_id != path_id:
                return None
            self._release(stored)
            self._count_path(prefix, session, -1)
            self._routes[prefix_id] = None
            self._touch(prefix_id)
            self.lpm.remove_id(prefix_id)
            return self._changed_to(prefix_id, prefix, None)
        entries = _entries(stored)
        position = next((i for i, (owner, path) in enumerate(entries)
                         if owner == session and path.peer == peer and path.path_id == path_id), -1)
        if position < 0:
            return None
        self._release(entries[position])
        self._count_path(prefix, session, -1)
        rest = [*entries[:position], *entries[position + 1:]]
        self._touch(prefix_id)
        if not rest:
            self._routes[prefix_id] = None
            self.lpm.remove_id(prefix_id)
            return self._changed_to(prefix_id, prefix, None)
        # with MED compared per neighbour AS, even a path that lost can have decided the winner
        rest = self._ordered(rest)
        self._routes[prefix_id] = _pack(rest)
        return self._changed_to(prefix_id, prefix, rest[0][1]) if rest[0][1] != entries[0][1] else None

    def drop_session(self, session: str, family: int | None = None) -> list[RibChange]:
        """Remove every path of ``session`` (of one family, if given): one change per prefix
        whose best path moved, however many of its paths the session held."""
        if not self._session_paths.get(session):
            return []
        changes: list[RibChange] = []
        lpm = self.lpm
        doomed = [
            prefix_id for prefix_id, stored in enumerate(self._routes)
            if stored is not None and (family is None or lpm.family_of_id(prefix_id) == family)
            and any(entry[0] == session for entry in _entries(stored))
        ]
        for prefix_id in doomed:
            prefix = lpm.prefix_of_id(prefix_id)
            stored = self._routes[prefix_id]
            assert stored is not None
            entries = _entries(stored)
            old_best = entries[0][1]
            kept = self._ordered([entry for entry in entries if entry[0] != session])
            self._touch(prefix_id)
            for entry in entries:
                if entry[0] == session:
                    self._release(entry)
                    self._count_path(prefix, session, -1)
            if not kept:
                self._routes[prefix_id] = None
                lpm.remove_id(prefix_id)
                changes.append(self._changed_to(prefix_id, prefix, None))
                continue
            self._routes[prefix_id] = _pack(kept)
            if kept[0][1] != old_best:
                changes.append(self._changed_to(prefix_id, prefix, kept[0][1]))
        return changes

    # -- bookkeeping ----------------------------------------------------------------------------

    def _touch(self, prefix_id: int) -> None:
        """The paths of the prefix with this LPM id have just changed (see path_versions)."""
        versions = self._versions
        if prefix_id >= len(versions):
            grown = np.zeros(max(2 * len(versions), prefix_id + 1), np.uint32)
            grown[: len(versions)] = versions
            self._versions = versions = grown
        # a count per prefix (4 bytes a prefix of a full table), never 2**32 - 1 (a reader's "none")
        versions[prefix_id] = (int(versions[prefix_id]) + 1) % (2**32 - 1)

    def _mark(self, prefix_id: int) -> None:
        changed = self._changed
        if prefix_id >= len(changed):
            changed.extend(bytes(max(prefix_id + 1 - len(changed), len(changed) // 2)))
        changed[prefix_id] = 1
        self._any_changed = True

    def _changed_to(self, prefix_id: int, prefix: str, best: BgpPath | None) -> RibChange:
        self._mark(prefix_id)
        return _rib_change(prefix, best)

    def _count_path(self, prefix: str, session: str, delta: int) -> None:
        family = IPV6 if ":" in prefix else IPV4
        self._path_counts[family] += delta
        left = self._session_paths.get(session, 0) + delta
        if left:
            self._session_paths[session] = left
        else:
            self._session_paths.pop(session, None)

