"""The fast path of a new on-demand request: its prefix announced without waiting for a selection.

A request arriving between selections would otherwise wait for the next one (at 100k samples/s a
selection holds the event loop for tens of milliseconds, and is deferred while the switch is being
programmed). When it is safe, the controller announces the requested prefix at once; the next
selection has the request among its inputs and places it before TopN, so it keeps it. Safe means:

- the prefix has a live, usable path and no more-specific in the RIB (no-cache-hiding could need
  some of them installed with it: the full selection works that out);
- its table has room under the cap, counting everything the switch may hold, or one TopN route
  makes room: the one the next selection drops first (one outside its dwell time before one
  inside it, then the lowest score, then the last in prefix order). Never a pin, a request or a
  dependency, nor a route with more-specifics in the RIB (it may have dependencies) or inside
  another desired route (without it, its traffic would follow that cover). A TopN route a new
  request is served by is a request route from then on (in the fast path's copy of the selection,
  until the next selection), so never a victim either. While the switch itself is full (a
  programming run has yet to withdraw what the selection dropped), only an installed route makes
  room there: first one the selection dropped (withdrawn early, by the same checks; a TopN route
  still leaves the selection if that is full too, installed or not), else an installed TopN route.
  One the selection wanted but the switch does not hold frees no slot, and the announce would be
  trimmed to the cap (the request then waited for the next selection and its programming: half
  of bench.soak's requests did).

Anything else waits for the full selection. :class:`RequestFastPath` withdraws the routes making
room, and only once ExaBGP confirmed that announces the admitted prefixes (still trimmed to the caps);
if a selection was made meanwhile, only those it placed itself (it may have rejected the request).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from operator import attrgetter

from topfib.collector.common.prefixes import IPV4, V4_BITS, V6_BITS, split_prefix
from topfib.collector.rib.rib import Rib
from topfib.controller.program.plan import plan
from topfib.controller.selection.model import (
    OnDemandRequest,
    RequestAnswer,
    RibView,
    SelectedRoute,
    Selection,
    SelectionPolicy,
    new_route,
)
from topfib.controller.selection.observed_paths import ObservedPathRib
from topfib.controller.state.store import Store
from topfib.controller.switch.loop_metrics import _m_fast
from topfib.controller.switch.programmer import UNUSABLE_NEXT_HOPS, Programmer
from topfib.controller.switch.request_mirror import RequestMirror
from topfib.controller.switch.table_counts import TableCounts

log = logging.getLogger(__name__)

# More requests arriving between two iterations than this (a full read of the store): the
# request fast path leaves them all to the selection.
FAST_PATH_MAX_REQUESTS = 256


@dataclass(frozen=True, slots=True)
class FastPlan:
    """What the fast path may do now, and whether a new request is left to the full selection."""

    admitted: list[FastAdmission]
    left_to_selection: bool
    # TopN routes of the selection that new requests are served by: request routes from now on
    # (see RequestFastPath), never a later admission's victim before the next selection
    protected: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class FastAdmission:
    """A requested prefix to announce now, the TopN route it displaces from the selection, and
    the installed route the selection dropped already withdrawn to make room on a full switch."""

    prefix: str
    next_hop: str
    displaces: str | None
    frees: str | None = None


_SCORE = attrgetter("score")


class _RoutesIndex:
    """What the fast path asks of one selection's routes, built once per routes mapping and kept
    across fast admissions (each replaces a TopN route by a request): the (family, network,
    length) of every prefix, so whether a prefix lies inside one of them is a few integer masks
    (formatting each supernet as a string cost ~50 µs a candidate), and the TopN routes lowest
    score first (ties: the last prefix first), so the drop order is a filter, not a sort per
    admission. A full table's admissions held the event loop for tens of ms without them."""

    def __init__(self) -> None:
        self._routes: Mapping[str, SelectedRoute] | None = None
        self.keys: set[tuple[int, int, int]] = set()
        self.topn_by_score: list[SelectedRoute] = []
        self._tables = TableCounts()

    def used(self, policy: SelectionPolicy) -> dict[str, int]:
        """Routes per FIB table under ``policy`` (whether /24s have a table of their own)."""
        return self._tables.under(policy)

    def of(self, routes: Mapping[str, SelectedRoute]) -> _RoutesIndex:
        if routes is not self._routes:  # after each selection: the first admission waits for it
            keyed = {prefix: split_prefix(prefix) for prefix in routes}  # prefix_sort_key's order too
            self.keys = set(keyed.values())
            topn = [route for route in routes.values() if route.reason == "topn"]
            topn.sort(key=lambda route: keyed[route.prefix], reverse=True)
            topn.sort(key=_SCORE)
            self.topn_by_score = topn
            self._tables = TableCounts(routes)
            self._routes = routes
        return self

    def follow(self, old: Mapping[str, SelectedRoute], new: Mapping[str, SelectedRoute],
               removed: Collection[str], added: Collection[str], retagged: Collection[str] = ()) -> None:
        """``new`` is ``old`` less ``removed`` plus ``added``, requests (a fast admission), with
        ``retagged`` TopN routes now request routes. Not so when a selection made during the
        admission's awaits is ``old`` (it placed the request itself, or no longer had the victim):
        then rebuilt when next asked, never miscounted."""
        if old is not self._routes:
            return
        if (any(prefix not in old for prefix in removed) or any(prefix in old for prefix in added)
                or any(prefix not in old for prefix in retagged)):
            self._routes = None
        else:
            self.keys.difference_update(map(split_prefix, removed))
            self.keys.update(map(split_prefix, added))
            gone = set(removed).union(retagged)
            self.topn_by_score = [route for route in self.topn_by_score if route.prefix not in gone]
            self._tables.remove(removed)
            self._tables.add(added)
            self._routes = new


def _inside_another(prefix: str, keys: set[tuple[int, int, int]]) -> bool:
    """Whether a shorter prefix holding ``prefix`` is among ``keys`` (see :class:`_RoutesIndex`)."""
    family, network, length = split_prefix(prefix)
    bits = V4_BITS if family == IPV4 else V6_BITS
    for shorter in range(length):
        mask = ((1 << shorter) - 1) << (bits - shorter)
        if (family, network & mask, shorter) in keys:
            return True
    return False


def _drop_order(index: _RoutesIndex, policy: SelectionPolicy, now: float) -> Iterator[SelectedRoute]:
    """The selection's TopN routes (installed or still to be) in the order the next selection
    would drop them (first: first dropped): one outside its dwell time before one inside it, then
    the lowest score, then the last prefix. Lazily: the first usually makes room, and a full
    table's thousand routes cost a fifth of a millisecond to partition per admission."""
    dwell = policy.min_dwell_s
    yield from (route for route in index.topn_by_score if now - route.since >= dwell)
    yield from (route for route in index.topn_by_score if now - route.since < dwell)


def _displaceable(prefix: str, keys: set[tuple[int, int, int]], rib: RibView) -> bool:
    """Withdrawing ``prefix`` alone hides nothing and leaves no dependency behind (``keys``: the
    routes', see :class:`_RoutesIndex`)."""
    return not _inside_another(prefix, keys) and not rib.more_specifics(prefix)


def fast_admissions(
    requests: Iterable[OnDemandRequest],
    routes: Mapping[str, SelectedRoute],
    held: Collection[str],
    rib: RibView,
    policy: SelectionPolicy,
    now: float,
    unusable: Collection[str] = (),
    answered: Collection[str] = (),
    routes_index: _RoutesIndex | None = None,
    installed: Collection[str] | None = None,
    held_counts: TableCounts | None = None,
) -> FastPlan:
    """The requests of ``requests`` that may be installed at once, newest first.

    ``routes``: the last selection's desired FIB (requests in it are answered already);
    ``held``: what the switch may hold from topfib (installed and stale); ``now``: wall clock;
    ``answered``: the addresses the last selection answered (a new request is none of them);
    ``routes_index``: kept by the caller across calls on the same ``routes``;
    ``installed``: the held prefixes a withdraw removes (None: all of them; not the stale ones);
    ``held_counts``: ``held`` per table, as the programmer keeps them (None: counted here).
    """
    caps = policy.caps()
    withdrawable = held if installed is None else installed
    # The room taken: what the switch may hold and what the selection wants, which a programming
    # run under way may not have installed yet (its room is spoken for); and what the switch may
    # hold alone (a victim it does not hold makes no room there).
    index = (routes_index or _RoutesIndex()).of(routes)
    used, wanted = index.used(policy), index.used(policy)
    on_switch = (held_counts or TableCounts(held)).under(policy)
    for held_prefix in held:
        if held_prefix not in routes:
            held_table = policy.table_of(held_prefix)
            used[held_table] = used.get(held_table, 0) + 1
    admitted: list[FastAdmission] = []
    seen: set[str] = set()
    left = False
    active = [request for request in requests if request.expires_at > now]
    active.sort(key=lambda r: (-r.created_at, r.ip, r.request_id))  # the order selection places them
    covering = [(request, _covering(rib, request.ip)) for request in active]
    # a TopN route a new request is served by stays: never a victim, whichever request came first
    protected = frozenset(prefix for _, prefix in covering
                          if prefix is not None and prefix in routes and routes[prefix].reason == "topn")
    # and the victims of earlier admissions in this call, and what a new request is served by
    spoken_for = set(protected).union(prefix for _, prefix in covering if prefix is not None)
    dropped: list[str] | None = None  # installed, no longer selected: the next run withdraws them
    for request, prefix in covering:
        if prefix is not None and (prefix in routes or prefix in seen):
            continue
        new = request.ip not in answered
        best = rib.best(prefix) if prefix is not None else None
        if prefix is None or best is None or best.next_hop in unusable or rib.more_specifics(prefix):
            left |= new
            continue
        displaces: str | None = None
        frees: str | None = None
        table = policy.table_of(prefix)
        if prefix not in held:  # a held (stale) prefix is replaced in place
            cap = caps.get(table, 0)
            if used.get(table, 0) < cap:
                used[table] = used.get(table, 0) + 1
                on_switch[table] = on_switch.get(table, 0) + 1
            else:
                switch_full = on_switch.get(table, 0) >= cap
                if switch_full:  # a dropped route makes room there before a wanted one
                    if dropped is None:
                        dropped = sorted(p for p in withdrawable if p not in routes)
                    frees = next((p for p in dropped if p not in spoken_for and policy.table_of(p) == table
                                  and _displaceable(p, index.keys, rib)), None)
                if frees is None or wanted.get(table, 0) >= cap:  # the selection has no room either
                    # checked lazily: a RIB look-up per candidate, and the first usually qualifies
                    victim = next((r for r in _drop_order(index, policy, now) if r.prefix not in spoken_for
                                   and policy.table_of(r.prefix) == table
                                   and (not switch_full or frees is not None or r.prefix in withdrawable)
                                   and _displaceable(r.prefix, index.keys, rib)), None)
                    if victim is None:
                        left |= new
                        continue
                    displaces = victim.prefix
                    spoken_for.add(displaces)
                    if displaces in withdrawable:  # the victim makes the room on the switch
                        frees = None
                    elif frees is None:  # the switch takes one more
                        on_switch[table] = on_switch.get(table, 0) + 1
                    else:
                        used[table] -= 1  # the victim, the freed route out, the request in
                if frees is not None:
                    spoken_for.add(frees)
        if displaces is None:  # the selection's copy takes one more
            wanted[table] = wanted.get(table, 0) + 1
        seen.add(prefix)
        admitted.append(FastAdmission(prefix, best.next_hop, displaces, frees))
    return FastPlan(admitted, left, protected)


def _covering(rib: RibView, ip: str) -> str | None:
    try:
        return rib.longest_match(ip)
    except ValueError:
        return None


class RequestFastPath:
    """New requests' prefixes announced between selections where that is safe (event loop only)."""

    def __init__(
        self,
        name: str,
        programmer: Programmer,
        requests: RequestMirror,
        store: Store,
        rib_lock: threading.Lock,
        route_view: ObservedPathRib | Rib,
        *,
        selection: Callable[[], Selection | None],
        set_selection: Callable[[Selection], None],
        may_admit: Callable[[], bool],
        ready_to_program: Callable[[], bool],
        policy: Callable[[], SelectionPolicy],
        refresh_policy: Callable[[], Awaitable[SelectionPolicy]],
        wall_clock: Callable[[], float],
    ) -> None:
        self._name = name
        self._programmer = programmer
        self._requests = requests
        self._store = store
        self._rib_lock = rib_lock
        self._route_view = route_view
        self._selection = selection
        self._set_selection = set_selection
        self._may_admit = may_admit  # no carried FIB, the table complete, no burst settling
        self._ready_to_program = ready_to_program
        self._policy = policy
        self._refresh_policy = refresh_policy
        self._wall_clock = wall_clock
        # the addresses the last selection answered (see fast_admissions)
        self._answered: tuple[tuple[RequestAnswer, ...], frozenset[str]] = ((), frozenset())
        self._routes_index = _RoutesIndex()
        self._admitting = asyncio.Lock()  # the request task and the control loop's tick both admit

    def selected(self, selection: Selection) -> None:
        """A selection was made: index it now rather than in the first admission after it (~1 ms
        of event loop for 1,000 routes, on that request's way)."""
        self._routes_index.of(selection.routes)
        self._answered_by(selection)

    def _answered_by(self, selection: Selection) -> frozenset[str]:
        answers = selection.requests
        if self._answered[0] is not answers:  # once per selection, not per request
            self._answered = (answers, frozenset(answer.ip for answer in answers))
        return self._answered[1]

    async def admit_as_they_arrive(self, arrived: asyncio.Event, wake: Callable[[], None]) -> None:
        """Admit whenever ``arrived`` is set (the API stored a request), not at the control loop's
        next tick, which may be busy selecting and programming for tens of ms; what is left to the
        selection calls ``wake`` (the loop's next iteration now), what is all taken lets the
        selection keep its period."""
        while True:
            await arrived.wait()
            arrived.clear()
            try:
                if not await self.admit():
                    wake()
            except Exception:  # the task must outlive one bad batch; the loop's tick retries
                log.exception("switch %s: the request fast path failed", self._name)
                wake()

    async def admit(self) -> bool:
        """New requests' prefixes announced now where that is safe, the rest left to the
        selection that follows. True when new requests arrived and none was left to the
        selection (each announced, or placed by the current selection already), which then need
        not run before its period."""
        async with self._admitting:
            return await self._admit()

    async def _admit(self) -> bool:
        if self._selection() is None or not self._may_admit():
            return False
        wall_now = self._wall_clock()
        await self._requests.update(self._store, wall_now)
        requests = self._requests.take_arrived(FAST_PATH_MAX_REQUESTS)
        if not requests:  # the common tick: no store read of the overrides for nothing
            return False
        await self._refresh_policy()  # a cap lowered since the last selection holds
        programmer = self._programmer
        async with programmer.lock:
            selection = self._selection()
            if selection is None or not self._ready_to_program():
                return False
            if not await programmer.forget_announced_locked():
                return False
            held, held_counts = programmer.held_counted()  # its per-table counts, not recounted
            with self._rib_lock:
                fast = fast_admissions(requests, selection.routes, held, self._route_view,
                                       self._policy(), wall_now, UNUSABLE_NEXT_HOPS,
                                       self._answered_by(selection), self._routes_index, programmer.installed,
                                       held_counts)
            admitted = fast.admitted
            if not admitted:  # none to announce: the selection is needed only for what it was left
                # (a request the current selection placed already needs none: 25 a second in
                # bench.soak once selections read the mirror as they run)
                self._commit(selection, (), (), fast.protected, wall_now)
                return not fast.left_to_selection
            installed = programmer.installed
            # a victim the selection wanted but a programming run has not installed yet leaves the
            # selection only: nothing to withdraw
            victims = {a.displaces for a in admitted if a.displaces is not None}
            freed = {a.frees for a in admitted if a.frees is not None}
            displaced = {victim: installed[victim] for victim in victims | freed if victim in installed}
            changes = plan({a.prefix: a.next_hop for a in admitted}, displaced)
            withdraws = [step for step in changes.steps if step.action == "withdraw"]
            # withdraws confirmed before any announce: the switch never holds more than the cap
            if withdraws and not await programmer.send_steps(withdraws):
                return False
            current = self._selection()
            assert current is not None
            if current is selection:
                self._commit(selection, victims, admitted, fast.protected, wall_now)
            else:  # a selection made during the withdraw decided without this plan (it may have
                # rejected a request for new pins): announce only what it placed, as it placed it
                changes = plan({a.prefix: current.routes[a.prefix].next_hop for a in admitted
                                if a.prefix in current.routes}, {})
            announces = programmer.within_caps([step for step in changes.steps if step.action == "announce"])
            if not announces or not await programmer.send_steps(announces):
                return False
            _m_fast.inc(sum(len(step.prefixes) for step in announces), switch=self._name)
            return not fast.left_to_selection and all(a.prefix in programmer.installed for a in admitted)

    def _commit(self, selection: Selection, victims: Collection[str], admitted: Collection[FastAdmission],
                protected: Collection[str], now: float) -> None:
        """The selection as the fast path leaves it, the next selection's incumbents: ``victims``
        out, ``admitted`` in, and the TopN routes new requests are served by (``protected``) made
        request routes, so no admission takes them as victims before the next selection."""
        retagged = [prefix for prefix in protected if selection.routes[prefix].reason == "topn"]
        if not victims and not admitted and not retagged:
            return
        routes = dict(selection.routes)  # a copy in C: a comprehension cost 0.3 ms a request
        for victim in victims:
            routes.pop(victim, None)
        for prefix in retagged:
            routes[prefix] = routes[prefix]._replace(reason="request")
        for admission in admitted:  # the score is the next selection's to fill in
            routes[admission.prefix] = new_route(admission.prefix, admission.next_hop, "request", now, 0.0)
        self._routes_index.follow(selection.routes, routes, victims, [a.prefix for a in admitted], retagged)
        self._set_selection(replace(selection, routes=routes))
