"""A two-namespace lab: topfib's side (``ctl``) and a BIRD 2 switch (``sw``), joined by a veth.

    ctl (tf<pid>ctl)                      sw (tf<pid>sw)
    tfc0 10.99.0.1/30 fd99::1/64  ══veth══  tfs0 10.99.0.2/30 fd99::2/64     BIRD 2, AS 65000
                                            lan0 192.168.50.1/24 fd50::1/64 ══veth══ lan1
                                            (peering LAN: next-hops .11/.12/.13, fd50::11/12/13)
                                            default via 192.168.50.254 (transit, not from BIRD)

The namespaces, links and BIRD are the product's (:mod:`topfib.controller.demo.netns_lab`, which
``topfib demo`` runs): BIRD's "peer" routes are static routes sent to topfib with ``add paths tx``;
routes from topfib are imported with ``import limit N action block`` and are the only ones its
kernel protocol exports, so ``ip -n SW route show proto bird`` is exactly what topfib installed.
Here are the tests' own parts: three peers with 1–3 paths per prefix, the session options the
tests vary, the FIB watchers and ExaBGP's side.

Cleanup is by PID and by the namespace names this lab created, never by process name.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, overload

from topfib.controller.config import SwitchConfig
from topfib.controller.demo import netns_lab
from topfib.controller.demo.netns_lab import (
    BirdProcess,
    Namespaces,
    PeerRoute,
    SessionOptions,
    build_switch_network,
    render_bird_config,
    render_static_protocol,
)
from topfib.controller.exabgp.config import BridgeCommand, write_exabgp_config
from topfib.controller.exabgp.link import ExabgpLink
from topfib.controller.exabgp.runner import ExabgpRunner

# the product's namespace switch: its addresses, its session, its helpers
CTL_V4, SW_V4, CTL_V6, SW_V6 = netns_lab.CTL_V4, netns_lab.SW_V4, netns_lab.CTL_V6, netns_lab.SW_V6
LAN_V4, LAN_V6 = netns_lab.LAN_V4, netns_lab.LAN_V6
TRANSIT_V4, TRANSIT_V6 = netns_lab.TRANSIT[4], netns_lab.TRANSIT[6]
LOCAL_AS = PEER_AS = netns_lab.SWITCH_AS
BGP_PROTOCOL = netns_lab.BGP_PROTOCOL
run = netns_lab.run_tool
wait_until = netns_lab.wait_until
# Why the lab cannot run here (None when it can): it needs root, ip and BIRD 2.
lab_unavailable_reason = netns_lab.unavailable_reason

LAB_PEERS = 3  # the demo's switch has four; the tests' prefixes have 1-3 paths (paths_of)
NEXT_HOPS_V4 = netns_lab.PEER_NEXT_HOPS[4][:LAB_PEERS]
NEXT_HOPS_V6 = netns_lab.PEER_NEXT_HOPS[6][:LAB_PEERS]
EXABGP_PORT = 1790
BIRD_START_S = 10.0
MONITOR_RCVBUF = 32 * 1024 * 1024  # ip monitor's netlink receive buffer (the kernel caps it)

_instances = 0
W = TypeVar("W", bound="FibWatcher")

# The lab's IPv6 peer prefixes lie in 2001:db8::/32 (documentation): topfib's configs for the
# lab let them through (``[special_use]``); every other special-use range stays refused.
LAB_SPECIAL_USE: dict[str, bool] = {"documentation": False}


def peer_prefixes(count: int, family: int) -> list[str]:
    """``count`` distinct prefixes: /24s (IPv4) or /48s (IPv6), plus a covering /16 or /32 for
    every 256 of them so that nested prefixes exist."""
    prefixes: list[str] = []
    if family == 4:
        base = int(ipaddress.IPv4Address("16.0.0.0"))
        for i in range(count):
            if i % 257 == 0:
                prefixes.append(f"{ipaddress.IPv4Address(base + (i // 257) * 65536)}/16")
            else:
                prefixes.append(f"{ipaddress.IPv4Address(base + (i // 257) * 65536 + (i % 257) * 256)}/24")
        return prefixes
    base6 = int(ipaddress.IPv6Address("2001:db8::"))
    for i in range(count):
        block = base6 + (i // 257) * (1 << 96)
        if i % 257 == 0:
            prefixes.append(f"{ipaddress.IPv6Address(block)}/32")
        else:
            prefixes.append(f"{ipaddress.IPv6Address(block + (i % 257) * (1 << 80))}/48")
    return prefixes


def paths_of(index: int) -> int:
    """How many peer next-hops prefix number ``index`` has: 1, 2 or 3 (cycling)."""
    return index % 3 + 1


def runqueue_wait_s(pid: int | None) -> float:
    """Seconds ``pid`` has been runnable but waiting for a CPU (/proc/PID/schedstat); 0 if gone."""
    if pid is None:
        return 0.0
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


async def async_wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval_s)


def _apply_line(routes: dict[str, str], line: str, proto: str = "bird") -> str | None:
    words = line.split()
    if "proto" not in words or words[words.index("proto") + 1:words.index("proto") + 2] != [proto]:
        return None
    deleted = words[0] == "Deleted"
    if deleted:
        words = words[1:]
    prefix = words[0]
    if "/" not in prefix:
        prefix += "/128" if ":" in prefix else "/32"
    if deleted:
        routes.pop(prefix, None)
    else:
        routes[prefix] = words[words.index("via") + 1] if "via" in words else ""
    return prefix


class FibWatcher:
    """prefix → next-hop of the routes BIRD installed, kept current from ``ip monitor route``.

    When ``ip monitor`` reports that the kernel dropped events (ENOBUFS in a burst of ~20k
    routes) the watcher starts again from a kernel dump and replays the events that arrived while
    the dump was taken (each event sets its prefix's state, so replaying them in order onto a dump
    taken in between ends where the kernel is)."""

    def __init__(self, routes: dict[str, str]) -> None:
        self.routes = routes
        self.proto = "bird"  # the kernel route protocol of the switch's routes (FRR: "bgp")
        self.changed = asyncio.Event()
        self.overflows = 0  # times ip monitor reported lost events
        self.resyncs = 0
        self._recording: list[str] | None = None

    def reset(self, routes: dict[str, str]) -> None:
        """Start again from a kernel dump."""
        self.routes = routes

    async def follow(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace")
            if self._recording is not None:
                self._recording.append(text)
            self.apply(text)

    async def resync(self, dump: Callable[[], dict[str, str]]) -> None:
        """Replace the state by ``dump()`` (run in a thread) plus the events seen meanwhile."""
        self._recording = []
        try:
            routes = await asyncio.to_thread(dump)
            for line in self._recording:
                _apply_line(routes, line, self.proto)
        finally:
            self._recording = None
        self.resyncs += 1
        self.reset(routes)
        self.changed.set()

    def apply(self, line: str) -> str | None:
        """Apply one ``ip monitor`` line; the prefix it changed (None: not a BIRD route)."""
        prefix = _apply_line(self.routes, line, self.proto)
        if prefix is not None:
            self.changed.set()
        return prefix

    async def wait_for(self, condition: Callable[[dict[str, str]], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition(self.routes):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.5))
        return True


@dataclass
class Lab:
    """Namespaces, links and a BIRD switch. Use as a context manager; root only."""

    routes_v4: int = 50
    routes_v6: int = 20
    import_limit: int = 100_000
    # True: ExaBGP listens (passive) on EXABGP_PORT and BIRD dials it; False: ExaBGP dials BIRD.
    topfib_passive: bool = False
    # the session's TCP-MD5 password (RFC 2385) on BIRD's side; None: no MD5
    bgp_password: str | None = None
    # GTSM (RFC 5082) on BIRD's side: send with TTL 255, accept only TTL 255 (directly connected)
    ttl_security: bool = False
    # BGP graceful restart (RFC 4724) on BIRD's side: it keeps topfib's routes as stale while
    # topfib restarts, if topfib advertises it too (switch[].graceful_restart_s)
    graceful_restart: bool = False
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="topfib-lab-")))
    ctl: str = ""
    sw: str = ""
    bird_pid: int | None = None
    prefixes_v4: list[str] = field(default_factory=list)
    prefixes_v6: list[str] = field(default_factory=list)
    namespaces: Namespaces = field(default_factory=Namespaces)
    _bird: BirdProcess = field(init=False)
    # The kernel route protocol the switch installs topfib's routes with (FrrLab: "bgp").
    route_proto = "bird"

    def __post_init__(self) -> None:
        global _instances
        tag = "" if _instances == 0 else f"x{_instances}"
        _instances += 1
        self.ctl = self.ctl or f"tf{os.getpid()}{tag}ctl"
        self.sw = self.sw or f"tf{os.getpid()}{tag}sw"
        self._bird = BirdProcess(self.sw, self.workdir)

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        try:
            self._build_network()
            self.write_peer_routes(peer_prefixes(self.routes_v4, 4), peer_prefixes(self.routes_v6, 6))
            self._write_bird_config()
            self.start_bird()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill BIRD by PID, kill whatever is left in our namespaces, delete them. Idempotent."""
        self.stop_bird()
        self.namespaces.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def namespace_pids(self, ns: str) -> list[int]:
        return netns_lab.namespace_pids(ns)

    # --- network -----------------------------------------------------------------------------

    def _build_network(self) -> None:
        build_switch_network(self.namespaces, self.ctl, self.sw)

    def ip(self, ns: str, *args: str) -> str:
        return netns_lab.ip(ns, *args)

    # --- BIRD ----------------------------------------------------------------------------------

    @property
    def bird_socket(self) -> Path:
        return self._bird.socket

    @property
    def bird_log(self) -> Path:
        return self._bird.log

    def _write_bird_config(self) -> None:
        session = SessionOptions(topfib_port=EXABGP_PORT if self.topfib_passive else None,
                                 password=self.bgp_password, ttl_security=self.ttl_security,
                                 graceful_restart=self.graceful_restart)
        (self.workdir / "bird.conf").write_text(render_bird_config(
            self.workdir, self.import_limit, self.import_limit, peers=LAB_PEERS, session=session))

    def write_peer_routes(self, prefixes_v4: list[str], prefixes_v6: list[str]) -> None:
        """(Re)write the static "peer" routes: prefix i gets paths_of(i) next-hops."""
        for family, prefixes in ((4, prefixes_v4), (6, prefixes_v6)):
            routes: list[PeerRoute] = [(p, tuple(range(paths_of(i)))) for i, p in enumerate(prefixes)]
            for peer in range(LAB_PEERS):
                (self.workdir / f"peer{family}_{peer}.conf").write_text(
                    render_static_protocol(family, peer, routes))
        self.prefixes_v4 = list(prefixes_v4)
        self.prefixes_v6 = list(prefixes_v6)

    def replace_peer_routes(self, prefixes_v4: list[str], prefixes_v6: list[str]) -> None:
        """New static routes, then ``birdc configure`` (the session stays up)."""
        self.write_peer_routes(prefixes_v4, prefixes_v6)
        out = self.birdc("configure")
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
            raise RuntimeError(f"birdc configure: {out}")

    def start_bird(self) -> None:
        self._bird.start(BIRD_START_S)
        self.bird_pid = self._bird.pid

    def stop_bird(self) -> None:
        self._bird.stop()
        self.bird_pid = None

    def restart_bird(self) -> None:
        self.stop_bird()
        self.start_bird()

    def birdc(self, *command: str) -> str:
        return self._bird.birdc(*command)

    def disable_session(self) -> None:
        self.birdc("disable", BGP_PROTOCOL)

    def enable_session(self) -> None:
        self.birdc("enable", BGP_PROTOCOL)

    def session_established(self) -> bool:
        return "Established" in self.birdc("show", "protocols", BGP_PROTOCOL)

    def disable_peer(self, peer: int) -> None:
        """Peer ``peer`` (next hops NEXT_HOPS_V4/V6[peer]) withdraws all its paths."""
        for family in (4, 6):
            self.birdc("disable", f"peer{family}_{peer}")

    def enable_peer(self, peer: int) -> None:
        for family in (4, 6):
            self.birdc("enable", f"peer{family}_{peer}")

    def import_limit_fired(self) -> bool:
        """True if BIRD ever hit the import limit on the topfib session (it logs each time)."""
        return self._bird.import_limit_fired()

    # --- the switch's kernel FIB ---------------------------------------------------------------

    def _bird_routes(self, family: int) -> list[dict[str, object]]:
        out = run(["ip", f"-{family}", "-j", "-n", self.sw, "route", "show", "proto", self.route_proto],
                  timeout=60).stdout
        routes: list[dict[str, object]] = json.loads(out) if out.strip() else []
        return routes

    def fib_routes(self, family: int = 4) -> set[str]:
        """Prefixes BIRD installed in sw's kernel FIB (only routes learned from topfib)."""
        return {str(ipaddress.ip_network(str(r["dst"]))) for r in self._bird_routes(family)}

    def fib_next_hops(self) -> dict[str, str]:
        """prefix → gateway, both families."""
        return {str(ipaddress.ip_network(str(r["dst"]))): str(r.get("gateway", ""))
                for family in (4, 6) for r in self._bird_routes(family)}

    async def wait_fib(self, condition: Callable[[dict[str, str]], bool], timeout_s: float,
                       interval_s: float = 0.05) -> bool:
        """Poll :meth:`fib_next_hops` (off the event loop) until ``condition`` holds."""
        deadline = time.monotonic() + timeout_s
        while True:
            if condition(await asyncio.to_thread(self.fib_next_hops)):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(interval_s)

    @overload
    def watch_fib(self) -> contextlib.AbstractAsyncContextManager[FibWatcher]: ...

    @overload
    def watch_fib(self, watcher_type: type[W]) -> contextlib.AbstractAsyncContextManager[W]: ...

    def watch_fib(
        self, watcher_type: type[FibWatcher] = FibWatcher
    ) -> contextlib.AbstractAsyncContextManager[FibWatcher]:
        """Follow sw's kernel FIB by ``ip monitor route`` events: cheap enough to time big changes
        (re-dumping 30k routes every few ms would itself eat the CPU being measured).
        ``watcher_type`` may be a FibWatcher subclass that keeps more (e.g. peaks)."""
        return self._watch_fib(watcher_type)

    @contextlib.asynccontextmanager
    async def _watch_fib(self, watcher_type: type[W]) -> AsyncIterator[W]:
        # A large receive buffer (capped by net.core.rmem_max) makes lost events rare; when the
        # kernel still drops some, ip says so on stderr and the watcher resyncs from a dump.
        proc = await asyncio.create_subprocess_exec(
            "ip", "-rcvbuf", str(MONITOR_RCVBUF), "-n", self.sw, "monitor", "route",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
        watcher = watcher_type({})
        watcher.proto = self.route_proto
        assert proc.stdout is not None and proc.stderr is not None
        reader = asyncio.create_task(watcher.follow(proc.stdout))
        errors = asyncio.create_task(self._resync_on_overflow(watcher, proc.stderr))
        await asyncio.sleep(0.1)  # let ip subscribe before the caller changes anything
        await watcher.resync(self.fib_next_hops)
        try:
            yield watcher
        finally:
            reader.cancel()
            errors.cancel()
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            for task in (reader, errors):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _resync_on_overflow(self, watcher: FibWatcher, stderr: asyncio.StreamReader) -> None:
        while line := await stderr.readline():
            if b"No buffer space" in line or b"ENOBUFS" in line:
                watcher.overflows += 1
                await watcher.resync(self.fib_next_hops)

    def default_routes(self) -> list[str]:
        return [self.ip(self.sw, "route", "show", "default").strip(),
                self.ip(self.sw, "-6", "route", "show", "default").strip()]

    # --- topfib's side -------------------------------------------------------------------------

    def switch_config(self, **overrides: object) -> SwitchConfig:
        fields: dict[str, object] = {
            "name": "labsw",
            "neighbor": SW_V4,
            "local_address": CTL_V4,
            "local_as": LOCAL_AS,
            "peer_as": PEER_AS,
            "fib_cap_ipv4": self.import_limit,
            "fib_cap_ipv6": self.import_limit,
        }
        if self.topfib_passive:
            fields.update(passive=True, bgp_port=EXABGP_PORT)
        fields.update(overrides)
        return SwitchConfig.model_validate(fields)

    @contextlib.asynccontextmanager
    async def exabgp(self, reactor_speed: float | None = None, stop_grace_s: float = 5.0,
                     backoff_min_s: float = 0.2,
                     switch_overrides: dict[str, object] | None = None) -> AsyncIterator[ExabgpSession]:
        """ExaBGP (runner) + bridge + link in ``ctl``, peering with BIRD; stopped on exit.
        ``switch_overrides`` change the switch's config (e.g. ``md5_password``)."""
        switch = self.switch_config(**(switch_overrides or {}))
        sock = self.workdir / f"{switch.name}.sock"
        conf = write_exabgp_config(switch, BridgeCommand(sock), self.workdir / f"{switch.name}.conf")
        session = ExabgpSession()
        link = ExabgpLink(sock, session.messages.append, switch_name=switch.name)
        runner = ExabgpRunner(conf, switch_name=switch.name, reactor_speed=reactor_speed, netns=self.ctl,
                              log_path=self.workdir / "exabgp.log", stop_grace_s=stop_grace_s,
                              backoff_min_s=backoff_min_s, backoff_max_s=max(2.0, backoff_min_s),
                              bridge_group=lambda: link.bridge.pgid if link.bridge else None)
        session.link, session.runner = link, runner
        await link.start()
        try:
            await runner.start()
            yield session
        finally:
            await runner.stop()
            await link.stop()


@dataclass
class ExabgpSession:
    """What a lab test talks to: the link (send, messages) and the runner (PIDs, restarts)."""

    messages: list[str] = field(default_factory=list)
    link: ExabgpLink = field(init=False)
    runner: ExabgpRunner = field(init=False)

    def decoded(self) -> Iterator[dict[str, object]]:
        for line in self.messages:
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                if isinstance(message, dict):
                    yield message

    def states(self) -> list[str]:
        """Neighbor state changes seen so far (``connected``, ``up``, ``down``)."""
        return [str(m["neighbor"]["state"]) for m in self.decoded()  # type: ignore[index]
                if m.get("type") == "state"]

    def is_up(self) -> bool:
        states = self.states()
        return bool(states) and states[-1] == "up"

    async def wait_up(self, timeout_s: float = 15.0) -> bool:
        return await async_wait_until(lambda: self.link.connected and self.is_up(), timeout_s)

    def received_paths(self) -> dict[tuple[str, str], dict[str, str]]:
        """(family, prefix) → {path-id: next-hop}, replaying announces and withdraws in order."""
        paths: dict[tuple[str, str], dict[str, str]] = {}
        for message in self.decoded():
            if message.get("type") != "update":
                continue
            update = message["neighbor"]["message"].get("update", {})  # type: ignore[index]
            for family, by_next_hop in update.get("announce", {}).items():
                for next_hop, nlris in by_next_hop.items():
                    for nlri in nlris:
                        key = (family, nlri["nlri"])
                        paths.setdefault(key, {})[nlri.get("path-information", "0.0.0.0")] = next_hop
            for family, nlris in update.get("withdraw", {}).items():
                for nlri in nlris:
                    known = paths.get((family, nlri["nlri"]), {})
                    known.pop(nlri.get("path-information", "0.0.0.0"), None)
                    if not known:
                        paths.pop((family, nlri["nlri"]), None)
        return paths

    def end_of_rib(self) -> set[str]:
        """Families for which End-of-RIB arrived: {"ipv4 unicast", "ipv6 unicast"}."""
        families: set[str] = set()
        for message in self.decoded():
            if message.get("type") == "update":
                eor = message["neighbor"]["message"].get("eor")  # type: ignore[index]
                if isinstance(eor, dict):
                    families.add(f"{eor['afi']} {eor['safi']}")
        return families
