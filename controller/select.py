"""Selection: which routes one switch should hold, from scores, requests, pins and the RIB.

Pure: values in, a :class:`Selection` out; ``now`` is passed in. The rules (DESIGN.md, "Selection
rules"), in the order they are applied:

1. pins, in prefix order; 2. active requests, newest first; 3. incumbents still inside their
minimum dwell; 4. TopN by score, incumbents' scores raised by the margin so a challenger must beat
them by it. Every candidate is installed as a unit with the more-specifics no cache-hiding needs
(:mod:`controller.closure`) or not at all, and only if the unit fits every table's cap. A
candidate without a live path is never selected, whatever protects it.

TopN is a lazy greedy over score per route slot: a candidate's own score bounds the density of
its unit from above, so units are only built for candidates that reach the top, and a 200k-score
call touches the RIB for about as many prefixes as fit. Equal keys fall back to incumbents first,
then prefix order, so the result does not depend on mapping order (active and standby agree).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from collector.fastprefix import split_prefix
from collector.prefixes import PrefixError
from controller.closure import prefix_sort_key, unit_of
from controller.selection_types import (
    TABLE_IPV4,
    TABLE_IPV4_24,
    TABLE_IPV6,
    AnswerStatus,
    OnDemandRequest,
    PinAnswer,
    Reason,
    RequestAnswer,
    RibView,
    SelectedRoute,
    Selection,
    SelectionPolicy,
)

__all__ = [
    "OnDemandRequest",
    "PinAnswer",
    "RequestAnswer",
    "RibView",
    "SelectedRoute",
    "Selection",
    "SelectionPolicy",
    "select",
]


class _Fib:
    """The selection being built: chosen routes and per-table usage under the caps."""

    def __init__(
        self,
        rib: RibView,
        policy: SelectionPolicy,
        scores: Mapping[str, float],
        incumbents: Mapping[str, SelectedRoute],
        now: float,
    ) -> None:
        self.rib = rib
        self.policy = policy
        self.scores = scores
        self.incumbents = incumbents
        self.now = now
        self.caps = policy.caps()
        self.usage = dict.fromkeys(self.caps, 0)
        self.full_tables = {table for table, cap in self.caps.items() if cap <= 0}
        self.routes: dict[str, SelectedRoute] = {}
        self._next_hops: dict[str, str | None] = {}

    def next_hop_of(self, prefix: str) -> str | None:
        if prefix not in self._next_hops:
            path = self.rib.best(prefix)
            self._next_hops[prefix] = path.next_hop if path is not None else None
        return self._next_hops[prefix]

    def all_full(self) -> bool:
        return len(self.full_tables) == len(self.caps)

    def unit(self, root: str, next_hop: str) -> dict[str, str]:
        more_specifics = self.rib.more_specifics(root)
        if not more_specifics:
            return {root: next_hop}
        return unit_of(root, next_hop, more_specifics, self.next_hop_of)

    def cost(self, unit: Mapping[str, str]) -> dict[str, int]:
        cost: dict[str, int] = {}
        for prefix in unit:
            if prefix not in self.routes:
                table = self.policy.table_of(prefix)
                cost[table] = cost.get(table, 0) + 1
        return cost

    def shortfall(self, cost: Mapping[str, int]) -> str:
        """Why ``cost`` does not fit, or "" when it does."""
        for table, needed in sorted(cost.items()):
            free = self.caps[table] - self.usage[table]
            if needed > free:
                return f"{table} table full: needs {needed} route(s), {free} of {self.caps[table]} free"
        return ""

    def install(self, unit: Mapping[str, str], root: str, reason: Reason) -> None:
        for prefix, next_hop in unit.items():
            if prefix in self.routes:
                continue
            incumbent = self.incumbents.get(prefix)
            self.routes[prefix] = SelectedRoute(
                prefix=prefix,
                next_hop=next_hop,
                reason=reason if prefix == root else "dependency",
                since=incumbent.since if incumbent is not None else self.now,
                score=float(self.scores.get(prefix, 0.0)),
            )
            table = self.policy.table_of(prefix)
            self.usage[table] += 1
            if self.usage[table] >= self.caps[table]:
                self.full_tables.add(table)

    def try_install(self, root: str, reason: Reason) -> tuple[bool, str]:
        """Install ``root``'s unit if it has a live path and fits: (installed, why not)."""
        if root in self.routes:
            return True, ""
        next_hop = self.next_hop_of(root)
        if next_hop is None:
            return False, "no live path"
        unit = self.unit(root, next_hop)
        why_not = self.shortfall(self.cost(unit))
        if why_not:
            return False, why_not
        self.install(unit, root, reason)
        return True, ""


def _place_pins(fib: _Fib, pins: Iterable[str]) -> tuple[PinAnswer, ...]:
    answers = []
    for prefix in sorted(set(pins), key=lambda p: (prefix_sort_key(p), p)):
        try:
            split_prefix(prefix)
        except PrefixError as exc:
            answers.append(PinAnswer(prefix, "rejected", f"invalid prefix: {exc}"))
            continue
        installed, why_not = fib.try_install(prefix, "pinned")
        if installed:
            answers.append(PinAnswer(prefix, "installed"))
        elif fib.next_hop_of(prefix) is None:
            answers.append(PinAnswer(prefix, "no-route", why_not))
        else:
            answers.append(PinAnswer(prefix, "rejected", why_not))
    return tuple(answers)


def _place_requests(fib: _Fib, requests: Iterable[OnDemandRequest], now: float) -> tuple[RequestAnswer, ...]:
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


def _keep_dwelling(fib: _Fib, min_dwell_s: float) -> None:
    """Incumbents selected less than ``min_dwell_s`` ago stay (dependencies follow their root)."""
    dwelling = [
        route
        for route in fib.incumbents.values()
        if route.reason != "dependency" and fib.now - route.since < min_dwell_s
    ]
    dwelling.sort(key=lambda r: (-float(fib.scores.get(r.prefix, 0.0)), prefix_sort_key(r.prefix)))
    for route in dwelling:
        fib.try_install(route.prefix, "topn")


# heap entry: (-density, 0 for an incumbent / 1 for a challenger, prefix order, prefix, value)
_Entry = tuple[float, int, tuple[int, int, int], str, float]


def _table_ids(names: list[str], tables: list[str], policy: SelectionPolicy) -> npt.NDArray[np.int64]:
    """Index into ``tables`` of each name's table: :meth:`SelectionPolicy.table_of`, vectorised."""
    is_v6 = np.fromiter((":" in p for p in names), np.bool_, len(names))
    ids = np.where(is_v6, tables.index(TABLE_IPV6), tables.index(TABLE_IPV4)).astype(np.int64)
    if TABLE_IPV4_24 in tables:
        is_24 = np.fromiter((p.endswith("/24") for p in names), np.bool_, len(names)) & ~is_v6
        ids[is_24] = tables.index(TABLE_IPV4_24)
    return ids


class _Stream:
    """Candidate indices by descending adjusted score; a table that fills leaves the stream."""

    def __init__(
        self,
        adjusted: npt.NDArray[np.float64],
        table_ids: npt.NDArray[np.int64],
        open_tables: npt.NDArray[np.bool_],
    ) -> None:
        self.table_ids = table_ids
        self.values: list[float] = adjusted.tolist()
        candidates = np.flatnonzero((adjusted > 0.0) & open_tables[table_ids])
        self.order: list[int] = candidates[np.argsort(-adjusted[candidates], kind="stable")].tolist()
        self.position = 0

    def head(self) -> float | None:
        return self.values[self.order[self.position]] if self.position < len(self.order) else None

    def tied_with_next(self) -> bool:
        after = self.position + 1
        return (
            after < len(self.order)
            and self.values[self.order[after]] == self.values[self.order[self.position]]
        )

    def take(self) -> int:
        self.position += 1
        return self.order[self.position - 1]

    def keep_tables(self, open_tables: npt.NDArray[np.bool_]) -> None:
        rest = np.array(self.order[self.position :], np.int64)
        self.order = rest[open_tables[self.table_ids[rest]]].tolist()
        self.position = 0


# z of a two-sided 95 % interval: an sFlow estimate from c samples is within ±1.96/√c
Z_95 = 1.96


def _adjusted_scores(
    names: list[str],
    raw: npt.NDArray[np.float64],
    incumbent: npt.NDArray[np.bool_],
    margin: float,
    evidence: Mapping[str, float] | None,
) -> npt.NDArray[np.float64]:
    """What candidates compete on: incumbents' scores raised by the margin.

    With ``evidence`` (samples behind each score), a challenger competes with the lower end of
    its 95 % interval and an incumbent with the upper end: sampling noise alone never swaps two
    prefixes, however few samples they have — what the margin cannot promise near a large cap.
    """
    if evidence is None:
        return np.where(incumbent, raw * (1.0 + margin), raw)
    samples = np.fromiter((evidence.get(p, 0.0) for p in names), np.float64, len(names))
    spread = Z_95 / np.sqrt(np.maximum(samples, 1e-12))
    upper = raw * (1.0 + spread) * (1.0 + margin)
    lower = raw * np.clip(1.0 - spread, 0.0, None)
    return np.where(incumbent, upper, lower)


def _fill_topn(fib: _Fib, margin: float, evidence: Mapping[str, float] | None) -> None:
    names = list(fib.scores)
    if not names:
        return
    tables = list(fib.caps)
    incumbent = np.fromiter((p in fib.incumbents for p in names), np.bool_, len(names))
    raw = np.fromiter(fib.scores.values(), np.float64, len(names))
    adjusted = _adjusted_scores(names, raw, incumbent, margin, evidence)

    def open_tables() -> npt.NDArray[np.bool_]:
        return np.array([t not in fib.full_tables for t in tables], np.bool_)

    table_ids = _table_ids(names, tables, fib.policy)
    stream = _Stream(adjusted, table_ids, open_tables())
    # tables no candidate can use (no IPv6 traffic, say) must not keep the loop going
    used = set(table_ids[stream.order].tolist())
    fib.full_tables.update(t for i, t in enumerate(tables) if i not in used)
    heap: list[_Entry] = []
    units: dict[str, dict[str, str]] = {}

    def entry(prefix: str, density: float, value: float) -> _Entry:
        rank = 0 if prefix in fib.incumbents else 1
        return (-density, rank, prefix_sort_key(prefix), prefix, value)

    while not fib.all_full():
        head = stream.head()
        if heap and (head is None or -heap[0][0] >= head):
            _, _, _, prefix, value = heapq.heappop(heap)
        elif head is not None:
            if stream.tied_with_next():
                # equal scores: let the heap order them by incumbency, then prefix order
                while stream.head() == head:
                    tied = names[stream.take()]
                    heapq.heappush(heap, entry(tied, head, head))
                continue
            prefix, value = names[stream.take()], head
        else:
            return
        if prefix in fib.routes or fib.policy.table_of(prefix) in fib.full_tables:
            continue
        next_hop = fib.next_hop_of(prefix)
        if next_hop is None:
            continue
        full_before = len(fib.full_tables)
        more_specifics = fib.rib.more_specifics(prefix)
        if not more_specifics:
            fib.install({prefix: next_hop}, prefix, "topn")  # the common case: a unit of one
        else:
            unit = units.get(prefix) or unit_of(prefix, next_hop, more_specifics, fib.next_hop_of)
            cost = fib.cost(unit)
            if fib.shortfall(cost):
                continue  # it never fits later: free room shrinks at least as fast as its cost
            density = value / sum(cost.values())
            waiting = max(-heap[0][0] if heap else 0.0, stream.head() or 0.0)
            if density < waiting:
                units[prefix] = unit  # the RIB does not change within a call: build it once
                heapq.heappush(heap, entry(prefix, density, value))
                continue
            fib.install(unit, prefix, "topn")
        if len(fib.full_tables) != full_before:
            stream.keep_tables(open_tables())


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
) -> Selection:
    """The routes one switch should hold at ``now``.

    ``scores``: decayed bytes/s per prefix (the collector's ``PrefixRates.scores``).
    ``incumbents``: the previous call's ``Selection.routes``; it carries ``since`` forward and
    drives the margin and the dwell time.
    ``evidence``: optional samples behind each score (a prefix missing has none); with it, a
    challenger must beat an incumbent beyond both their 95 % sampling intervals and the margin.
    """
    fib = _Fib(rib, policy, scores, incumbents or {}, now)
    pin_answers = _place_pins(fib, pins)
    request_answers = _place_requests(fib, requests, now)
    _keep_dwelling(fib, policy.min_dwell_s)
    _fill_topn(fib, policy.margin, evidence)
    return Selection(
        routes=fib.routes,
        requests=request_answers,
        pins=pin_answers,
        usage=dict(fib.usage),
        caps=dict(fib.caps),
    )
