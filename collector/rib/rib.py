"""One switch's RIB: per session, per (prefix, peer, path-id), the path; the best path per prefix.

Sessions are named by the caller: a BGP neighbor's address for live paths, ``"file"`` for a
preloaded MRT/pfx2as table. A session's paths are keyed by (prefix, path.peer, path.path_id), so
one file session can hold many MRT peers' paths.

Changes come back as :class:`RibChange` (new best path, or ``None`` when the prefix is gone) and
also accumulate in a drainable set, for a consumer that polls. The :class:`LpmTable` holds exactly
the prefixes that have at least one path.

Memory, for a full table: per prefix one dict entry holding its (session, path) pair, or a tuple
of pairs best-first when it has several (so ``best`` is an index, not a computation). Pairs are
interned by path identity and refcounted (churn does not leak); producers share one ``BgpPath`` per
distinct attribute set, so a million prefixes hold tens of thousands of paths.

Wiring for the service: parse with ``ExabgpJsonParser(known_prefix=rib.lpm.knows)`` and feed
every event to :meth:`Rib.apply`; preload ``rib_file`` with
:func:`topfib.collector.rib.loaders.load_rib_file`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from topfib.collector.common.prefixes import IPV4, IPV6, prefix_family, split_prefix
from topfib.collector.common.special_use import SpecialUseFilter, count_filtered
from topfib.collector.rib.events import EndOfRib, Event, Notification, RouteUpdate, SessionState
from topfib.collector.rib.lpm import LpmTable
from topfib.collector.rib.paths import (
    DEFAULT_RULES,
    TIER_LEN,
    BestPathRules,
    BgpPath,
    best_path_key,
    best_position,
)

PRELOAD_SESSION = "file"

_Entry = tuple[str, BgpPath]  # (session, path), shared between prefixes
# One path is stored as its entry itself (no 1-tuple around it: a full table is mostly single-path
# prefixes); several as a tuple of entries, best first.
_Stored = _Entry | tuple[_Entry, ...]
# ((preloaded?, *best_path_key), session): a live path always beats a preloaded file path (whose
# next hop may be synthetic); among live paths the best is exactly topfib.collector.rib.paths.best_path's.
_SortKey = tuple[tuple[int, ...], str]


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
        self._routes: dict[str, _Stored] = {}
        # Shared (session, path) pairs, by (session, id(path)): producers already share one Path
        # per distinct attribute set, and an identity lookup hashes none of its fields (an entry
        # keeps its path alive, so the id cannot be reused while the pair is here). Refcounted
        # so churn does not leak; sort keys only for pairs that were ever ordered.
        self._interned: dict[tuple[str, int], _Entry] = {}
        self._refs: dict[tuple[str, int], int] = {}
        self._sort_keys: dict[tuple[str, int], _SortKey] = {}
        self._path_counts = {IPV4: 0, IPV6: 0}
        self._session_paths: dict[str, int] = {}
        self._changed: set[str] = set()
        self._versions = np.zeros(1024, np.uint64)  # see path_versions
        self._version = 0

    # -- queries --------------------------------------------------------------------------------

    def best(self, prefix: str) -> BgpPath | None:
        stored = self._routes.get(prefix)
        return _entries(stored)[0][1] if stored is not None else None

    def paths(self, prefix: str) -> list[BgpPath]:
        """All paths of ``prefix``, best first."""
        stored = self._routes.get(prefix)
        return [path for _, path in _entries(stored)] if stored is not None else []

    def path_versions(self) -> npt.NDArray[np.uint64]:
        """Per LPM id of :attr:`lpm`, a number that changes whenever that prefix's paths do (0: not
        changed since the table was created; ids past the end: 0 too), so a cache of what the
        paths say is checked for a whole batch of ids in numpy. Read it under the RIB's lock."""
        return self._versions

    def sessions_of(self, prefix: str) -> list[tuple[str, BgpPath]]:
        """(session, path) pairs of ``prefix``, best first."""
        stored = self._routes.get(prefix)
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
        return prefix in self._routes

    def __len__(self) -> int:
        return len(self._routes)

    def __iter__(self) -> Iterator[str]:
        return iter(self._routes)

    def counts(self) -> RibCounts:
        return RibCounts(self.lpm.count(IPV4), self.lpm.count(IPV6),
                         self._path_counts[IPV4], self._path_counts[IPV6])

    def session_path_counts(self) -> dict[str, int]:
        return dict(self._session_paths)

    def drain_changed(self) -> set[str]:
        """Prefixes whose best path changed (or which disappeared) since the last drain."""
        changed, self._changed = self._changed, set()
        return changed

    # -- events ---------------------------------------------------------------------------------

    def apply(self, event: Event) -> list[RibChange]:
        """Apply one parsed ExaBGP event.

        A session going ``down`` (or coming ``up``: a new session starts empty) drops its paths
        at once. End-of-RIB from a live session drops the preloaded file paths of that family:
        the live table has fully replaced them, with no gap in between.
        """
        if isinstance(event, RouteUpdate):
            if event.path is None:
                change = self.withdraw(event.neighbor, event.prefix, event.neighbor, event.path_id)
            else:
                change = self.announce(event.neighbor, event.prefix, event.path, event.parsed)
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
        """:meth:`apply` each event in order; the changes of all of them."""
        changes: list[RibChange] = []
        announce, withdraw = self.announce, self.withdraw
        for event in events:
            if type(event) is RouteUpdate:  # nearly every event: dispatched inline
                path = event.path
                if path is None:
                    change = withdraw(event.neighbor, event.prefix, event.neighbor, event.path_id)
                else:
                    change = announce(event.neighbor, event.prefix, path, event.parsed)
                if change is not None:
                    changes.append(change)
            else:
                changes.extend(self.apply(event))
        return changes

    def announce(self, session: str, prefix: str, path: BgpPath,
                 parsed: tuple[int, int, int] | None = None) -> RibChange | None:
        """Add or replace the path (session, prefix, path.peer, path.path_id).

        ``prefix`` must be canonical (the loaders and the JSON parser ensure it); a new prefix is
        validated by the LPM table before anything is stored (:class:`PrefixError`), unless the
        caller passes ``parsed`` (its ``split_prefix`` result). A prefix the special-use filter
        refuses is not stored (None).
        """
        stored = self._routes.get(prefix)
        if stored is None:  # a new prefix (a whole table is loaded this way): cheap bookkeeping
            special_use = self.special_use
            if special_use is not None:
                if parsed is None:
                    parsed = split_prefix(prefix)
                refused = special_use.reason_parsed(*parsed)
                if refused is not None:
                    self.refused_special_use += 1
                    count_filtered("rib", refused)
                    return None
            self.lpm.add(prefix, parsed)
            entry = self._intern(session, path)
            self._routes[prefix] = entry
            self._touch(prefix)
            self._path_counts[IPV6 if ":" in prefix else IPV4] += 1
            session_paths = self._session_paths
            session_paths[session] = session_paths.get(session, 0) + 1
            self._changed.add(prefix)
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
        self._routes[prefix] = _pack(kept)
        self._touch(prefix)
        best = kept[0][1]
        return self._changed_to(prefix, best) if best != old_best else None

    def withdraw(self, session: str, prefix: str, peer: str, path_id: int) -> RibChange | None:
        """Remove one path; the prefix goes when its last path does. Unknown paths are ignored."""
        stored = self._routes.get(prefix)
        if stored is None:
            return None
        if type(stored[0]) is str:  # one path (most prefixes): no search, nothing left after
            owner, path = stored
            if owner != session or path.peer != peer or path.path_id != path_id:
                return None
            self._release(stored)
            self._count_path(prefix, session, -1)
            del self._routes[prefix]
            self._touch(prefix)
            self.lpm.remove(prefix)
            return self._changed_to(prefix, None)
        entries = _entries(stored)
        position = next((i for i, (owner, path) in enumerate(entries)
                         if owner == session and path.peer == peer and path.path_id == path_id), -1)
        if position < 0:
            return None
        self._release(entries[position])
        self._count_path(prefix, session, -1)
        rest = [*entries[:position], *entries[position + 1:]]
        self._touch(prefix)
        if not rest:
            del self._routes[prefix]
            self.lpm.remove(prefix)
            return self._changed_to(prefix, None)
        # with MED compared per neighbour AS, even a path that lost can have decided the winner
        rest = self._ordered(rest)
        self._routes[prefix] = _pack(rest)
        return self._changed_to(prefix, rest[0][1]) if rest[0][1] != entries[0][1] else None

    def drop_session(self, session: str, family: int | None = None) -> list[RibChange]:
        """Remove every path of ``session`` (of one family, if given): one change per prefix
        whose best path moved, however many of its paths the session held."""
        if not self._session_paths.get(session):
            return []
        changes: list[RibChange] = []
        doomed = [
            prefix for prefix, stored in self._routes.items()
            if (family is None or prefix_family(prefix) == family)
            and any(entry[0] == session for entry in _entries(stored))
        ]
        for prefix in doomed:
            entries = _entries(self._routes[prefix])
            old_best = entries[0][1]
            kept = self._ordered([entry for entry in entries if entry[0] != session])
            self._touch(prefix)
            for entry in entries:
                if entry[0] == session:
                    self._release(entry)
                    self._count_path(prefix, session, -1)
            if not kept:
                del self._routes[prefix]
                self.lpm.remove(prefix)
                changes.append(self._changed_to(prefix, None))
                continue
            self._routes[prefix] = _pack(kept)
            if kept[0][1] != old_best:
                changes.append(self._changed_to(prefix, kept[0][1]))
        return changes

    # -- bookkeeping ----------------------------------------------------------------------------

    def _touch(self, prefix: str) -> None:
        """The paths of ``prefix`` (in the LPM table: it was added once) have just changed."""
        prefix_id = self.lpm.known_id(prefix)
        if prefix_id >= len(self._versions):
            grown = np.zeros(max(2 * len(self._versions), prefix_id + 1), np.uint64)
            grown[: len(self._versions)] = self._versions
            self._versions = grown
        self._version += 1
        self._versions[prefix_id] = self._version

    def _changed_to(self, prefix: str, best: BgpPath | None) -> RibChange:
        self._changed.add(prefix)
        return _rib_change(prefix, best)

    def _intern(self, session: str, path: BgpPath) -> _Entry:
        pair = (session, id(path))
        entry = self._interned.get(pair)
        if entry is None:
            entry = self._interned[pair] = (session, path)
            self._refs[pair] = 1
        else:
            self._refs[pair] += 1
        return entry

    def _sort_key(self, entry: _Entry) -> _SortKey:
        """((preloaded?, *best_path_key), session), computed once per pair that gets ordered."""
        pair = (entry[0], id(entry[1]))
        key = self._sort_keys.get(pair)
        if key is None:
            key = ((entry[0] == self.preload_session, *best_path_key(entry[1], self.rules)), entry[0])
            self._sort_keys[pair] = key
        return key

    def _ordered(self, entries: list[_Entry] | tuple[_Entry, ...]) -> list[_Entry]:
        """``entries`` sorted by key, with the best (RFC 4271: see best_position) moved first."""
        sort_key = self._sort_key
        keyed = sorted([(sort_key(entry), index) for index, entry in enumerate(entries)])
        ordered = [entries[index] for _, index in keyed]
        if len(keyed) > 1 and keyed[1][0][0][:TIER_LEN + 1] == keyed[0][0][0][:TIER_LEN + 1]:  # a contest
            best = best_position([key[0] for key, _ in keyed], TIER_LEN + 1)
            if best:
                ordered.insert(0, ordered.pop(best))
        return ordered

    def _release(self, entry: _Entry) -> None:
        pair = (entry[0], id(entry[1]))
        refs = self._refs[pair] - 1
        if refs > 0:
            self._refs[pair] = refs
        else:
            del self._refs[pair], self._interned[pair]
            self._sort_keys.pop(pair, None)

    def _count_path(self, prefix: str, session: str, delta: int) -> None:
        family = IPV6 if ":" in prefix else IPV4
        self._path_counts[family] += delta
        left = self._session_paths.get(session, 0) + delta
        if left:
            self._session_paths[session] = left
        else:
            self._session_paths.pop(session, None)

