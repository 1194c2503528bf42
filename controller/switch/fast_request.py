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
  another desired route (without it, its traffic would follow that cover).

Anything else waits for the full selection. The caller withdraws the routes making room, and only
once ExaBGP confirmed that announces the admitted prefixes (still trimmed to the caps).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from topfib.controller.selection.closure import prefix_sort_key
from topfib.controller.selection.model import OnDemandRequest, RibView, SelectedRoute, SelectionPolicy


@dataclass(frozen=True, slots=True)
class FastPlan:
    """What the fast path may do now, and whether a new request is left to the full selection."""

    admitted: list[FastAdmission]
    left_to_selection: bool


@dataclass(frozen=True, slots=True)
class FastAdmission:
    """A requested prefix to announce now, and the TopN route withdrawn first to make room."""

    prefix: str
    next_hop: str
    displaces: str | None


def _inside_another(prefix: str, routes: Mapping[str, SelectedRoute]) -> bool:
    network = ipaddress.ip_network(prefix)
    return any(str(network.supernet(new_prefix=length)) in routes for length in range(network.prefixlen))


def _drop_order(
    routes: Mapping[str, SelectedRoute], held: Collection[str], policy: SelectionPolicy, now: float
) -> list[SelectedRoute]:
    """Held TopN routes in the order the next selection would drop them (first: first dropped)."""
    topn = [route for route in routes.values() if route.reason == "topn" and route.prefix in held]
    topn.sort(key=lambda route: prefix_sort_key(route.prefix), reverse=True)
    topn.sort(key=lambda route: (now - route.since < policy.min_dwell_s, route.score))
    return topn


def _displaceable(route: SelectedRoute, routes: Mapping[str, SelectedRoute], rib: RibView) -> bool:
    """Withdrawing ``route`` alone hides nothing and leaves no dependency behind."""
    return not rib.more_specifics(route.prefix) and not _inside_another(route.prefix, routes)


def fast_admissions(
    requests: Iterable[OnDemandRequest],
    routes: Mapping[str, SelectedRoute],
    held: Collection[str],
    rib: RibView,
    policy: SelectionPolicy,
    now: float,
    unusable: Collection[str] = (),
    answered: Collection[str] = (),
) -> FastPlan:
    """The requests of ``requests`` that may be installed at once, newest first.

    ``routes``: the last selection's desired FIB (requests in it are answered already);
    ``held``: what the switch may hold from topfib (installed and stale); ``now``: wall clock;
    ``answered``: the addresses the last selection answered (a new request is none of them).
    """
    caps = policy.caps()
    used = dict.fromkeys(caps, 0)
    for held_prefix in held:
        held_table = policy.table_of(held_prefix)
        used[held_table] = used.get(held_table, 0) + 1
    evictable: list[SelectedRoute] | None = None  # worked out only when a table is full
    admitted: list[FastAdmission] = []
    seen: set[str] = set()
    left = False
    active = [request for request in requests if request.expires_at > now]
    active.sort(key=lambda r: (-r.created_at, r.ip, r.request_id))  # the order selection places them
    for request in active:
        try:
            prefix = rib.longest_match(request.ip)
        except ValueError:
            prefix = None
        if prefix is not None and (prefix in routes or prefix in seen):
            continue
        new = request.ip not in answered
        best = rib.best(prefix) if prefix is not None else None
        if prefix is None or best is None or best.next_hop in unusable or rib.more_specifics(prefix):
            left |= new
            continue
        displaces: str | None = None
        table = policy.table_of(prefix)
        if prefix not in held:  # a held (stale) prefix is replaced in place
            if used.get(table, 0) < caps.get(table, 0):
                used[table] = used.get(table, 0) + 1
            else:
                if evictable is None:
                    evictable = _drop_order(routes, held, policy, now)
                # checked lazily: a RIB look-up per candidate, and the first usually qualifies
                victim = next((r for r in evictable if policy.table_of(r.prefix) == table
                               and _displaceable(r, routes, rib)), None)
                if victim is None:
                    left |= new
                    continue
                evictable.remove(victim)
                displaces = victim.prefix
        seen.add(prefix)
        admitted.append(FastAdmission(prefix, best.next_hop, displaces))
    return FastPlan(admitted, left)
