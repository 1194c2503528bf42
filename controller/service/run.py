"""`topfib run`: collector, controllers and API in one asyncio process.

The sFlow listener runs in its own thread (the socket must be drained at line rate); the RIB and
the rates are shared with it under one lock per process. Each switch has its own control loop
(:class:`topfib.controller.switch.controller.SwitchController`) and its own supervised ExaBGP.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from topfib.api.app import create_app
from topfib.api.transport.server import ApiServer, connection_limit
from topfib.api.transport.tls import TlsContexts
from topfib.collector.accounting.flow_gate import FlowGate, SwitchFlowSources
from topfib.collector.accounting.path_rates import PathRates
from topfib.collector.accounting.pipeline import Collector
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.collector.common.batch import BatchDecoder
from topfib.collector.common.safe_files import ensure_private_dir
from topfib.collector.flow.receiver import FlowReceiver
from topfib.collector.matrix.traffic_matrix import MatrixInterval, TrafficMatrix, monotonic_to_wall
from topfib.collector.matrix.writer import MatrixFileWriter
from topfib.collector.rib.lpm import LpmTable
from topfib.controller.config import ConfigError, TopfibConfig, load_config, split_host_port
from topfib.controller.exabgp.runner import exabgp_missing_reason
from topfib.controller.service.live_view import LiveView
from topfib.controller.service.log_format import LogFormat, configure_logging
from topfib.controller.service.reload import prepare_reload, report_reload
from topfib.controller.service.warm_keeper import WarmKeeper
from topfib.controller.state.lease import RedisLease
from topfib.controller.state.store import MemoryStore, Store
from topfib.controller.switch.controller import SwitchController

log = logging.getLogger(__name__)
# The cyclic collector's thresholds (young, generation 1, generation 2) in `topfib run` and the
# benches that stand for it. Python's default young threshold (700) took ~20 % of ExaBGP JSON
# ingest with a full table. Under API load every stored request leaves a few long-lived objects,
# so a young collection frees nothing and holds the event loop for as long as its threshold is
# big: 50,000 held it 8-12 ms about once a second (bench_api). 10,000 holds it 2-4 ms; the
# generation-1 threshold of 20 keeps generation-1 collections (which rescan what the last young
# ones kept) as rare as 20,000 x 10 would, at which bench_rib's ingest was no slower.
GC_THRESHOLDS = (10_000, 20, 10)


def make_store(url: str, replica_acks: int = 0) -> Store:
    if url == "memory://":
        return MemoryStore()
    from topfib.controller.state.redis_store import RedisStore

    return RedisStore.from_url(url, replica_acks=replica_acks)


def _fast_decoder(with_netflow: bool) -> BatchDecoder:
    from topfib.collector.sflow.fast import FastSflowDecoder

    if not with_netflow:
        return FastSflowDecoder()  # the C path takes whole batches: no per-datagram dispatch
    from topfib.collector.flow.mux import FlowBatchMux

    return FlowBatchMux(FastSflowDecoder())


async def _wait_any(events: tuple[asyncio.Event, ...], timeout_s: float) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class Service:
    """Everything `topfib run` runs. Inert until :meth:`start`."""

    def __init__(
        self,
        config: TopfibConfig,
        *,
        runtime_dir: Path | None = None,
        netns: str | None = None,
        store: Store | None = None,
    ) -> None:
        self.config = config
        if runtime_dir is None and config.exabgp.runtime_dir:
            runtime_dir = Path(config.exabgp.runtime_dir)
        self.runtime_dir = runtime_dir or Path(tempfile.mkdtemp(prefix="topfib-"))
        netns = netns or config.exabgp.netns
        self.store = store or make_store(config.store.url, config.store.replica_acks)
        self.lock = threading.Lock()
        collector = config.collector
        self.rates = PrefixRates(
            collector.fast_half_life_s, collector.slow_half_life_s, collector.fast_min_samples
        )
        self.path_rates = PathRates(collector.fast_half_life_s, collector.slow_half_life_s)
        self.controllers = {
            sw.name: SwitchController(
                sw, config, self.rates, self.store, self.lock, self.runtime_dir, netns=netns,
                path_rates=self.path_rates,
            )
            for sw in config.switch
        }
        agents = {agent: sw.name for sw in config.switch for agent in sw.sflow_agents}
        empty = LpmTable()
        self.matrix, self.matrix_writer = _make_matrix(config)
        self.collector = Collector(
            _fast_decoder(bool(config.collector.netflow_listen)),
            agents,
            lambda name: self.controllers[name].rib.lpm if name in self.controllers else empty,
            self.rates,
            # the RIB's paths name each sample's next hop and peer AS (the traffic matrix's keys)
            rib_for=lambda name: self.controllers[name].rib if name in self.controllers else None,
            # per-path traffic for GET /v1/top?per_path=true and for following observed paths
            path_rates=self.path_rates,
            flow_gate=FlowGate(
                SwitchFlowSources(sw.name, tuple(sw.sflow_agents), tuple(sw.effective_flow_sources))
                for sw in config.switch
            ),
            matrix=self.matrix,
            lock=self.lock,  # accounting waits while a controller changes the RIB
        )
        self.warm = WarmKeeper(config, self.rates, self.store, path_rates=self.path_rates)
        self.view = LiveView(self.controllers, self.collector)
        self.app = create_app(config, self.store, self.view, traffic_matrix=self.matrix)
        self._listener: FlowReceiver | None = None
        self._server: ApiServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.leases = self._make_leases()

    def _make_leases(self) -> dict[str, RedisLease]:
        """One lease per switch when state is shared in Redis: only its holder runs ExaBGP."""
        url = self.config.store.url
        if url == "memory://" or not self.config.store.lease:
            return {}
        import redis.asyncio as aioredis

        from topfib.controller.state.redis_connect import is_sentinel_url, redis_client

        client = redis_client(url, timeout_s=1.0)
        self._lease_client: aioredis.Redis[str] = client
        holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        leases = {}
        for sw in self.config.switch:
            ttl_s = max(3.0, 3 * sw.loop_period_s)
            # A failover may lose the lease (asynchronous replication): a new holder then acts one
            # TTL after its claim, when whatever the old holder counted on has run out.
            claim_s = ttl_s if is_sentinel_url(url) else 0.0
            leases[sw.name] = RedisLease(client, sw.name, holder, ttl_s=ttl_s, claim_s=claim_s)
        return leases

    def _bind_api(self) -> socket.socket:
        """The API's listening socket, bound before anything else starts (a taken port must not
        leave ExaBGP running with no API); ConfigError naming ``api.listen`` when it cannot be."""
        host, port = split_host_port(self.config.api.listen)
        # TCP_NODELAY here and on each accepted socket (topfib.api.transport.server): without it every
        # kept-alive
        # response waited ~40 ms for the client's delayed ACK.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            listen = self.config.api.listen
            raise ConfigError(f"api.listen: cannot listen on {listen}: {exc.strerror}") from None
        return sock

    async def start(self) -> None:
        """Bind the API and sFlow sockets, then start the controllers (and ExaBGP). Raises
        ConfigError naming the key, with nothing left running, when a socket cannot be bound
        (or the traffic matrix or runtime directory cannot be written or is not private)."""
        if self.matrix_writer is not None:
            try:
                await asyncio.to_thread(self.matrix_writer.prepare)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise ConfigError(f"matrix.directory: cannot write to {self.config.matrix.directory}: "
                                  f"{reason}") from None
        try:
            await asyncio.to_thread(ensure_private_dir, self.runtime_dir)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError(f"exabgp.runtime_dir: cannot use {self.runtime_dir}: {reason}") from None
        try:
            await asyncio.to_thread(self.warm.prepare)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            directory = self.config.state.directory
            raise ConfigError(f"state.directory: cannot use {directory}: {reason}") from None
        tls = TlsContexts.from_config(self.config.api)  # unreadable files: ConfigError before binding
        api_socket = self._bind_api()
        listener = FlowReceiver(
            self.collector,
            self.config.collector.sflow_listen + self.config.collector.netflow_listen,
            self.config.collector.receive_buffer_bytes,
        )
        try:
            listener.start()
        except OSError as exc:
            api_socket.close()
            listen = ",".join(self.config.collector.sflow_listen)
            raise ConfigError(f"collector.sflow_listen: cannot listen on {listen}: {exc.strerror}") from None
        self._listener = listener
        for ctl in self.controllers.values():
            if not self.leases:  # with leases the takeover restores (see _loop)
                await self.warm.restore(ctl)
            await ctl.start(active=not self.leases)
            self._tasks.append(asyncio.create_task(self._loop(ctl), name=f"loop-{ctl.name}"))
        limit = connection_limit(self.config.api.max_connections)  # raises the open-file limit
        self._server = ApiServer(self.app, self.config.api, tls, limit)
        self._tasks.append(asyncio.create_task(self._serve_api(api_socket), name="api"))
        if self.matrix is not None:
            self._tasks.append(asyncio.create_task(self._roll_matrix(self.matrix), name="matrix"))
        if self.warm.enabled:
            warm = self.warm.run(self.controllers.values(), self._stopping)
            self._tasks.append(asyncio.create_task(warm, name="warm-state"))

    def reload(self, config_path: Path) -> None:
        """SIGHUP: re-read ``config_path`` and apply what can change at run time
        (topfib.controller.service.reload),
        all of it or, when anything in the file is invalid, nothing. ExaBGP keeps running."""
        prepared = prepare_reload(config_path, self.config)
        if prepared is None:
            return
        config = prepared.plan.config
        # from here on no await: the API and the control loops see the old config or the new one
        self.config = config
        self.app.state.api_context.apply_config(config)
        if self._server is not None and self._server.tls is not None and prepared.tls is not None:
            self._server.tls.install(config.api, prepared.tls)
        for ctl in self.controllers.values():
            switch = config.switch_named(ctl.name)
            assert switch is not None  # a reload keeps the running switches (plan_reload)
            ctl.reconfigure(switch, config)
        report_reload(config_path, prepared.plan)

    async def _serve_api(self, sock: socket.socket) -> None:
        assert self._server is not None
        await self._server.serve(sockets=[sock])

    async def _loop(self, ctl: SwitchController) -> None:
        period = ctl.switch.loop_period_s
        while not self._stopping.is_set():
            started = time.monotonic()
            ctl.wake_event.clear()  # before the tick: a request stored during it wakes the next one
            try:
                lease = self.leases.get(ctl.name)
                if lease is not None:
                    if await lease.hold():
                        if not ctl.active:  # a takeover: start from the last active's state
                            # its own rates (the switch sends it sFlow too) must not count twice
                            await self.warm.restore(ctl, with_rates=not ctl.rates.prefix_count(ctl.name))
                        await ctl.activate()
                    elif lease.held():  # a new claim waits out a previous holder's validity
                        await ctl.deactivate("claimed the switch's lease; waiting one lease TTL")
                    else:
                        await ctl.deactivate("another controller holds the switch's lease")
                await ctl.tick()
            except Exception:  # the loop must outlive any one bad iteration
                log.exception("switch %s: control loop iteration failed", ctl.name)
            elapsed = time.monotonic() - started
            await _wait_any((self._stopping, ctl.wake_event), max(0.0, period - elapsed))

    async def _roll_matrix(self, matrix: TrafficMatrix) -> None:
        """Close each traffic matrix interval when it is due and hand it to the file writer."""
        while not self._stopping.is_set():
            await _wait_any((self._stopping,), matrix.seconds_until_next_roll(time.monotonic()))
            if self._stopping.is_set():
                break
            try:
                # building the rows of a big interval takes milliseconds: off the event loop too
                await self._write_matrix(await asyncio.to_thread(matrix.roll, time.monotonic()))
            except Exception:  # the loop must outlive any one bad interval
                log.exception("traffic matrix: closing an interval failed")

    async def _write_matrix(self, closed: list[MatrixInterval], final: bool = False) -> None:
        writer = self.matrix_writer
        if writer is None:
            return
        if closed:
            await asyncio.to_thread(writer.write, closed)  # file I/O off the event loop
        if final:
            await asyncio.to_thread(writer.close)

    async def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.request_exit()
        for ctl in self.controllers.values():
            await self.warm.save(ctl)  # the latest state for the next start (only while active)
            await ctl.stop()
            lease = self.leases.get(ctl.name)
            if lease is not None:
                with contextlib.suppress(Exception):
                    await lease.release()  # the standby need not wait for the TTL
        for task in self._tasks:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(task, 5.0)
        if self._listener is not None:
            self._listener.stop()
        if self.matrix is not None:  # after the listener: its last batches are in the flush
            await self._write_matrix(self.matrix.flush(time.monotonic()), final=True)
        await self.store.aclose()
        if self.leases:
            await self._lease_client.aclose()  # type: ignore[attr-defined,unused-ignore]


def _make_matrix(config: TopfibConfig) -> tuple[TrafficMatrix | None, MatrixFileWriter | None]:
    settings = config.matrix
    if not settings.enabled:
        return None, None
    matrix = TrafficMatrix(settings.interval_s, settings.max_rows, settings.keep_intervals,
                           to_wall=monotonic_to_wall)
    if settings.directory is None:
        return matrix, None
    writer = MatrixFileWriter(Path(settings.directory), settings.format, settings.effective_file_interval_s,
                              settings.keep_files)
    return matrix, writer


class EarlyHangups:
    """SIGHUPs before the service has started (``systemctl reload`` right after a start, which
    can take long with a full RIB file): noted, and applied once it has started. SIGHUP's default
    action ends the process, and systemd does not restart a service a SIGHUP ended."""

    def __init__(self) -> None:
        self.pending = False
        signal.signal(signal.SIGHUP, self._note)

    def _note(self, signum: int, frame: object) -> None:
        self.pending = True


def freeze_start_up_heap() -> None:
    """Once started, the objects built so far (modules, the API app, config, controllers, a RIB
    file's routes) live as long as the process: moved out of the collector's generations, a full
    collection no longer walks them (~20 ms of held event loop each under API load). Collected
    first, so start-up's garbage cycles are freed rather than kept for good."""
    gc.collect()
    gc.freeze()


async def serve(config: TopfibConfig, config_path: Path, early: EarlyHangups | None = None) -> None:
    service = Service(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    freeze_start_up_heap()
    loop.add_signal_handler(signal.SIGHUP, service.reload, config_path)
    if early is not None and early.pending:
        service.reload(config_path)
    log.info("topfib running: api %s, sflow %s, %d switch(es)", config.api.listen,
             ",".join(config.collector.sflow_listen), len(config.switch))
    try:
        await stop.wait()
    finally:
        await service.stop()


def run_service(config_path: Path, log_format: LogFormat = LogFormat.TEXT) -> int:
    """CLI body of ``topfib run``."""
    early = EarlyHangups()
    configure_logging(log_format)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"{config_path}: {exc}", file=sys.stderr)
        return 2
    missing = exabgp_missing_reason(config.exabgp.executable)
    if missing is not None:
        print(f"{config_path}: {missing}", file=sys.stderr)
        return 2
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        asyncio.run(serve(config, config_path, early))
    except ConfigError as exc:  # a socket the config names cannot be bound; nothing was started
        print(f"{config_path}: {exc}", file=sys.stderr)
        return 2
    return 0
