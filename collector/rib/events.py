"""The RIB's events: what a BGP feed says about routes and sessions, whatever wrote it.

The ExaBGP JSON parser (:mod:`~topfib.collector.rib.exabgp_json`) makes them, the RIB
(:mod:`~topfib.collector.rib.rib`) and the controller consume them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from topfib.collector.rib.paths import BgpPath


@dataclass(frozen=True, slots=True)
class RouteUpdate:
    """One (prefix, path-id) of a neighbor: announced with ``path``, or withdrawn (``path`` None)."""

    neighbor: str
    family: str
    prefix: str
    path_id: int
    path: BgpPath | None
    # (family, network, length) when the parser had to parse the prefix: spares the RIB a
    # second parse of a new prefix. Not part of the event's value.
    parsed: tuple[int, int, int] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class SessionState:
    """A neighbor's session went ``connected``, ``up`` or ``down`` (with ExaBGP's reason)."""

    neighbor: str
    state: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class EndOfRib:
    """The neighbor has sent its whole table for ``family``."""

    neighbor: str
    family: str


@dataclass(frozen=True, slots=True)
class Notification:
    """A BGP NOTIFICATION (``neighbor`` None and code 0 for ExaBGP's own shutdown notice)."""

    neighbor: str | None
    direction: str
    code: int
    subcode: int
    data: str = ""
    message: str = ""


Event = RouteUpdate | SessionState | EndOfRib | Notification

_new_object = object.__new__
_set_neighbor, _set_family, _set_prefix, _set_path_id, _set_path, _set_parsed = (
    getattr(RouteUpdate, name).__set__ for name in RouteUpdate.__slots__)


def new_route_update(neighbor: str, family: str, prefix: str, path_id: int, path: BgpPath | None,
                     parsed: tuple[int, int, int] | None) -> RouteUpdate:
    """``RouteUpdate(...)`` without the frozen dataclass ``__init__``'s per-field
    ``object.__setattr__`` calls: one of these per prefix is the parser's hottest allocation."""
    event: RouteUpdate = _new_object(RouteUpdate)
    _set_neighbor(event, neighbor)
    _set_family(event, family)
    _set_prefix(event, prefix)
    _set_path_id(event, path_id)
    _set_path(event, path)
    _set_parsed(event, parsed)
    return event
