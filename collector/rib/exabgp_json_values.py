"""The values inside ExaBGP JSON lines, checked and converted: attribute sets, path-ids, next
hops, and the neighbor, state, notification and end-of-RIB objects.

Used by :class:`~topfib.collector.rib.exabgp_json.ExabgpJsonParser`; what is wrong raises
:class:`Skip` (the parser counts and logs it) or, inside an attribute set, ``ValueError``. The C
scanner (``collector/rib/_exabgp_fast.c``) applies the same rules to the attribute values.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from topfib.collector.common.prefixes import IPV4, IPV6
from topfib.collector.rib.events import EndOfRib, Event, Notification, SessionState

# The families topfib keeps; others (flow, vpn, evpn…) are counted and skipped.
FAMILIES: dict[str, int] = {"ipv4 unicast": IPV4, "ipv6 unicast": IPV6}
SESSION_STATES = frozenset({"connected", "up", "down"})
_UINT32_MAX = (1 << 32) - 1


class Attributes(NamedTuple):
    """One parsed attribute set; ``serial`` identifies it in the path cache (a NamedTuple:
    built once per distinct set, on the hot path when every update carries its own)."""

    serial: int
    as_path: tuple[int, ...]
    origin: str
    local_pref: int
    med: int
    communities: tuple[str, ...]
    large_communities: tuple[str, ...]


class Skip(Exception):
    """Drop this piece of the line and count ``reason``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def neighbor_of(message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(peer address, neighbor object) of a message."""
    neighbor = message.get("neighbor")
    if not isinstance(neighbor, dict):
        raise Skip("bad_neighbor", "no neighbor object")
    address = neighbor.get("address")
    peer = address.get("peer") if isinstance(address, dict) else None
    if not isinstance(peer, str) or not peer:
        raise Skip("bad_neighbor", "no neighbor.address.peer")
    return peer, neighbor


def state_events(message: dict[str, Any]) -> list[Event]:
    peer, neighbor = neighbor_of(message)
    state = neighbor.get("state")
    if not isinstance(state, str) or state not in SESSION_STATES:
        raise Skip("bad_state", f"state {state!r} from {peer}")
    return [SessionState(peer, state, _shown(neighbor.get("reason", "")))]


def notification_events(message: dict[str, Any]) -> list[Event]:
    if message.get("notification") == "shutdown":
        return [Notification(None, "local", 0, 0, "", "shutdown")]
    peer, neighbor = neighbor_of(message)
    body = neighbor.get("notification")
    if not isinstance(body, dict):
        raise Skip("bad_notification", f"no notification object from {peer}")
    code, subcode = body.get("code"), body.get("subcode")
    if not isinstance(code, int) or not isinstance(subcode, int):
        raise Skip("bad_notification", f"code/subcode not integers from {peer}")
    return [Notification(peer, _shown(neighbor.get("direction", "")), code, subcode,
                         _shown(body.get("data", "")), _shown(body.get("message", "")))]


def end_of_rib_events(peer: str, eor: Any) -> list[Event]:
    if not isinstance(eor, dict) or not isinstance(eor.get("afi"), str) or not isinstance(
            eor.get("safi"), str):
        raise Skip("bad_update", f"malformed eor from {peer}")
    return [EndOfRib(peer, f"{eor['afi']} {eor['safi']}")]


_ORIGINS = ("igp", "egp", "incomplete")
_SHOWN_MAX = 512


def _shown(value: Any) -> str:
    """Text for the log and /v1/status: printable and bounded. A session's reason and a
    notification's message carry what the peer sent (an RFC 8203 shutdown communication), and a
    control character or line break there would forge log lines or terminal output."""
    text = value if isinstance(value, str) else str(value)
    text = text[:_SHOWN_MAX]
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


_NONE: list[Any] = []  # an absent community list (never mutated)
_tuple_new = tuple.__new__


def parse_attributes(attributes: dict[str, Any], serial: int) -> Attributes:
    """One attribute set (raises ValueError naming the bad attribute).

    Runs once per distinct set, i.e. per line when every update carries its own: the usual
    shapes are checked inline, anything else goes through the helpers below (which also word
    the errors).
    """
    get = attributes.get
    as_path: Any = get("as-path", [])
    if type(as_path) is dict and len(as_path) == 1:  # ExaBGP 5: {"0": {"element": ..., "value": [...]}}
        [(index, segment)] = as_path.items()
        members = segment.get("value") if type(segment) is dict and index == "0" else None
        if type(members) is list and segment.get("element") == "as-sequence" and _asns_ok(members):
            as_path = tuple(members)
        else:
            as_path = _as_path(as_path)
    elif type(as_path) is list and _asns_ok(as_path):  # ExaBGP 4: [...]
        as_path = tuple(as_path)
    else:
        as_path = _as_path(as_path)
    origin = get("origin", "igp")
    if type(origin) is not str or origin not in _ORIGINS:
        origin = _origin(origin)
    local_pref = get("local-preference", 100)
    if type(local_pref) is not int or not 0 <= local_pref <= _UINT32_MAX:
        local_pref = _uint32(local_pref, "local-preference")
    med = get("med", 0)
    if type(med) is not int or not 0 <= med <= _UINT32_MAX:
        med = _uint32(med, "med")
    communities = _communities(get("community", _NONE), 2)
    large = _communities(get("large-community", _NONE), 3)
    # tuple.__new__: the NamedTuple's own __new__ is a Python function, so twice as slow.
    fields = (serial, as_path, origin, local_pref, med, communities, large)
    parsed: Attributes = _tuple_new(Attributes, fields)
    return parsed


def _asns_ok(values: list[Any]) -> bool:
    for value in values:  # noqa: SIM110 - a loop, not all(generator): half the cost per AS
        if type(value) is not int or not 0 <= value <= _UINT32_MAX:
            return False
    return True


def valid_next_hop(next_hop: Any) -> bool:
    if not isinstance(next_hop, str) or not next_hop or next_hop == "null":
        return False
    return all(c in "0123456789abcdefABCDEF.:" for c in next_hop)


def path_id_of(value: Any) -> int | None:
    """ADD-PATH id: dotted quad (ExaBGP's rendering), a number, or absent (0)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 1 << 32 else None
    if isinstance(value, str):
        parts = value.split(".")
        if len(parts) == 4 and all(p.isascii() and p.isdigit() and int(p) < 256 for p in parts):
            return (int(parts[0]) << 24) | (int(parts[1]) << 16) | (int(parts[2]) << 8) | int(parts[3])
        if value.isascii() and value.isdigit() and int(value) < 1 << 32:
            return int(value)
    return None


def _uint32(value: Any, name: str) -> int:
    if type(value) is not int or not 0 <= value < 1 << 32:  # bool is not int here, on purpose
        raise ValueError(f"{name} {value!r} is not a 32-bit unsigned integer")
    return value


def _origin(value: Any) -> str:
    if value not in ("igp", "egp", "incomplete"):
        raise ValueError(f"origin {value!r}")
    return str(value)


def _asn_list(values: Any) -> list[int]:
    if type(values) is not list:
        raise ValueError(f"AS list {values!r}")
    for value in values:
        if type(value) is not int or not 0 <= value <= _UINT32_MAX:
            raise ValueError(f"AS list {values!r}")
    return values


def _as_path(value: Any) -> tuple[int, ...]:
    """The AS path as one tuple: sequences in order, each AS_SET's members sorted.

    ExaBGP 4 gives a list; ExaBGP 5 gives ``{"0": {"element": "as-sequence", "value": [...]}}``
    in segment order. An AS_SET (from aggregation) has no order, so it is sorted to keep equal
    paths equal.
    """
    if isinstance(value, list):
        return tuple(_asn_list(value))
    if not isinstance(value, dict):
        raise ValueError(f"as-path {value!r}")
    if len(value) == 1:  # one segment (nearly always): ExaBGP 5's {"0": {...}}
        [(index, segment)] = value.items()
        if type(segment) is dict and segment.get("element") == "as-sequence":
            try:
                int(index)
            except ValueError:
                raise ValueError(f"as-path segment keys {list(value)!r}") from None
            return tuple(_asn_list(segment.get("value")))
    out: list[int] = []
    try:
        order = sorted(value, key=int)
    except ValueError:
        raise ValueError(f"as-path segment keys {list(value)!r}") from None
    for index in order:
        segment = value[index]
        if not isinstance(segment, dict):
            raise ValueError(f"as-path segment {segment!r}")
        members = _asn_list(segment.get("value"))
        element = segment.get("element")
        if element == "as-set":
            out.extend(sorted(members))
        elif element == "as-sequence":
            out.extend(members)
        else:
            raise ValueError(f"as-path element {element!r}")
    return tuple(out)


def _communities(value: Any, width: int) -> tuple[str, ...]:
    """Standard ([a, b] → "a:b") or large ([a, b, c] → "a:b:c") communities, in received order.

    Checked and written in one loop (no comprehension: in 3.11 each is a function call); the
    first bad item raises, naming itself.
    """
    if type(value) is not list:
        raise ValueError(f"communities {value!r}")
    if not value:
        return ()
    limit = 1 << (16 if width == 2 else 32)
    texts: list[str] = []
    for item in value:
        if type(item) is not list or len(item) != width:
            raise ValueError(f"community {item!r}")
        for number in item:
            if type(number) is not int or not 0 <= number < limit:
                raise ValueError(f"community {item!r}")
        texts.append(f"{item[0]}:{item[1]}" if width == 2 else f"{item[0]}:{item[1]}:{item[2]}")
    return tuple(texts)
