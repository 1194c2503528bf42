"""TopN: fill the room pins, requests and dwelling incumbents left, best contest key per route slot.

Contest keys. A challenger competes with its score, an incumbent with its score raised by the
margin, so a challenger must beat it by the margin. With ``evidence`` (the samples behind each
score) a challenger competes with the lower end of its 95 % sampling interval and an incumbent
with the upper end: sampling noise alone does not swap two prefixes, which the margin cannot
promise near a large cap, where neighbouring ranks differ by less than their noise. And only a
challenger with ``evidence_min_samples`` behind it contests at all: in a Zipf tail every prefix
has a handful of samples, and the luckiest of a hundred thousand challengers beats the unluckiest
of thirty thousand incumbents by any normal-approximation interval, every loop. An incumbent with
fewer samples than that competes with its score (and the margin), not its upper end: the first
fill after a start is made of such thin prefixes, and with the benefit of their wide intervals
the lucky ones among them held out for hours against challengers with real evidence (measured
on the full table at N = 30k: still 13 % of N per hour swapped after 70 minutes, 4 % without).

Swap gain. An incumbent with traffic also gets ``min_swap_gain`` × the average TopN incumbent's
score added to its key: a swap must gain that much traffic to be worth two BGP updates. Where
the boundary is thin (Zipf α = 1.4 at N = 16k: ~20 samples behind a boundary prefix's score)
the unluckiest of thousands of incumbents always trails the luckiest challenger by more than any
interval, and the two traded places hundreds of times an hour for next to no traffic (measured on
the same traffic, third hour from a cold start: 18 % of N per hour without the floor, 8.7 % with
1 %, 0.9 % with 3 %). Each slot gives up at most that share of the average, so the FIB at most
that share of its traffic.

Lazy greedy. Candidates come out of a stream in descending key order; a candidate whose unit
(:mod:`topfib.controller.selection.closure`) takes more than one slot is worth its key per slot, which its key
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

from topfib.controller.selection.candidate_stream import CandidateStream
from topfib.controller.selection.fib_draft import FibDraft
from topfib.controller.selection.model import SelectedRoute, SelectionPolicy
from topfib.controller.selection.name_kinds import NameKinds

FloatArray = npt.NDArray[np.float64]

# heap entry: (-key, 0 for an incumbent / 1 for a challenger, prefix order, prefix, is the key
# already per slot (a unit's density) rather than the candidate's own)
_Entry = tuple[float, int, tuple[int, int, int], str, bool]
_Push = Callable[[str, float, bool, bool], None]


def contest_keys(
    raw: FloatArray, samples: FloatArray | None, incumbent: bool, policy: SelectionPolicy
) -> FloatArray:
    """What candidates compete on (see the module doc); ``samples`` None: no evidence.

    For incumbents ``raw`` holds every TopN incumbent still to place: their average sets the swap gain."""
    margin = policy.margin
    if samples is None:
        if not incumbent:
            return raw
        keys = raw * (1.0 + margin)
    else:
        spread = policy.evidence_z / np.sqrt(np.maximum(samples, 1e-12))
        enough = samples >= policy.evidence_min_samples
        if not incumbent:
            lower = raw * np.clip(1.0 - spread, 0.0, None)
            return np.where(enough, lower, 0.0)
        keys = raw * np.where(enough, 1.0 + spread, 1.0) * (1.0 + margin)
    if len(raw) and policy.min_swap_gain > 0:
        # only an incumbent with traffic: one without keeps its slot only as fill-in (fill_topn)
        keys += np.where(raw > 0.0, policy.min_swap_gain * float(raw.mean()), 0.0)
    return keys


def _samples(names: list[str], evidence: Mapping[str, float] | None) -> FloatArray | None:
    """Evidence per name (0 where missing); one numpy pass when it is in the order of ``names``."""
    if evidence is None:
        return None
    if len(evidence) == len(names) and list(evidence) == names:
        return np.fromiter(evidence.values(), np.float64, len(names))
    return np.array([evidence.get(p, 0.0) for p in names], np.float64)


def _per_rival(
    per_name: FloatArray, at: npt.NDArray[np.int64], rivals: list[str], by_name: Mapping[str, float]
) -> FloatArray:
    """``by_name`` of each rival (0 where missing): ``per_name`` where the rival was found among
    the names (``at`` ≥ 0), a look-up for the rest."""
    values = per_name[np.maximum(at, 0)] if len(per_name) else np.zeros(len(at))
    for i in np.flatnonzero(at < 0).tolist():
        values[i] = by_name.get(rivals[i], 0.0)
    return values


def fill_topn(fib: FibDraft, evidence: Mapping[str, float] | None) -> None:
    """Fill ``fib``'s free room by contest key, incumbents protected by margin and evidence.

    With evidence, room the contest leaves (too few candidates whose lower bound is above zero)
    goes to TopN incumbents without traffic first, then to the rest by score: neither side is
    distinguishable from zero, so the one in place stays. A former request or pin without
    traffic is not kept this way: its time was up.
    """
    names = list(fib.scores)
    raw = np.fromiter(fib.scores.values(), np.float64, len(names))
    samples = _samples(names, evidence)
    # incumbents not placed yet get a second entry with the incumbent's key
    incumbents, incumbent_routes = list(fib.incumbents), list(fib.incumbents.values())
    where = fib.cache.name_positions.positions(names, incumbents)  # -1: not found by identity
    rival = np.flatnonzero(~np.fromiter(map(fib.routes.__contains__, incumbents), np.bool_, len(incumbents)))
    rivals = [incumbents[i] for i in rival.tolist()]
    rival_at = where[rival]
    rival_raw = _per_rival(raw, rival_at, rivals, fib.scores)
    rival_samples = None
    if evidence is not None and samples is not None:
        rival_samples = _per_rival(samples, rival_at, rivals, evidence)
    challenger_keys = contest_keys(raw, samples, False, fib.policy)
    # an incumbent's challenger entry never counts (its incumbent entry speaks for it): those
    # found by identity leave the contest here, the rest are skipped where they come up
    contending = challenger_keys.copy()
    contending[where[where >= 0]] = 0.0
    keys = np.concatenate((contending, contest_keys(rival_raw, rival_samples, True, fib.policy)))
    rival_routes = [incumbent_routes[i] for i in rival.tolist()]
    _fill(fib, keys, np.concatenate((raw, rival_raw)), names + rivals, len(names), fib.cache.name_kinds,
          rival_routes)
    if evidence is not None and not fib.all_full():
        # only TopN incumbents: a request or pin that ended must leave (its TTL was the promise)
        idle = [
            p for p, score in zip(rivals, rival_raw.tolist(), strict=True)
            if not score > 0.0 and fib.incumbents[p].reason == "topn"
        ]
        _fill(fib, np.ones(len(idle)), np.zeros(len(idle)), idle, 0)
        _fill(fib, np.where(challenger_keys > 0.0, 0.0, raw), raw, names, len(names))


def _fill(
    fib: FibDraft,
    keys: FloatArray,
    raw: FloatArray,
    entries: list[str],
    challengers: int,
    kinds: NameKinds | None = None,
    rival_routes: list[SelectedRoute] | None = None,
) -> None:
    """Place ``entries`` (challengers, then incumbents from index ``challengers``) by ``keys``;
    a key of 0 or less is no candidate. ``raw``: each entry's score. ``rival_routes``: the
    incumbent of each entry from ``challengers`` on, when the caller has them at hand."""
    candidates = np.flatnonzero(keys > 0.0)
    if not len(candidates) or fib.all_full():
        return
    free = max(fib.caps[t] - fib.usage[t] for t in fib.caps if t not in fib.full_tables)
    stream = CandidateStream(keys, raw, candidates, entries, fib.policy, 2 * free + 64, kinds)
    if fib.full_tables:
        stream.keep_tables(fib.full_tables)
    _greedy(fib, stream, entries, challengers, rival_routes)


def _greedy(
    fib: FibDraft,
    stream: CandidateStream,
    entries: list[str],
    challengers: int,
    rival_routes: list[SelectedRoute] | None,
) -> None:
    """The lazy greedy. The hot loop runs once per candidate over the stream's current chunk, so
    the stream's position lives in locals, written back before anything else touches the stream;
    and it looks each candidate up as few times as it can (every look-up is a cache miss)."""
    heap: list[_Entry] = []
    incumbents, routes, full_tables, scores = fib.incumbents, fib.routes, fib.full_tables, fib.scores
    caps, usage, now, table_count = fib.caps, fib.usage, fib.now, len(fib.caps)
    table_of, cache_entry, sort_key = fib.policy.table_of, fib.cache.entry, fib.cache.sort_key
    new_tuple = tuple.__new__

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
            if is_incumbent and rival_routes is not None:
                incumbent = rival_routes[index - challengers]  # at hand: no look-up
            else:
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
            routes[prefix] = new_tuple(SelectedRoute, (prefix, next_hop, "topn", since, raw))  # new_route
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
    stream: CandidateStream,
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
