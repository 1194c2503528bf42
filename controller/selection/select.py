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

from collections.abc import Iterable, Mapping

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
    "select",
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


def _place_requests(
    fib: FibDraft, requests: Iterable[OnDemandRequest], now: float
) -> tuple[RequestAnswer, ...]:
    given = list(requests)
    answers: list[RequestAnswer | None] = [None] * len(given)
    active = []
    for index, request in enumerate(given):
        if request.expires_at <= now:
            answers[index] = RequestAnswer(request.ip, "expired", None, "request expired", request.request_id)
        else:
            active.append(index)
    # newest first; equal times in address order so the answer does not depend on input order
    active.sort(key=lambda i: (-given[i].created_at, given[i].ip, given[i].request_id))
    for index in active:
        request = given[index]
        try:
            prefix = fib.rib.longest_match(request.ip)
        except ValueError:  # the API validates addresses; a stray one must not stop selection
            answers[index] = RequestAnswer(
                request.ip, "rejected", None, "invalid address", request.request_id
            )
            continue
        if prefix is None or fib.next_hop_of(prefix) is None:
            answer = RequestAnswer(request.ip, "no-route", prefix, "no peer path", request.request_id)
        else:
            installed, why_not = fib.try_install(prefix, "request")
            status: AnswerStatus = "installed" if installed else "rejected"
            answer = RequestAnswer(request.ip, status, prefix, why_not, request.request_id)
        answers[index] = answer
    return tuple(a for a in answers if a is not None)


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
