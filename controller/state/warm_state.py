"""Warm state: what one switch's controller hands to the next one (after a restart or takeover).

A snapshot holds the top rate rows per family (decayed sums, see
:meth:`topfib.collector.accounting.prefix_rates.PrefixRates.export_rows`), the per-path rates of those
prefixes
(:meth:`topfib.collector.accounting.path_rates.PathRates.export_paths`) and the last desired FIB. It is JSON
text,
versioned and validated whole on the way in: a snapshot that is too big, of another version,
switch or half-life, or with one malformed field is refused as a whole (:class:`SnapshotRefused`,
whose message says why) and the controller starts cold. Nothing in it is trusted: prefixes must
be canonical networks, next-hops addresses, numbers finite and not negative.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any, cast, get_args

from topfib.collector.accounting.path_rates import PathRow
from topfib.collector.accounting.prefix_rates import RateRow
from topfib.collector.accounting.prefix_slots import UNROUTED
from topfib.controller.addresses import parse_ip
from topfib.controller.selection.model import Reason, SelectedRoute, new_route

VERSION = 1
MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024  # ~500k rate rows: 4 × a 100k cap, with room
MAX_ROWS = 500_000
MAX_ROUTES = 500_000
MAX_PATH_ROWS = 500_000
# above any real decayed sum (8 Tbit/s for an hour's half-life is ~5e15 bytes) and far enough
# below float overflow that the epoch scaling of the restore (up to 2^64) stays finite
MAX_NUMBER = 1e20
_REASONS = frozenset(get_args(Reason))


class SnapshotRefused(ValueError):
    """A snapshot that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class WarmState:
    switch: str
    taken_at: float  # wall-clock seconds
    observed_s: float  # how long the switch's rates had been observed when it was taken
    fast_half_life_s: float
    slow_half_life_s: float
    rows: list[RateRow]
    desired: dict[str, SelectedRoute]
    paths: list[PathRow] = field(default_factory=list)  # per (prefix, next hop) of the rows
    # prefixes the switch held (or might still hold as stale): with graceful restart they count
    # against the caps until the next controller's End-of-RIB (absent in older snapshots)
    held: list[str] = field(default_factory=list)
    # wall clock the desired FIB dates from: a carried one keeps its first snapshot's time, so
    # state.max_age_s applies to it across restarts (absent in older snapshots: taken_at)
    desired_at: float | None = None
    # wall clock of the session loss that left ``held`` stale (None: the session was up)
    lost_at: float | None = None

    def encode(self) -> str:
        return json.dumps({
            "version": VERSION,
            "switch": self.switch,
            "taken_at": self.taken_at,
            "observed_s": self.observed_s,
            "half_lives_s": [self.fast_half_life_s, self.slow_half_life_s],
            "rates": [[row.prefix, *row.fast, *row.slow] for row in self.rows],
            "desired": [[r.prefix, r.next_hop, r.reason, r.since] for r in self.desired.values()],
            "paths": [[p.prefix, p.next_hop, *p.fast, *p.slow] for p in self.paths],
            "held": self.held,
            "desired_at": self.taken_at if self.desired_at is None else self.desired_at,
            "lost_at": self.lost_at,
        }, separators=(",", ":"))


def decode(text: str | bytes, switch: str, half_lives_s: tuple[float, float]) -> WarmState:
    """Parse and check one snapshot of ``switch``; raises :class:`SnapshotRefused`."""
    if len(text) > MAX_SNAPSHOT_BYTES:
        raise SnapshotRefused(f"snapshot is {len(text)} bytes, more than {MAX_SNAPSHOT_BYTES}")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SnapshotRefused(f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(doc, dict):
        raise SnapshotRefused("not a JSON object")
    if doc.get("version") != VERSION:
        raise SnapshotRefused(f"version: {str(doc.get('version'))[:20]!r}, this topfib reads {VERSION}")
    if doc.get("switch") != switch:
        raise SnapshotRefused(f"switch: taken for {str(doc.get('switch'))[:64]!r}, not {switch!r}")
    halves = _list(doc, "half_lives_s", 2)
    if len(halves) != 2 or tuple(_number(v, "half_lives_s") for v in halves) != half_lives_s:
        raise SnapshotRefused("half_lives_s: taken with other collector half-lives")
    return WarmState(
        switch=switch,
        taken_at=_number(doc.get("taken_at"), "taken_at"),
        observed_s=_number(doc.get("observed_s"), "observed_s"),
        fast_half_life_s=half_lives_s[0],
        slow_half_life_s=half_lives_s[1],
        rows=[_row(item) for item in _list(doc, "rates", MAX_ROWS)],
        desired=_routes(_list(doc, "desired", MAX_ROUTES)),
        paths=[_path(item) for item in _list(doc, "paths", MAX_PATH_ROWS)],
        held=[_prefix(item, "held") for item in _list(doc, "held", MAX_ROUTES)] if "held" in doc else [],
        desired_at=_optional_number(doc, "desired_at"),
        lost_at=_optional_number(doc, "lost_at"),
    )


def _optional_number(doc: dict[str, Any], key: str) -> float | None:
    value = doc.get(key)
    return None if value is None else _number(value, key)


def _list(doc: dict[str, Any], key: str, limit: int) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise SnapshotRefused(f"{key}: not a list")
    if len(value) > limit:
        raise SnapshotRefused(f"{key}: {len(value)} entries, more than {limit}")
    return value


def _number(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_NUMBER:
        raise SnapshotRefused(f"{key}: not a number from 0 to {MAX_NUMBER:g}")
    return float(value)


def _prefix(value: object, key: str) -> str:
    if not isinstance(value, str) or len(value) > 64:
        raise SnapshotRefused(f"{key}: not a prefix")
    try:
        canonical = str(ipaddress.ip_network(value, strict=True))
    except ValueError:
        raise SnapshotRefused(f"{key}: {value[:64]!r} is not a prefix") from None
    if canonical != value:
        raise SnapshotRefused(f"{key}: {value!r} is not written canonically")
    return value


def _row(item: object) -> RateRow:
    if not isinstance(item, list) or len(item) != 9:
        raise SnapshotRefused("rates: an entry is not [prefix, 8 numbers]")
    prefix = item[0] if item[0] == UNROUTED else _prefix(item[0], "rates")
    numbers = [_number(v, "rates") for v in item[1:]]
    fast = cast(tuple[float, float, float, float], tuple(numbers[:4]))
    slow = cast(tuple[float, float, float, float], tuple(numbers[4:]))
    return RateRow(prefix, fast, slow)


def _path(item: object) -> PathRow:
    if not isinstance(item, list) or len(item) != 8:
        raise SnapshotRefused("paths: an entry is not [prefix, next_hop, 6 numbers]")
    prefix = _prefix(item[0], "paths")
    next_hop = _address(item[1], "paths")
    numbers = [_number(v, "paths") for v in item[2:]]
    fast = cast(tuple[float, float, float], tuple(numbers[:3]))
    slow = cast(tuple[float, float, float], tuple(numbers[3:]))
    return PathRow(prefix, next_hop, fast, slow)


def _address(value: object, key: str) -> str:
    if not isinstance(value, str) or len(value) > 64:
        raise SnapshotRefused(f"{key}: next_hop is not an address")
    try:
        parse_ip(value)
    except ValueError:
        raise SnapshotRefused(f"{key}: next_hop {value[:64]!r} is not an address") from None
    return value


def _routes(items: list[Any]) -> dict[str, SelectedRoute]:
    routes: dict[str, SelectedRoute] = {}
    for item in items:
        if not isinstance(item, list) or len(item) != 4:
            raise SnapshotRefused("desired: an entry is not [prefix, next_hop, reason, since]")
        prefix = _prefix(item[0], "desired")
        next_hop, reason = _address(item[1], "desired"), item[2]
        if reason not in _REASONS:
            raise SnapshotRefused("desired: unknown reason")
        routes[prefix] = new_route(prefix, next_hop, cast(Reason, reason), _number(item[3], "desired"), 0.0)
    return routes
