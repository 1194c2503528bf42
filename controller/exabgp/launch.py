"""``python -m topfib.controller.exabgp.launch server CONF``: ExaBGP's server, minus some costs.

ExaBGP 5's reactor runs each API command as a generator, at most 50 steps per loop turn, and then
waits in poll() for ``reactor_speed``/100 s even when steps are still queued: a 1000-prefix
announce line waits out that poll timeout many times. A low ``reactor_speed`` (0.1: 1 ms) made
programming fast but woke the idle ExaBGP 1000 times a second. With this launcher the wait is
skipped while API work is queued, so programming no longer depends on ``reactor_speed`` and it can
stay at a value that keeps the idle process asleep. Another ExaBGP (no such loop) runs unchanged.

ExaBGP 5 also deep-copies every route handed to it (``Neighbor.remove_self``) in case it has to
rewrite a ``next-hop self``: ~40 us a route, 40 % of its CPU while programming 30k routes. topfib's
routes name their next-hop, so the launcher gives each such route its own NLRI object only (where
ExaBGP sets the route's action) and shares the parsed attributes, which nothing changes afterwards
(ExaBGP's RIB deep-copies a route itself before it turns it into a withdraw).

Two settings, measured with ``bench.bench_injection`` (30k routes, ExaBGP CPU ~1.0 → ~0.75 s):
1,000 command steps a loop turn instead of 50 (each turn ran in a new asyncio event loop, and its
routes went out as that many smaller UPDATEs; a turn is still ~30 ms at most), and a first garbage
collector generation of 50,000 allocations instead of 700 (ExaBGP allocates a few dozen objects a
route and keeps most of them, so the collector walked the growing heap again and again; its
objects rarely form cycles, so waiting longer holds little memory). PyPy has no such thresholds:
there the collector is left as it is.

ExaBGP 5's outgoing RIB queues each change of a route in the group of its attributes, and removes
an earlier queued change of the same route only when ExaBGP withdraws it itself (clear adj-rib out,
a watchdog), never for an API announce or withdraw; the groups go out in the order they were
started. So a withdraw of P then a re-announce of P through a next-hop whose group was started
earlier in the batch went out announce first, withdraw last (the switch lost P while ExaBGP and
topfib counted it installed), and an announce then a withdraw could go out the other way round
(the switch kept a route topfib withdrew, past its cap). A batch holds every command between two
update passes, seconds' worth while a large one is being sent, so topfib's withdraw and
re-announce of a flapping or displaced prefix can share one. The launcher sends only the last
change queued for each route: what the peer must end with (an announce replaces the route).

Across routes the same group order put a batch's announces ahead of its withdraws whenever their
next-hop's group was started first (an announce window, then the withdraws making room, then
more announces, all queued while an earlier batch was being sent): the switch briefly held more
than its cap, and a switch enforcing it (BIRD's ``import limit … action block``, a full ASIC)
drops the excess announce for good. The launcher sends each batch's withdraws first; once only
the last change of each route is left, that order is always safe.
"""

from __future__ import annotations

import copy
import gc
import sys
from collections.abc import Callable, Iterator
from typing import Any


def skip_wait_while_api_work_is_queued() -> bool:
    """Wrap the reactor's poll so that it does not sleep while commands are pending; False when
    this ExaBGP has no such reactor (then it runs as it is)."""
    try:
        from exabgp.reactor.loop import Reactor
    except ImportError:
        return False
    original: Callable[[Any, int], Iterator[int]] | None = getattr(Reactor, "_wait_for_io", None)
    if original is None or getattr(original, "skips_queued_wait", False):
        return original is not None

    def wait_for_io(reactor: Any, sleeptime: int) -> Iterator[int]:
        if not reactor.asynchronous.ready():  # commands still have steps to run
            sleeptime = 0
        return original(reactor, sleeptime)

    wait_for_io.skips_queued_wait = True  # type: ignore[attr-defined]
    Reactor._wait_for_io = wait_for_io
    return True


def copy_routes_without_deep_copy() -> bool:
    """Wrap ``Neighbor.remove_self`` so that a plain unicast route with a concrete next-hop and no
    internal attributes (watchdog, withdraw: ExaBGP pops those from the attribute set) gets a
    shallow copy of its NLRI instead of a deep copy of everything; anything else takes ExaBGP's own
    path. False when this ExaBGP has no such method (then it runs as it is)."""
    try:
        from exabgp.bgp.message.update.attribute.attributes import Attributes
        from exabgp.bgp.message.update.nlri.inet import INET
        from exabgp.bgp.neighbor import Neighbor
        from exabgp.rib.change import Change
    except ImportError:
        return False
    original: Callable[[Any, Any], Any] | None = getattr(Neighbor, "remove_self", None)
    if original is None or getattr(original, "copies_nlri_only", False):
        return original is not None
    internal = frozenset(Attributes.INTERNAL)

    def remove_self(neighbor: Any, change: Any) -> Any:
        nlri = change.nlri
        if type(nlri) is not INET or nlri.nexthop.SELF or not internal.isdisjoint(change.attributes):
            return original(neighbor, change)
        return Change(copy.copy(nlri), change.attributes)

    remove_self.copies_nlri_only = True  # type: ignore[attr-defined]
    Neighbor.remove_self = remove_self
    return True


COMMAND_STEPS_PER_TURN = 1000
GC_FIRST_GENERATION_THRESHOLD = 50_000


def run_more_command_steps_a_turn() -> bool:
    """Let the reactor resume queued API commands ``COMMAND_STEPS_PER_TURN`` times a loop turn
    (ExaBGP 5: ``ASYNC.LIMIT``, 50); False when this ExaBGP has no such limit."""
    try:
        from exabgp.reactor.asynchronous import ASYNC
    except ImportError:
        return False
    if not isinstance(getattr(ASYNC, "LIMIT", None), int):
        return False
    ASYNC.LIMIT = max(ASYNC.LIMIT, COMMAND_STEPS_PER_TURN)
    return True


def collect_garbage_less_often() -> bool:
    """The first generation is collected after ``GC_FIRST_GENERATION_THRESHOLD`` allocations;
    False when this interpreter's collector has no thresholds (PyPy)."""
    get_threshold = getattr(gc, "get_threshold", None)
    set_threshold = getattr(gc, "set_threshold", None)
    if get_threshold is None or set_threshold is None:
        return False
    _, second, third = get_threshold()
    set_threshold(GC_FIRST_GENERATION_THRESHOLD, second, third)
    return True


AfterSnapshot = Callable[[], None]


def drop_superseded_changes(rib: Any) -> AfterSnapshot | None:
    """Leave in ``rib``'s queue (an ExaBGP 5 ``OutgoingRIB``) only the last change queued for each
    route: ``_new_nlri`` holds it, by route; ``_new_attr_af_nlri`` every queued change, by
    attributes and family."""
    latest = getattr(rib, "_new_nlri", None)
    buckets = getattr(rib, "_new_attr_af_nlri", None)
    if not isinstance(latest, dict) or not isinstance(buckets, dict):
        return None
    queues = [changes for per_family in buckets.values() for changes in per_family.values()]
    if sum(map(len, queues)) <= len(latest):  # the common case: no route queued twice
        return None
    for changes in queues:
        for index in [index for index, change in changes.items() if latest.get(index) is not change]:
            del changes[index]
    return None


def _prepare_each_batch(prepare: Callable[[Any], AfterSnapshot | None], marker: str) -> bool:
    """Wrap ``OutgoingRIB.updates`` so that ``prepare`` reorders the queue first (at the first
    next(), as ExaBGP takes its snapshot of it); what ``prepare`` returns runs right after that
    snapshot. The wrapper carries ``marker``, and the markers of what it wraps, so that no step is
    wrapped twice. False when this ExaBGP has no such method."""
    try:
        from exabgp.rib.outgoing import OutgoingRIB
    except ImportError:
        return False
    original: Callable[[Any, bool], Iterator[Any]] | None = getattr(OutgoingRIB, "updates", None)
    if original is None or getattr(original, marker, False):
        return original is not None

    def updates(rib: Any, grouped: bool) -> Iterator[Any]:
        after_snapshot = prepare(rib)
        batch = original(rib, grouped)
        first = next(batch, None)  # ExaBGP's snapshot: the queue it sends now, the next one empty
        if after_snapshot is not None:
            after_snapshot()
        if first is None:
            return
        yield first
        yield from batch

    updates.__dict__.update(getattr(original, "__dict__", {}))
    setattr(updates, marker, True)
    OutgoingRIB.updates = updates
    return True


def send_only_the_latest_change_of_a_route() -> bool:
    """Each batch drops its superseded changes first: see :func:`drop_superseded_changes`."""
    return _prepare_each_batch(drop_superseded_changes, "sends_latest_only")


WITHDRAWS = "withdraws:"  # prefixes the group of a batch's withdraws, ahead of every other group


def put_withdraws_first(rib: Any) -> AfterSnapshot | None:
    """Reorder ``rib``'s queue (an ExaBGP 5 ``OutgoingRIB``) so that every queued withdraw comes
    before every queued announce: each attribute group's withdraws move to a group of their own
    (same attributes, which a withdraw does not send) placed ahead of all others. A route refresh
    (the peer asked for every route again) goes out ahead of all groups, with the newest queued
    announces in it: when the batch has withdraws, the refresh waits for the next batch (see
    :func:`_defer_refresh`)."""
    buckets = getattr(rib, "_new_attr_af_nlri", None)
    attributes = getattr(rib, "_new_attribute", None)
    if not isinstance(buckets, dict) or not isinstance(attributes, dict):
        return None
    from exabgp.bgp.message import Action

    withdraw = Action.WITHDRAW
    withdraws_first: dict[Any, Any] = {}
    announces: dict[Any, Any] = {}
    for attr_index, per_family in buckets.items():
        for family, changes in per_family.items():
            withdrawn = {index: change for index, change in changes.items() if change.nlri.action is withdraw}
            if not withdrawn:
                announces.setdefault(attr_index, {})[family] = changes
                continue
            key = (WITHDRAWS, attr_index)
            withdraws_first.setdefault(key, {})[family] = type(changes)(withdrawn)
            attributes[key] = attributes[attr_index]
            if len(withdrawn) < len(changes):
                announces.setdefault(attr_index, {})[family] = type(changes)(
                    {index: change for index, change in changes.items() if index not in withdrawn})
    if not withdraws_first:
        return None
    rib._new_attr_af_nlri = {**withdraws_first, **announces}
    return _defer_refresh(rib)


def _defer_refresh(rib: Any) -> AfterSnapshot | None:
    """Take ``rib``'s pending route refresh out of this batch and ask for it again once ExaBGP has
    taken the batch: as if the peer had asked just then, so the refresh carries the routes as they
    are after this batch (its changes captured now would re-announce what the batch withdraws)."""
    changes, families = getattr(rib, "_refresh_changes", None), getattr(rib, "_refresh_families", None)
    if not isinstance(changes, list) or not isinstance(families, set) or not (changes or families):
        return None
    enhanced = bool(families)
    asked = {*families, *(change.nlri.family().afi_safi() for change in changes)}
    rib._refresh_changes, rib._refresh_families = [], set()

    def ask_again() -> None:
        for family in asked:
            rib.resend(enhanced, family)

    return ask_again


def send_withdraws_before_announces() -> bool:
    """Each batch sends its withdraws first: see :func:`put_withdraws_first`."""
    return _prepare_each_batch(put_withdraws_first, "sends_withdraws_first")


def install_hooks() -> None:
    """Every change above, each where this ExaBGP (and interpreter) allows it."""
    skip_wait_while_api_work_is_queued()
    copy_routes_without_deep_copy()
    send_only_the_latest_change_of_a_route()
    # wraps the step above, so it runs first; the superseded changes it copies into its withdraw
    # groups are dropped by identity all the same
    send_withdraws_before_announces()
    run_more_command_steps_a_turn()
    collect_garbage_less_often()


def main() -> int:
    install_hooks()
    from exabgp.application.main import main as exabgp_main

    sys.argv[0] = "exabgp"
    result: int | None = exabgp_main()
    return result or 0


if __name__ == "__main__":
    sys.exit(main())
