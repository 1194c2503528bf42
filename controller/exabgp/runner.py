"""Supervise ``exabgp server CONF`` as a child process: start, capture output, restart, stop.

ExaBGP runs in its own session (process group) so a signal to topfib's terminal does not reach
it, and stop can kill everything it started at once. Its helper (the bridge) lives in yet
another group, created by ExaBGP; the bridge tells topfib its PID on connect, and stop kills that
group too, so nothing survives even after ExaBGP was SIGKILLed and could not clean up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import pwd
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from topfib.collector.common.metrics import REGISTRY
from topfib.controller.exabgp.line_log import LineLog

log = logging.getLogger(__name__)

RESTARTS = REGISTRY.counter(
    "topfib_exabgp_restarts_total", "ExaBGP child exits followed by a restart", ("switch",)
)

DEFAULT_BACKOFF_MIN_S = 0.5
STABLE_AFTER_S = 10.0  # a run this long resets the backoff
RECENT_OUTPUT_LINES = 200
OUTPUT_DRAIN_S = 0.5

BridgeGroupSource = Callable[[], "int | None"]


def default_exabgp_executable() -> str:
    """The ``exabgp`` next to this interpreter (the venv's), else whatever PATH finds."""
    beside = Path(sys.executable).parent / "exabgp"
    return str(beside) if beside.exists() else "exabgp"


def exabgp_missing_reason(executable: str = "") -> str | None:
    """Why ExaBGP cannot be started (None when it can): checked before anything starts, so a broken
    install says so at once instead of as a supervisor restarting a command that does not exist."""
    command = executable or default_exabgp_executable()
    if shutil.which(command) is not None:
        return None
    where = "exabgp.executable" if executable else f"beside {sys.executable} or on PATH"
    return (f"ExaBGP not found ({command!r}, {where}): it is one of topfib's dependencies; "
            "install topfib with pip/pipx (not --no-deps) so its `exabgp` command comes with it")


LAUNCHER = Path(__file__).with_name("launch.py")


def default_exabgp_argv() -> list[str]:
    """The venv's ExaBGP through topfib's launcher (no idle wait while commands are queued: see
    controller/exabgp/launch.py); ``-P``: the launcher's directory must not shadow ``select``."""
    if default_exabgp_executable() == "exabgp":
        return ["exabgp"]
    return [sys.executable, "-P", str(LAUNCHER)]


def exabgp_environment(reactor_speed: float | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment ExaBGP runs with.

    Privilege drop is off: as root ExaBGP would otherwise switch to ``nobody`` and its helper
    could no longer reach topfib's socket. ``reactor_speed`` None keeps ExaBGP's default (1.0).
    """
    env = dict(os.environ if base is None else base)
    env.update({
        "exabgp_daemon_drop": "false",
        "exabgp_daemon_user": pwd.getpwuid(os.geteuid()).pw_name,
        "exabgp_daemon_daemonize": "false",
        "exabgp_api_ack": "true",
        "exabgp_api_cli": "false",  # no named pipes in /run; topfib is the only API user
        "exabgp_api_respawn": "true",
        "exabgp_log_destination": "stdout",
        "exabgp_log_processes": "false",  # one line per announced route: CPU and noise at 30k routes
        # "statistics for receive-update counter N" after every message received: 99.9 % of the log
        "exabgp_log_statistics": "false",
        "PYTHONUNBUFFERED": "1",
    })
    if reactor_speed is not None:
        env["exabgp_reactor_speed"] = repr(float(reactor_speed))
    return env


_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: no dlopen in the forked child


def _die_with_parent(topfib_pid: int) -> None:
    """Runs in the child before exec: SIGKILL it when topfib dies, however topfib dies.

    An ExaBGP outliving topfib would keep the session and the switch would keep routes nobody
    manages; dead, the switch drops them (no graceful restart) and falls back to its default.
    The setting survives ``ip netns exec`` (no setuid) and is not inherited by the bridge, which
    exits on its own when ExaBGP's pipe closes. It fires when the *thread* that started ExaBGP
    ends: run the runner on the event loop of topfib's main thread.
    """
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != topfib_pid:  # topfib died before prctl took effect
        os._exit(1)


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to a process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        log.warning("not allowed to signal process group %d", pgid)
        return False
    return True


def _group_alive(pgid: int) -> bool:
    return _signal_group(pgid, 0)


def _is_bridge_group(pgid: int) -> bool:
    """Guard against PID reuse: only a group led by a process running bridge.py is ours to kill."""
    try:
        cmdline = Path(f"/proc/{pgid}/cmdline").read_bytes()
    except OSError:
        return _group_alive(pgid)  # leader gone, members may remain; the group id is still ours
    return b"bridge.py" in cmdline


class ExabgpRunner:
    """Keeps one ExaBGP running for one switch. Inert until :meth:`start`."""

    def __init__(
        self,
        config_path: Path,
        *,
        switch_name: str,
        executable: str = "",
        reactor_speed: float | None = None,
        backoff_min_s: float = DEFAULT_BACKOFF_MIN_S,
        backoff_max_s: float = 30.0,
        netns: str | None = None,
        log_path: Path | None = None,
        bridge_group: BridgeGroupSource | None = None,
        stop_grace_s: float = 5.0,
    ) -> None:
        self.config_path = config_path
        self.switch_name = switch_name
        self.executable = executable or default_exabgp_executable()
        self._exabgp_argv = [executable] if executable else default_exabgp_argv()
        self.reactor_speed = reactor_speed
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = max(backoff_max_s, backoff_min_s)
        self.netns = netns
        self.log_path = log_path
        self.stop_grace_s = stop_grace_s
        self.restarts = 0
        self.recent_output: deque[str] = deque(maxlen=RECENT_OUTPUT_LINES)
        self._bridge_group = bridge_group
        self._bridge_groups_seen: set[int] = set()
        self._proc: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._started = asyncio.Event()

    # --- public ----------------------------------------------------------------------------

    def command(self) -> list[str]:
        argv = [*self._exabgp_argv, "server", str(self.config_path)]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]  # ip execs in place: same PID
        return argv

    @property
    def pid(self) -> int | None:
        """PID (and process group) of the running ExaBGP, or None between runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    async def start(self) -> None:
        """Start ExaBGP and keep it running until :meth:`stop`; returns once it was spawned."""
        if self._supervisor is not None:
            raise RuntimeError("runner already started")
        self._stopping.clear()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"exabgp-{self.switch_name}")
        started = asyncio.create_task(self._started.wait())
        await asyncio.wait({started, self._supervisor}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()

    def note_bridge_group(self, pgid: int) -> None:
        """Remember a bridge process group to kill at stop (the link's hello reports it)."""
        self._bridge_groups_seen.add(pgid)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after the grace period, ExaBGP's group and every bridge group."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), self.stop_grace_s)
            except TimeoutError:
                log.warning("switch %s: ExaBGP ignored SIGTERM for %.1f s, killing",
                            self.switch_name, self.stop_grace_s)
        if proc is not None:
            _signal_group(proc.pid, signal.SIGKILL)  # whatever of its group is left
            with contextlib.suppress(ProcessLookupError):
                await proc.wait()
            self._proc = None  # a second stop must not signal a group id that may be reused
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._kill_bridges()

    # --- supervision -----------------------------------------------------------------------

    async def _supervise(self) -> None:
        backoff = self.backoff_min_s
        while not self._stopping.is_set():
            began = time.monotonic()
            returncode = await self._run_once()
            if self._stopping.is_set():
                return
            ran_s = time.monotonic() - began
            if ran_s >= STABLE_AFTER_S:
                backoff = self.backoff_min_s
            self.restarts += 1
            RESTARTS.inc(switch=self.switch_name)
            log.warning("switch %s: ExaBGP exited (%s) after %.1f s; restarting in %.1f s",
                        self.switch_name, returncode, ran_s, backoff)
            await self._kill_bridges()  # an orphaned bridge from the dead ExaBGP
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            backoff = min(backoff * 2, self.backoff_max_s)

    async def _run_once(self) -> int | str:
        # Our own pipe, not asyncio's: ExaBGP's helper inherits its stderr and may outlive it, and
        # asyncio's Process.wait() would wait for that pipe to close, not for ExaBGP to exit.
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                env=exabgp_environment(self.reactor_speed),
                start_new_session=True,
                preexec_fn=functools.partial(_die_with_parent, os.getpid()),
            )
        except OSError as exc:
            os.close(read_fd)
            self._started.set()
            log.error("switch %s: cannot start ExaBGP %s: %s", self.switch_name, self.command(), exc)
            return f"spawn failed: {exc.strerror}"
        finally:
            os.close(write_fd)
        self._proc = proc
        self._started.set()
        log.info("switch %s: ExaBGP started (pid %d): %s", self.switch_name, proc.pid,
                 " ".join(self.command()))
        pump = asyncio.create_task(self._pump_output(read_fd))
        try:
            returncode = await proc.wait()
        finally:
            _signal_group(proc.pid, signal.SIGKILL)  # nothing of a dead ExaBGP's group may linger
            # Read what is left, but do not wait for a lingering helper to close the pipe.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(pump, OUTPUT_DRAIN_S)
        return returncode

    async def _pump_output(self, read_fd: int) -> None:
        """Read ExaBGP's output (it must never block on a full pipe) into the log until EOF."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1024 * 1024)
        pipe = os.fdopen(read_fd, "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        log_file = self._open_log()
        try:
            while True:
                try:
                    raw = await reader.readline()
                except ValueError:  # a line over the limit: keep what fits, go on
                    raw = await reader.read(64 * 1024)
                if not raw:
                    return
                line = raw.decode("utf-8", "replace").rstrip()
                self.recent_output.append(line)
                log.debug("exabgp[%s]: %s", self.switch_name, line)
                if log_file is not None:
                    log_file.write(line)
        finally:
            transport.close()
            if log_file is not None:
                log_file.close()

    def _open_log(self) -> LineLog | None:
        """The output log, or None (refused or failing: the output must still be drained)."""
        if self.log_path is None:
            return None
        try:
            return LineLog(self.log_path)
        except OSError as exc:
            log.error("switch %s: not writing ExaBGP's output to a file: %s", self.switch_name, exc)
            return None

    async def _kill_bridges(self) -> None:
        groups = set(self._bridge_groups_seen)
        if self._bridge_group is not None:
            current = self._bridge_group()
            if current is not None:
                groups.add(current)
        groups = {g for g in groups if g > 1 and g != os.getpgrp() and _is_bridge_group(g)}
        for pgid in groups:
            _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 1.0
        while groups and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            groups = {g for g in groups if _group_alive(g)}
        for pgid in groups:
            _signal_group(pgid, signal.SIGKILL)
        self._bridge_groups_seen.clear()
