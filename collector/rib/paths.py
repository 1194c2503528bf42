"""A BGP path as topfib keeps it, and the deterministic best-path order (RFC 4271 §9.1.2.2)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

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
