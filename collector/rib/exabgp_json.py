"""ExaBGP's JSON encoder output (4.x and 5.x) → typed RIB events.

What a ``process`` with ``encoder json`` and ``receive { parsed; update; notification; }`` plus
``neighbor-changes`` reads, one JSON object per line::

    {"exabgp": "5.0.0", "type": "update", "neighbor": {"address": {"peer": P, ...}, "message":
      {"update": {"attribute": {...},
                  "announce": {"ipv4 unicast": {NEXT_HOP: [{"nlri": PFX, "path-information": ID}]}},
                  "withdraw": {"ipv4 unicast": [{"nlri": PFX, "path-information": ID}]}}}}}
    {"type": "update", ... "message": {"eor": {"afi": "ipv4", "safi": "unicast"}}}
    {"type": "state", "neighbor": {..., "state": "up" | "connected" | "down", "reason": R}}
    {"type": "notification", "neighbor": {..., "notification": {"code", "subcode", "data", ...}}}
    {"type": "notification", "notification": "shutdown"}

Differences handled: ExaBGP 5 writes the AS path as segments (``{"0": {"element": "as-sequence",
"value": [...]}}``), 4.x as a plain list; an NLRI may be an object or (compact mode) a bare
string; a path-id is dotted-quad ("0.0.0.3") or a number.

Parsing never raises: a line that is not what we expect is counted by reason, logged at a limited
rate, and skipped (the rest of a partly bad update is kept). ``done``/``error`` acks are the
link's business; should one reach us it is counted as ``ack``, not as an error.

Three paths, one behaviour. Every line first tries the *C scanner* (``collector/rib/_exabgp_fast.c``,
when built): it reads the line's bytes directly and accepts only a narrow, well-formed subset of
updates. Then the Python *fast path* (:mod:`~topfib.collector.rib.exabgp_json_fast`): ``orjson``
(when installed) and a walk that accepts only a well-formed update (announces/withdraws of the
two families, valid attributes, next hops, NLRIs, path-ids) and builds its events with few
intermediate objects. Each gives up at the first thing it
does not accept, having counted nothing, and the *reference path* (``json`` + the checks below,
which count and log every problem) parses the line again. So a line's events and counters are those
of the reference path; the fast paths only decide sooner (``tests/unit/test_exabgp_json_fast.py``
checks this on recorded, generated and mutated lines).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from topfib.collector.common.log_budget import LogLimiter
from topfib.collector.common.prefixes import PrefixError, split_canonical, split_prefix
from topfib.collector.rib.events import Event, RouteUpdate
from topfib.collector.rib.exabgp_json_fast import FastUpdatePath, prefix_of
from topfib.collector.rib.exabgp_json_values import (
    FAMILIES,
    Attributes,
    Skip,
    end_of_rib_events,
    neighbor_of,
    notification_events,
    parse_attributes,
    path_id_of,
    state_events,
    valid_next_hop,
)
from topfib.collector.rib.paths import BgpPath, new_path

# The reference path's cache key: a str (never equal to the bytes keys of the fast paths), a
# JSON text of the object json.loads built; NaN, infinities and big integers written exactly.
_reference_key: Callable[[dict[str, Any]], str] = json.dumps

try:
    from topfib.collector.rib._exabgp_fast import Scanner as _CScanner
except ImportError:  # pragma: no cover - built by setup.py (optional): the Python paths remain
    _CScanner = None  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)


def c_scanner_available() -> bool:
    """True when the C scanner (collector/rib/_exabgp_fast.c) was built."""
    return _CScanner is not None


_MAX_CACHED = 100_000


class ExabgpJsonParser:
    """Turns lines into events. Keeps counters; holds no routing state.

    ``counters`` counts lines and problems by reason: ``lines``, ``ack`` (a done/error that
    reached us), ``ignored_type`` (keepalive, open… not for the RIB), and the bad-input reasons
    ``not_json``, ``not_object``, ``bad_neighbor``, ``bad_update``, ``bad_attribute``,
    ``bad_nlri``, ``bad_prefix``, ``bad_next_hop``, ``unsupported_family``, ``bad_state``,
    ``bad_notification``, ``unknown_type``.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, log_interval_s: float = 60.0,
                 known_prefix: Callable[[str], bool] | None = None, fast: bool = True,
                 native: bool = True) -> None:
        """``known_prefix`` is asked only about an NLRI text that is not a canonical prefix (every
        path parses the text first: cheaper than any lookup by string); its yes takes the text as
        written (``rib.lpm.knows`` never says yes to such a text, so it changes nothing).
        ``fast=False`` parses every line by the reference path only, ``native=False`` skips the C
        scanner (tests compare the three paths)."""
        self.fast = fast
        self.counters: Counter[str] = Counter()
        self._clock = clock
        self._log = LogLimiter(interval_s=log_interval_s)
        self._known_prefix = known_prefix
        # Attribute sets repeat across lines: each distinct one is parsed once, and each
        # (attributes, next hop, peer, path-id) is one shared Path object (the RIB interns by
        # identity, so sharing here is what keeps a full table small).
        self._attribute_cache: dict[str | bytes, Attributes] = {}
        self._path_cache: dict[tuple[int, str, str, int], BgpPath] = {}
        self._path_ids: dict[str, int] = {}
        self._next_hops: set[str] = set()
        # One str object per distinct next hop / peer shared by all Paths (a line's strings are
        # new objects each time: a full table would hold a million copies).
        self._strings: dict[str, str] = {}
        # The C scanner shares these caches (same keys as the Python fast path: one Path per set).
        self._scan: Callable[[str | bytes], list[Event] | None] | None = None
        if fast and native and _CScanner is not None:
            self._scan = _CScanner(RouteUpdate, BgpPath, Attributes, self._attribute_cache, self._path_cache,
                                   self._strings, known_prefix, split_canonical, _MAX_CACHED).scan
        # The Python fast path shares them too (and the bounds in force now, as the scanner does).
        self._fast_line = FastUpdatePath(known_prefix, self._path_ids, self._path_cache, self._next_hops,
                                         self._path, self._new_next_hop, self._attributes_keyed,
                                         _MAX_CACHED).events

    def _bad(self, reason: str, detail: str) -> None:
        self.counters[reason] += 1
        self._log.warn(f"exabgp-json:{reason}", self._clock(), f"ExaBGP JSON skipped ({reason}): {detail}")

    def parse_line(self, line: str | bytes) -> list[Event]:
        """Events of one line (possibly none). Never raises."""
        self.counters["lines"] += 1
        if self._scan is not None:
            try:
                updates = self._scan(line)
            except Exception:  # e.g. known_prefix raised: the Python paths decide
                updates = None
            if updates is not None:
                return updates
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        if self.fast:
            try:
                events = self._fast_line(text)
            except Exception:  # whatever it is, the reference path names it
                events = None
            if events is not None:
                return events
        return self._reference_line(text)

    def _reference_line(self, text: str) -> list[Event]:
        try:
            text = text.strip()
            if not text:
                return []
            if text in ("done", "error"):
                self.counters["ack"] += 1
                return []
            try:
                message = json.loads(text)
            except ValueError as exc:
                self._bad("not_json", f"{exc}: {text[:120]!r}")
                return []
            if not isinstance(message, dict):
                self._bad("not_object", text[:120])
                return []
            return self._message(message)
        except Skip as skip:
            self._bad(skip.reason, str(skip))
            return []
        except Exception as exc:  # a shape we did not foresee must not stop the feed
            self._bad("unexpected", f"{type(exc).__name__}: {exc}")
            return []

    def _message(self, message: dict[str, Any]) -> list[Event]:
        kind = message.get("type")
        if kind == "update":
            return self._update(message)
        if kind == "state":
            return state_events(message)
        if kind == "notification":
            return notification_events(message)
        if kind in ("keepalive", "open", "refresh", "negotiated", "fsm", "signal", "operational"):
            self.counters["ignored_type"] += 1
            return []
        raise Skip("unknown_type", f"type {kind!r}")


    def _update(self, message: dict[str, Any]) -> list[Event]:
        peer, neighbor = neighbor_of(message)
        body = neighbor.get("message")
        if not isinstance(body, dict):
            raise Skip("bad_update", f"no message object from {peer}")
        eor = body.get("eor")
        if eor is not None:
            return end_of_rib_events(peer, eor)
        update = body.get("update")
        if not isinstance(update, dict):
            raise Skip("bad_update", f"no update object from {peer}")
        events: list[Event] = []
        withdraw = update.get("withdraw")
        if withdraw is not None:
            self._withdraws(peer, withdraw, events)
        announce = update.get("announce")
        if announce is not None:
            attributes = update.get("attribute", {})
            if isinstance(attributes, dict) and "error" in attributes:
                # RFC 7606 treat-as-withdraw: ExaBGP flags the attribute set as broken.
                self._bad("treat_as_withdraw", f"{attributes['error']!r} from {peer}")
                self._announces(peer, announce, None, events, as_withdraw=True)
            else:
                self._announces(peer, announce, self._attributes(attributes), events)
        return events


    def _family(self, family: Any, peer: str) -> str | None:
        if family in FAMILIES:
            return str(family)
        self._bad("unsupported_family", f"family {family!r} from {peer}")
        return None

    def _withdraws(self, peer: str, withdraw: Any, events: list[Event]) -> None:
        if not isinstance(withdraw, dict):
            raise Skip("bad_update", f"withdraw is not an object from {peer}")
        for family, nlris in withdraw.items():
            if self._family(family, peer) is None:
                continue
            if not isinstance(nlris, list):
                self._bad("bad_nlri", f"withdraw {family} is not a list from {peer}")
                continue
            for nlri in nlris:
                parsed = self._nlri(nlri, peer)
                if parsed is not None:
                    events.append(RouteUpdate(peer, family, parsed[0], parsed[1], None, parsed[2]))

    def _announces(self, peer: str, announce: Any, attributes: Attributes | None,
                   events: list[Event], as_withdraw: bool = False) -> None:
        if not isinstance(announce, dict):
            raise Skip("bad_update", f"announce is not an object from {peer}")
        for family, by_next_hop in announce.items():
            if self._family(family, peer) is None:
                continue
            if not isinstance(by_next_hop, dict):
                self._bad("bad_nlri", f"announce {family} is not an object from {peer}")
                continue
            for next_hop, nlris in by_next_hop.items():
                if not as_withdraw and next_hop not in self._next_hops and not self._new_next_hop(next_hop):
                    self._bad("bad_next_hop", f"next-hop {next_hop!r} for {family} from {peer}")
                    continue
                if not isinstance(nlris, list):
                    self._bad("bad_nlri", f"announce {family} {next_hop} is not a list from {peer}")
                    continue
                for nlri in nlris:
                    parsed = self._nlri(nlri, peer)
                    if parsed is None:
                        continue
                    prefix, path_id, key = parsed
                    path = None if attributes is None else self._path(attributes, next_hop, peer, path_id)
                    events.append(RouteUpdate(peer, family, prefix, path_id, path, key))

    def _new_next_hop(self, next_hop: Any) -> bool:
        """Check a next hop not seen before; remember it when valid (a peer has few)."""
        if not valid_next_hop(next_hop):
            return False
        if len(self._next_hops) >= _MAX_CACHED:
            self._next_hops.clear()
        self._next_hops.add(next_hop)
        return True

    def _path(self, attributes: Attributes, next_hop: str, peer: str, path_id: int) -> BgpPath:
        key = (attributes.serial, next_hop, peer, path_id)
        path = self._path_cache.get(key)
        if path is None:
            strings = self._strings
            if len(strings) >= _MAX_CACHED:
                strings.clear()
            next_hop = strings.setdefault(next_hop, next_hop)
            peer = strings.setdefault(peer, peer)
            path = new_path(next_hop, attributes.as_path, attributes.origin, attributes.local_pref,
                            attributes.med, attributes.communities, attributes.large_communities, peer,
                            path_id)
            if len(self._path_cache) >= _MAX_CACHED:
                self._path_cache.clear()
            self._path_cache[(attributes.serial, next_hop, peer, path_id)] = path
        return path

    def _nlri(self, nlri: Any, peer: str) -> tuple[str, int, tuple[int, int, int] | None] | None:
        """(canonical prefix, path-id, parsed prefix or None) of one NLRI entry, or None (counted)."""
        text: Any
        path_info: Any = None
        if isinstance(nlri, str):
            text = nlri
        elif isinstance(nlri, dict):
            text, path_info = nlri.get("nlri"), nlri.get("path-information")
        else:
            self._bad("bad_nlri", f"nlri {nlri!r} from {peer}")
            return None
        if not isinstance(text, str):
            self._bad("bad_nlri", f"nlri {nlri!r} from {peer}")
            return None
        split = prefix_of(text, self._known_prefix)
        if split is None:
            try:
                split_prefix(text)  # raises where split_canonical said None: its message says why
                detail = f"invalid prefix {text!r}"
            except PrefixError as exc:
                detail = str(exc)
            self._bad("bad_prefix", f"{detail} from {peer}")
            return None
        prefix, key = split
        if path_info is None:
            return prefix, 0, key
        path_id = self._path_ids.get(path_info) if isinstance(path_info, str) else None
        if path_id is None:
            path_id = path_id_of(path_info)
            if path_id is not None and isinstance(path_info, str) and len(self._path_ids) < _MAX_CACHED:
                self._path_ids[path_info] = path_id
        if path_id is None:
            self._bad("bad_nlri", f"path-information {path_info!r} from {peer}")
            return None
        return prefix, path_id, key

    def _attributes(self, attributes: Any) -> Attributes:
        """The parsed attribute set, cached by ``json.dumps`` of the parsed object.

        Not by a slice of the line's text: a line can hold '"attribute"' or '"announce"' elsewhere
        (a decoy key, a string value), and a slice then names another set. The serialisation of
        the object ``json`` built (duplicate keys resolved, as this path reads them) is its value."""
        if not isinstance(attributes, dict):
            raise Skip("bad_attribute", "attribute is not an object")
        try:
            key = _reference_key(attributes)
        except RecursionError:  # json.loads got it, json.dumps does not follow it back
            raise Skip("bad_attribute", "attribute nested too deep") from None
        return self._attributes_keyed(attributes, key)

    def _attributes_keyed(self, attributes: dict[str, Any], key: str | bytes) -> Attributes:
        """The parsed set of ``attributes``, cached under ``key``, a JSON text of ``attributes``
        (so a key determines its set, whoever wrote it): ``json.dumps`` (str) from the reference
        path, ``orjson.dumps`` (bytes) from the Python fast path, the compact attribute text
        (bytes) from the C scanner. Equal texts are equal values; str and bytes never meet."""
        cached = self._attribute_cache.get(key)
        if cached is not None:
            return cached
        try:
            parsed = parse_attributes(attributes, len(self._attribute_cache))
        except ValueError as exc:
            raise Skip("bad_attribute", str(exc)) from None
        if len(self._attribute_cache) >= _MAX_CACHED:
            # Bounded: a peer may send a distinct set per prefix. Paths are keyed by the serial,
            # so they must go too.
            self._attribute_cache.clear()
            self._path_cache.clear()
            parsed = parsed._replace(serial=0)
        self._attribute_cache[key] = parsed
        return parsed

