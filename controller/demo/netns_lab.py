"""A BIRD 2 switch in a network namespace, for ``topfib demo`` and the integration tests (root only).

    ctl (<tag>ctl)                         sw (<tag>sw)
    tfc0 10.99.0.1/30 fd99::1/64  ══veth══  tfs0 10.99.0.2/30 fd99::2/64    BIRD 2, AS 65000
                                            lan0 192.168.50.1/24 fd50::1/64 ══veth══ lan1
                                            (peering LAN: peer next-hops .11–.14, fd50::11–14)
                                            default via 192.168.50.254 (transit, not from BIRD)

topfib's ExaBGP runs in ``ctl`` and peers with BIRD over the veth. BIRD's "peer" routes are static
routes (preference 50, one static protocol per peer next-hop so a prefix can have several paths),
sent to topfib with ``add paths tx``. Routes from topfib are imported with ``import limit N action
block`` (the cap's safety net) and are the only ones BIRD's kernel protocols export, so
``ip -n SW route show proto bird`` is exactly what topfib installed in the switch's FIB.

The parts (:class:`Namespaces`, :func:`build_switch_network`, :func:`render_bird_config`,
:class:`BirdProcess`) are what the tests' lab (``tests/integration/lab.py``) builds on too;
:class:`NamespaceSwitch` puts them together for the demo.

Everything is torn down by PID and by the namespace names created here, never by process name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

CTL_V4, SW_V4 = "10.99.0.1", "10.99.0.2"
CTL_V6, SW_V6 = "fd99::1", "fd99::2"
LAN_V4, LAN_V6 = "192.168.50.1/24", "fd50::1/64"
PEER_NEXT_HOPS = {
    4: ("192.168.50.11", "192.168.50.12", "192.168.50.13", "192.168.50.14"),
    6: ("fd50::11", "fd50::12", "fd50::13", "fd50::14"),
}
TRANSIT = {4: "192.168.50.254", 6: "fd50::254"}
SWITCH_AS = 65000
BGP_PROTOCOL = "topfib"

PeerRoute = tuple[str, tuple[int, ...]]  # prefix, indices into PEER_NEXT_HOPS[family]


def unavailable_reason() -> str | None:
    """Why the namespace switch cannot run here (None when it can): root, ip and BIRD 2."""
    if os.geteuid() != 0:
        return "not root"
    for tool in ("ip", "bird", "birdc"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (the namespace switch needs iproute2 and BIRD 2: apt install bird2)"
    return None


def run_tool(argv: list[str], check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
    return True


# --- namespaces and links ------------------------------------------------------------------------


def ip(ns: str, *args: str) -> str:
    """``ip -n NS ARGS`` (a ``-4``/``-6`` among ARGS goes first, where ip wants it); its output."""
    family = [a for a in args if a in ("-4", "-6")]
    rest = [a for a in args if a not in ("-4", "-6")]
    return run_tool(["ip", *family, "-n", ns, *rest]).stdout


def namespace_pids(ns: str) -> list[int]:
    result = run_tool(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in result.stdout.split()] if result.returncode == 0 else []


class Namespaces:
    """The network namespaces made here; :meth:`close` kills what runs in them and deletes them."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def add(self, name: str) -> None:
        run_tool(["ip", "netns", "add", name])
        self.created.append(name)
        ip(name, "link", "set", "lo", "up")

    def close(self) -> None:
        """Kill what is left in our namespaces by PID, delete them. Idempotent."""
        for ns in reversed(self.created):
            self._empty_and_delete(ns)
        self.created.clear()

    @staticmethod
    def _empty_and_delete(ns: str) -> None:
        for pid in namespace_pids(ns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not namespace_pids(ns), 2.0)
        run_tool(["ip", "netns", "del", ns], check=False)


def build_switch_network(namespaces: Namespaces, ctl: str, sw: str) -> None:
    """The two namespaces, the veth between them, the peering LAN and the transit default in ``sw``."""
    for ns in (ctl, sw):
        namespaces.add(ns)
    run_tool(["ip", "link", "add", "tfc0", "netns", ctl, "type", "veth", "peer", "name", "tfs0", "netns", sw])
    ip(ctl, "addr", "add", f"{CTL_V4}/30", "dev", "tfc0")
    ip(ctl, "addr", "add", f"{CTL_V6}/64", "dev", "tfc0", "nodad")
    ip(sw, "addr", "add", f"{SW_V4}/30", "dev", "tfs0")
    ip(sw, "addr", "add", f"{SW_V6}/64", "dev", "tfs0", "nodad")
    # The peering LAN: a veth pair with both ends in sw (dummy interfaces may be unavailable).
    ip(sw, "link", "add", "lan0", "type", "veth", "peer", "name", "lan1")
    ip(sw, "addr", "add", LAN_V4, "dev", "lan0")
    ip(sw, "addr", "add", LAN_V6, "dev", "lan0", "nodad")
    for ns, dev in ((ctl, "tfc0"), (sw, "tfs0"), (sw, "lan0"), (sw, "lan1")):
        ip(ns, "link", "set", dev, "up")
    ip(sw, "route", "add", "default", "via", TRANSIT[4], "proto", "static")
    ip(sw, "-6", "route", "add", "default", "via", TRANSIT[6], "proto", "static")


# --- BIRD's configuration ------------------------------------------------------------------------


def render_static_protocol(
    family: int, peer: int, routes: Sequence[PeerRoute], hop: str | None = None
) -> str:
    """One static protocol holding the routes that have peer number ``peer`` as a path, via ``hop``
    (default: the peer's next-hop on the namespace LAN)."""
    hop = hop if hop is not None else PEER_NEXT_HOPS[family][peer]
    lines = [f"    route {prefix} via {hop};\n" for prefix, peers in routes if peer in peers]
    return (f"protocol static peer{family}_{peer} {{\n    ipv{family} {{ preference 50; }};\n"
            + "".join(lines) + "}\n")


@dataclass(frozen=True)
class SessionOptions:
    """BIRD's side of the session to topfib, beyond the defaults the demo uses."""

    topfib_port: int | None = None  # BIRD dials topfib on this port (topfib passive); None: topfib dials
    password: str | None = None  # TCP-MD5 (RFC 2385)
    ttl_security: bool = False  # GTSM (RFC 5082): send with TTL 255, accept only TTL 255
    graceful_restart: bool = False  # RFC 4724: keep topfib's routes as stale while it restarts

    def statements(self) -> str:
        text = ""
        if self.password is not None:
            if '"' in self.password or "\n" in self.password:
                raise ValueError("BIRD strings have no escapes: no quote or newline in the password")
            text += f'\n    password "{self.password}";'
        if self.ttl_security:
            text += "\n    ttl security on;"
        if self.graceful_restart:
            text += "\n    graceful restart on;"
        return text


def render_bird_config(workdir: Path, import_limit_v4: int, import_limit_v6: int, *,
                       peers: int = len(PEER_NEXT_HOPS[4]), session: SessionOptions | None = None) -> str:
    """BIRD's main config: kernel export of BGP routes only, the session to topfib, the includes of
    ``peers`` static protocols per family (``peer<family>_<n>.conf`` in ``workdir``)."""
    session = session if session is not None else SessionOptions()
    includes = "\n".join(
        f'include "{workdir}/peer{family}_{peer}.conf";' for family in (4, 6) for peer in range(peers)
    )
    port = f" port {session.topfib_port}" if session.topfib_port is not None else ""
    channel = """
        add paths tx;
        import limit {limit} action block;
        import all;
        export where source = RTS_STATIC;
        gateway direct;
        next hop keep;"""
    return f"""log "{workdir}/bird.log" all;
router id {SW_V4};
protocol device {{ scan time 10; }}
protocol kernel kernel4 {{ ipv4 {{ import none; export where source = RTS_BGP; }}; }}
protocol kernel kernel6 {{ ipv6 {{ import none; export where source = RTS_BGP; }}; }}
{includes}
protocol bgp {BGP_PROTOCOL} {{
    local {SW_V4} as {SWITCH_AS};
    neighbor {CTL_V4}{port} as {SWITCH_AS};
    direct;
    connect retry time 1;
    error wait time 1, 5;{session.statements()}
    ipv4 {{{channel.format(limit=import_limit_v4)}
    }};
    ipv6 {{{channel.format(limit=import_limit_v6)}
        next hop address {SW_V6};
    }};
}}
"""


# --- BIRD ----------------------------------------------------------------------------------------


class BirdProcess:
    """BIRD 2 in namespace ``ns`` with ``workdir``/bird.conf; its socket and log in ``workdir``."""

    def __init__(self, ns: str, workdir: Path) -> None:
        self.ns = ns
        self.workdir = workdir
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.workdir / "bird.ctl"

    @property
    def log(self) -> Path:
        return self.workdir / "bird.log"

    @property
    def pid(self) -> int | None:
        """BIRD's PID (`ip netns exec` execs in place), None when stopped."""
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout_s: float) -> None:
        """Start BIRD and wait for its control socket; on failure it is stopped and RuntimeError says why."""
        argv = ["ip", "netns", "exec", self.ns, "bird", "-f", "-c", str(self.workdir / "bird.conf"),
                "-s", str(self.socket), "-P", str(self.workdir / "bird.pid")]
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, start_new_session=True)
        answered = wait_until(self._ready, timeout_s)
        proc = self._proc
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr is not None else b""
            self.stop()
            raise RuntimeError(f"BIRD exited: {err.decode(errors='replace').strip()}")
        if not answered:
            self.stop()
            raise RuntimeError(f"BIRD did not answer on its control socket within {timeout_s:g} s")

    def _ready(self) -> bool:
        if self._proc is None or self._proc.poll() is not None:
            return True  # the caller looks at why
        return self.socket.exists() and self.birdc_ok("show", "status")

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def birdc(self, *command: str) -> str:
        return run_tool(["birdc", "-s", str(self.socket), *command]).stdout

    def birdc_ok(self, *command: str) -> bool:
        return run_tool(["birdc", "-s", str(self.socket), *command], check=False).returncode == 0

    def import_limit_fired(self) -> bool:
        """True if BIRD ever hit the import limit on the topfib session (it logs each time)."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return False
        return "import limit" in text.lower() and BGP_PROTOCOL in text

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, 5.0)


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM ``proc`` (a daemon this lab started, by its PID), SIGKILL it after ``timeout_s``, reap it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


# --- the demo's switch ---------------------------------------------------------------------------


class NamespaceSwitch:
    """Namespaces ``<tag>ctl`` and ``<tag>sw``, their links, and BIRD in ``sw``."""

    def __init__(self, tag: str, workdir: Path, import_limit_v4: int, import_limit_v6: int) -> None:
        self.ctl = f"{tag}ctl"
        self.sw = f"{tag}sw"
        self.workdir = workdir
        self.import_limits = (import_limit_v4, import_limit_v6)
        self._namespaces = Namespaces()
        self._bird = BirdProcess(self.sw, workdir)

    def build(self, routes_v4: Sequence[PeerRoute], routes_v6: Sequence[PeerRoute]) -> None:
        """Namespaces, links, peer routes and BIRD; on failure whatever was made is removed."""
        try:
            build_switch_network(self._namespaces, self.ctl, self.sw)
            for family, routes in ((4, routes_v4), (6, routes_v6)):
                for peer in range(len(PEER_NEXT_HOPS[family])):
                    (self.workdir / f"peer{family}_{peer}.conf").write_text(
                        render_static_protocol(family, peer, routes))
            (self.workdir / "bird.conf").write_text(render_bird_config(self.workdir, *self.import_limits))
            self._bird.start(timeout_s=30.0)
        except BaseException:
            self.close()
            raise

    def fib_routes(self, family: int) -> int:
        """Routes BIRD installed in sw's kernel FIB (only ever routes learned from topfib)."""
        out = run_tool(["ip", f"-{family}", "-j", "-n", self.sw, "route", "show", "proto", "bird"],
                       check=False, timeout=10.0).stdout
        try:
            return len(json.loads(out)) if out.strip() else 0
        except ValueError:
            return 0

    def import_limit_fired(self) -> bool:
        return self._bird.import_limit_fired()

    def close(self) -> None:
        """Stop BIRD by PID, kill what is left in our namespaces, delete them. Idempotent."""
        self._bird.stop()
        self._namespaces.close()
