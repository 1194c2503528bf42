"""The FRR lab with peers whose table arrives in two halves, a pause between them.

The peers' ExaBGP gets its routes from a feeder process instead of static routes: once all six
peer sessions with the switch are up it announces the first half of every peer's routes, waits
``pause_s``, then announces the rest. The switch passes that on to topfib as it comes: a table
with a pause mid-dump, as a loaded switch sends a full table. (Each peer restart replays it.)
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.integration.frr_lab import LAN_GATEWAY_V4, LAN_GATEWAY_V6, PEER_ASES, FrrLab, med_of, peers_config
from tests.integration.lab import NEXT_HOPS_V4, NEXT_HOPS_V6, paths_of

PAUSE_MARK = "PAUSE\n"
PEER_SESSIONS = 2 * len(PEER_ASES)

# Reads ExaBGP's JSON session messages until every peer session is up and the go file exists
# (the test creates it once topfib's session is up too; each bounded: 60 s), then writes the
# commands before PAUSE_MARK, sleeps, writes the rest; then, until stdin's EOF (drained: ExaBGP
# acknowledges every command), writes each batch file the test drops (see send_to_peers).
FEEDER = f'''
import json, os, sys, threading, time
commands_path, pause_s, sessions, go_path = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
up, deadline = set(), time.monotonic() + 60.0
while len(up) < sessions and time.monotonic() < deadline:
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)
    try:
        message = json.loads(line)
    except ValueError:
        continue
    neighbor = message.get("neighbor", {{}})
    if message.get("type") == "state" and neighbor.get("state") == "up":
        up.add(json.dumps(neighbor.get("address"), sort_keys=True))
deadline = time.monotonic() + 60.0
while not os.path.exists(go_path) and time.monotonic() < deadline:
    time.sleep(0.05)
first, rest = open(commands_path).read().split({PAUSE_MARK!r})
sys.stdout.write(first)
sys.stdout.flush()
time.sleep(pause_s)
sys.stdout.write(rest)
sys.stdout.flush()
drain = threading.Thread(target=lambda: [None for _ in iter(sys.stdin.readline, "")], daemon=True)
drain.start()
batch = 0
while drain.is_alive():
    more = go_path + f".more{{batch}}"
    if os.path.exists(more):
        sys.stdout.write(open(more).read())
        sys.stdout.flush()
        os.unlink(more)
        batch += 1
    time.sleep(0.02)
'''


def feed_commands(prefixes_v4: list[str], prefixes_v6: list[str]) -> tuple[list[str], list[str]]:
    """ExaBGP API commands announcing what :func:`peers_config` would, split by prefix index:
    the first half of each family's prefixes, and the rest."""
    first: list[str] = []
    rest: list[str] = []
    for peer, (hop4, hop6) in enumerate(zip(NEXT_HOPS_V4, NEXT_HOPS_V6, strict=True)):
        sessions = ((LAN_GATEWAY_V4, hop4, prefixes_v4), (LAN_GATEWAY_V6, hop6, prefixes_v6))
        for gateway, hop, prefixes in sessions:
            for i, prefix in enumerate(prefixes):
                if paths_of(i) > peer:
                    line = (f"neighbor {gateway} local-ip {hop} announce route {prefix} next-hop {hop} "
                            f"med {med_of(i, peer)}\n")
                    (first if i < len(prefixes) // 2 else rest).append(line)
    return first, rest


@dataclass
class PausedFeedFrrLab(FrrLab):
    """:class:`FrrLab` whose peers announce half their routes, pause ``pause_s``, then the rest."""

    pause_s: float = 3.0
    # ExaBGP reads API commands once per reactor loop: at its default (1 s) a 10k-route withdraw
    # would reach the switch over seconds, not as one burst
    peer_reactor_speed: float | None = 0.05
    _batches: int = 0  # command batches sent to the current feeder

    @property
    def go_path(self) -> Path:
        return self.workdir / "feed.go"

    def release_feed(self) -> None:
        """Let the feeder announce (its peer sessions up, it waits for this)."""
        self.go_path.touch()

    def send_to_peers(self, commands: list[str]) -> None:
        """ExaBGP API commands for the peers, written by the feeder (after its table)."""
        ready = Path(f"{self.go_path}.more{self._batches}")
        tmp = ready.with_name(ready.name + ".tmp")
        tmp.write_text("".join(commands))
        tmp.rename(ready)
        self._batches += 1

    def peer_prefixes_received(self) -> int:
        """Prefixes the switch holds from its peers, both families (FRR's pfxRcd, summed)."""
        total = 0
        for family in ("ipv4", "ipv6"):
            peers = json.loads(self.vtysh(f"show bgp {family} unicast summary json")).get("peers", {})
            total += sum(info.get("pfxRcd", 0) for address, info in peers.items()
                         if address in (*NEXT_HOPS_V4, *NEXT_HOPS_V6))
        return total

    def hold_feed(self) -> None:
        """The next feeder (after a peer restart) waits for :meth:`release_feed` again."""
        self.go_path.unlink(missing_ok=True)
        self._batches = 0

    def write_peer_routes(self, prefixes_v4: list[str], prefixes_v6: list[str]) -> None:
        first, rest = feed_commands(prefixes_v4, prefixes_v6)
        (self.workdir / "feed.txt").write_text("".join(first) + PAUSE_MARK + "".join(rest))
        (self.workdir / "feeder.py").write_text(FEEDER)
        static = peers_config([], [])  # the sessions without static routes
        parts = static.split("    }\n}\n")  # after each session's (empty) static block
        api = ("    }}\n    api feed{} {{\n        processes [ feeder ];\n        neighbor-changes;\n"
               "    }}\n}}\n")
        blocks = "".join(part + api.format(n) for n, part in enumerate(parts[:-1])) + parts[-1]
        process = (f"process feeder {{\n    run {sys.executable} {self.workdir / 'feeder.py'} "
                   f"{self.workdir / 'feed.txt'} {self.pause_s} {PEER_SESSIONS} {self.go_path};\n"
                   "    encoder json;\n}\n\n")
        (self.workdir / "peers.conf").write_text(process + blocks)
        self.prefixes_v4 = list(prefixes_v4)
        self.prefixes_v6 = list(prefixes_v6)


def withdraw_commands(prefixes_v4: list[str], gone: set[str], chunk: int = 1000) -> list[str]:
    """Commands withdrawing every peer's IPv4 paths of ``gone`` (prefix i from paths_of(i) peers)."""
    commands = []
    for peer, hop in enumerate(NEXT_HOPS_V4):
        mine = [p for i, p in enumerate(prefixes_v4) if p in gone and paths_of(i) > peer]
        for start in range(0, len(mine), chunk):
            nlri = " ".join(mine[start:start + chunk])
            commands.append(f"neighbor {LAN_GATEWAY_V4} local-ip {hop} withdraw attributes next-hop {hop} "
                            f"nlri {nlri}\n")
    return commands
