"""CPU of a daemon's whole process tree, read from /proc, and the process handling the collector
benchmarks share (pinning, waiting, stopping by PID).

Every figure is utime + stime of every process of the tree (a process's /proc/PID/stat counts all
its threads, exited ones included), children found through /proc/PID/task/*/children, so a
daemon's helpers (sfacctd's plugin, topfib's ExaBGP) are charged to it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
NICE = -15  # both daemons and the sender: other work on a shared machine must not starve them


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc/PID/task/*/children)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(child) for child in children.read().split())
        except OSError:
            continue
    return pids


def _stat_fields(path: str) -> tuple[str, list[str]] | None:
    """(comm, the fields after it) of a /proc stat file, None when the task is gone."""
    try:
        with open(path) as stat:
            text = stat.read()
    except OSError:
        return None
    head, _, rest = text.rpartition(")")
    return head.partition("(")[2], rest.split()


def _ticks(fields: list[str]) -> int:
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its descendants (all threads), in seconds."""
    ticks = 0
    for member in process_tree(pid):
        parsed = _stat_fields(f"/proc/{member}/stat")
        if parsed is not None:
            ticks += _ticks(parsed[1])
    return ticks / CLK_TCK


def cpu_by_process(pid: int) -> dict[str, float]:
    """CPU seconds per process of the tree, keyed ``comm[pid]`` (e.g. the ExaBGP child apart)."""
    out: dict[str, float] = {}
    for member in process_tree(pid):
        parsed = _stat_fields(f"/proc/{member}/stat")
        if parsed is not None:
            out[f"{parsed[0]}[{member}]"] = _ticks(parsed[1]) / CLK_TCK
    return out


def cpu_by_thread(pid: int) -> dict[str, float]:
    """CPU seconds per live thread of ``pid``, keyed ``comm[tid]``, the main thread marked ``main``
    (Python before 3.14 leaves its threads' OS names at the process's)."""
    out: dict[str, float] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        parsed = _stat_fields(f"/proc/{pid}/task/{task}/stat")
        if parsed is not None:
            main = " main" if int(task) == pid else ""
            out[f"{parsed[0]}[{task}]{main}"] = _ticks(parsed[1]) / CLK_TCK
    return out


def difference(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def pinned(core: int) -> list[str]:
    """Command prefix: run on ``core`` only, at a high scheduling priority (we are root)."""
    return ["nice", "-n", str(NICE), "taskset", "-c", str(core)]


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)


def wait_until(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(step)


def wait_cpu_idle(pid: int, timeout: float = 120.0, quiet_s: float = 0.5, busy_below: float = 0.04) -> None:
    """Until the process tree uses less than ``busy_below`` of a core over ``quiet_s`` (start-up or
    a backlog done)."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = cpu_seconds(pid)
        if now - last < busy_below * quiet_s:
            return
        last = now
    raise TimeoutError("daemon never went idle")


def stop_process(process: subprocess.Popen[Any], sig: int = signal.SIGINT) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
