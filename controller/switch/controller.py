"""One switch's control loop: its RIB from ExaBGP, selection every period, changes to ExaBGP.

The shell around the pure parts, wiring the units of controller/switch: JSON lines from the
bridge go through the parser into the RIB; the session and its table's readiness are tracked by
:class:`~topfib.controller.switch.bgp_session.session.SessionTracker`; each :meth:`SwitchController.tick`
reads requests, pins and overrides from the store, selects (when :func:`selection_delay` says so)
and hands the result to :class:`~topfib.controller.switch.programmer.Programmer`, which plans
against what ExaBGP has acknowledged and sends the commands; between iterations
:class:`~topfib.controller.switch.reactor.Reactor` withdraws what the switch lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from topfib.collector.accounting.path_rates import PathRates
from topfib.collector.accounting.prefix_rates import CANDIDATES_PER_SLOT, PrefixRates
from topfib.collector.common.safe_files import ensure_private_dir
from topfib.collector.rib.exabgp_json import ExabgpJsonParser
from topfib.collector.rib.paths import BestPathRules
from topfib.collector.rib.rib import Rib
from topfib.controller.config import SwitchConfig, TopfibConfig
from topfib.controller.exabgp.config import BridgeCommand, write_exabgp_config
from topfib.controller.exabgp.link import ExabgpLink
from topfib.controller.exabgp.runner import ExabgpRunner
from topfib.controller.selection.answer_ahead import answer_new_requests
from topfib.controller.selection.gate import SelectionGate, SelectionInputs
from topfib.controller.selection.model import SelectedRoute, share_of
from topfib.controller.selection.observed_paths import ObservedPathRib
from topfib.controller.selection.select import (
    Selection,
    SelectionPolicy,
    select,
)
from topfib.controller.selection.unit_cache import UnitCache
from topfib.controller.state.store import Store
from topfib.controller.switch.bgp_session.self_next_hop import SelfNextHopFilter
from topfib.controller.switch.bgp_session.session import SessionInfo, SessionTracker
from topfib.controller.switch.bgp_session.session_diagnosis import SessionDiagnosis
from topfib.controller.switch.bgp_session.table_readiness import READY_MAX_WAIT_S, READY_QUIET_S
from topfib.controller.switch.continuity import Continuity
from topfib.controller.switch.fast_request import RequestFastPath
from topfib.controller.switch.ingest import ExabgpIngest
from topfib.controller.switch.inputs import StoreInputs
from topfib.controller.switch.loop_metrics import _m_loop, _m_skipped, publish_gauges
from topfib.controller.switch.programmer import Programmer
from topfib.controller.switch.reactor import SETTLE_MAX_S, SETTLE_QUIET_S, Reactor
from topfib.controller.switch.request_mirror import RequestMirror
from topfib.controller.switch.schedule import SelectionSchedule
from topfib.controller.switch.snapshots import SnapshotPublisher

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 60.0
STOPPING = "topfib stopping"
PRUNE_BELOW_BYTES_PER_S = 1.0  # ~1 sampled 1500-byte packet per 25 min at 1:1: nothing to rank


def best_path_rules(switch: SwitchConfig) -> BestPathRules:
    """The switch's best-path order: on an eBGP session to topfib it prepends its AS to every path."""
    ebgp = switch.peer_as != switch.local_as
    return BestPathRules(always_compare_med=switch.always_compare_med,
                         switch_as=switch.peer_as if ebgp else None)


class SwitchController:
    """Everything topfib runs for one switch. Inert until :meth:`start`."""

    def __init__(
        self,
        switch: SwitchConfig,
        config: TopfibConfig,
        rates: PrefixRates,
        store: Store,
        rib_lock: threading.Lock,
        runtime_dir: Path,
        *,
        netns: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        ready_quiet_s: float = READY_QUIET_S,
        ready_max_wait_s: float = READY_MAX_WAIT_S,
        settle_quiet_s: float = SETTLE_QUIET_S,
        settle_max_s: float = SETTLE_MAX_S,
        path_rates: PathRates | None = None,
        gate: SelectionGate | None = None,
    ) -> None:
        self.switch = switch
        self.name = switch.name
        self.config = config
        self.rates = rates
        self.store = store
        self.rib = Rib(special_use=config.special_use.build(), rules=best_path_rules(switch))
        self.rib_lock = rib_lock
        # what selection, planning and the reactor ask for a prefix's path: the best path, or
        # with follow_observed_paths the path its traffic is seen to take (path_rates)
        self.path_rates = path_rates
        self.route_view: ObservedPathRib | Rib = (
            ObservedPathRib(self.rib) if switch.follow_observed_paths and path_rates is not None else self.rib
        )
        self.parser = ExabgpJsonParser(known_prefix=self.rib.lpm.knows)
        self.self_next_hops = SelfNextHopFilter(switch, clock)
        self.diagnosis = SessionDiagnosis(switch, lambda: self.runner.pid, clock=clock)
        self.selection: Selection | None = None
        # next-hops and no-cache-hiding units of the RIB, kept across selections (invalidated
        # by the RIB's changed prefixes before each one)
        self._unit_cache = UnitCache()
        self.snapshots = SnapshotPublisher(self.name, store)
        self.policy = SelectionPolicy.from_switch(switch)
        self.active = False  # runs ExaBGP for the switch (holds its lease when there is one)
        self._clock = clock
        self._wall_clock = wall_clock
        self._netns = netns
        self._runtime_dir = runtime_dir
        socket_path = runtime_dir / f"{self.name}.sock"
        self.link = ExabgpLink(
            socket_path, self._on_message, on_connection=self._on_connection, switch_name=self.name
        )
        self.exabgp_config_path = runtime_dir / f"{self.name}.exabgp.conf"
        self.runner = self._new_runner()
        self._runner_started = False
        self.sessions = SessionTracker(
            self.rib, rib_lock, self.link, runtime_dir / f"{self.name}.table-size",
            is_active=lambda: self.active, clock=clock, wall_clock=wall_clock,
            ready_quiet_s=ready_quiet_s, ready_max_wait_s=ready_max_wait_s,
        )
        self.programmer = Programmer(
            self.name, self.link, self.sessions, self.rib, rib_lock, self.route_view,
            switch=lambda: self.switch, policy=lambda: self.policy, refresh_policy=self._refresh_policy,
            selection=lambda: self.selection, is_active=lambda: self.active,
            on_link_lost=self._session_lost, clock=clock, wall_clock=wall_clock,
        )
        self.reactor = Reactor(
            self.name, self.programmer, self.sessions, self.rib, rib_lock, self.route_view,
            clock=clock, settle_quiet_s=settle_quiet_s, settle_max_s=settle_max_s,
        )
        self.ingest = ExabgpIngest(
            self.name, self.rib, rib_lock, self.parser, self.self_next_hops, self.sessions,
            neighbor=lambda: self.switch.neighbor, is_active=lambda: self.active,
            on_rib_changes=self.reactor.note_rib_changes, on_session_up=self.programmer.session_changed,
            on_session_down=self._session_lost, wake=self.wake,
        )
        self._tick_lock = asyncio.Lock()
        self.wake_event = asyncio.Event()  # set to run the next loop iteration now
        self._request_event = asyncio.Event()  # set when the API stored a request (see request_arrived)
        self.requests = RequestMirror(self.name)  # the store's active requests, read by changes
        self._last_prune = clock()
        self.inputs = StoreInputs(self.name, store, self.requests)
        self.schedule = SelectionSchedule(clock, self.wake, gate)
        self._reactor_task: asyncio.Task[None] | None = None
        self._quiet_watch: asyncio.Task[None] | None = None
        self._request_task: asyncio.Task[None] | None = None
        self.continuity = Continuity(self.name, self.programmer, self.sessions, switch=lambda: self.switch,
                                     max_age_s=lambda: self.config.state.max_age_s, wall_clock=wall_clock)
        self.fast_path = RequestFastPath(
            self.name, self.programmer, self.requests, store, rib_lock, self.route_view,
            selection=lambda: self.selection, set_selection=self._set_selection,
            may_admit=lambda: (not self.continuity.carried and self.ready_to_program()
                               and self.reactor.settle_delay() <= 0),
            ready_to_program=self.ready_to_program, policy=lambda: self.policy,
            refresh_policy=self._refresh_policy, wall_clock=wall_clock,
        )

    def _new_runner(self) -> ExabgpRunner:
        return ExabgpRunner(
            self.exabgp_config_path,
            switch_name=self.name,
            executable=self.config.exabgp.executable,
            reactor_speed=self.config.exabgp.reactor_speed,
            backoff_max_s=self.config.exabgp.restart_backoff_max_s,
            netns=self._netns,
            log_path=self._runtime_dir / f"{self.name}.exabgp.log",
            bridge_group=lambda: self.link.bridge.pgid if self.link.bridge else None,
        )

    # --- a small read API (live view, demo, warm state, tests) ---------------------------------

    @property
    def session(self) -> SessionInfo:
        """The BGP session with the switch as it is now."""
        return self.sessions.info

    @property
    def installed(self) -> Mapping[str, str]:
        """Prefix → next-hop, acknowledged by ExaBGP on the session that is up."""
        return self.programmer.installed

    @property
    def changes(self) -> deque[tuple[float, str, str, str, str]]:
        """Recent FIB changes: (wall time, action, prefix, next-hop, reason)."""
        return self.programmer.changes

    def ready_to_program(self) -> bool:
        """Active, session up, and the switch's table complete (see SessionTracker)."""
        return self.sessions.ready_to_program()

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self, active: bool = True) -> None:
        """Load the preloaded RIB and listen for the bridge; with ``active``, start ExaBGP too."""
        ensure_private_dir(self._runtime_dir)  # ExaBGP's config, its log and the bridge socket
        if self.switch.rib_file:
            from topfib.collector.rib.loaders import load_rib_file

            with self.rib_lock:
                load_rib_file(Path(self.switch.rib_file), self.rib, session=self.rib.preload_session)
            gc.freeze()  # a million long-lived RIB objects: keep the collector from rescanning them
        bridge = BridgeCommand(socket_path=self.link.socket_path)
        write_exabgp_config(self.switch, bridge, self.exabgp_config_path)
        await self.link.start()
        self._reactor_task = asyncio.create_task(self.reactor.run(), name=f"react-{self.name}")
        self._quiet_watch = asyncio.create_task(self.sessions.watch_quiet(self.wake),
                                                name=f"quiet-{self.name}")
        self._request_task = asyncio.create_task(
            self.fast_path.admit_as_they_arrive(self._request_event, self.wake), name=f"requests-{self.name}")
        self.active = False
        if active:
            await self.activate()

    async def activate(self) -> None:
        """Take the switch: run ExaBGP (the session comes up, then the FIB is rebuilt)."""
        if self.active:
            return
        if self._runner_started:
            self.runner = self._new_runner()
        self.active = True
        self._runner_started = True
        await self.runner.start()
        log.info("switch %s: active", self.name)

    async def deactivate(self, reason: str) -> None:
        """Let go of the switch: stop ExaBGP (the switch drops our routes without graceful restart)."""
        if not self.active:
            return
        self.active = False
        await self.runner.stop()
        self._session_lost(reason)
        # our own shutdown is no warning; losing the lease is
        log.log(logging.INFO if reason == STOPPING else logging.WARNING, "switch %s: standby (%s)",
                self.name, reason)

    async def stop(self) -> None:
        await self.deactivate(STOPPING)
        for task in (self._reactor_task, self._quiet_watch, self._request_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._reactor_task = self._quiet_watch = self._request_task = None
        await self.programmer.stop()
        self.schedule.cancel()
        await self.link.stop()
        self._session_lost(STOPPING)
        self.snapshots.close()

    # --- ExaBGP input --------------------------------------------------------------------------

    def _on_message(self, line: str) -> None:
        self.ingest.on_message(line)

    def _on_connection(self, connected: bool) -> None:
        if connected:
            bridge = self.link.bridge
            if bridge is not None:
                self.runner.note_bridge_group(bridge.pgid)
        else:
            self._session_lost("ExaBGP bridge disconnected")

    def _session_lost(self, reason: str) -> None:
        if self.session.state == "up":  # a failed attempt to connect is the diagnosis's to report
            log.log(logging.WARNING if self.active else logging.INFO,  # not active: we stopped it
                    "switch %s: BGP session down (%s); nothing counts as installed", self.name, reason)
        self.sessions.went_down(reason)
        self.programmer.session_changed()
        self.reactor.forget_touched()
        with self.rib_lock:
            for session in list(self.rib.session_path_counts()):
                if session != self.rib.preload_session:
                    self.rib.drop_session(session)

    # --- store inputs --------------------------------------------------------------------------

    def reconfigure(self, switch: SwitchConfig, config: TopfibConfig) -> None:
        """A config reload: the next iteration selects under ``switch``'s caps and tunables (its
        restart-only keys are unchanged: topfib.controller.service.reload); ExaBGP and its session stay as
        they are."""
        self.switch, self.config = switch, config
        # now, not at the next selection: a programming run under way trims its next announce
        # window to the new caps (see Programmer.program)
        self.policy = self.inputs.policy_as_last_read(switch)
        self.wake()

    def wake(self) -> None:
        """Run the next iteration now instead of at the end of the period."""
        self.wake_event.set()

    def request_arrived(self) -> None:
        """The API stored a request for this switch: the fast path decides on it now, without
        waiting for an iteration under way (its selection and programming take tens of ms)."""
        self._request_event.set()

    async def _refresh_policy(self) -> SelectionPolicy:
        self.policy = await self.inputs.effective_policy(self.switch)
        return self.policy

    # --- the loop ------------------------------------------------------------------------------

    def _selection_delay(self, now: float) -> float:
        """Seconds this iteration waits (0: select now): see :func:`selection_delay`."""
        if self.selection is None:
            return 0.0
        table_in = self.ready_to_program()
        busy = (self.programmer.lock.locked() or self.reactor.settle_delay() > 0
                or now < self.reactor.burst_until)
        return self.schedule.delay(now, session_up=self.session.state == "up", table_in=table_in,
                                   reactor_busy=busy)

    async def tick(self) -> None:
        """One control-loop iteration."""
        async with self._tick_lock:
            self.programmer.prune_stale()
            if self.active:
                self.diagnosis.update(self.session.state, self.session.reason)
            else:
                self.diagnosis.clear()  # the standby runs no ExaBGP: nothing of its own to explain
            fast = await self.fast_path.admit()
            now = self._clock()
            delay = self._selection_delay(now)
            if fast:  # the requests that woke this iteration are in: the selection keeps its period
                delay = max(delay, self.schedule.last_selection + self.switch.loop_period_s - now)
            if delay > 0:
                self.schedule.defer(delay)
                return
            self.schedule.began(now, table_in=self.ready_to_program())
            try:
                await self._select_and_program(now)
            finally:
                self.schedule.ended(now)

    async def _select_and_program(self, now: float) -> None:
        wall_now = self._wall_clock()
        self.continuity.expire(wall_now)
        await self._refresh_policy()
        requests, pins = await self.inputs.read(wall_now)
        inputs = self._selection_inputs(pins)
        if self.selection is not None and not self.schedule.gate.needed(inputs, now):
            _m_skipped.inc(switch=self.name)
            self._prune_rates(now)
            return
        self.schedule.gate.selected(inputs, now)
        # the API's turns between reading the inputs and selecting: new requests are answered in
        # slices (thousands a second would hold the shared event loop for tens of ms in one go)
        await answer_new_requests(self._unit_cache, self.route_view, self.rib_lock, requests, wall_now)
        # taken before the selection reads the RIB (no await until it has): see below
        switch_table_in = self.sessions.switch_table_in()
        with self.rib_lock:
            # the sample count behind each score: a challenger displaces an incumbent only when
            # it is ahead beyond sampling error (not by the luck of a few samples)
            previous = self.selection.routes if self.selection else None
            if self.continuity.carried:
                previous = {**self.continuity.carried, **(previous or {})}
            candidates = self.rates.selection_inputs(
                self.name, now, CANDIDATES_PER_SLOT * sum(self.policy.caps().values()),
                keep={*(previous or ()), *self.installed},
            )
            scores, evidence = candidates.scores, candidates.evidence
            changed = self.rib.drain_changed()
            if isinstance(self.route_view, ObservedPathRib) and self.path_rates is not None:
                changed |= self.route_view.follow(self.path_rates.dominant_next_hops(self.name, now))
            self._unit_cache.forget(changed)
            self.rib.lpm.settle()
        # Selection itself runs without the lock, so the collector's threads keep accounting: the
        # RIB only changes on this (the event loop's) thread, and the settled LPM is read-only
        # until then; scores and evidence are this iteration's own copies. The requests are the
        # mirror's as of now, not as read above: what the request fast path announced during the
        # awaits since is among them, so the selection places it itself within the caps.
        self.selection = select(
            scores=scores, rib=self.route_view, policy=self.policy, now=wall_now,
            requests=self.requests.wanted(), pins=pins, incumbents=previous, evidence=evidence,
            cache=self._unit_cache,
        )
        self.fast_path.selected(self.selection)
        _m_loop.inc(switch=self.name)
        self._prune_rates(now)
        if self.ready_to_program():
            began = self._clock()
            # Mid-burst, a plan would re-point prefixes whose other paths are about to go as well.
            await self.reactor.until_settled()
            # With graceful restart, a programming selected before the switch's whole table was in
            # may lack the paths of prefixes it holds as stale (or the carried FIB holds): no
            # End-of-RIB after it (the switch would flush them until the next programming), and
            # the carried FIB stays. Without, the switch holds none of them and may send no
            # End-of-RIB at all (FRR sends it only to a peer that does graceful restart).
            table_in = switch_table_in or not self.switch.graceful_restart_s
            if await self.programmer.program(self._desired) and table_in:
                await self.programmer.end_of_rib_once()
                self.continuity.programmed()
            self.schedule.programmed(self._clock() - began)  # waiting on ExaBGP: the loop was free
        self._publish_gauges(scores, candidates.total)
        await self.snapshots.publish(self.selection, self.installed)

    def _set_selection(self, selection: Selection) -> None:
        self.selection = selection

    def _desired(self) -> dict[str, str]:
        """The selection's desired FIB as the programming run plans it (under the program lock,
        so a request the fast path admitted while the run waited for it is in)."""
        assert self.selection is not None
        return self.selection.desired()

    def _prune_rates(self, now: float) -> None:
        if now - self._last_prune >= PRUNE_EVERY_S:
            # withdrawn and long-quiet prefixes would otherwise stay in the rate table forever
            self._last_prune = now
            with self.rib_lock:
                self.rates.prune(self.name, now, PRUNE_BELOW_BYTES_PER_S)

    def _selection_inputs(self, pins: list[str]) -> SelectionInputs:
        return SelectionInputs(
            ready_to_program=self.ready_to_program(), policy=self.policy,
            requests=self.requests.version, pins=tuple(pins), rib_changes=self.sessions.updates,
            session=self.sessions.identity(),
        )

    # --- warm state (controller/service/warm_keeper.py) ---------------------------------------------------

    def carry_incumbents(self, routes: dict[str, SelectedRoute], held: Iterable[str] = (), *,
                         desired_at: float | None = None, lost_at: float | None = None) -> None:
        """Start from ``routes``, the previous controller's desired FIB, instead of a cold one;
        ``held``: the prefixes the switch held from it (see :meth:`held_prefixes`); ``desired_at``:
        when ``routes`` were current; ``lost_at``: when its session was lost (None: it was up
        when the snapshot was taken, so it was lost after that, at the latest now)."""
        self.continuity.carry(routes, held, desired_at=desired_at, lost_at=lost_at)

    def held_prefixes(self) -> list[str]:
        """The prefixes the switch holds from topfib, stale ones included."""
        return sorted(self.programmer.held())

    def held_to_hand_on(self) -> list[str]:
        """:meth:`held_prefixes` for the warm snapshot: see :meth:`Continuity.held_to_hand_on`."""
        return self.continuity.held_to_hand_on()

    def session_lost_at(self) -> float | None:
        """Wall clock of the session loss that left routes stale on the switch; None while up."""
        return self.sessions.lost_at

    def continuity_routes(self) -> Mapping[str, SelectedRoute]:
        """The desired FIB to hand on: the carried one until a selection has been programmed."""
        return self.continuity.routes_to_hand_on(self.selection)

    def continuity_at(self) -> float:
        """Wall clock :meth:`continuity_routes` dates from (a carried FIB: its first snapshot)."""
        return self.continuity.routes_date()

    # --- reporting -----------------------------------------------------------------------------

    def churn_per_hour(self) -> float:
        return self.programmer.churn_per_hour()

    def coverage(self, scores: dict[str, float], total: float | None = None) -> float | None:
        """Share of the routed score (``total``, else the sum of ``scores``) that is installed."""
        return share_of(scores, self.installed, total)

    def occupancy(self) -> dict[str, tuple[int, int]]:
        """Per table: (routes counting against the cap, cap): see :meth:`Programmer.occupancy`."""
        return self.programmer.occupancy()

    def _publish_gauges(self, scores: dict[str, float], total: float) -> None:
        publish_gauges(self.name, session_up=self.session.state == "up", occupancy=self.occupancy(),
                       desired=self.selection.usage if self.selection is not None else None,
                       coverage=self.coverage(scores, total))
