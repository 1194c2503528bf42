"""A BGP path as topfib keeps it, and the deterministic best-path order from DESIGN.md."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

ORIGIN_RANK = {"igp": 0, "egp": 1, "incomplete": 2}


@dataclass(frozen=True, slots=True)
class Path:
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


def best_path_key(path: Path) -> tuple[int, int, int, int, int, int, int]:
    """Sort key: the smallest key is the best path.

    Highest local-pref, shortest AS path, lowest origin, lowest MED, then lowest peer address
    (IPv4 before IPv6) and lowest path-id, so the choice never depends on arrival order.
    """
    try:
        peer = ipaddress.ip_address(path.peer) if path.peer else None
    except ValueError:
        peer = None
    peer_family = peer.version if peer else 0
    peer_int = int(peer) if peer else 0
    return (
        -path.local_pref,
        len(path.as_path),
        ORIGIN_RANK.get(path.origin, 3),
        path.med,
        peer_family,
        peer_int,
        path.path_id,
    )


def best_path(paths: list[Path] | tuple[Path, ...]) -> Path | None:
    """The best of ``paths`` by :func:`best_path_key`, or None when there are none."""
    return min(paths, key=best_path_key) if paths else None


_new_object = object.__new__
(_set_next_hop, _set_as_path, _set_origin, _set_local_pref, _set_med, _set_communities,
 _set_large_communities, _set_peer, _set_path_id) = (getattr(Path, name).__set__ for name in Path.__slots__)


def new_path(next_hop: str, as_path: tuple[int, ...], origin: str, local_pref: int, med: int,
             communities: tuple[str, ...], large_communities: tuple[str, ...], peer: str,
             path_id: int) -> Path:
    """``Path(...)`` with every field given, at half the cost: the frozen dataclass ``__init__``
    goes through ``object.__setattr__`` per field. For the ingest hot path (one Path per distinct
    attribute set, next hop and path-id); the values are taken as given, like ``Path``'s."""
    path: Path = _new_object(Path)
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
