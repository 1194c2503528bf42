"""TopN: fill the room pins, requests and dwelling incumbents left, best contest key per route slot.

Contest keys. A challenger competes with its score, an incumbent with its score raised by the
margin, so a challenger must beat it by the margin. With ``evidence`` (the samples behind each
score) a challenger competes with the lower end of its 95 % sampling interval and an incumbent
with the upper end: sampling noise alone does not swap two prefixes, which the margin cannot
promise near a large cap, where neighbouring ranks differ by less than their noise. And only a
challenger with ``evidence_min_samples`` behind it contests at all: in a Zipf tail every prefix
has a handful of samples, and the luckiest of a hundred thousand challengers beats the unluckiest
of thirty thousand incumbents by any normal-approximation interval, every loop.

Lazy greedy. Candidates come out of a stream in descending key order; a candidate whose unit
(:mod:`controller.closure`) takes more than one slot is worth its key per slot, which its key
bounds from above, so it waits in a heap until that density is the best on offer. Units are
only built for candidates that reach the top: a 200k-score call touches the RIB for about as
many prefixes as fit. The stream sorts only what is needed (partial sorts in growing chunks),
and an incumbent is a second entry with its own key rather than a flag looked up per score, so
the 200k scores cost numpy work only. Equal keys are ordered by the heap, incumbents first, then
prefix order, so the result does not depend on mapping order (active and standby agree).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from controller.fib_draft import FibDraft
from controller.selection_types import TABLE_IPV4, TABLE_IPV4_24, TABLE_IPV6, SelectionPolicy, new_route

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# heap entry: (-key, 0 for an incumbent / 1 for a challenger, prefix order, prefix, is the key
# already per slot (a unit's density) rather than the candidate's own)
_Entry = tuple[float, int, tuple[int, int, int], str, bool]
_Push = Callable[[str, float, bool, bool], None]


def contest_keys(
    raw: FloatArray, samples: FloatArray | None, incumbent: bool, policy: SelectionPolicy
) -> FloatArray:
    """What candidates compete on (see the module doc); ``samples`` None: no evidence."""
    margin = policy.margin
    if samples is None:
        return raw * (1.0 + margin) if incumbent else raw
    spread = policy.evidence_z / np.sqrt(np.maximum(samples, 1e-12))
    if incumbent:
        return raw * (1.0 + spread) * (1.0 + margin)
    lower = raw * np.clip(1.0 - spread, 0.0, None)
    return np.where(samples >= policy.evidence_min_samples, lower, 0.0)


def _samples(names: list[str], evidence: Mapping[str, float] | None) -> FloatArray | None:
    """Evidence per name (0 where missing); one numpy pass when it is in the order of ``names``."""
    if evidence is None:
        return None
    if len(evidence) == len(names) and list(evidence) == names:
        return np.fromiter(evidence.values(), np.float64, len(names))
    return np.array([evidence.get(p, 0.0) for p in names], np.float64)


def _table_ids(entries: list[str], indices: list[int], tables: list[str]) -> IntArray:
    """Index into ``tables`` of the table of each ``entries[i]``: :meth:`SelectionPolicy.table_of`
    in one pass (each name is a cache miss: looked at once)."""
    v4, v6 = tables.index(TABLE_IPV4), tables.index(TABLE_IPV6)
    names = map(entries.__getitem__, indices)
    if TABLE_IPV4_24 in tables:
        v24 = tables.index(TABLE_IPV4_24)
        ids = [v6 if ":" in p else v24 if p.endswith("/24") else v4 for p in names]
    else:
        ids = [v6 if ":" in p else v4 for p in names]
    return np.array(ids, np.int64)


class _Stream:
    """Candidate indices by descending key, sorted a chunk at a time; full tables drop out.

    A candidate's table is only worked out (a look at its name) when a table fills and the rest
    of the stream must be filtered: touching 200k scattered strings is the costliest thing a
    selection can do, so it is done at most once per filling table, on what is left.
    """

    def __init__(
        self,
        keys: FloatArray,
        raw: FloatArray,
        candidates: IntArray,
        entries: list[str],
        policy: SelectionPolicy,
        chunk: int,
    ) -> None:
        self.keys = keys
        self.raw = raw  # each entry's own score, for its route
        self.entries = entries
        self.policy = policy
        self.tables = list(policy.caps())
        self.table_ids = np.full(len(keys), -1, np.int64)  # per entry; -1: not worked out yet
        self.remaining = candidates
        self.chunk = max(chunk, 256)
        self.order: list[int] = []
        self.values: list[float] = []
        self.raws: list[float] = []
        self.position = 0

    def _refill(self) -> None:
        rest = self.remaining
        rest_keys = self.keys[rest]
        if len(rest) > self.chunk:
            kth = len(rest) - self.chunk
            threshold = np.partition(rest_keys, kth)[kth]
            upper = rest_keys >= threshold  # all ties with the threshold: no tie spans two chunks
            taken, taken_keys, self.remaining = rest[upper], rest_keys[upper], rest[~upper]
        else:
            taken, taken_keys, self.remaining = rest, rest_keys, rest[:0]
        ordering = np.argsort(-taken_keys)
        self.order = taken[ordering].tolist()
        self.values = taken_keys[ordering].tolist()
        self.raws = self.raw[taken[ordering]].tolist()
        self.position = 0
        self.chunk *= 2  # a long tail is sorted in few pieces

    def head(self) -> float | None:
        if self.position == len(self.order):
            if not len(self.remaining):
                return None
            self._refill()
        return self.values[self.position]

    def take(self) -> int:
        self.position += 1
        return self.order[self.position - 1]

    def _ids(self, indices: IntArray) -> IntArray:
        unknown = indices[self.table_ids[indices] < 0]
        if len(unknown):
            self.table_ids[unknown] = _table_ids(self.entries, unknown.tolist(), self.tables)
        return self.table_ids[indices]

    def keep_tables(self, full_tables: set[str]) -> None:
        """Drop the candidates of ``full_tables``."""
        open_tables = np.array([t not in full_tables for t in self.tables], np.bool_)
        rest = np.array(self.order[self.position :], np.int64)
        kept = rest[open_tables[self._ids(rest)]]
        self.order = kept.tolist()
        self.values = self.keys[kept].tolist()
        self.raws = self.raw[kept].tolist()
        self.position = 0
        self.remaining = self.remaining[open_tables[self._ids(self.remaining)]]


def fill_topn(fib: FibDraft, evidence: Mapping[str, float] | None) -> None:
    """Fill ``fib``'s free room by contest key, incumbents protected by margin and evidence.

    With evidence, room the contest leaves (too few candidates whose lower bound is above zero)
    goes to TopN incumbents without traffic first, then to the rest by score: neither side is
    distinguishable from zero, so the one in place stays. A former request or pin without
    traffic is not kept this way: its time was up.
    """
    names = list(fib.scores)
    raw = np.fromiter(fib.scores.values(), np.float64, len(names))
    # incumbents not placed yet get a second entry with the incumbent's key
    rivals = [p for p in fib.incumbents if p not in fib.routes]
    rival_raw = np.array([fib.scores.get(p, 0.0) for p in rivals], np.float64)
    rival_samples = None if evidence is None else np.array([evidence.get(p, 0.0) for p in rivals])
    challenger_keys = contest_keys(raw, _samples(names, evidence), False, fib.policy)
    keys = np.concatenate((challenger_keys, contest_keys(rival_raw, rival_samples, True, fib.policy)))
    _fill(fib, keys, np.concatenate((raw, rival_raw)), names + rivals, len(names))
    if evidence is not None and not fib.all_full():
        # only TopN incumbents: a request or pin that ended must leave (its TTL was the promise)
        idle = [
            p for p, score in zip(rivals, rival_raw.tolist(), strict=True)
            if not score > 0.0 and fib.incumbents[p].reason == "topn"
        ]
        _fill(fib, np.ones(len(idle)), np.zeros(len(idle)), idle, 0)
        _fill(fib, np.where(challenger_keys > 0.0, 0.0, raw), raw, names, len(names))


def _fill(fib: FibDraft, keys: FloatArray, raw: FloatArray, entries: list[str], challengers: int) -> None:
    """Place ``entries`` (challengers, then incumbents from index ``challengers``) by ``keys``;
    a key of 0 or less is no candidate. ``raw``: each entry's score."""
    candidates = np.flatnonzero(keys > 0.0)
    if not len(candidates) or fib.all_full():
        return
    free = max(fib.caps[t] - fib.usage[t] for t in fib.caps if t not in fib.full_tables)
    stream = _Stream(keys, raw, candidates, entries, fib.policy, 2 * free + 64)
    if fib.full_tables:
        stream.keep_tables(fib.full_tables)
    _greedy(fib, stream, entries, challengers)


def _greedy(
    fib: FibDraft,
    stream: _Stream,
    entries: list[str],
    challengers: int,
) -> None:
    """The lazy greedy. The hot loop runs once per candidate over the stream's current chunk, so
    the stream's position lives in locals, written back before anything else touches the stream;
    and it looks each candidate up as few times as it can (every look-up is a cache miss)."""
    heap: list[_Entry] = []
    incumbents, routes, full_tables, scores = fib.incumbents, fib.routes, fib.full_tables, fib.scores
    caps, usage, now, table_count = fib.caps, fib.usage, fib.now, len(fib.caps)
    table_of, cache_entry, sort_key = fib.policy.table_of, fib.cache.entry, fib.cache.sort_key

    def push(prefix: str, key: float, is_incumbent: bool, per_slot: bool) -> None:
        heapq.heappush(heap, (-key, 0 if is_incumbent else 1, sort_key(prefix), prefix, per_slot))

    def sync() -> tuple[list[int], list[float], list[float], int]:
        return stream.order, stream.values, stream.raws, stream.position

    order, values, raws, position = sync()
    while len(full_tables) < table_count:
        if position == len(order):
            stream.position = position
            head = stream.head()  # the next chunk, if any
            order, values, raws, position = sync()
        else:
            head = values[position]
        per_slot = False
        if heap and (head is None or -heap[0][0] >= head):
            if head is not None and -heap[0][0] == head:
                stream.position = position
                _push_tied(stream, head, entries, challengers, incumbents, push)
                order, values, raws, position = sync()
            entry = heapq.heappop(heap)
            key, prefix, is_incumbent, per_slot = -entry[0], entry[3], entry[1] == 0, entry[4]
            incumbent = incumbents.get(prefix)
            raw = float(scores.get(prefix, 0.0))
        elif head is None:
            return
        elif position + 1 < len(order) and values[position + 1] == head:
            stream.position = position
            _push_tied(stream, head, entries, challengers, incumbents, push)  # the heap orders them
            order, values, raws, position = sync()
            continue
        else:
            index, raw = order[position], raws[position]
            position += 1
            key, prefix, is_incumbent = head, entries[index], index >= challengers
            incumbent = incumbents.get(prefix)
            if incumbent is not None and not is_incumbent:
                continue  # its incumbent entry, with the higher key, speaks for it
        if prefix in routes:
            continue
        table = table_of(prefix)
        if table in full_tables:
            continue
        next_hop, unit = cache_entry(prefix)
        if next_hop is None:
            continue
        full_before = len(full_tables)
        if unit is None:  # the common case, a unit of one: FibDraft.install_one, inlined
            since = incumbent.since if incumbent is not None else now
            routes[prefix] = new_route(prefix, next_hop, "topn", since, raw)
            usage[table] += 1
            if usage[table] >= caps[table]:
                full_tables.add(table)
        else:
            cost = fib.cost(unit)
            if fib.shortfall(cost):
                continue  # it never fits later: free room shrinks at least as fast as its cost
            size = sum(cost.values())
            if not per_slot and size > 1:
                density = key / size
                stream.position = position
                waiting = max(-heap[0][0] if heap else 0.0, stream.head() or 0.0)
                order, values, raws, position = sync()
                if density < waiting:
                    push(prefix, density, is_incumbent, True)
                    continue
            fib.install(unit, prefix, "topn")
        if len(full_tables) != full_before:
            stream.position = position
            stream.keep_tables(full_tables)
            order, values, raws, position = sync()


def _push_tied(
    stream: _Stream,
    head: float,
    entries: list[str],
    challengers: int,
    incumbents: Mapping[str, object],
    push: _Push,
) -> None:
    """Move every stream candidate keyed ``head`` to the heap, which orders equal keys."""
    while stream.head() == head:
        index = stream.take()
        prefix = entries[index]
        if index >= challengers:
            push(prefix, head, True, False)
        elif prefix not in incumbents:
            push(prefix, head, False, False)
