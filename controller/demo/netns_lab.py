"""A BIRD 2 switch in a network namespace, for ``topfib demo`` (root only).

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
from pathlib import Path

CTL_V4, SW_V4 = "10.99.0.1", "10.99.0.2"
CTL_V6, SW_V6 = "fd99::1", "fd99::2"
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


def _run(argv: list[str], check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _wait(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
    return True


def render_static_protocol(family: int, peer: int, routes: Sequence[PeerRoute]) -> str:
    """One static protocol holding the routes that have peer number ``peer`` as a path."""
    hop = PEER_NEXT_HOPS[family][peer]
    lines = [f"    route {prefix} via {hop};\n" for prefix, peers in routes if peer in peers]
    return (f"protocol static peer{family}_{peer} {{\n    ipv{family} {{ preference 50; }};\n"
            + "".join(lines) + "}\n")


def render_bird_config(workdir: Path, import_limit_v4: int, import_limit_v6: int) -> str:
    """BIRD's main config: kernel export of BGP routes only, the session to topfib, peer includes."""
    includes = "\n".join(
        f'include "{workdir}/peer{family}_{peer}.conf";'
        for family in (4, 6) for peer in range(len(PEER_NEXT_HOPS[family]))
    )
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
    neighbor {CTL_V4} as {SWITCH_AS};
    direct;
    connect retry time 1;
    error wait time 1, 5;
    ipv4 {{{channel.format(limit=import_limit_v4)}
    }};
    ipv6 {{{channel.format(limit=import_limit_v6)}
        next hop address {SW_V6};
    }};
}}
"""


class NamespaceSwitch:
    """Namespaces ``<tag>ctl`` and ``<tag>sw``, their links, and BIRD in ``sw``. Context manager."""

    def __init__(self, tag: str, workdir: Path, import_limit_v4: int, import_limit_v6: int) -> None:
        self.ctl = f"{tag}ctl"
        self.sw = f"{tag}sw"
        self.workdir = workdir
        self.import_limits = (import_limit_v4, import_limit_v6)
        self._namespaces: list[str] = []
        self._bird: subprocess.Popen[bytes] | None = None

    @property
    def bird_socket(self) -> Path:
        return self.workdir / "bird.ctl"

    def __enter__(self) -> NamespaceSwitch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def build(self, routes_v4: Sequence[PeerRoute], routes_v6: Sequence[PeerRoute]) -> None:
        """Namespaces, links, peer routes and BIRD; on failure whatever was made is removed."""
        try:
            self._build_network()
            for family, routes in ((4, routes_v4), (6, routes_v6)):
                for peer in range(len(PEER_NEXT_HOPS[family])):
                    (self.workdir / f"peer{family}_{peer}.conf").write_text(
                        render_static_protocol(family, peer, routes))
            (self.workdir / "bird.conf").write_text(render_bird_config(self.workdir, *self.import_limits))
            self._start_bird()
        except BaseException:
            self.close()
            raise

    def _ip(self, ns: str, *args: str) -> None:
        _run(["ip", "-n", ns, *args])

    def _build_network(self) -> None:
        for ns in (self.ctl, self.sw):
            _run(["ip", "netns", "add", ns])
            self._namespaces.append(ns)
            self._ip(ns, "link", "set", "lo", "up")
        _run(["ip", "link", "add", "tfc0", "netns", self.ctl, "type", "veth", "peer", "name", "tfs0",
              "netns", self.sw])
        self._ip(self.ctl, "addr", "add", f"{CTL_V4}/30", "dev", "tfc0")
        self._ip(self.ctl, "addr", "add", f"{CTL_V6}/64", "dev", "tfc0", "nodad")
        self._ip(self.sw, "addr", "add", f"{SW_V4}/30", "dev", "tfs0")
        self._ip(self.sw, "addr", "add", f"{SW_V6}/64", "dev", "tfs0", "nodad")
        # The peering LAN: a veth pair with both ends in sw (dummy interfaces may be unavailable).
        self._ip(self.sw, "link", "add", "lan0", "type", "veth", "peer", "name", "lan1")
        self._ip(self.sw, "addr", "add", "192.168.50.1/24", "dev", "lan0")
        self._ip(self.sw, "addr", "add", "fd50::1/64", "dev", "lan0", "nodad")
        for ns, dev in ((self.ctl, "tfc0"), (self.sw, "tfs0"), (self.sw, "lan0"), (self.sw, "lan1")):
            self._ip(ns, "link", "set", dev, "up")
        self._ip(self.sw, "route", "add", "default", "via", TRANSIT[4], "proto", "static")
        self._ip(self.sw, "-6", "route", "add", "default", "via", TRANSIT[6], "proto", "static")

    def _start_bird(self) -> None:
        argv = ["ip", "netns", "exec", self.sw, "bird", "-f", "-c", str(self.workdir / "bird.conf"),
                "-s", str(self.bird_socket), "-P", str(self.workdir / "bird.pid")]
        self._bird = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, start_new_session=True)
        if not _wait(self._bird_ready, 30.0):
            raise RuntimeError("BIRD did not answer on its control socket within 30 s")
        if self._bird.poll() is not None:
            err = self._bird.stderr.read() if self._bird.stderr is not None else b""
            raise RuntimeError(f"BIRD exited: {err.decode(errors='replace').strip()}")

    def _bird_ready(self) -> bool:
        if self._bird is None or self._bird.poll() is not None:
            return True  # the caller looks at why
        return self.bird_socket.exists() and self.birdc_ok("show", "status")

    def birdc_ok(self, *command: str) -> bool:
        return _run(["birdc", "-s", str(self.bird_socket), *command], check=False).returncode == 0

    def bird_running(self) -> bool:
        return self._bird is not None and self._bird.poll() is None

    def peer_route_count(self) -> int:
        """Routes BIRD holds in its tables (peer routes plus what topfib announced), -1 if unknown."""
        out = _run(["birdc", "-s", str(self.bird_socket), "show", "route", "count"], check=False).stdout
        for line in out.splitlines():
            words = line.split()
            if len(words) >= 2 and words[1] == "of" and words[0].isdigit():
                return int(words[0])
        return -1

    def fib_routes(self, family: int) -> int:
        """Routes BIRD installed in sw's kernel FIB (only ever routes learned from topfib)."""
        out = _run(["ip", f"-{family}", "-j", "-n", self.sw, "route", "show", "proto", "bird"],
                   check=False, timeout=10.0).stdout
        try:
            return len(json.loads(out)) if out.strip() else 0
        except ValueError:
            return 0

    def import_limit_fired(self) -> bool:
        try:
            text = (self.workdir / "bird.log").read_text(errors="replace").lower()
        except FileNotFoundError:
            return False
        return "import limit" in text and BGP_PROTOCOL in text

    def namespace_pids(self, ns: str) -> list[int]:
        result = _run(["ip", "netns", "pids", ns], check=False)
        return [int(p) for p in result.stdout.split()] if result.returncode == 0 else []

    def _stop_bird(self) -> None:
        proc, self._bird = self._bird, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()

    def close(self) -> None:
        """Stop BIRD by PID, kill what is left in our namespaces, delete them. Idempotent."""
        self._stop_bird()
        for ns in reversed(self._namespaces):
            for pid in self.namespace_pids(ns):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self._wait_empty(ns)
            _run(["ip", "netns", "del", ns], check=False)
        self._namespaces.clear()

    def _wait_empty(self, ns: str) -> None:
        _wait(lambda: not self.namespace_pids(ns), 2.0)

    def namespaces(self) -> list[str]:
        return list(self._namespaces)
