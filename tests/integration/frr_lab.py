"""The namespace lab with FRR (zebra + bgpd, Debian's ``frr``) as the switch instead of BIRD.

    ctl (topfib's ExaBGP)          sw: FRR, AS 65000                     pe: ExaBGP, the peers
    tfc0 10.99.0.1 ══veth══ tfs0 10.99.0.2   lan0 192.168.50.1/24 ══veth══ lan1 .11 AS 64501
                                             fd50::1/64                         .12 AS 64502
                                                                                .13 AS 64503

The peers are eBGP neighbours of the switch (one ExaBGP process, three peers, each with an IPv4
session from .11/.12/.13 and a native IPv6 one from fd50::11/12/13): prefix i comes from
``paths_of(i)`` of them. The switch is configured as README's "Connecting a real switch" says for FRR:
ADD-PATH to topfib (``addpath-tx-all-paths``), topfib's routes preferred (local-pref 200), a
``table-map`` letting only topfib's routes into the kernel (``proto bgp``), route-maps on every
eBGP session (``ebgp-requires-policy``), ``maximum-prefix N warning-only``, no ``next-hop-self``
and no ``suppress-fib-pending``. The daemons run as root with their own config, pid, vty and
zserv paths in a directory of their own (owned by the ``frr`` user they drop to: the lab's
directory is root's only); the Debian service is never used.

Cleanup is by PID and by the namespace names this lab created, never by process name.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.lab import (
    CTL_V4,
    CTL_V6,
    LAN_V4,
    LAN_V6,
    LOCAL_AS,
    NEXT_HOPS_V4,
    NEXT_HOPS_V6,
    PEER_AS,
    SW_V4,
    SW_V6,
    Lab,
    paths_of,
    run,
    wait_until,
)
from topfib.controller.config import SwitchConfig
from topfib.controller.demo.netns_lab import stop_process
from topfib.controller.exabgp.runner import default_exabgp_executable, exabgp_environment

FRR_DIR = "/usr/lib/frr"
PEER_ASES = (64501, 64502, 64503)
LAN_GATEWAY_V4 = LAN_V4.split("/")[0]
LAN_GATEWAY_V6 = LAN_V6.split("/")[0]


def frr_unavailable_reason() -> str | None:
    """Why the FRR lab cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "the namespace lab needs root"
    for daemon in ("zebra", "bgpd"):
        if not os.access(f"{FRR_DIR}/{daemon}", os.X_OK):
            return f"FRR not installed ({FRR_DIR}/{daemon}; Debian: apt-get install frr)"
    if shutil.which("vtysh") is None:
        return "vtysh not installed"
    try:
        pwd.getpwnam("frr")
    except KeyError:
        return "no frr user (FRR's package creates it)"
    return None


def frr_config(import_limit: int, log_path: str, next_hop_self: bool = False, topfib: str = CTL_V4,
               graceful_restart: bool = False) -> str:
    """bgpd's configuration: the README's FRR advice, as the tests use it (``next_hop_self``: the
    mistake README warns about, for the test that shows what topfib does with it;
    ``graceful_restart``: ``bgp graceful-restart``, FRR's full mode, rather than its default
    helper-only mode: either keeps a restarting topfib's routes as stale)."""
    peers = {4: list(zip(NEXT_HOPS_V4, PEER_ASES, strict=True)),
             6: list(zip(NEXT_HOPS_V6, PEER_ASES, strict=True))}
    neighbors = "".join(f" neighbor {hop} remote-as {asn}\n neighbor {hop} timers connect 1\n"
                        for hop, asn in peers[4] + peers[6])

    def family(name: str) -> str:
        per_peer = "".join(f"  neighbor {hop} activate\n  neighbor {hop} route-map PEER-IN in\n"
                           f"  neighbor {hop} route-map NOTHING out\n" for hop, _ in peers[int(name[-1])])
        return (f" address-family {name} unicast\n"
                f"  neighbor {topfib} activate\n"
                f"  neighbor {topfib} addpath-tx-all-paths\n"
                f"  neighbor {topfib} route-map FROM-TOPFIB in\n"
                f"  neighbor {topfib} maximum-prefix {import_limit} 100 warning-only\n"
                + (f"  neighbor {topfib} next-hop-self\n" if next_hop_self else "") +
                f"{per_peer}"
                f"  table-map ONLY-TOPFIB-TO-FIB\n"
                f" exit-address-family\n")

    restart = " bgp graceful-restart\n" if graceful_restart else ""
    # coalesce-time: FRR waits 1 s (its default) after a session comes up before sending its table;
    # 0.1 s saves a second per session set-up in every FRR test (the flap test has ten).
    return f"""log file {log_path} informational
!
route-map FROM-TOPFIB permit 10
 set local-preference 200
exit
route-map PEER-IN permit 10
exit
route-map NOTHING deny 10
exit
route-map ONLY-TOPFIB-TO-FIB permit 10
 match peer {topfib}
exit
route-map ONLY-TOPFIB-TO-FIB deny 20
exit
!
router bgp {PEER_AS}
 bgp router-id {SW_V4}
 bgp bestpath compare-routerid
 coalesce-time 100
{restart} no bgp default ipv4-unicast
 neighbor {topfib} remote-as {LOCAL_AS}
 neighbor {topfib} timers connect 1
{neighbors}{family("ipv4")}{family("ipv6")}exit
"""


def med_of(index: int, peer: int) -> int:
    """MED of prefix ``index`` from ``peer``: the first peer sends a higher one on every fourth
    prefix (RFC 4271: not compared with the other peers' paths, they are other neighbour ASes)."""
    return 100 if peer == 0 and index % 4 == 1 else 0


def peers_config(prefixes_v4: list[str], prefixes_v6: list[str]) -> str:
    """One ExaBGP process, three eBGP peers of the switch (a session per family each): prefix i
    from paths_of(i) of them, with med_of(i, peer)."""
    blocks = []
    for peer, (hop4, hop6, asn) in enumerate(zip(NEXT_HOPS_V4, NEXT_HOPS_V6, PEER_ASES, strict=True)):
        for family, gateway, hop, prefixes in ((4, LAN_GATEWAY_V4, hop4, prefixes_v4),
                                               (6, LAN_GATEWAY_V6, hop6, prefixes_v6)):
            routes = "".join(f"        route {p} next-hop {hop} med {med_of(i, peer)};\n"
                             for i, p in enumerate(prefixes) if paths_of(i) > peer)
            blocks.append(f"""neighbor {gateway} {{
    router-id {hop4};
    local-address {hop};
    local-as {asn};
    peer-as {PEER_AS};
    family {{
        ipv{family} unicast;
    }}
    static {{
{routes}    }}
}}
""")
    return "\n".join(blocks)


@dataclass
class FrrLab(Lab):
    """:class:`Lab` with FRR as the switch and ExaBGP peers in a third namespace ``pe``."""

    pe: str = ""
    next_hop_self: bool = False
    session_v6: bool = False  # topfib's session to the switch over IPv6 (fd99::1 - fd99::2)
    peer_reactor_speed: float | None = None  # the peers' ExaBGP's (None: its default, 1.0)
    frr_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="topfib-frr-")))
    route_proto = "bgp"
    _daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _peers: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.pe = self.pe or self.sw[:-2] + "pe"
        frr = pwd.getpwnam("frr")
        os.chown(self.frr_dir, frr.pw_uid, frr.pw_gid)

    # --- network: lan1 moves to pe, where the peers live ----------------------------------------

    def _build_network(self) -> None:
        super()._build_network()
        self.namespaces.add(self.pe)
        self.ip(self.sw, "link", "set", "lan1", "netns", self.pe)
        for hop in NEXT_HOPS_V4:
            self.ip(self.pe, "addr", "add", f"{hop}/24", "dev", "lan1")
        for hop in NEXT_HOPS_V6:
            self.ip(self.pe, "addr", "add", f"{hop}/64", "dev", "lan1", "nodad")
        self.ip(self.pe, "link", "set", "lan1", "up")

    # --- the peers --------------------------------------------------------------------------------

    def write_peer_routes(self, prefixes_v4: list[str], prefixes_v6: list[str]) -> None:
        (self.workdir / "peers.conf").write_text(peers_config(prefixes_v4, prefixes_v6))
        self.prefixes_v4 = list(prefixes_v4)
        self.prefixes_v6 = list(prefixes_v6)

    def replace_peer_routes(self, prefixes_v4: list[str], prefixes_v6: list[str]) -> None:
        """New peer routes: the peers' ExaBGP restarts with them (its sessions flap, not topfib's)."""
        self.write_peer_routes(prefixes_v4, prefixes_v6)
        self._stop_peers()
        self._start_peers()

    def _start_peers(self) -> None:
        env = exabgp_environment(self.peer_reactor_speed) | {"exabgp_log_statistics": "false"}
        with (self.workdir / "peers.log").open("ab") as log:
            self._peers = subprocess.Popen(
                ["ip", "netns", "exec", self.pe, default_exabgp_executable(), "server",
                 str(self.workdir / "peers.conf")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)

    def _stop_peers(self) -> None:
        proc, self._peers = self._peers, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    # --- the switch: FRR --------------------------------------------------------------------------

    @property
    def frr_log(self) -> str:
        return str(self.frr_dir / "bgpd.log")

    def _write_bird_config(self) -> None:  # the switch's configuration (name kept from Lab)
        bgpd = frr_config(self.import_limit, self.frr_log, self.next_hop_self, self.topfib_address,
                          self.graceful_restart)
        (self.frr_dir / "bgpd.conf").write_text(bgpd)
        (self.frr_dir / "zebra.conf").write_text(f"log file {self.frr_dir / 'zebra.log'} informational\n")

    def _daemon_argv(self, daemon: str) -> list[str]:
        return ["ip", "netns", "exec", self.sw, f"{FRR_DIR}/{daemon}",
                "-f", str(self.frr_dir / f"{daemon}.conf"), "-i", str(self.frr_dir / f"{daemon}.pid"),
                "-z", str(self.frr_dir / "zserv.api"), "--vty_socket", str(self.frr_dir), "-P", "0"]

    def start_bird(self) -> None:  # starts the switch (FRR's zebra, then bgpd), name kept from Lab
        for daemon in ("zebra", "bgpd"):
            with contextlib.suppress(FileNotFoundError):  # a dead daemon's socket: not a sign of life
                (self.frr_dir / f"{daemon}.vty").unlink()
            self._daemons[daemon] = subprocess.Popen(
                self._daemon_argv(daemon), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, start_new_session=True)
            if not wait_until(lambda d=daemon: self._vty_ready(d), 10.0):  # type: ignore[misc]
                err = self._daemon_stderr(daemon)
                self.stop_bird()
                raise RuntimeError(f"FRR {daemon} did not start: {err}")
        self.bird_pid = self._daemons["bgpd"].pid
        if self._peers is None:
            self._start_peers()

    def _vty_ready(self, daemon: str) -> bool:
        proc = self._daemons.get(daemon)
        if proc is None or proc.poll() is not None:
            return True  # let the caller see the failure
        return (self.frr_dir / f"{daemon}.vty").exists()

    def _daemon_stderr(self, daemon: str) -> str:
        proc = self._daemons.get(daemon)
        if proc is None or proc.poll() is None or proc.stderr is None:
            return ""
        return proc.stderr.read().decode(errors="replace")

    def stop_bird(self) -> None:  # stops the switch: bgpd, then zebra (which removes its routes)
        for daemon in ("bgpd", "zebra"):
            proc = self._daemons.pop(daemon, None)
            if proc is not None:
                stop_process(proc, 10.0)
        self.bird_pid = None

    def close(self) -> None:
        self._stop_peers()
        super().close()
        shutil.rmtree(self.frr_dir, ignore_errors=True)

    def vtysh(self, *commands: str) -> str:
        argv = ["ip", "netns", "exec", self.sw, "vtysh", "--vty_socket", str(self.frr_dir)]
        for command in commands:
            argv += ["-c", command]
        return run(argv).stdout

    def birdc(self, *command: str) -> str:  # Lab's name for "ask the switch"
        return self.vtysh(" ".join(command))

    @property
    def topfib_address(self) -> str:
        return CTL_V6 if self.session_v6 else CTL_V4

    def switch_config(self, **overrides: object) -> SwitchConfig:
        if self.session_v6:  # both families over one IPv6 session
            overrides = {"neighbor": SW_V6, "local_address": CTL_V6, "router_id": CTL_V4, **overrides}
        return super().switch_config(**overrides)

    def disable_session(self) -> None:
        self.vtysh("configure terminal", f"router bgp {PEER_AS}",
                   f"neighbor {self.topfib_address} shutdown")

    def enable_session(self) -> None:
        self.vtysh("configure terminal", f"router bgp {PEER_AS}",
                   f"no neighbor {self.topfib_address} shutdown")

    def disable_peer(self, peer: int) -> None:
        """Peer ``peer`` goes away (its sessions shut down): the switch withdraws its paths."""
        self.vtysh("configure terminal", f"router bgp {PEER_AS}",
                   f"neighbor {NEXT_HOPS_V4[peer]} shutdown", f"neighbor {NEXT_HOPS_V6[peer]} shutdown")

    def enable_peer(self, peer: int) -> None:
        self.vtysh("configure terminal", f"router bgp {PEER_AS}",
                   f"no neighbor {NEXT_HOPS_V4[peer]} shutdown", f"no neighbor {NEXT_HOPS_V6[peer]} shutdown")

    def session_established(self) -> bool:
        try:
            return "Established" in self.vtysh(f"show bgp neighbors {self.topfib_address}")
        except RuntimeError:  # bgpd not (yet) answering
            return False

    def peers_established(self) -> bool:
        """All six peer sessions are up (topfib's is not counted)."""
        try:
            text = self.vtysh("show bgp neighbors json")
        except RuntimeError:
            return False
        states = {peer: info.get("bgpState") for peer, info in json.loads(text).items()}
        return all(states.get(hop) == "Established" for hop in (*NEXT_HOPS_V4, *NEXT_HOPS_V6))

    def best_next_hops(self) -> dict[str, str]:
        """prefix → next hop of FRR's own best path, both families (peer and topfib routes)."""
        best: dict[str, str] = {}
        for family in ("ipv4", "ipv6"):
            table = json.loads(self.vtysh(f"show bgp {family} unicast json")).get("routes", {})
            for prefix, paths in table.items():
                for path in paths:
                    mark = path.get("bestpath")  # true in the table view, {"overall": true} per prefix
                    chosen = mark.get("overall") if isinstance(mark, dict) else mark
                    if chosen and path.get("nexthops"):
                        best[prefix] = path["nexthops"][0]["ip"]
        return best

    def import_limit_fired(self) -> bool:
        """True if FRR logged that topfib's session went past maximum-prefix (warning-only; at
        exactly N it logs "%MAXPFX: ... reaches", which is allowed)."""
        try:
            text = Path(self.frr_log).read_text(errors="replace")
        except FileNotFoundError:
            return False
        return "MAXPFXEXCEED" in text
