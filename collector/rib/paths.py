"""A BGP path as topfib keeps it, the deterministic best-path order (RFC 4271 §9.1.2.2), and the
(session, path) pairs a RIB's prefixes share.

A full table names a million prefixes but, as producers share one ``BgpPath`` per distinct
attribute set, only tens of thousands of pairs: each prefix's slot holds a shared pair, found by
(session, ``id(path)``) so no path field is hashed (a pair keeps its path alive, so the id cannot
be reused while the pair is here). Memory per pair, as most pairs are held by one prefix (every
pair of a peer whose paths are not shared): the pair and one int key in its session's map. How
many prefixes hold a pair is kept only beyond the first, and a sort key only for a pair that was
ever ordered against another; both by ``id(pair)`` (unique while the pair is interned), so
neither needs a key tuple.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import cast

ORIGIN_RANK = {"igp": 0, "egp": 1, "incomplete": 2}


@dataclass(frozen=True, slots=True)
class BgpPath:
    """One path to a prefix, as received from one BGP session (with its ADD-PATH id)."""

    next_hop: str
    as_path: tuple[int, ...] = ()
    origin: str = "igp"
    local_pref: int = 100
    med: int = 0
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()
    peer: str = ""
    path_id: int = 0

    @property
    def origin_as(self) -> int | None:
        return self.as_path[-1] if self.as_path else None


@dataclass(frozen=True, slots=True)
class BestPathRules:
    """What the best-path order depends on besides the paths: the switch's configuration."""

    always_compare_med: bool = False  # MED between paths from different neighbour ASes too
    # The switch's AS when the session to topfib is eBGP: the switch prepends it to every path,
    # so the neighbour AS a path came from is the first one after it.
    switch_as: int | None = None


DEFAULT_RULES = BestPathRules()
PathKey = tuple[int, ...]
# best_path_key's layout: the tier every candidate must tie on, the MED group, then the tie-break
TIER_LEN = 3
GROUP, TIE_BREAK = TIER_LEN, TIER_LEN + 2


def neighbor_as(path: BgpPath, skip_as: int | None = None) -> int:
    """The AS ``path`` was learned from (first in its AS path, past ``skip_as`` prepended), 0 for
    a path from inside the AS (empty AS path)."""
    for asn in path.as_path:
        if asn != skip_as:
            return asn
    return 0


# Next hops and peers are few (a switch's neighbours): parsing each once makes a sort key cheap,
# and keys of many paths then share the (version, address) ints instead of holding copies.
@functools.lru_cache(maxsize=4096)
def _address_key(text: str) -> tuple[int, int]:
    try:
        address = ipaddress.ip_address(text) if text else None
    except ValueError:
        address = None
    return (address.version, int(address)) if address else (0, 0)


def best_path_key(path: BgpPath, rules: BestPathRules = DEFAULT_RULES) -> PathKey:
    """Sort key of RFC 4271 §9.1.2.2's decision process, as far as topfib sees the attributes.

    Highest local-pref, shortest AS path, lowest origin (the tier), then the neighbour AS and
    MED: MED is compared only between paths from the same neighbour AS unless
    ``rules.always_compare_med`` (see :func:`best_position`). eBGP-over-iBGP, IGP cost and router-id
    are not visible to topfib (every path comes from the switch); the stable tie-break is the
    lowest next hop (for eBGP paths the peer's address), then peer address and path-id, so the
    choice never depends on arrival order (ADD-PATH path-ids do).
    """
    group = 0 if rules.always_compare_med else neighbor_as(path, rules.switch_as)
    return (
        -path.local_pref,
        len(path.as_path),
        ORIGIN_RANK.get(path.origin, 3),
        group,
        path.med,
        *_address_key(path.next_hop),
        *_address_key(path.peer),
        path.path_id,
    )


def best_position(keys: list[PathKey], tier_len: int = TIER_LEN) -> int:
    """Index of the best path given the keys of its candidates sorted ascending.

    Keys are laid out as :func:`best_path_key`'s, after ``tier_len - TIER_LEN`` extra leading
    fields. Only candidates tying with the first on the tier compete; of each neighbour-AS group
    the first (lowest MED, then tie-break) survives; the survivor with the lowest tie-break wins.
    """
    first = keys[0]
    tier, group, tie_break = first[:tier_len], tier_len, tier_len + TIE_BREAK - GROUP
    best = 0
    groups = {first[group]}
    for index in range(1, len(keys)):
        key = keys[index]
        if key[:tier_len] != tier:
            break
        if key[group] in groups:  # a higher MED (or a later tie-break) in a group already seen
            continue
        groups.add(key[group])
        if key[tie_break:] < keys[best][tie_break:]:
            best = index
    return best


def best_path(
    paths: list[BgpPath] | tuple[BgpPath, ...], rules: BestPathRules = DEFAULT_RULES
) -> BgpPath | None:
    """The best of ``paths`` by RFC 4271's order (:func:`best_path_key`), or None when there are none."""
    if not paths:
        return None
    ordered = sorted(paths, key=lambda path: best_path_key(path, rules))
    return ordered[best_position([best_path_key(path, rules) for path in ordered])]


_new_object = object.__new__
(_set_next_hop, _set_as_path, _set_origin, _set_local_pref, _set_med, _set_communities,
 _set_large_communities, _set_peer, _set_path_id) = (
    getattr(BgpPath, name).__set__ for name in BgpPath.__slots__
)


def new_path(next_hop: str, as_path: tuple[int, ...], origin: str, local_pref: int, med: int,
             communities: tuple[str, ...], large_communities: tuple[str, ...], peer: str,
             path_id: int) -> BgpPath:
    """``BgpPath(...)`` with every field given, at half the cost: the frozen dataclass ``__init__``
    goes through ``object.__setattr__`` per field. For the ingest hot path (one BgpPath per distinct
    attribute set, next hop and path-id); the values are taken as given, like ``BgpPath``'s."""
    path: BgpPath = _new_object(BgpPath)
    _set_next_hop(path, next_hop)
    _set_as_path(path, as_path)
    _set_origin(path, origin)
    _set_local_pref(path, local_pref)
    _set_med(path, med)
    _set_communities(path, communities)
    _set_large_communities(path, large_communities)
    _set_peer(path, peer)
    _set_path_id(path, path_id)
    return path


Entry = tuple[str, BgpPath]
# (preloaded?, *best_path_key, session): a live path always beats a preloaded file path (whose
# next hop may be synthetic); among live paths the best is exactly topfib.collector.rib.paths.best_path's.
SortKey = tuple[int | str, ...]


class SharedEntries:
    """Interned (session, path) pairs of one RIB, with the refcount that lets churn free them."""

    def __init__(self, preload_session: str, rules: BestPathRules) -> None:
        self._preload_session = preload_session
        self._rules = rules
        self._by_session: dict[str, dict[int, Entry]] = {}  # session → id(path) → pair
        self._extra_holders: dict[int, int] = {}  # id(pair) → holders beyond the first
        self._sort_keys: dict[int, SortKey] = {}  # id(pair) → its sort key, once ordered

    def __len__(self) -> int:
        return sum(map(len, self._by_session.values()))

    def intern(self, session: str, path: BgpPath) -> Entry:
        """The shared pair for (session, path), with one more holder."""
        shared = self._by_session.get(session)
        if shared is None:
            shared = self._by_session[session] = {}
        entry = shared.get(id(path))
        if entry is None:
            entry = shared[id(path)] = (session, path)
        else:
            extra = self._extra_holders
            extra[id(entry)] = extra.get(id(entry), 0) + 1
        return entry

    def release(self, entry: Entry) -> None:
        """One holder fewer; the pair goes with its last holder."""
        extra = self._extra_holders.pop(id(entry), 0)
        if extra > 1:
            self._extra_holders[id(entry)] = extra - 1
        elif not extra:
            session = entry[0]
            shared = self._by_session[session]
            del shared[id(entry[1])]
            if not shared:
                del self._by_session[session]
            self._sort_keys.pop(id(entry), None)

    def sort_key(self, entry: Entry) -> SortKey:
        """(preloaded?, *best_path_key, session), computed once per pair that gets ordered."""
        key = self._sort_keys.get(id(entry))
        if key is None:
            session = entry[0]
            key = (session == self._preload_session, *best_path_key(entry[1], self._rules), session)
            self._sort_keys[id(entry)] = key
        return key

    def ordered(self, entries: list[Entry] | tuple[Entry, ...]) -> list[Entry]:
        """``entries`` sorted by key, with the best (RFC 4271: see best_position) moved first."""
        if len(entries) < 2:
            return list(entries)
        sort_key = self.sort_key
        keyed = sorted([(sort_key(entry), index) for index, entry in enumerate(entries)])
        ordered = [entries[index] for _, index in keyed]
        if keyed[1][0][:TIER_LEN + 1] == keyed[0][0][:TIER_LEN + 1]:  # a contest
            # the keys without the session: it only orders equal keys, it does not decide
            best = best_position(cast(list[PathKey], [key[:-1] for key, _ in keyed]), TIER_LEN + 1)
            if best:
                ordered.insert(0, ordered.pop(best))
        return ordered
