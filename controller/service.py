"""`topfib run`: collector, controllers and API in one asyncio process.

The sFlow listener runs in its own thread (the socket must be drained at line rate); the RIB and
the rates are shared with it under one lock per process. Each switch has its own control loop
(:class:`controller.switch_controller.SwitchController`) and its own supervised ExaBGP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

from api.app import create_app
from collector.accounting import PrefixRates
from collector.lpm import LpmTable
from collector.pipeline import Collector
from controller.config import ConfigError, TopfibConfig, load_config, split_host_port
from controller.live_view import LiveView
from controller.store import MemoryStore, Store
from controller.switch_controller import SwitchController

log = logging.getLogger(__name__)


class LockedCollector(Collector):
    """The collector, accounting under the lock the controllers hold while they touch the RIB."""

    lock: threading.Lock

    def flush(self, now: float) -> int:
        batch = self.decoder.take()
        with self.lock:
            self.process(batch, now)
        return batch.flow_samples


def make_store(url: str) -> Store:
    if url == "memory://":
        return MemoryStore()
    from controller.redis_store import RedisStore

    return RedisStore.from_url(url)


def _fast_decoder() -> object:
    from collector.sflow_fast import FastSflowDecoder

    return FastSflowDecoder()


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
        self.runtime_dir = runtime_dir or Path(tempfile.mkdtemp(prefix="topfib-"))
        self.store = store or make_store(config.store.url)
        self.lock = threading.Lock()
        self.rates = PrefixRates(config.collector.fast_half_life_s, config.collector.slow_half_life_s)
        self.controllers = {
            sw.name: SwitchController(
                sw, config, self.rates, self.store, self.lock, self.runtime_dir, netns=netns
            )
            for sw in config.switch
        }
        agents = {agent: sw.name for sw in config.switch for agent in sw.sflow_agents}
        empty = LpmTable()
        self.collector = LockedCollector(
            _fast_decoder(),  # type: ignore[arg-type]
            agents,
            lambda name: self.controllers[name].rib.lpm if name in self.controllers else empty,
            self.rates,
        )
        self.collector.lock = self.lock
        self.view = LiveView(self.controllers, self.collector)
        self.app = create_app(config, self.store, self.view)
        self._listener: object | None = None
        self._server: uvicorn.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        from collector.listener import SflowListener

        listener = SflowListener(
            self.collector, self.config.collector.sflow_listen, self.config.collector.receive_buffer_bytes
        )
        listener.start()
        self._listener = listener
        for ctl in self.controllers.values():
            await ctl.start()
            self._tasks.append(asyncio.create_task(self._loop(ctl), name=f"loop-{ctl.name}"))
        host, port = split_host_port(self.config.api.listen)
        server_config = uvicorn.Config(
            self.app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(server_config)
        self._tasks.append(asyncio.create_task(self._serve_api(), name="api"))

    async def _serve_api(self) -> None:
        assert self._server is not None
        await self._server.serve()

    async def _loop(self, ctl: SwitchController) -> None:
        period = ctl.switch.loop_period_s
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                await ctl.tick()
            except Exception:  # the loop must outlive any one bad iteration
                log.exception("switch %s: control loop iteration failed", ctl.name)
            elapsed = time.monotonic() - started
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), max(0.0, period - elapsed))

    async def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        for ctl in self.controllers.values():
            await ctl.stop()
        for task in self._tasks:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(task, 5.0)
        if self._listener is not None:
            self._listener.stop()  # type: ignore[attr-defined]
        await self.store.aclose()


async def serve(config: TopfibConfig) -> None:
    service = Service(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    log.info("topfib running: api %s, sflow %s, %d switch(es)", config.api.listen,
             ",".join(config.collector.sflow_listen), len(config.switch))
    try:
        await stop.wait()
    finally:
        await service.stop()


def run_service(config_path: Path) -> int:
    """CLI body of ``topfib run``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"{config_path}: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(config))
    return 0
