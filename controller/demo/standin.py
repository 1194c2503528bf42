"""The API process of the demo's switch stand-in (an ExaBGP without a FIB): announce, record, report.

    python -m topfib.controller.demo.standin ROUTES_FILE STATUS_FILE

ExaBGP runs this as its ``process``. Once the session with topfib is up it writes the command
lines of ``ROUTES_FILE`` (the switch's peer routes, ADD-PATH) to ExaBGP, from a thread, while the
main thread always drains stdin (ExaBGP blocks when a helper stops reading). Every route topfib
announces or withdraws is applied to a per-family table, and ``STATUS_FILE`` is rewritten
(atomically, at most every 0.2 s) with what the stand-in holds — the stand-in's "FIB":

    {"pid": …, "state": "up", "routes": {"ipv4": 1000, "ipv6": 200}, "max_routes": {…}, "acks": …}

It exits when ExaBGP closes stdin. Standard library only.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

WRITE_EVERY_S = 0.2


class Recorder:
    """The routes topfib has announced to the stand-in, per family, from ExaBGP's JSON."""

    def __init__(self) -> None:
        self.routes: dict[str, set[str]] = {"ipv4": set(), "ipv6": set()}
        self.max_routes = {"ipv4": 0, "ipv6": 0}
        self.state = "down"
        self.acks = 0
        self.errors = 0

    def apply(self, line: str) -> str | None:
        """Take one line from ExaBGP; returns the new session state when it changed."""
        text = line.strip()
        if text in ("done", "error"):
            self.acks += 1
            self.errors += text == "error"
            return None
        try:
            message: dict[str, Any] = json.loads(text)
        except ValueError:
            return None
        if message.get("type") == "state":
            state = str(message.get("neighbor", {}).get("state", ""))
            if state == "down":
                for table in self.routes.values():
                    table.clear()
            self.state = state
            return state
        if message.get("type") != "update":
            return None
        update = message.get("neighbor", {}).get("message", {}).get("update", {})
        for family, by_next_hop in update.get("announce", {}).items():
            announced = self.routes.get(family.split()[0])
            if announced is not None:
                for nlris in by_next_hop.values():
                    announced.update(str(nlri["nlri"]) for nlri in nlris)
        for family, nlris in update.get("withdraw", {}).items():
            withdrawn = self.routes.get(family.split()[0])
            if withdrawn is not None:
                withdrawn.difference_update(str(nlri["nlri"]) for nlri in nlris)
        for family, table in self.routes.items():
            self.max_routes[family] = max(self.max_routes[family], len(table))
        return None

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "state": self.state,
            "routes": {family: len(table) for family, table in self.routes.items()},
            "max_routes": dict(self.max_routes),
            "acks": self.acks,
            "errors": self.errors,
        }


def write_status(path: Path, status: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(status))
    tmp.replace(path)


def _announce(lines: list[str]) -> None:
    for line in lines:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _report(recorder: Recorder, lock: threading.Lock, path: Path, stop: threading.Event) -> None:
    while not stop.wait(WRITE_EVERY_S):
        with lock:
            status = recorder.status()
        write_status(path, status)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m topfib.controller.demo.standin ROUTES_FILE STATUS_FILE", file=sys.stderr)
        return 2
    commands = Path(argv[0]).read_text().splitlines()
    status_path = Path(argv[1])
    recorder = Recorder()
    lock = threading.Lock()
    stop = threading.Event()
    write_status(status_path, recorder.status())
    reporter = threading.Thread(target=_report, args=(recorder, lock, status_path, stop), daemon=True)
    reporter.start()
    for line in sys.stdin:
        with lock:
            state = recorder.apply(line)
        if state == "up" and commands:
            # ExaBGP keeps what was announced (adj-rib-out) across a flap: send the table only once
            threading.Thread(target=_announce, args=(commands,), daemon=True).start()
            commands = []
    stop.set()
    reporter.join()
    write_status(status_path, {**recorder.status(), "state": "stopped"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
