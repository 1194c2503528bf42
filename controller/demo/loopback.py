"""``topfib demo`` without root (or with ``TOPFIB_DEMO_SWITCH=exabgp``): the switch is a second ExaBGP.

The stand-in ExaBGP listens on 127.0.0.2 (a free port; no privileges needed), sends topfib the
peer routes (ADD-PATH, from a command file its API process writes once the session is up) and
records what topfib announces (:mod:`topfib.controller.demo.standin`), which the view shows in place of a
kernel FIB. topfib's own ExaBGP dials it from 127.0.0.1. Both ExaBGPs and both helpers are
stopped by process group and PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from rich.console import Console

import topfib
from topfib.controller.demo.netns_lab import PEER_NEXT_HOPS, PeerRoute
from topfib.controller.demo.table import DemoTable, load_demo_table
from topfib.controller.exabgp.runner import default_exabgp_executable, exabgp_environment

STANDIN_ADDRESS, TOPFIB_ADDRESS = "127.0.0.2", "127.0.0.1"
SWITCH_AS = 65000
# ExaBGP has to generate these as well as parse them: fewer than BIRD sends.
PEER_ROUTES_V4, PEER_ROUTES_V6 = 10_000, 2_000
COMMAND_CHUNK = 1000


def announce_commands(family: int, routes: list[PeerRoute]) -> list[str]:
    """ADD-PATH announcements of ``routes``: path-id = peer number + 1, one next-hop per peer."""
    lines = []
    for peer, hop in enumerate(PEER_NEXT_HOPS[family]):
        prefixes = [prefix for prefix, peers in routes if peer in peers]
        for start in range(0, len(prefixes), COMMAND_CHUNK):
            chunk = " ".join(prefixes[start:start + COMMAND_CHUNK])
            lines.append(f"announce attributes path-information {peer + 1} next-hop {hop} nlri {chunk}")
    return lines


def standin_config(port: int, helper: list[str]) -> str:
    return f"""process recorder {{
    run {' '.join(helper)};
    encoder json;
}}

neighbor {TOPFIB_ADDRESS} {{
    description "topfib demo switch stand-in";
    router-id {STANDIN_ADDRESS};
    local-address {STANDIN_ADDRESS};
    local-as {SWITCH_AS};
    peer-as {SWITCH_AS};
    hold-time 90;
    adj-rib-out true;
    passive;
    listen {port};
    family {{
        ipv4 unicast;
        ipv6 unicast;
    }}
    capability {{
        add-path send;
        graceful-restart disable;
        route-refresh enable;
    }}
    api recorder {{
        processes [ recorder ];
        neighbor-changes;
        receive {{
            parsed;
            update;
        }}
    }}
}}
"""


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


class ExabgpStandin:
    """The stand-in ExaBGP and its recorder; :meth:`close` kills both by process group / PID."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.status_path = workdir / "standin.json"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, table: DemoTable, peers_v4: int, peers_v6: int) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        commands = (announce_commands(4, table.v4.peer_routes(peers_v4))
                    + announce_commands(6, table.v6.peer_routes(peers_v6)))
        routes_file = self.workdir / "routes.txt"
        routes_file.write_text("\n".join(commands) + "\n")
        self.port = _free_port(STANDIN_ADDRESS)
        helper = [sys.executable, "-m", "topfib.controller.demo.standin",
                  str(routes_file), str(self.status_path)]
        conf = self.workdir / "standin.conf"
        conf.write_text(standin_config(self.port, helper))
        log = (self.workdir / "standin.log").open("wb")
        env = exabgp_environment(0.1)
        env["PYTHONPATH"] = str(Path(topfib.__file__).resolve().parent.parent)  # where topfib is found
        self._proc = subprocess.Popen([default_exabgp_executable(), "server", str(conf)],
                                      stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                      start_new_session=True)
        log.close()

    def status(self) -> dict[str, object]:
        try:
            loaded = json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def routes(self) -> dict[int, int] | None:
        routes = self.status().get("routes")
        if not isinstance(routes, dict):
            return None
        return {4: int(routes.get("ipv4", 0)), 6: int(routes.get("ipv6", 0))}

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def close(self) -> None:
        helper = self.status().get("pid")
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if isinstance(helper, int) and helper > 0:  # ExaBGP puts its helper in a group of its own
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(helper), signal.SIGKILL)


async def loopback_demo(duration: float, console: Console, workdir: Path, stop: asyncio.Event) -> int:
    from topfib.controller.demo.demo import (
        CAP_V4,
        CAP_V6,
        SEED,
        ZIPF_ALPHA,
        DemoTokens,
        demo_config,
        free_port,
        run_with_view,
    )

    console.print("loading the routing table …")
    table = await asyncio.to_thread(load_demo_table, ZIPF_ALPHA, SEED)
    peers_v4 = min(PEER_ROUTES_V4, len(table.v4.prefixes) // 2)
    peers_v6 = min(PEER_ROUTES_V6, len(table.v6.prefixes) // 2)
    console.print(f"table: {table.source}: {len(table.v4.prefixes):,} IPv4 + {len(table.v6.prefixes):,} IPv6 "
                  f"prefixes; the switch's peers carry the {peers_v4:,} + {peers_v6:,} most popular")
    if stop.is_set():
        return 0
    standin = ExabgpStandin(workdir / "switch")
    try:
        await asyncio.to_thread(standin.start, table, peers_v4, peers_v6)
        console.print(f"switch: a second ExaBGP on {STANDIN_ADDRESS}:{standin.port} recording what topfib "
                      "announces (no kernel FIB without root)")
        tokens = DemoTokens()
        config = demo_config(
            {"neighbor": STANDIN_ADDRESS, "local_address": TOPFIB_ADDRESS, "local_as": SWITCH_AS,
             "peer_as": SWITCH_AS, "bgp_port": standin.port, "sflow_agents": [STANDIN_ADDRESS]},
            tokens, free_port(socket.SOCK_STREAM, 8080), free_port(socket.SOCK_DGRAM),
        )

        def over_cap() -> bool:
            routes = standin.routes() or {}
            return routes.get(4, 0) > CAP_V4 or routes.get(6, 0) > CAP_V6

        return await run_with_view(
            config, console, workdir, stop, duration, table, peers_v4, peers_v6, tokens,
            agent=STANDIN_ADDRESS, switch_label=f"ExaBGP stand-in on {STANDIN_ADDRESS} (routes it received)",
            fib_counts=standin.routes, cap_guard=over_cap, cap_guard_label="stand-in got more than the cap",
            extra={"namespaces": [], "standin_pid": standin.pid},
        )
    finally:
        await asyncio.to_thread(standin.close)
