"""TopN's fast lane: a run of candidates the lazy greedy would take one by one with nothing to
decide, placed in a few bulk passes instead.

In a steady FIB nearly every candidate is a unit of one (no more-specific of another exit) with
a key of its own (no tie) above anything waiting in the greedy's heap. For such a candidate the
greedy's verdict depends on nothing but the candidate itself, until a table runs out of room: it
skips a challenger entry of an incumbent (the incumbent's own entry speaks for it), a prefix
placed already, a full table, a prefix without a live path, and installs the rest in stream
order. Here that is dict look-ups by ``map`` and numpy over the run, not a Python loop.

A run stops where the greedy has something to decide: a tie (the heap orders ties), a key not
above the heap's best, a unit of more than one slot (cost, density, deferral), and a table's
free-th contender, past which the table may be full. The greedy takes over at that candidate;
same verdicts, same order, so the same :class:`~controller.selection_types.Selection`.
"""

from __future__ import annotations

from itertools import repeat
from operator import is_, is_not, itemgetter

import numpy as np

from controller.candidate_stream import CandidateStream, IntArray
from controller.fib_draft import FibDraft
from controller.selection_types import SelectedRoute, new_routes

# A shorter run goes one by one: the lane's fixed cost is a few dozen numpy calls.
RUN_MIN = 16
# First look-ahead of a run; it doubles while runs go the whole way.
RUN_START = 64

_next_hop_of, _unit_of = itemgetter(0), itemgetter(1)


def run_end(stream: CandidateStream, heap_best: float | None, limit: int) -> int:
    """End of the run from ``stream.position``: at most ``limit`` candidates, none tied with the
    next one, every key above ``heap_best`` (the greedy's heap takes a key it equals or beats)."""
    position = stream.position
    end = min(len(stream.order), position + limit)
    ties = stream.tie_starts
    first_tie = int(np.searchsorted(ties, position))
    if first_tie < len(ties):
        end = min(end, int(ties[first_tie]))
    if heap_best is not None:  # keys descend: the first one not above heap_best
        end = min(end, int(np.searchsorted(-stream.values_array, -heap_best, side="left")))
    return max(end, position)


def take_run(fib: FibDraft, stream: CandidateStream, end: int, challengers: int) -> int:
    """Place candidates from ``stream.position`` as the greedy would, up to ``end`` or the first
    one it must decide itself, where ``stream.position`` is left. Returns how many were taken.

    ``challengers``: entries from this index on are incumbents' entries.
    """
    start = stream.position
    indices = stream.order_array[start:end]
    prefixes = list(map(stream.entries.__getitem__, indices.tolist()))
    count = len(prefixes)
    incumbents = _incumbents(fib, stream, indices, prefixes, challengers)
    # the rest is looked up only for the entries that speak for their prefix: not a challenger
    # entry of an incumbent (which is about half of a steady FIB's run)
    no_incumbent = np.fromiter(map(is_, incumbents, repeat(None)), np.bool_, count)
    speaking = np.flatnonzero((indices >= challengers) | no_incumbent)
    table_ids = stream.ids(indices[speaking])
    speakers = [prefixes[i] for i in speaking.tolist()]
    placed = np.fromiter(map(fib.routes.__contains__, speakers), np.bool_, len(speaking))
    open_tables = np.array([table not in fib.full_tables for table in stream.tables], np.bool_)
    contending = ~placed & open_tables[table_ids]
    for table_id, table in enumerate(stream.tables):
        if open_tables[table_id]:  # past its free-th contender a table may be full
            of_table = np.flatnonzero(contending & (table_ids == table_id))
            free = fib.caps[table] - fib.usage[table]
            if len(of_table) > free:
                count = min(count, int(speaking[of_table[free]]))
    contenders = np.flatnonzero(contending & (speaking < count))
    chosen = speaking[contenders].tolist()
    answers = fib.cache.entries([prefixes[i] for i in chosen])
    units = map(_unit_of, answers)
    multi = np.flatnonzero(np.fromiter(map(is_not, units, repeat(None)), np.bool_, len(answers)))
    if len(multi):  # the greedy weighs a unit of several slots itself
        first = int(multi[0])
        count, chosen, answers, contenders = (
            chosen[first],
            chosen[:first],
            answers[:first],
            contenders[:first],
        )
    next_hops = list(map(_next_hop_of, answers))
    live = np.fromiter(map(is_not, next_hops, repeat(None)), np.bool_, len(next_hops))
    if live.any():
        installed = np.asarray(chosen, np.int64)[live].tolist()
        _install(
            fib,
            stream,
            [prefixes[i] for i in installed],
            [hop for hop in next_hops if hop is not None],
            [incumbents[i] for i in installed],
            indices[installed],
            table_ids[contenders[live]],
        )
    stream.position = start + count
    return count


def _incumbents(
    fib: FibDraft, stream: CandidateStream, indices: IntArray, prefixes: list[str], challengers: int
) -> list[SelectedRoute | None]:
    """The incumbent of each entry: at hand for an incumbent's entry, a look-up for the rest."""
    rival_routes = stream.rival_routes
    if rival_routes is None:
        return list(map(fib.incumbents.get, prefixes))
    get = fib.incumbents.get
    rival_at = (indices - challengers).tolist()  # ≥ 0: an incumbent's entry
    return [
        rival_routes[at] if at >= 0 else get(prefix) for at, prefix in zip(rival_at, prefixes, strict=True)
    ]


def _install(
    fib: FibDraft,
    stream: CandidateStream,
    prefixes: list[str],
    next_hops: list[str],
    incumbents: list[SelectedRoute | None],
    entry_indices: IntArray,
    table_ids: IntArray,
) -> None:
    """Install units of one that fit: :meth:`FibDraft.install_one` in bulk."""
    now = fib.now
    sinces = [now if incumbent is None else incumbent.since for incumbent in incumbents]
    scores = stream.raw[entry_indices].tolist()
    fib.routes.update(zip(prefixes, new_routes(prefixes, next_hops, "topn", sinces, scores), strict=True))
    for table_id, added in enumerate(np.bincount(table_ids, minlength=len(stream.tables)).tolist()):
        if added:
            table = stream.tables[table_id]
            fib.usage[table] += added
            if fib.usage[table] >= fib.caps[table]:
                fib.full_tables.add(table)
