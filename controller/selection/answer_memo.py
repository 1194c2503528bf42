"""The no-route answers of the last selections, kept per request so the next one reuses them.

Every selection answers every active request: tens of thousands while access points are busy,
most of them the same requests with the same answers as a second before. Building a fresh
answer for each held the event loop (which the API shares) ~5 ms a selection, and fed the
garbage collector ~30,000 tracked objects a second (a named tuple is never untracked).

Only "no-route" answers are kept: they do not depend on placement (the cap, pins, the other
requests), only on the request and on the RIB (its address has no longest match, or that match
has no live path). What invalidates a kept answer:

- its request expiring: entries leave at their ``expires_at`` (a heap), before any look-up;
- a RIB change: the longest match of an address, and the liveness of that match, change only
  with a changed prefix containing the address; :class:`AddressMatches` drops exactly those
  addresses (:meth:`UnitCache.forget`) and notes them, and the answers of a noted address go.
  So only answers of addresses it remembers are kept, and they go with whatever it drops
  (pruning, a cleared cache);
- NaN times are never kept: NaN orders no subset of requests as it orders the whole
  (``_place_requests`` then places every request from scratch).

The other answers ("installed", "rejected", "expired") are recomputed every selection.
"""

from __future__ import annotations

import heapq
from itertools import compress, count, repeat
from math import isnan
from operator import attrgetter, eq, itemgetter, not_

from topfib.controller.selection.model import OnDemandRequest, RequestAnswer
from topfib.controller.selection.request_memo import KEEP_FACTOR, KEEP_SLACK, AddressMatches

_IP = attrgetter("ip")
_EXPIRES_AT = attrgetter("expires_at")
_CREATED_AT = attrgetter("created_at")
_STATUS = itemgetter(1)


class AnswerMemo:
    """Request → its no-route answer, valid while :class:`AddressMatches` keeps its address.

    Keyed by the request object's identity, which the control loop's request mirror keeps while
    the request stands: a look-up hashes an int, not the request's fields (tens of thousands of
    objects scattered in memory), so it does not read the request at all. An equal request in
    another object is simply not found (answered afresh). The memo holds each request it keys,
    so no other object can take its id meanwhile. One answer per address: a renewed request (a
    new object) replaces its predecessor's, so the memo is bounded as :class:`AddressMatches` is.
    """

    def __init__(self, addresses: AddressMatches) -> None:
        self._addresses = addresses
        self._answers: dict[int, RequestAnswer] = {}  # id(request) → its answer
        self._requests: dict[int, OnDemandRequest] = {}  # id(request) → request: holds it
        self._key_of_ip: dict[str, int] = {}  # address → id(its request)
        # (expires_at, tie-break, id(request)) of every kept answer; those of dropped ones linger
        self._expiries: list[tuple[float, int, int]] = []
        self._order = count()

    def __len__(self) -> int:
        return len(self._answers)

    def clear(self) -> None:
        self._answers.clear()
        self._requests.clear()
        self._key_of_ip.clear()
        self._expiries.clear()

    def lookup(self, requests: list[OnDemandRequest], now: float) -> list[RequestAnswer | None]:
        """The kept answer of each of ``requests`` (active at ``now``), None where there is none."""
        self._invalidate(now)
        return list(map(self._answers.get, map(id, requests)))

    def remember(self, requests: list[OnDemandRequest], answers: list[RequestAnswer]) -> None:
        """Keep the no-route answers among ``answers`` (those of ``requests``, just placed)."""
        self._invalidate(None)
        no_route = list(compress(range(len(answers)), map(eq, map(_STATUS, answers), repeat("no-route"))))
        if not no_route:
            return
        candidates = list(map(requests.__getitem__, no_route))
        expiries = list(map(_EXPIRES_AT, candidates))
        created = list(map(_CREATED_AT, candidates))
        # its address remembered, so its RIB changes are noted
        keep = list(map(self._addresses.remembered().__contains__, map(_IP, candidates)))
        if any(map(isnan, expiries)) or any(map(isnan, created)):  # rare: never kept
            times = zip(expiries, created, strict=True)
            keep = [held and not (isnan(e) or isnan(c)) for held, (e, c) in zip(keep, times, strict=True)]
        kept = list(compress(candidates, keep))
        ids, ips = list(map(id, kept)), list(map(_IP, kept))
        for key in map(self._key_of_ip.get, ips):
            if key is not None:  # its predecessor at that address
                self._answers.pop(key, None)
                self._requests.pop(key, None)
        self._key_of_ip.update(zip(ips, ids, strict=True))
        self._answers.update(zip(ids, compress(map(answers.__getitem__, no_route), keep), strict=True))
        self._requests.update(zip(ids, kept, strict=True))
        self._add_expiries(list(compress(expiries, keep)), ids)

    def _add_expiries(self, expiries: list[float], ids: list[int]) -> None:
        entries = list(zip(expiries, map(next, repeat(self._order, len(ids))), ids, strict=True))
        if len(entries) > len(self._expiries):
            self._expiries += entries
            heapq.heapify(self._expiries)
        else:
            for entry in entries:
                heapq.heappush(self._expiries, entry)

    def _invalidate(self, now: float | None) -> None:
        """Drop the answers of addresses dropped since, then (``now`` given) of expired requests."""
        dropped_all, dropped = self._addresses.take_drops()
        if dropped_all:
            self.clear()
        elif dropped and self._answers:
            gone = set(dropped)
            ids, held = list(self._requests), list(self._requests.values())
            self._keep(list(compress(ids, map(not_, map(gone.__contains__, map(_IP, held))))))
        expiries, answers, requests = self._expiries, self._answers, self._requests
        key_of_ip = self._key_of_ip
        if now is not None:
            while expiries and expiries[0][0] <= now:
                key = heapq.heappop(expiries)[2]
                request = requests.get(key)
                if request is not None and request.expires_at <= now:  # not a later one of that id
                    del answers[key], requests[key]
                    if key_of_ip.get(request.ip) == key:
                        del key_of_ip[request.ip]
        if len(expiries) > KEEP_FACTOR * len(answers) + KEEP_SLACK:
            self._rebuild_expiries()

    def _keep(self, ids: list[int]) -> None:
        """Forget every answer but those of ``ids`` (kept ones)."""
        answers, requests = self._answers, self._requests
        self._answers = dict(zip(ids, map(answers.__getitem__, ids), strict=True))
        self._requests = dict(zip(ids, map(requests.__getitem__, ids), strict=True))
        self._key_of_ip = dict(zip(map(_IP, self._requests.values()), self._requests, strict=True))
        # the expiries of the others linger (skipped when they come up) until there are too many

    def _rebuild_expiries(self) -> None:
        self._expiries = []
        self._add_expiries(list(map(_EXPIRES_AT, self._requests.values())), list(self._requests))
