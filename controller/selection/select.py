"""Selection: which routes one switch should hold, from scores, requests, pins and the RIB.

Pure: values in, a :class:`Selection` out; ``now`` is passed in. The rules (docs/design.md, "Selection
rules and their reasons"), in the order they are applied:

1. pins, in prefix order; 2. active requests, newest first; 3. incumbents still inside their
minimum dwell; 4. TopN by score, incumbents' scores raised by the margin so a challenger must beat
them by it. Every candidate is installed as a unit with the more-specifics no cache-hiding needs
(:mod:`topfib.controller.selection.closure`) or not at all, and only if the unit fits every table's cap. A
candidate without a live path is never selected, whatever protects it.

TopN (:mod:`topfib.controller.selection.topn`) is a lazy greedy over contest key per route slot, which touches
the RIB only for about as many candidates as fit; a :class:`UnitCache` kept by the caller spares
even that for a FIB that stays put. Equal keys fall back to incumbents first, then prefix order,
so the result does not depend on mapping order (active and standby agree).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from itertools import compress, repeat
from math import isnan
from operator import attrgetter, is_, is_not, itemgetter, le, not_
from typing import cast

from topfib.collector.common.prefixes import prefix_sort_key
from topfib.controller.selection.fib_draft import FibDraft
from topfib.controller.selection.model import (
    AnswerStatus,
    OnDemandRequest,
    PinAnswer,
    RequestAnswer,
    RibView,
    SelectedRoute,
    Selection,
    SelectionPolicy,
)
from topfib.controller.selection.request_memo import Match, Unresolvable
from topfib.controller.selection.topn import fill_topn
from topfib.controller.selection.unit_cache import UnitCache

__all__ = [
    "OnDemandRequest",
    "PinAnswer",
    "RequestAnswer",
    "RibView",
    "SelectedRoute",
    "Selection",
    "SelectionPolicy",
    "UnitCache",
    "answer_ahead",
    "select",
    "unanswered",
]


def _place_pins(fib: FibDraft, pins: Iterable[str]) -> tuple[PinAnswer, ...]:
    answers = []
    cache, routes, usage, caps, table_of = fib.cache, fib.routes, fib.usage, fib.caps, fib.policy.table_of
    # by (prefix order, string): sorted by string, then stably by prefix order
    for prefix in sorted(sorted(set(pins)), key=cache.sort_key):
        invalid = cache.prefix_error(prefix)
        if invalid:
            answers.append(PinAnswer(prefix, "rejected", f"invalid prefix: {invalid}"))
            continue
        next_hop, unit = cache.entry(prefix)
        if unit is None and next_hop is not None and prefix not in routes:
            # a unit of one, the common pin: FibDraft.try_install without building its unit
            table = table_of(prefix)
            if usage[table] < caps[table]:
                fib.install_one(prefix, next_hop, "pinned", table)
                answers.append(PinAnswer(prefix, "installed"))
            else:
                answers.append(PinAnswer(prefix, "rejected", fib.shortfall({table: 1})))
            continue
        installed, why_not = fib.try_install(prefix, "pinned")
        if installed:
            answers.append(PinAnswer(prefix, "installed"))
        elif fib.next_hop_of(prefix) is None:
            answers.append(PinAnswer(prefix, "no-route", why_not))
        else:
            answers.append(PinAnswer(prefix, "rejected", why_not))
    return tuple(answers)


# (status, prefix, reason) of a request's answer
Outcome = tuple[AnswerStatus, str | None, str]

_IP = attrgetter("ip")
_REQUEST_ID = attrgetter("request_id")
_EXPIRES_AT = attrgetter("expires_at")
_CREATED_AT = attrgetter("created_at")
_EXPIRED: Outcome = ("expired", None, "request expired")
_INVALID: Outcome = ("rejected", None, "invalid address")
_NO_PATH = "no peer path"
_new_answer = partial(tuple.__new__, RequestAnswer)  # RequestAnswer(*fields), in C


def _outcomes(next_hop_of: Callable[[str], str | None], matches: list[Match]) -> dict[Match, Outcome | None]:
    """Per distinct longest match: the outcome of its requests (expiry aside) when it does not
    depend on what was placed before them, None when they have a live route to place."""
    outcomes: dict[Match, Outcome | None] = {}
    for match in set(matches):
        if match is Unresolvable.INVALID:  # the API validates addresses; a stray one must not stop selection
            outcomes[match] = _INVALID
        elif match is None or next_hop_of(match) is None:
            outcomes[match] = ("no-route", match, _NO_PATH)
        else:
            outcomes[match] = None
    return outcomes


def _place_requests(
    fib: FibDraft, requests: Iterable[OnDemandRequest], now: float
) -> tuple[RequestAnswer, ...]:
    """Answers in the order given; requests with a live route placed newest first.

    A request whose no-route answer the cache kept (:class:`~.answer_memo.AnswerMemo`: still no route, not
    expired) gets that very answer; the rest are answered by :func:`_answer_all`. No-route
    requests are not placed, so leaving them out changes no placement; with a NaN time among
    the rest, though, every request is answered afresh (see :func:`_answer_all`).
    """
    given = list(requests)
    addresses, memo = fib.cache.addresses, fib.cache.answers
    if addresses.oversized(len(given)):
        addresses.keep_only(list(map(_IP, given)))
    found = memo.lookup(given, now)
    missing = list(compress(range(len(given)), map(is_, found, repeat(None))))
    if not missing:
        return cast(tuple[RequestAnswer, ...], tuple(found))
    if len(missing) < len(given):
        rest = list(map(given.__getitem__, missing))
        if not any(map(isnan, map(_CREATED_AT, rest))):
            answers = _answer_all(fib, rest, now)
            memo.remember(rest, answers)
            for index, answer in zip(missing, answers, strict=True):
                found[index] = answer
            return cast(tuple[RequestAnswer, ...], tuple(found))
    answers = _answer_all(fib, given, now)
    memo.remember(given, answers)
    return tuple(answers)


def _unplaced(
    cache: UnitCache, rib: RibView, given: list[OnDemandRequest], now: float
) -> tuple[list[str], list[str], list[Match], list[Outcome | None]]:
    """(addresses, request ids, longest matches, outcomes) of ``given``: the outcome of each
    request that does not depend on placement (expired, invalid address, no route), None for
    those with a live route to place."""
    ips = list(map(_IP, given))
    request_ids = list(map(_REQUEST_ID, given))
    if any(map(le, map(_EXPIRES_AT, given), repeat(now))):  # rare: the mirror drops them on time
        expired = list(map(le, map(_EXPIRES_AT, given), repeat(now)))
        active = list(compress(range(len(given)), map(not_, expired)))  # only these are looked up
        matches: list[Match] = [None] * len(given)
        for index, match in zip(active, cache.addresses.resolve(rib, [ips[i] for i in active], prune=False),
                                strict=True):
            matches[index] = match
        outcomes = list(map(_outcomes(cache.next_hop, matches).__getitem__, matches))
        outcomes = [_EXPIRED if gone else outcome for outcome, gone in zip(outcomes, expired, strict=True)]
    else:
        matches = cache.addresses.resolve(rib, ips, prune=False)
        outcomes = list(map(_outcomes(cache.next_hop, matches).__getitem__, matches))
    return ips, request_ids, matches, outcomes


def _answers(ips: list[str], request_ids: list[str], outcomes: list[Outcome]) -> list[RequestAnswer]:
    statuses, prefixes, reasons = (map(itemgetter(field), outcomes) for field in range(3))
    return list(map(_new_answer, zip(ips, statuses, prefixes, reasons, request_ids, strict=True)))


def _answer_all(fib: FibDraft, given: list[OnDemandRequest], now: float) -> list[RequestAnswer]:
    """Fresh answers to ``given``, in that order; requests with a live route placed newest first.

    Only "installed" and "rejected" depend on what was placed before (expired, invalid address
    and no route do not), so only the requests with a live route are sorted and placed, making
    the same calls to ``try_install`` in the same order as placing them all would. The rest is
    C-level maps (the longest matches are the :class:`UnitCache`'s).
    """
    ips, request_ids, matches, outcomes = _unplaced(fib.cache, fib.rib, given, now)
    live = list(compress(range(len(given)), map(is_, outcomes, repeat(None))))
    if live:
        created = list(map(_CREATED_AT, given))
        if any(map(isnan, created)):
            # NaN orders no subset as it orders the whole: sort every active request, as always
            active = sorted((i for i, request in enumerate(given) if not request.expires_at <= now),
                            key=lambda i: (-created[i], ips[i], request_ids[i]))
            live = [i for i in active if outcomes[i] is None]
        else:
            # newest first; equal times in address order so the answer does not depend on input
            # order: by (ip, request_id), then stably by time (the key (-created_at, ip, request_id))
            live.sort(key=list(zip(ips, request_ids, strict=True)).__getitem__)
            live.sort(key=created.__getitem__, reverse=True)
    for index in live:
        prefix = cast(str, matches[index])
        installed, why_not = fib.try_install(prefix, "request")
        outcomes[index] = ("installed", prefix, "") if installed else ("rejected", prefix, why_not)
    return _answers(ips, request_ids, cast(list[Outcome], outcomes))


def unanswered(cache: UnitCache, requests: list[OnDemandRequest], now: float) -> list[OnDemandRequest]:
    """The requests of ``requests`` (active at ``now``) whose answer the cache does not keep."""
    return list(compress(requests, map(is_, cache.answers.lookup(requests, now), repeat(None))))


def answer_ahead(cache: UnitCache, rib: RibView, requests: list[OnDemandRequest], now: float) -> None:
    """Ahead of a selection on ``rib``: keep the answers of ``requests`` that no placement
    changes (no route) in ``cache``, as the selection would, so that it reuses them.

    For a caller that spreads the answers to thousands of new requests (~5 µs each) over several
    turns of an event loop it shares, rather than leave them all to one selection. Valid under the
    cache's rule: every RIB change until that selection reaches :meth:`UnitCache.forget` first.
    """
    cache.bind(rib)
    ips, request_ids, _, outcomes = _unplaced(cache, rib, requests, now)
    unplaceable = list(map(is_not, outcomes, repeat(None)))
    if any(unplaceable):
        done = cast(list[Outcome], list(compress(outcomes, unplaceable)))
        answers = _answers(list(compress(ips, unplaceable)), list(compress(request_ids, unplaceable)), done)
        cache.answers.remember(list(compress(requests, unplaceable)), answers)


def _keep_dwelling(fib: FibDraft, min_dwell_s: float) -> None:
    """Incumbents selected less than ``min_dwell_s`` ago stay (dependencies follow their root)."""
    dwelling = [
        route
        for route in fib.incumbents.values()
        if route.reason != "dependency" and fib.now - route.since < min_dwell_s
    ]
    dwelling.sort(key=lambda r: (-float(fib.scores.get(r.prefix, 0.0)), prefix_sort_key(r.prefix)))
    for route in dwelling:
        fib.try_install(route.prefix, "topn")


def select(
    *,
    scores: Mapping[str, float],
    rib: RibView,
    policy: SelectionPolicy,
    now: float,
    requests: Iterable[OnDemandRequest] = (),
    pins: Iterable[str] = (),
    incumbents: Mapping[str, SelectedRoute] | None = None,
    evidence: Mapping[str, float] | None = None,
    cache: UnitCache | None = None,
) -> Selection:
    """The routes one switch should hold at ``now``.

    ``scores``: decayed bytes/s per prefix (the collector's ``PrefixRates.scores``).
    ``incumbents``: the previous call's ``Selection.routes``; it carries ``since`` forward and
    drives the margin and the dwell time.
    ``evidence``: optional samples behind each score (a prefix missing has none); with it, a
    challenger must beat an incumbent beyond both their 95 % sampling intervals and the margin.
    Fastest in the same order as ``scores`` (``PrefixRates.scores_and_evidence`` gives both so).
    ``cache``: kept by the caller across calls on one RIB, with every RIB change passed to
    :meth:`UnitCache.forget` before the next call; it spares the RIB lookups of a steady FIB.
    """
    if cache is None:
        cache = UnitCache()
    cache.bind(rib)
    fib = FibDraft(rib, policy, scores, incumbents or {}, now, cache)
    pin_answers = _place_pins(fib, pins)
    request_answers = _place_requests(fib, requests, now)
    _keep_dwelling(fib, policy.min_dwell_s)
    fill_topn(fib, evidence)
    return Selection(
        routes=fib.routes,
        requests=request_answers,
        pins=pin_answers,
        usage=dict(fib.usage),
        caps=dict(fib.caps),
    )
