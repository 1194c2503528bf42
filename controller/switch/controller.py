"""One switch's control loop: its RIB from ExaBGP, selection every period, changes to ExaBGP.

The shell around the pure parts: JSON lines from the bridge go through the parser into the RIB;
each :meth:`SwitchController.tick` reads requests, pins and overrides from the store, selects,
plans against what ExaBGP has acknowledged, sends the commands and publishes snapshots.

What counts as installed is only what ExaBGP acknowledged with ``done`` on a session that is up.
A session going down (or the bridge going away) empties it: the switch drops our routes then.
ExaBGP itself keeps what it announced (its adj-rib-out, always on with route-refresh) and would
replay it when the session comes back; topfib clears it as soon as the session is down, and
before anything is programmed on the next session (see :meth:`SwitchController._forget_announced`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from topfib.collector.accounting.path_rates import PathRates
from topfib.collector.accounting.prefix_rates import CANDIDATES_PER_SLOT, PrefixRates
from topfib.collector.common.metrics import REGISTRY
from topfib.collector.common.safe_files import ensure_private_dir
from topfib.collector.rib.exabgp_json import (
    EndOfRib,
    ExabgpJsonParser,
    Notification,
    RouteUpdate,
    SessionState,
)
from topfib.collector.rib.paths import BestPathRules
from topfib.collector.rib.rib import Rib, RibChange
from topfib.controller.config import SwitchConfig, TopfibConfig
from topfib.controller.exabgp.config import BridgeCommand, write_exabgp_config
from topfib.controller.exabgp.link import ExabgpLink, ExabgpLinkDown
from topfib.controller.exabgp.runner import ExabgpRunner
from topfib.controller.program.plan import (
    Step,
    clear_adj_rib_out_command,
    end_of_rib_commands,
    plan,
    render_step,
)
from topfib.controller.selection.gate import SelectionGate, SelectionInputs
from topfib.controller.selection.model import SelectedRoute, new_route, share_of
from topfib.controller.selection.observed_paths import ObservedPathRib
from topfib.controller.selection.select import (
    OnDemandRequest,
    RequestAnswer,
    Selection,
    SelectionPolicy,
    select,
)
from topfib.controller.selection.snapshot_json import SelectionJson
from topfib.controller.selection.unit_cache import UnitCache
from topfib.controller.state.settings import effective_settings, selection_policy
from topfib.controller.state.store import SettingValue, Store, StoreUnavailable
from topfib.controller.switch.fast_request import fast_admissions
from topfib.controller.switch.request_mirror import RequestMirror
from topfib.controller.switch.self_next_hop import SelfNextHopFilter
from topfib.controller.switch.session_diagnosis import SessionDiagnosis
from topfib.controller.switch.table_readiness import (
    QUIET_CHECK_S,
    READY_MAX_WAIT_S,
    READY_QUIET_S,
    KnownTableSize,
    QuietClock,
    needed_quiet,
)

log = logging.getLogger(__name__)

# Graceful restart: after topfib's End-of-RIB the switch's stale routes still count against the caps
# this long (ExaBGP sends it, then the switch prunes them: see SwitchController._held).
STALE_PRUNE_S = 2.0
# A prefix whose best path moved is re-announced once the update burst touching installed
# prefixes has been quiet this long and no installed prefix lost its last path in the meantime
# (or this long after the burst began): in a mass withdraw the other paths usually go too, and
# re-pointing first would double ExaBGP's work.
SETTLE_QUIET_S = 0.3
SETTLE_MAX_S = 3.0
# ...except a prefix whose installed next hop has no path left (its exit is gone: the switch keeps
# forwarding to it meanwhile): it is re-pointed once the burst has been quiet this long.
DEAD_EXIT_QUIET_S = 0.05
# Announce lines sent per window: between windows the program lock is free, so withdraws of
# prefixes that lost their last path never wait behind a long programming run.
ANNOUNCE_WINDOW_LINES = 4
MAX_DEFER_S = 10.0  # longest a loop iteration's selection waits for the reactor (see tick)
# A reactor batch this big marks a burst (a peer or session dropping many routes): selection
# keeps out of the way for BURST_HOLD_S after it, so the next batch is not stuck behind it.
BURST_PREFIXES = 100
BURST_HOLD_S = 0.5
TABLE_WAIT_SELECT_S = 5.0  # selection period while the switch's table is still coming in
SLOW_SELECTION_S = 0.25  # from here on selection takes at most half the event loop's time
BUSY_RECHECK_S = 0.1  # a loop iteration deferred for the reactor looks again this soon
CHURN_WINDOW_S = 3600.0
COMMAND_CHUNK = 1000  # prefixes per ExaBGP command line
# More requests arriving between two iterations than this (a full read of the store): the
# request fast path leaves them all to the selection.
FAST_PATH_MAX_REQUESTS = 256
UNUSABLE_NEXT_HOPS = frozenset({"", "0.0.0.0", "::"})


def best_path_rules(switch: SwitchConfig) -> BestPathRules:
    """The switch's best-path order: on an eBGP session to topfib it prepends its AS to every path."""
    ebgp = switch.peer_as != switch.local_as
    return BestPathRules(always_compare_med=switch.always_compare_med,
                         switch_as=switch.peer_as if ebgp else None)


def _windows(steps: list[Step], size: int) -> list[list[Step]]:
    """``steps`` cut into windows of at most ``size`` prefixes (a step may be split)."""
    windows: list[list[Step]] = []
    current: list[Step] = []
    room = size
    for step in steps:
        prefixes = step.prefixes
        while prefixes:
            taken, prefixes = prefixes[:room], prefixes[room:]
            current.append(replace(step, prefixes=taken))
            room -= len(taken)
            if room == 0:
                windows.append(current)
                current, room = [], size
    if current:
        windows.append(current)
    return windows
PRUNE_EVERY_S = 60.0
STOPPING = "topfib stopping"
PRUNE_BELOW_BYTES_PER_S = 1.0  # ~1 sampled 1500-byte packet per 25 min at 1:1: nothing to rank

_m_changes = REGISTRY.counter(
    "topfib_fib_changes_total", "Routes announced or withdrawn, by switch and action.", ("switch", "action")
)
_m_errors = REGISTRY.counter(
    "topfib_exabgp_command_errors_total", "Commands ExaBGP answered with error, by switch.", ("switch",)
)
_m_installed = REGISTRY.gauge(
    "topfib_fib_installed_routes", "Routes installed (acknowledged by ExaBGP), by switch and table.",
    ("switch", "table"),
)
_m_cap = REGISTRY.gauge(
    "topfib_fib_cap_routes", "FIB cap in effect, by switch and table.", ("switch", "table")
)
_m_session = REGISTRY.gauge(
    "topfib_bgp_session_up", "1 when the BGP session with the switch is up.", ("switch",)
)
_m_desired = REGISTRY.gauge(
    "topfib_fib_desired_routes", "Routes selection wants, by switch and table.", ("switch", "table")
)
_m_coverage = REGISTRY.gauge(
    "topfib_coverage_ratio",
    "Share of routed traffic (bytes/s, fast rate) going to installed prefixes, by switch.",
    ("switch",),
)
_m_loop = REGISTRY.counter("topfib_control_loops_total", "Control-loop iterations, by switch.", ("switch",))
_m_skipped = REGISTRY.counter(
    "topfib_selections_skipped_total",
    "Loop iterations without a selection: nothing programmable and no input changed, by switch.", ("switch",),
)
_m_fast = REGISTRY.counter(
    "topfib_requests_fast_installed_total",
    "Requested prefixes announced before the next selection (the request fast path), by switch.", ("switch",),
)


@dataclass(slots=True)
class SessionInfo:
    state: str = "down"
    reason: str = ""  # why it went down last (ExaBGP's words), "" when up or never up
    since: float | None = None
    up_at: float | None = None  # monotonic time the session came up
    eor_families: set[str] = field(default_factory=set)
    ready: bool = False  # the switch's table was complete once: programming may go on
    end_of_rib_sent: bool = False  # graceful restart: topfib's End-of-RIB went out on this session


def table_complete(info: SessionInfo, now: float, quiet_for: float, *,
                   quiet_s: float = READY_QUIET_S, max_wait_s: float = READY_MAX_WAIT_S) -> bool:
    """Whether the switch has sent its whole table on the session ``info`` describes.

    End-of-RIB for both families says so; without it, ``quiet_for`` (seconds observed without an
    update, see :class:`QuietClock`) reaching ``quiet_s`` (see :func:`needed_quiet`), or
    ``max_wait_s`` after the session came up.
    """
    if info.state != "up" or info.up_at is None:
        return False
    if {"ipv4 unicast", "ipv6 unicast"} <= info.eor_families:
        return True
    return now - info.up_at >= max_wait_s or quiet_for >= quiet_s


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
        self.session = SessionInfo()
        self.diagnosis = SessionDiagnosis(switch, lambda: self.runner.pid, clock=clock)
        self.installed: dict[str, str] = {}  # prefix → next-hop, acknowledged by ExaBGP
        self.selection: Selection | None = None
        # next-hops and no-cache-hiding units of the RIB, kept across selections (invalidated
        # by the RIB's changed prefixes before each one)
        self._unit_cache = UnitCache()
        self._desired_json = SelectionJson()  # the desired_fib snapshot, unchanged answers not re-encoded
        self.policy = SelectionPolicy.from_switch(switch)
        self.active = False  # runs ExaBGP for the switch (holds its lease when there is one)
        # recent FIB changes for the dashboard: (wall time, action, prefix, next-hop, reason)
        self.changes: deque[tuple[float, str, str, str, str]] = deque(maxlen=1000)
        self._change_times: deque[float] = deque()
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
        self._tick_lock = asyncio.Lock()
        self.wake_event = asyncio.Event()  # set to run the next loop iteration now
        self.requests = RequestMirror(self.name)  # the store's active requests, read by changes
        self._last_prune = clock()
        self._last_pins: list[str] = []
        self._last_overrides: dict[str, SettingValue] = {}
        self._ready_quiet_s = ready_quiet_s
        self._ready_max_wait_s = ready_max_wait_s
        self._settle_quiet_s = settle_quiet_s
        self._settle_max_s = settle_max_s
        self._updates = 0  # route updates from ExaBGP so far (a running count, for QuietClock)
        self._gate = SelectionGate()
        self._quiet = QuietClock()
        self._known_size = KnownTableSize(runtime_dir / f"{self.name}.table-size")
        self._quiet_watch: asyncio.Task[None] | None = None
        self._last_selection = clock()
        self._selection_cost = 0.0  # seconds the last selection (with its snapshots) took
        self._programming_time = 0.0
        self._selected_on_partial_table = True
        self._burst_until = 0.0  # see BURST_PREFIXES
        self._rewake: asyncio.TimerHandle | None = None  # a deferred iteration's return
        # Installed prefixes whose best path changed since the last reaction, and when the
        # current burst of such changes began / last touched one.
        self._touched: set[str] = set()
        self._burst_began: float | None = None
        self._last_touch = 0.0
        self._reaction = asyncio.Event()
        self._dead_exits = False  # the last batch kept back prefixes whose installed exit is gone
        self._reactor: asyncio.Task[None] | None = None
        self._program_lock = asyncio.Lock()  # every command batch to ExaBGP goes out under it
        # ExaBGP acknowledged announces since its adj-rib-out was last cleared: once the session
        # ends it holds routes the switch no longer has, and would replay them on the next one;
        # so a replay is pending until the clear is confirmed, and nothing is programmed meanwhile.
        self._announced = False
        self._replay_pending = False
        self._forgetting: asyncio.Task[bool] | None = None
        # the previous controller's last desired FIB (warm restart or takeover): incumbents of
        # every selection until one has been programmed on the switch's full table
        self._carried: dict[str, SelectedRoute] = {}
        self._carried_at = 0.0  # wall clock the carried FIB dates from (its first snapshot)
        self._lost_at: float | None = None  # wall clock of the session loss that left routes stale
        # graceful restart: prefixes the switch may still hold as stale from an earlier session
        # (or the previous controller) until topfib's End-of-RIB; they count against the caps
        self._stale: set[str] = set()
        self._stale_until: float | None = None  # when the switch has pruned them (see _held)
        # the addresses the last selection answered, for the request fast path (see _admit_requests)
        self._answered: tuple[tuple[RequestAnswer, ...], frozenset[str]] = ((), frozenset())

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
        self._reactor = asyncio.create_task(self._react(), name=f"react-{self.name}")
        self._quiet_watch = asyncio.create_task(self._watch_quiet(), name=f"quiet-{self.name}")
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
        for task in (self._reactor, self._quiet_watch, self._forgetting):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._reactor = self._quiet_watch = self._forgetting = None
        if self._rewake is not None:
            self._rewake.cancel()
        await self.link.stop()
        self._session_lost(STOPPING)

    # --- ExaBGP input --------------------------------------------------------------------------

    def _on_message(self, line: str) -> None:
        # The RIB takes every event in order: paths, a session's up/down (drops its paths), and
        # End-of-RIB (drops the preloaded file paths of that family once the live table is in).
        # The parser asks the LPM table whether a prefix is known: under the lock as well.
        with self.rib_lock:
            parsed = self.parser.parse_line(line)
            self._updates += sum(isinstance(event, RouteUpdate) for event in parsed)
            if self.session.ready and any(isinstance(event, SessionState) for event in parsed):
                self._known_size.remember(self._table_paths_locked())  # before a "down" drops them
            events = self.self_next_hops(parsed)
            changes = self.rib.apply_all(events)
        if changes:
            self._note_rib_changes(changes)
        for event in events:
            if isinstance(event, SessionState):
                self._on_session_state(event)
            elif isinstance(event, EndOfRib):
                self.session.eor_families.add(event.family)
                if self.ready_to_program():
                    self.wake()  # the table is in: program now, not at the end of the period
            elif isinstance(event, Notification):
                # ExaBGP's shutdown notice (code 0) after we stopped it is expected: no warning
                ours = event.neighbor is None and event.code == 0 and not self.active
                log.log(logging.INFO if ours else logging.WARNING,
                        "switch %s: BGP notification %s/%s %s", self.name, event.code, event.subcode,
                            event.message)

    def _note_rib_changes(self, changes: list[RibChange]) -> None:
        """Remember installed prefixes whose best path changed; wake the reactor for them."""
        installed = self.installed
        if not installed:
            return
        touched = [change.prefix for change in changes if change.prefix in installed]
        if not touched:
            return
        now = self._clock()
        if not self._touched:
            self._burst_began = now
        self._touched.update(touched)
        self._last_touch = now
        self._reaction.set()

    def _on_session_state(self, event: SessionState) -> None:
        if event.neighbor != self.switch.neighbor:
            return
        if event.state == "up":
            self.session = SessionInfo(state="up", since=self._wall_clock(), up_at=self._clock())
            self._lost_at = None
            self._quiet.restart()
            self._keep_as_stale()
            self.installed = {}  # a fresh session: the switch holds none of our routes...
            if self._announced:  # ...unless ExaBGP replays them (the down went unseen)
                self._replay_pending = True
                self._forget_soon()
            log.info("switch %s: BGP session up", self.name)
        elif event.state == "down":
            self._session_lost(event.reason or "session down")
        else:
            self.session.state = event.state
            self.session.since = self._wall_clock()

    def _on_connection(self, connected: bool) -> None:
        if connected:
            bridge = self.link.bridge
            if bridge is not None:
                self.runner.note_bridge_group(bridge.pgid)
        else:
            self._session_lost("ExaBGP bridge disconnected")

    def _session_lost(self, reason: str) -> None:
        if self.session.state != "down":
            log.log(logging.WARNING if self.active else logging.INFO,  # not active: we stopped it
                    "switch %s: BGP session down (%s); nothing counts as installed", self.name, reason)
        if self.session.ready:  # its table was complete: the next session's should be as big
            with self.rib_lock:
                self._known_size.remember(self._table_paths_locked())
        if self._lost_at is None:  # the switch's restart time runs from the first loss
            self._lost_at = self._wall_clock()
        self.session = SessionInfo(state="down", reason=reason, since=self._wall_clock())
        self._keep_as_stale()
        self.installed = {}
        self._touched.clear()
        if self._announced:
            self._replay_pending = True
            self._forget_soon()
        with self.rib_lock:
            for session in list(self.rib.session_path_counts()):
                if session != self.rib.preload_session:
                    self.rib.drop_session(session)

    def _keep_as_stale(self) -> None:
        if self.switch.graceful_restart_s:  # the switch keeps what it had until our End-of-RIB
            self._prune_stale()  # those the switch already pruned are not held again
            self._stale.update(self.installed)
            # pruned at the next session's End-of-RIB (see _end_of_rib_once); without one, the
            # switch drops them when its restart time runs out (a margin for the way there)
            self._stale_until = self._clock() + self.switch.graceful_restart_s + STALE_PRUNE_S

    def _forget_soon(self) -> None:
        """Clear ExaBGP's adj-rib-out now, before the session can come back and replay it."""
        if self.active and self.link.connected and (self._forgetting is None or self._forgetting.done()):
            self._forgetting = asyncio.get_running_loop().create_task(self._forget_announced())

    async def _forget_announced(self) -> bool:
        async with self._program_lock:
            return await self._forget_announced_locked()

    async def _forget_announced_locked(self) -> bool:
        """Make ExaBGP forget every route it announced on earlier sessions (withdrawing them if
        the session is already up again): then nothing counts as installed, truly. False while
        that is not confirmed; nothing may be programmed then (it could be replayed past the cap)."""
        if not self._replay_pending:
            return True
        try:
            [done] = await self.link.send([clear_adj_rib_out_command(self.switch.neighbor)])
        except ExabgpLinkDown:
            return False
        if not done:
            _m_errors.inc(switch=self.name)
            log.error("switch %s: ExaBGP did not clear its adj-rib-out; programming waits", self.name)
            return False
        self._announced = self._replay_pending = False
        self.installed = {}  # acks of a lost session's last commands may have refilled it
        return True

    # --- the loop ------------------------------------------------------------------------------

    def reconfigure(self, switch: SwitchConfig, config: TopfibConfig) -> None:
        """A config reload: the next iteration selects under ``switch``'s caps and tunables (its
        restart-only keys are unchanged: topfib.controller.service.reload); ExaBGP and its session stay as
        they are."""
        self.switch, self.config = switch, config
        # now, not at the next selection: a programming run under way trims its next announce
        # window to the new caps (see _program)
        self.policy = selection_policy(switch, effective_settings(switch, self._last_overrides))
        self.wake()

    def wake(self) -> None:
        """Run the next iteration now instead of at the end of the period (a new request)."""
        self.wake_event.set()

    def ready_to_program(self) -> bool:
        """Active, session up, and the switch's table complete (see :func:`table_complete`)."""
        info = self.session
        if not self.active or info.state != "up" or not self.link.connected:
            return False
        if not info.ready:
            self._quiet.check(self._clock(), self._updates)  # an update since the last check counts now
            with self.rib_lock:
                received = self._table_paths_locked()
            quiet_s = needed_quiet(self._ready_quiet_s, self._quiet.longest_pause, received,
                                   self._known_size.paths)
            info.ready = table_complete(info, self._clock(), self._quiet.quiet_for,
                                        quiet_s=quiet_s, max_wait_s=self._ready_max_wait_s)
        return info.ready

    def _table_paths_locked(self) -> int:
        """Paths the switch sent on its session(s), the preloaded file's not counted (rib_lock held)."""
        preload = self.rib.preload_session
        return sum(n for session, n in self.rib.session_path_counts().items() if session != preload)

    async def _watch_quiet(self) -> None:
        """Measure how long the switch's table has been quiet while the session waits for it."""
        while True:
            await asyncio.sleep(QUIET_CHECK_S)
            if self.session.state != "up" or self.session.ready:
                self._quiet.restart()
                continue
            self._quiet.check(self._clock(), self._updates)
            if self.ready_to_program():
                self.wake()

    async def _effective_policy(self) -> SelectionPolicy:
        try:
            overrides = (await self.store.config_overrides()).get(self.name, {})
            self._last_overrides = overrides
        except StoreUnavailable:  # the last ones read, over the switch's config as now (a reload)
            overrides = self._last_overrides
        return selection_policy(self.switch, effective_settings(self.switch, overrides))

    async def _inputs(self, wall_now: float) -> tuple[list[OnDemandRequest], list[str]]:
        # only the changes since the last read; a store outage keeps what was read (still
        # expiring): it must not flush requests out of the FIB
        requests = await self.requests.refresh(self.store, wall_now)
        with contextlib.suppress(StoreUnavailable):  # else keep deciding on the last pins
            self._last_pins = [pin.prefix for pin in await self.store.pins()]
        return requests, self._last_pins

    def _selection_delay(self, now: float) -> float:
        """Seconds this iteration waits (0: select now). Selection blocks the event loop (ExaBGP's
        messages and acks, the reactor, the API all wait behind it): it runs when worth it.

        - At most half the time once it is slow: after a selection (and its snapshots) that took
          c ≥ SLOW_SELECTION_S seconds, the next one waits until 2c after the last began (a
          20k-pin selection can take seconds; a quick one answers every wake-up, e.g. a request).
        - Not while the reactor withdraws (the program lock is taken, or a big batch ended less
          than BURST_HOLD_S ago) or a burst of changes to installed prefixes settles: its result
          could not be programmed before that anyway.
        - Only every TABLE_WAIT_SELECT_S while the switch's table is still coming in (nothing can
          be programmed; the dashboard still gets a view), and at once when the table is in.
        The last two never for longer than MAX_DEFER_S / TABLE_WAIT_SELECT_S. A deferred
        iteration comes back by itself when the wait is over (a wake-up is never lost).
        """
        if self.selection is None:
            return 0.0
        since = now - self._last_selection
        table_in = self.ready_to_program()
        if self.session.state == "up" and not table_in:
            return max(0.0, TABLE_WAIT_SELECT_S - since)
        fresh_table = table_in and self._selected_on_partial_table  # select on the full table now
        cost = self._selection_cost
        if cost >= SLOW_SELECTION_S and since < 2 * cost and not fresh_table:
            return 2 * cost - since
        busy = self._program_lock.locked() or self._settle_delay() > 0 or now < self._burst_until
        return min(BUSY_RECHECK_S, MAX_DEFER_S - since) if busy and since < MAX_DEFER_S else 0.0

    async def tick(self) -> None:
        """One control-loop iteration."""
        async with self._tick_lock:
            self._prune_stale()
            if self.active:
                self.diagnosis.update(self.session.state, self.session.reason)
            else:
                self.diagnosis.clear()  # the standby runs no ExaBGP: nothing of its own to explain
            fast = await self._admit_requests()
            now = self._clock()
            delay = self._selection_delay(now)
            if fast:  # the requests that woke this iteration are in: the selection keeps its period
                delay = max(delay, self._last_selection + self.switch.loop_period_s - now)
            if delay > 0:
                if self._rewake is not None:
                    self._rewake.cancel()
                self._rewake = asyncio.get_running_loop().call_later(delay, self.wake)
                return
            self._last_selection = now
            self._selected_on_partial_table = not self.ready_to_program()
            try:
                await self._select_and_program(now)
            finally:
                self._selection_cost = self._clock() - now - self._programming_time

    async def _select_and_program(self, now: float) -> None:
        self._programming_time = 0.0
        wall_now = self._wall_clock()
        self._expire_carried(wall_now)
        self.policy = await self._effective_policy()
        requests, pins = await self._inputs(wall_now)
        inputs = self._selection_inputs(requests, pins)
        if self.selection is not None and not self._gate.needed(inputs, now):
            _m_skipped.inc(switch=self.name)
            self._prune_rates(now)
            return
        self._gate.selected(inputs, now)
        with self.rib_lock:
            # the sample count behind each score: a challenger displaces an incumbent only when
            # it is ahead beyond sampling error (not by the luck of a few samples)
            previous = self.selection.routes if self.selection else None
            if self._carried:
                previous = {**self._carried, **(previous or {})}
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
        # until then; scores and evidence are this iteration's own copies.
        self.selection = select(
            scores=scores, rib=self.route_view, policy=self.policy, now=wall_now,
            requests=requests, pins=pins, incumbents=previous, evidence=evidence,
            cache=self._unit_cache,
        )
        _m_loop.inc(switch=self.name)
        self._prune_rates(now)
        if self.ready_to_program():
            began = self._clock()
            if await self._program(self.selection.desired()):
                await self._end_of_rib_once()
                self._carried = {}  # programmed: the selection is what the switch holds now
            self._programming_time = self._clock() - began  # waiting on ExaBGP: the loop was free
        self._publish_gauges(scores, candidates.total)
        await self._publish_snapshots()

    async def _admit_requests(self) -> bool:
        """The request fast path (topfib.controller.switch.fast_request): new requests' prefixes announced now
        where that is safe, the rest left to the selection that follows. True when it announced
        some and left none to the selection (which then need not run before its period)."""
        if self.selection is None or self._carried or not self.ready_to_program() or self._settle_delay() > 0:
            return False
        wall_now = self._wall_clock()
        await self.requests.refresh(self.store, wall_now)
        requests = self.requests.take_arrived(FAST_PATH_MAX_REQUESTS)
        if not requests:  # the common tick: no store read of the overrides for nothing
            return False
        self.policy = await self._effective_policy()  # a cap lowered since the last selection holds
        async with self._program_lock:
            if self.selection is None or not self.ready_to_program():
                return False
            if not await self._forget_announced_locked():
                return False
            answers = self.selection.requests
            if self._answered[0] is not answers:  # once per selection, not per request
                self._answered = (answers, frozenset(answer.ip for answer in answers))
            with self.rib_lock:
                fast = fast_admissions(requests, self.selection.routes, self._held(), self.route_view,
                                       self.policy, wall_now, UNUSABLE_NEXT_HOPS, self._answered[1])
            admitted = fast.admitted
            if not admitted:
                return False
            displaced = {a.displaces: self.installed[a.displaces] for a in admitted
                         if a.displaces is not None and a.displaces in self.installed}
            changes = plan({a.prefix: a.next_hop for a in admitted}, displaced)
            withdraws = [step for step in changes.steps if step.action == "withdraw"]
            # withdraws confirmed before any announce: the switch never holds more than the cap
            if withdraws and not await self._send_steps(withdraws):
                return False
            routes = {p: r for p, r in self.selection.routes.items() if p not in displaced}
            for admission in admitted:  # the score is the next selection's to fill in
                prefix, next_hop = admission.prefix, admission.next_hop
                routes[prefix] = new_route(prefix, next_hop, "request", wall_now, 0.0)
            self.selection = replace(self.selection, routes=routes)  # the next selection's incumbents
            announces = self._within_caps([step for step in changes.steps if step.action == "announce"])
            if not announces or not await self._send_steps(announces):
                return False
            _m_fast.inc(sum(len(step.prefixes) for step in announces), switch=self.name)
            return not fast.left_to_selection and all(a.prefix in self.installed for a in admitted)

    def _prune_rates(self, now: float) -> None:
        if now - self._last_prune >= PRUNE_EVERY_S:
            # withdrawn and long-quiet prefixes would otherwise stay in the rate table forever
            self._last_prune = now
            with self.rib_lock:
                self.rates.prune(self.name, now, PRUNE_BELOW_BYTES_PER_S)

    def _selection_inputs(self, requests: list[OnDemandRequest], pins: list[str]) -> SelectionInputs:
        return SelectionInputs(
            ready_to_program=self.ready_to_program(), policy=self.policy,
            requests=frozenset(requests), pins=tuple(pins), rib_changes=self._updates,
        )

    async def _program(self, desired: dict[str, str]) -> bool:
        # Preloaded (file) paths carry no real next-hop: they rank traffic but are never announced.
        desired = {prefix: nh for prefix, nh in desired.items() if nh not in UNUSABLE_NEXT_HOPS}
        # Mid-burst, a plan would re-point prefixes whose other paths are about to go as well.
        await self._until_settled()
        async with self._program_lock:
            if not await self._forget_announced_locked():
                return False
            with self.rib_lock:
                changes = plan(desired, self.installed, rib=self.route_view, unusable=UNUSABLE_NEXT_HOPS)
            withdraws = [step for step in changes.steps if step.action == "withdraw"]
            announces = [step for step in changes.steps if step.action == "announce"]
            # Withdraws go first and are answered before any announce, so the switch never holds
            # more than the cap: a refused withdraw stays installed, so it counts as held below.
            session = self.session
            if withdraws:
                await self._send_steps(withdraws)
                if self.session is not session or not self.ready_to_program():
                    return False
            announces = self._within_caps(announces)
        # Announces go out a window at a time; between windows the reactor may withdraw (which
        # only makes room), and each window is checked against the RIB and the caps as they are
        # now (a SIGHUP or an operator override may have lowered one) before it is sent.
        # A refused line (logged and counted by _send_steps) does not stop the run: the rest
        # goes out, and End-of-RIB after it.
        for window in _windows(announces, ANNOUNCE_WINDOW_LINES * COMMAND_CHUNK):
            async with self._program_lock:
                if self.session is not session or not self.ready_to_program():
                    return False
                self.policy = await self._effective_policy()
                with self.rib_lock:
                    live = [step for step in map(self._still_wanted, window) if step.prefixes]
                live = self._within_caps(live)
                if live:
                    await self._send_steps(live)
        return self.session is session and self.ready_to_program()  # every line was tried

    def _still_wanted(self, step: Step) -> Step:
        """``step`` (an announce) without the prefixes whose best next-hop is no longer its own."""
        kept = []
        for prefix in step.prefixes:
            best = self.route_view.best(prefix)
            if best is not None and best.next_hop == step.next_hop:
                kept.append(prefix)
        return step if len(kept) == len(step.prefixes) else replace(step, prefixes=tuple(kept))

    # --- reacting to the switch's withdraws between loop iterations -----------------------------

    def _settle_delay(self) -> float:
        """Seconds until the burst of changes to installed prefixes counts as settled (0: now)."""
        if not self._touched or self._burst_began is None:
            return 0.0
        now = self._clock()
        quiet = self._last_touch + self._settle_quiet_s - now
        cap = self._burst_began + self._settle_max_s - now
        return max(0.0, min(quiet, cap))

    async def _until_settled(self) -> None:
        while (delay := self._settle_delay()) > 0:
            await asyncio.sleep(delay)

    async def _react(self) -> None:
        """Withdraw installed prefixes that lost their last path at once; re-point those whose
        best path moved once the burst has settled. No selection runs for either."""
        while True:
            await self._reaction.wait()
            self._reaction.clear()
            try:
                delay = await self._react_once()
            except Exception:  # the reactor must outlive one bad batch; the loop repairs the rest
                log.exception("switch %s: reacting to RIB changes failed", self.name)
                continue
            if delay > 0:
                asyncio.get_running_loop().call_later(delay, self._reaction.set)

    async def _react_once(self) -> float:
        """React until no new change comes in during a batch (the program lock is held all
        along, so a mass withdraw goes out batch after batch with nothing in between); returns
        how long until re-pointing may be done (0: nothing left)."""
        async with self._program_lock:
            while self._touched:
                if not self.ready_to_program() or not await self._forget_announced_locked():
                    self._touched.clear()  # the first full plan covers them
                    return 0.0
                if not await self._react_batch():
                    return 0.0
                if not self._reaction.is_set():
                    break
                self._reaction.clear()  # more came in while that batch was out: go on now
        if self._dead_exits:
            return min(self._settle_delay(), max(0.0, self._last_touch + DEAD_EXIT_QUIET_S - self._clock()))
        return self._settle_delay()

    async def _react_batch(self) -> bool:
        """Withdraw touched prefixes without a path; re-point those whose installed exit is gone
        once the burst paused (DEAD_EXIT_QUIET_S), moved ones once it settled. False when ExaBGP
        did not confirm everything."""
        unsettled = self._settle_delay() > 0
        now = self._clock()
        began = self._burst_began
        capped = began is not None and now - began >= self._settle_max_s
        touched, self._touched = self._touched, set()
        gone: dict[str, str] = {}
        moved: dict[str, str] = {}
        dead: dict[str, str] = {}  # moved, and the installed next hop has no path left
        with self.rib_lock:
            for prefix in touched:
                installed = self.installed.get(prefix)
                if installed is None:
                    continue
                best = self.route_view.best(prefix)
                if best is None or best.next_hop in UNUSABLE_NEXT_HOPS:
                    gone[prefix] = installed
                elif best.next_hop != installed:
                    alive = any(path.next_hop == installed for path in self.rib.paths(prefix))
                    (moved if alive else dead)[prefix] = best.next_hop
        if unsettled or (gone and not capped):  # prefixes still lose their last path: a burst
            self._touched.update(moved)  # kept for later: their other paths may go too
            moved = {}
        self._dead_exits = bool(dead) and now - self._last_touch < DEAD_EXIT_QUIET_S and not capped
        if self._dead_exits:
            self._touched.update(dead)  # mid-burst: the new exit may be going as well
            dead = {}
        moved.update(dead)
        part = {prefix: self.installed[prefix] for prefix in (*gone, *moved)}
        changes = plan(moved, part)
        withdraws = [step for step in changes.steps if step.action == "withdraw"]
        announces = [step for step in changes.steps if step.action == "announce"]
        try:
            if withdraws and not await self._send_steps(withdraws):
                return False
            return not announces or await self._send_steps(announces)
        finally:
            if changes.withdraws + changes.announces >= BURST_PREFIXES:
                self._burst_until = self._clock() + BURST_HOLD_S

    def _held(self) -> set[str]:
        """What the switch may hold from topfib: the installed prefixes and, with graceful
        restart, the stale ones until STALE_PRUNE_S after our End-of-RIB (or graceful_restart_s +
        STALE_PRUNE_S after the session went down or up without one). Not sooner: ExaBGP may
        send announces queued after the End-of-RIB before it, and the switch prunes stale routes
        after processing it (BIRD in a later event); nor stale ones withdrawn explicitly, as
        ExaBGP drops the withdraws of a session's first update pass.
        Side-effect free (read from WarmKeeper's snapshot too): :meth:`_prune_stale` forgets them."""
        if self._stale_until is not None and self._clock() >= self._stale_until:
            return set(self.installed)
        return self._stale.union(self.installed)

    def _prune_stale(self) -> None:
        """Forget the stale prefixes once the switch has pruned them (event loop only)."""
        if self._stale_until is not None and self._clock() >= self._stale_until:
            self._stale, self._stale_until = set(), None

    def _within_caps(self, steps: list[Step]) -> list[Step]:
        """Announce steps trimmed so that new prefixes never take a table past its cap."""
        caps = self.policy.caps()
        room = {table: cap for table, cap in caps.items()}
        held = self._held()
        for prefix in held:
            table = self.policy.table_of(prefix)
            room[table] = room.get(table, 0) - 1
        kept: list[Step] = []
        for step in steps:
            prefixes = []
            for prefix in step.prefixes:
                if prefix in held:  # a next-hop change (or a stale route's refresh) replaces in place
                    prefixes.append(prefix)
                    continue
                table = self.policy.table_of(prefix)
                if room.get(table, 0) > 0:
                    room[table] -= 1
                    prefixes.append(prefix)
            if prefixes:
                kept.append(replace(step, prefixes=tuple(prefixes)))
        return kept

    async def _end_of_rib_once(self) -> None:
        """Graceful restart: End-of-RIB once the first programming on a session is out, so the
        switch flushes the stale routes topfib did not announce again (ExaBGP sends none by
        itself: manual-eor). Not while ExaBGP may still replay an earlier session's routes."""
        session = self.session
        if (not self.switch.graceful_restart_s or session.end_of_rib_sent or self._replay_pending
                or not self.ready_to_program()):
            return
        async with self._program_lock:
            try:
                results = await self.link.send(end_of_rib_commands(self.switch.neighbor))
            except ExabgpLinkDown:
                return
        if all(results):
            session.end_of_rib_sent = True
            if session is self.session:  # the switch prunes them a moment later (see _held)
                self._stale_until = self._clock() + STALE_PRUNE_S
            log.info("switch %s: End-of-RIB sent (stale routes not announced again leave)", self.name)
        else:
            _m_errors.inc(switch=self.name)
            log.error("switch %s: ExaBGP refused End-of-RIB; retried after the next programming", self.name)

    async def _send_steps(self, steps: list[Step]) -> bool:
        """Send ``steps``; apply what ExaBGP acknowledged. False when anything was not done.

        ExaBGP parses a line whole before placing any of it, so ``error`` means none of its
        prefixes was placed; the prefixes of a refused line are sent again one per line, so that
        one prefix ExaBGP refuses cannot hold back the others. Nothing counts as installed but
        the prefixes a ``done`` line names.
        """
        lines: list[tuple[Step, tuple[str, ...], str]] = [
            (step, prefixes, line) for step in steps
            for prefixes, line in render_step(step, self.switch.neighbor, COMMAND_CHUNK)
        ]
        session = self.session
        try:
            results = await self.link.send([line for _, _, line in lines])
        except ExabgpLinkDown:
            return False
        done = [(step, prefixes) for (step, prefixes, _), ok in zip(lines, results, strict=True) if ok]
        refused = [entry for entry, ok in zip(lines, results, strict=True) if not ok]
        retry: list[tuple[Step, tuple[str, ...], str]] = [
            (step, single, line) for step, prefixes, _ in refused if len(prefixes) > 1
            for single, line in render_step(replace(step, prefixes=prefixes), self.switch.neighbor, 1)
        ]
        failed = [entry for entry in refused if len(entry[1]) == 1]
        if retry and self.link.connected:
            try:
                results = await self.link.send([line for _, _, line in retry])
            except ExabgpLinkDown:
                results = [False] * len(retry)
            done += [(step, single) for (step, single, _), ok in zip(retry, results, strict=True) if ok]
            failed += [entry for entry, ok in zip(retry, results, strict=True) if not ok]
        elif retry:
            failed += retry
        if failed:  # one log line per send: ExaBGP refusing everything must not flood the log
            _m_errors.inc(len(failed), switch=self.name)
            unconfirmed = sum(len(prefixes) for _, prefixes, _ in failed)
            log.error("switch %s: ExaBGP did not confirm %d line(s) of %d prefix(es), the first: %r",
                      self.name, len(failed), unconfirmed, failed[0][2][:200])
        wall_now = self._wall_clock()
        # Acked after the session ended (or for an earlier one): in ExaBGP's adj-rib-out, to be
        # forgotten before the next programming, never on the switch, so never installed.
        late = self.session is not session or session.state != "up"
        for step, prefixes in done:
            if late:
                if step.action == "announce":
                    self._announced = self._replay_pending = True
                continue
            for prefix in prefixes:
                reason = self._change_reason(step.action, prefix)
                if step.action == "withdraw":
                    self.installed.pop(prefix, None)
                else:
                    assert step.next_hop is not None
                    self.installed[prefix] = step.next_hop
                    self._announced = True
                self.changes.append((wall_now, step.action, prefix, step.next_hop or "", reason))
                self._change_times.append(wall_now)
            _m_changes.inc(len(prefixes), switch=self.name, action=step.action)
        all_done = not failed
        if not self.link.connected:
            self._session_lost("ExaBGP link lost while programming")
            return False
        return all_done

    def _change_reason(self, action: str, prefix: str) -> str:
        if action == "announce":
            if prefix in self.installed:
                return "next-hop changed"
            chosen = self.selection.routes.get(prefix) if self.selection else None
            return chosen.reason if chosen else "topn"
        with self.rib_lock:
            alive = self.rib.best(prefix) is not None
        return "displaced" if alive else "no live path"

    # --- warm state (controller/service/warm_keeper.py) ---------------------------------------------------

    def carry_incumbents(self, routes: dict[str, SelectedRoute], held: Iterable[str] = (), *,
                         desired_at: float | None = None, lost_at: float | None = None) -> None:
        """Start from ``routes``, the previous controller's desired FIB, instead of a cold one;
        ``held``: the prefixes the switch held from it (see :meth:`held_prefixes`); ``desired_at``:
        when ``routes`` were current; ``lost_at``: when its session was lost (None: it was up
        when the snapshot was taken, so it was lost after that, at the latest now)."""
        now = self._wall_clock()
        self._carried = dict(routes)
        self._carried_at = now if desired_at is None else min(desired_at, now)
        if self.switch.graceful_restart_s:  # what the switch may still hold as stale from it
            self._stale.update(routes)
            self._stale.update(held)
            self._stale_until = self._clock() + self.switch.graceful_restart_s + STALE_PRUNE_S
            if self.session.state != "up":
                self._lost_at = now if lost_at is None else min(lost_at, now)

    def _expire_carried(self, wall_now: float) -> None:
        """A carried FIB older than state.max_age_s is dropped, as a snapshot that old would be."""
        if self._carried and wall_now - self._carried_at > self.config.state.max_age_s:
            log.info("switch %s: the carried desired FIB is older than state.max_age_s; dropped",
                     self.name)
            self._carried = {}

    def held_prefixes(self) -> list[str]:
        """The prefixes the switch holds from topfib, stale ones included."""
        return sorted(self._held())

    def held_to_hand_on(self) -> list[str]:
        """:meth:`held_prefixes` for the warm snapshot: without the stale ones once the switch's
        restart time (graceful_restart_s) since the session loss has run out (it flushed them)."""
        if self._lost_at is not None and self._wall_clock() - self._lost_at > self.switch.graceful_restart_s:
            return sorted(self.installed)
        return self.held_prefixes()

    def session_lost_at(self) -> float | None:
        """Wall clock of the session loss that left routes stale on the switch; None while up."""
        return self._lost_at

    def continuity_routes(self) -> Mapping[str, SelectedRoute]:
        """The desired FIB to hand on: the carried one until a selection has been programmed."""
        if self._carried or self.selection is None:
            return self._carried
        return self.selection.routes

    def continuity_at(self) -> float:
        """Wall clock :meth:`continuity_routes` dates from (a carried FIB: its first snapshot)."""
        return self._carried_at if self._carried else self._wall_clock()

    # --- reporting -----------------------------------------------------------------------------

    def churn_per_hour(self) -> float:
        horizon = self._wall_clock() - CHURN_WINDOW_S
        while self._change_times and self._change_times[0] < horizon:
            self._change_times.popleft()
        return float(len(self._change_times))

    def coverage(self, scores: dict[str, float], total: float | None = None) -> float | None:
        """Share of the routed score (``total``, else the sum of ``scores``) that is installed."""
        return share_of(scores, self.installed, total)

    def occupancy(self) -> dict[str, tuple[int, int]]:
        caps = self.policy.caps()
        usage = {table: 0 for table in caps}
        for prefix in self.installed:
            table = self.policy.table_of(prefix)
            usage[table] = usage.get(table, 0) + 1
        return {table: (usage.get(table, 0), cap) for table, cap in caps.items()}

    def _publish_gauges(self, scores: dict[str, float], total: float) -> None:
        _m_session.set(1.0 if self.session.state == "up" else 0.0, switch=self.name)
        for table, (used, cap) in self.occupancy().items():
            _m_installed.set(used, switch=self.name, table=table)
            _m_cap.set(cap, switch=self.name, table=table)
        if self.selection is not None:
            for table, used in self.selection.usage.items():
                _m_desired.set(used, switch=self.name, table=table)
        coverage = self.coverage(scores, total)
        if coverage is not None:
            _m_coverage.set(coverage, switch=self.name)

    async def _publish_snapshots(self) -> None:
        if self.selection is None:
            return
        try:
            # encoded off the event loop (the API's): a FIB of 20k routes is tens of milliseconds
            desired = await asyncio.to_thread(self._desired_json.encode, self.selection)
            await self.store.put_snapshot(self.name, "desired_fib", desired)
            await self.store.put_snapshot(
                self.name, "installed_fib", json.dumps(dict(sorted(self.installed.items())))
            )
        except StoreUnavailable:
            pass
