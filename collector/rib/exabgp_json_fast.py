"""The parser's Python fast path: ``orjson`` (when installed) and a walk that accepts only a
well-formed update — announces/withdraws of the two families, valid attributes, next hops,
NLRIs, path-ids — and builds its events with few intermediate objects.

It gives up (None) at the first thing it does not accept, having counted nothing, and the
parser's reference path reads the line again (see :mod:`~topfib.collector.rib.exabgp_json`).
It shares the parser's caches and its Path, next-hop and attribute-set builders, handed over
once as bound methods, so the per-prefix loop calls them as directly as the parser would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from topfib.collector.common.prefixes import split_canonical
from topfib.collector.rib.events import Event, new_route_update
from topfib.collector.rib.exabgp_json_values import FAMILIES, Attributes, Skip, path_id_of
from topfib.collector.rib.paths import BgpPath

_fast_loads: Callable[[str], Any]
_attribute_key: Callable[[dict[str, Any]], str | bytes]
try:
    import orjson

    _fast_loads = orjson.loads  # C parser: ~3x json's speed on ExaBGP's lines
    _attribute_key = orjson.dumps  # same set, same bytes: a cheap cache key
except ImportError:  # pragma: no cover - orjson is a dependency; json still works without it
    _fast_loads = json.loads
    _attribute_key = json.dumps


def prefix_of(text: str, known: Callable[[str], bool] | None
              ) -> tuple[str, tuple[int, int, int] | None] | None:
    """(prefix, ``split_prefix`` key or None) of an NLRI text, or None: not a prefix. The parser's
    rule, on every path (the C scanner's ``prefix_of`` too): a canonical text is taken as it is,
    with its key; ``known`` is asked only about any other text, and its yes takes the text as
    written (key None); else a valid text becomes its canonical form."""
    split = split_canonical(text)
    if split is not None and split[0] == text:
        return split
    if known is not None and known(text):
        return text, None
    return split


class FastUpdatePath:
    """The fast path of one :class:`~topfib.collector.rib.exabgp_json.ExabgpJsonParser`."""

    def __init__(
        self,
        known_prefix: Callable[[str], bool] | None,
        path_ids: dict[str, int],
        path_cache: dict[tuple[int, str, str, int], BgpPath],
        next_hops: set[str],
        path: Callable[[Attributes, str, str, int], BgpPath],
        new_next_hop: Callable[[Any], bool],
        attributes_keyed: Callable[[dict[str, Any], str | bytes], Attributes],
        max_cached: int,
    ) -> None:
        # the parser's own objects (cleared in place, never replaced) and bound methods
        self._known_prefix = known_prefix
        self._path_ids = path_ids
        self._path_cache = path_cache
        self._next_hops = next_hops
        self._path = path
        self._new_next_hop = new_next_hop
        self._attributes_keyed = attributes_keyed
        self._max_cached = max_cached

    def events(self, text: str) -> list[Event] | None:
        """The events of a well-formed update line, or None to leave the line to the reference
        path. Counts and logs nothing: whatever it does not accept, the reference path reports.

        Containers are indexed without type checks: indexing or iterating the wrong type raises,
        and the caller hands the line to the reference path. Only what is checked exactly as the
        reference path checks it is read from orjson's result (which turns integers beyond 64
        bits into floats: every check here refuses a float).
        """
        message = _fast_loads(text)
        if message["type"] != "update":
            return None
        neighbor = message["neighbor"]
        peer = neighbor["address"]["peer"]
        body = neighbor["message"]
        if type(peer) is not str or not peer or "eor" in body:
            return None
        update = body["update"]
        events: list[Event] = []
        withdraw = update.get("withdraw")
        if withdraw is not None:
            for family, nlris in withdraw.items():
                if family not in FAMILIES or type(nlris) is not list:
                    return None
                for nlri in nlris:
                    parsed = self._fast_nlri(nlri)
                    if parsed is None:
                        return None
                    events.append(new_route_update(peer, family, parsed[0], parsed[1], None, parsed[2]))
        announce = update.get("announce")
        if announce is not None:
            attributes = update.get("attribute", {})
            if type(attributes) is not dict or "error" in attributes:
                return None
            try:
                parsed_attributes = self._attributes_keyed(attributes, _attribute_key(attributes))
            except Skip:
                return None
            for family, by_next_hop in announce.items():
                if family not in FAMILIES:
                    return None
                for next_hop, nlris in by_next_hop.items():
                    if type(nlris) is not list or (next_hop not in self._next_hops
                                                   and not self._new_next_hop(next_hop)):
                        return None
                    if not self._fast_announced(peer, family, next_hop, nlris, parsed_attributes, events):
                        return None
        return events

    def _fast_announced(self, peer: str, family: str, next_hop: str, nlris: list[Any],
                        attributes: Attributes, events: list[Event]) -> bool:
        """Events of one next hop's NLRIs; False (nothing counted) at the first bad one.

        :meth:`_fast_nlri` and the parser's ``_path`` inlined: this loop runs once per prefix.
        """
        known = self._known_prefix
        path_ids = self._path_ids
        path_cache = self._path_cache
        max_cached = self._max_cached
        serial = attributes.serial
        append = events.append
        for nlri in nlris:
            if type(nlri) is dict:
                text, path_info = nlri.get("nlri"), nlri.get("path-information")
                if type(text) is not str:
                    return False
            elif type(nlri) is str:
                text, path_info = nlri, None
            else:
                return False
            split = split_canonical(text)
            if split is not None and split[0] == text:  # canonical: known_prefix is not asked
                prefix, key = split
            elif known is not None and known(text):
                prefix, key = text, None
            elif split is not None:
                prefix, key = split
            else:
                return False
            path_id = 0
            if path_info is not None:
                cached_id = path_ids.get(path_info) if type(path_info) is str else None
                if cached_id is None:
                    cached_id = path_id_of(path_info)
                    if cached_id is None:
                        return False
                    if type(path_info) is str and len(path_ids) < max_cached:
                        path_ids[path_info] = cached_id
                path_id = cached_id
            path = path_cache.get((serial, next_hop, peer, path_id))
            if path is None:
                path = self._path(attributes, next_hop, peer, path_id)
            append(new_route_update(peer, family, prefix, path_id, path, key))
        return True

    def _fast_nlri(self, nlri: Any) -> tuple[str, int, tuple[int, int, int] | None] | None:
        """As the reference path's ``_nlri``, or None (uncounted) where that would count a problem."""
        path_info: Any = None
        if type(nlri) is dict:
            text, path_info = nlri.get("nlri"), nlri.get("path-information")
            if type(text) is not str:
                return None
        elif type(nlri) is str:
            text = nlri
        else:
            return None
        split = prefix_of(text, self._known_prefix)
        if split is None:
            return None
        prefix, key = split
        if path_info is None:
            return prefix, 0, key
        path_id = self._path_ids.get(path_info) if type(path_info) is str else None
        if path_id is None:
            path_id = path_id_of(path_info)
            if path_id is None:
                return None
            if type(path_info) is str and len(self._path_ids) < self._max_cached:
                self._path_ids[path_info] = path_id
        return prefix, path_id, key

    # -- reference path: updates ------------------------------------------------------------------
