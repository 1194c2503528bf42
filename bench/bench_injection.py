"""Route injection through ExaBGP into a BIRD switch's kernel FIB, at two reactor speeds.

    sudo .venv/bin/python -m bench.bench_injection [--routes 30000] [--replace 1000] [--batch 1000]
                                                   [--profile DIR] [--py-spy DIR] [--exabgp-python PYPY3]

Uses the integration lab (two network namespaces, BIRD 2 holding ``routes + replace`` peer
prefixes with up to three paths each). For the reactor speed ``topfib run`` gives ExaBGP by default
(``exabgp.reactor_speed``, the baseline) and for ``exabgp_reactor_speed=0.1``, in one run:

1. program ``routes`` prefixes from an empty FIB (bar: ≤ 5 s for 30,000);
2. replace ``replace`` of them: that many withdraws plus that many announces (bar: ≤ 2 s for 1,000).

Time runs from the first command written until ``ip route show proto bird`` in the switch
namespace holds exactly the expected set. ExaBGP's CPU seconds are read from /proc. The lines
are the product's (``topfib.controller.exabgp.commands.render_commands``), a next-hop per batch.

With ``--profile DIR`` ExaBGP runs under cProfile (slower: compare its figures only with each
other); each run's stats go to DIR/exabgp-<label>.prof and the top functions are printed. With
``--py-spy DIR`` py-spy samples ExaBGP while it programs (no slow-down; ``pip install py-spy``)
and its busiest functions are printed. With ``--exabgp-python`` ExaBGP (this venv's copy of its
package, alone on the path) runs under that interpreter instead, e.g. Debian's ``pypy3``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pstats
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import exabgp

import topfib.controller.exabgp.runner
from bench.sampled_profile import sampled_profile
from tests.integration.lab import (
    NEXT_HOPS_V4,
    SW_V4,
    ExabgpSession,
    Lab,
    async_wait_until,
    lab_unavailable_reason,
    run,
)
from topfib.controller.config import ExabgpConfig
from topfib.controller.exabgp.commands import render_commands
from topfib.controller.exabgp.runner import LAUNCHER
from topfib.controller.program.plan import Action, Plan, Step

PROGRAM_BAR_S = 5.0
PRODUCT_SPEED = ExabgpConfig().reactor_speed  # what topfib run gives ExaBGP unless configured
SINGLE_TRIALS = 20
REPLACE_BAR_S = 2.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    label: str
    program_s: float
    program_cpu_s: float
    replace_s: float
    replace_cpu_s: float
    single_announce_s: float = 0.0  # median, one route, command written → in the FIB
    single_withdraw_s: float = 0.0  # median, one route, command written → gone from the FIB


def prioritize(pid: int, niceness: int) -> None:
    """Nice ``pid``'s process group and its scheduler autogroup (each of these daemons leads its
    own session, and with autogroups the kernel shares the CPU between sessions first)."""
    os.setpriority(os.PRIO_PGRP, os.getpgid(pid), niceness)
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(niceness))


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def fib_prefixes(lab: Lab) -> set[str]:
    """Fast path for big tables: the first token of each line (/32s have no length)."""
    out = run(["ip", "-4", "-n", lab.sw, "route", "show", "proto", "bird"], timeout=60).stdout
    return {line.split(None, 1)[0] for line in out.splitlines() if line}


def commands(verb: str, prefixes: list[str], batch: int) -> list[str]:
    """topfib's lines for ``prefixes``, ``batch`` a line, next-hops spread over the peering LAN."""
    action: Action = "announce" if verb == "announce" else "withdraw"
    steps = []
    for start in range(0, len(prefixes), batch):
        hop = NEXT_HOPS_V4[(start // batch) % len(NEXT_HOPS_V4)] if action == "announce" else None
        steps.append(Step(action, 4, hop, tuple(prefixes[start:start + batch])))
    return render_commands(Plan(tuple(steps)), SW_V4, batch)


@contextlib.contextmanager
def wrapped_exabgp(directory: Path, label: str, python: str | None,
                   profile: bool) -> Iterator[Path | None]:
    """ExaBGP started by the runner meanwhile runs under ``python`` (None: this interpreter) and,
    with ``profile``, under cProfile: yields where its stats are written on exit. It still goes
    through topfib's launcher (controller/exabgp/launch.py), as ``topfib run`` starts it."""
    directory.mkdir(parents=True, exist_ok=True)
    stats = directory / f"exabgp-{label.replace(' ', '-')}.prof" if profile else None
    load = ("import importlib.util as u, sys; "
            f"s = u.spec_from_file_location('topfib_launch', {str(LAUNCHER)!r}); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); ")
    start = ("sys.exit(m.main())" if stats is None
             else f"import cProfile; cProfile.run('m.main()', {str(stats)!r})")
    environment = ""
    if python is not None:  # only ExaBGP's package on the path: not this venv's CPython modules
        only_exabgp = directory / "exabgp-only"
        only_exabgp.mkdir(exist_ok=True)
        link = only_exabgp / "exabgp"
        if not link.exists():
            link.symlink_to(Path(exabgp.__file__).parent)
        environment = f"PYTHONPATH={shlex.quote(str(only_exabgp))} "
    wrapper = directory / "exabgp-wrapped"
    # -P (as the runner starts it): the current directory must not shadow standard modules;
    # another interpreter may not know it (PyPy 3.9), and it does not run from the launcher's folder
    interpreter = shlex.quote(python) if python is not None else f"{shlex.quote(sys.executable)} -P"
    code = shlex.quote(load + start)
    wrapper.write_text(f"#!/bin/sh\n{environment}exec {interpreter} -c {code} \"$@\"\n")
    wrapper.chmod(0o755)
    original = topfib.controller.exabgp.runner.default_exabgp_argv
    topfib.controller.exabgp.runner.default_exabgp_argv = lambda: [str(wrapper)]
    try:
        yield stats
    finally:
        topfib.controller.exabgp.runner.default_exabgp_argv = original


def print_profile(stats: Path, top: int = 25) -> None:
    if not stats.exists():
        print(f"no profile written to {stats}", file=sys.stderr)
        return
    print(f"--- ExaBGP profile {stats} (whole life of the process, by own time)")
    pstats.Stats(str(stats)).sort_stats("tottime").print_stats(top)


async def timed(lab: Lab, session: ExabgpSession, lines: list[str], expected: set[str],
                timeout_s: float) -> tuple[float, float]:
    """Send ``lines``; seconds until the FIB equals ``expected``, and ExaBGP CPU seconds used."""
    async with lab.watch_fib() as fib:
        cpu_before = cpu_seconds(session.runner.pid)
        started = time.monotonic()
        sending = asyncio.create_task(session.link.send(lines))
        if not await fib.wait_for(lambda routes: routes.keys() == expected, timeout_s):
            raise RuntimeError(f"FIB did not reach the expected {len(expected)} routes in {timeout_s} s")
        elapsed = time.monotonic() - started
        cpu_used = cpu_seconds(session.runner.pid) - cpu_before
        results = await sending
    if not all(results):
        raise RuntimeError(f"{results.count(False)} command(s) failed")
    if await asyncio.to_thread(fib_prefixes, lab) != expected:  # the event view agrees with a dump
        raise RuntimeError("FIB dump disagrees with the monitored view")
    return elapsed, cpu_used


async def measure(lab: Lab, label: str, speed: float | None, routes: int, replace: int,
                  batch: int, niceness: int, samples: Path | None = None) -> Result:
    installed = lab.prefixes_v4[:routes]
    leaving = installed[:replace]
    arriving = lab.prefixes_v4[routes:routes + replace]
    async with lab.exabgp(reactor_speed=speed) as session:
        if not await session.wait_up(30):
            raise RuntimeError("BGP session did not come up")
        if niceness:
            # A shared machine: give ExaBGP, its bridge and BIRD the CPU first.
            for pid in (session.runner.pid, session.link.bridge.pid if session.link.bridge else None,
                        lab.bird_pid):
                if pid is not None:
                    prioritize(pid, niceness)
        # Let ExaBGP digest the switch's full table first: we time injection, not the RIB download.
        if not await async_wait_until(lambda: session.end_of_rib() >= {"ipv4 unicast", "ipv6 unicast"}, 120):
            raise RuntimeError("no End-of-RIB from the switch")
        if await asyncio.to_thread(fib_prefixes, lab):
            raise RuntimeError("FIB not empty at start")
        where = samples / f"exabgp-{label.replace(' ', '-')}-program.txt" if samples else None
        with sampled_profile(session.runner.pid, where):
            program_s, program_cpu = await timed(lab, session, commands("announce", installed, batch),
                                                 set(installed), 120)
        target = (set(installed) - set(leaving)) | set(arriving)
        # Withdraw first, then announce: the order a capped FIB needs.
        replace_lines = commands("withdraw", leaving, batch) + commands("announce", arriving, batch)
        replace_s, replace_cpu = await timed(lab, session, replace_lines, target, 60)
        single_announce, single_withdraw = await single_route_latency(lab, session, leaving[:SINGLE_TRIALS])
    if not await lab.wait_fib(lambda fib: not fib, 10):
        raise RuntimeError("FIB not emptied after ExaBGP stopped")
    return Result(label, program_s, program_cpu, replace_s, replace_cpu, single_announce, single_withdraw)


def _presence(prefix: str, present: bool) -> Callable[[dict[str, str]], bool]:
    return lambda routes: (prefix in routes) == present


async def single_route_latency(lab: Lab, session: ExabgpSession, prefixes: list[str]) -> tuple[float, float]:
    """Median seconds for one announce to reach the FIB and one withdraw to leave it (full FIB)."""
    announce_s: list[float] = []
    withdraw_s: list[float] = []
    async with lab.watch_fib() as fib:
        for prefix in prefixes:
            for verb, samples, present in (("announce", announce_s, True), ("withdraw", withdraw_s, False)):
                started = time.monotonic()
                sending = asyncio.create_task(session.link.send(commands(verb, [prefix], 1)))
                if not await fib.wait_for(_presence(prefix, present), 10):
                    raise RuntimeError(f"{verb} of {prefix} did not reach the FIB")
                samples.append(time.monotonic() - started)
                if not all(await sending):
                    raise RuntimeError(f"{verb} of {prefix} failed")
    return statistics.median(announce_s), statistics.median(withdraw_s)


def best(results: list[Result]) -> Result:
    """Least disturbed run of each phase (the machine may be shared)."""
    program = min(results, key=lambda r: r.program_s)
    replace = min(results, key=lambda r: r.replace_s)
    return Result(program.label, program.program_s, program.program_cpu_s, replace.replace_s,
                  replace.replace_cpu_s, min(r.single_announce_s for r in results),
                  min(r.single_withdraw_s for r in results))


def report(baseline: Result, fast: Result, routes: int, replace: int) -> None:
    def row(name: str, base: float, other: float, bar: float | None) -> str:
        ratio = base / other if other > 0 else float("inf")
        verdict = "" if bar is None else ("ok" if other <= bar else "OVER BAR") + f" (bar {bar:g} s, fast)"
        return f"{name:<38} {base:>10.2f} {other:>10.2f} {ratio:>8.2f}x  {verdict}"

    print(f"{'work':<38} {baseline.label:>10} {fast.label:>10} {'ratio':>9}")
    print(row(f"program {routes:,} routes from empty (s)", baseline.program_s, fast.program_s, PROGRAM_BAR_S))
    print(row("  ExaBGP CPU (s)", baseline.program_cpu_s, fast.program_cpu_s, None))
    print(row(f"replace {replace:,} ({replace:,} wd + {replace:,} ann) (s)",
              baseline.replace_s, fast.replace_s, REPLACE_BAR_S))
    print(row("  ExaBGP CPU (s)", baseline.replace_cpu_s, fast.replace_cpu_s, None))
    print(row(f"one announce → FIB, median of {SINGLE_TRIALS} (ms)", baseline.single_announce_s * 1000,
              fast.single_announce_s * 1000, None))
    print(row(f"one withdraw → gone, median of {SINGLE_TRIALS} (ms)", baseline.single_withdraw_s * 1000,
              fast.single_withdraw_s * 1000, None))
    print(f"default speed vs bars: program {'ok' if baseline.program_s <= PROGRAM_BAR_S else 'OVER BAR'}, "
          f"replace {'ok' if baseline.replace_s <= REPLACE_BAR_S else 'OVER BAR'}")
    print(f"rate at 0.1: {routes / fast.program_s:,.0f} routes/s programming; "
          f"default: {routes / baseline.program_s:,.0f} routes/s")
    # ExaBGP is CPU-bound: on a shared machine its wall time stretches by 1/share.
    print(f"ExaBGP CPU share while programming: default {baseline.program_cpu_s / baseline.program_s:.0%}, "
          f"0.1 {fast.program_cpu_s / fast.program_s:.0%}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routes", type=int, default=30_000)
    parser.add_argument("--replace", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=1_000, help="prefixes per command line")
    parser.add_argument("--nice", type=int, default=-10,
                        help="niceness (and autogroup niceness) for ExaBGP and BIRD (0: leave as is)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate the speeds this often; keep the best")
    parser.add_argument("--profile", type=Path, help="run ExaBGP under cProfile, stats into this directory")
    parser.add_argument("--py-spy", type=Path, dest="samples",
                        help="sample ExaBGP with py-spy while it programs, stacks into this directory")
    parser.add_argument("--exabgp-python", help="run ExaBGP under this interpreter (e.g. pypy3)")
    args = parser.parse_args(argv)
    reason = lab_unavailable_reason()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    peer_routes = args.routes + args.replace
    with Lab(routes_v4=peer_routes, routes_v6=100, import_limit=peer_routes) as lab:
        baselines: list[Result] = []
        fasts: list[Result] = []
        work = (args.routes, args.replace, args.batch, args.nice)
        for _ in range(max(1, args.rounds)):
            for results, label, speed in ((baselines, "default", PRODUCT_SPEED), (fasts, "speed 0.1", 0.1)):
                wrapping = args.profile or args.exabgp_python
                with (wrapped_exabgp(args.profile or Path(tempfile.mkdtemp()), label, args.exabgp_python,
                                     args.profile is not None)
                      if wrapping else contextlib.nullcontext()) as stats:
                    results.append(asyncio.run(measure(lab, label, speed, *work, args.samples)))
                if stats is not None:
                    print_profile(stats)
        baseline, fast = best(baselines), best(fasts)
        if lab.import_limit_fired():
            print("warning: the switch's import limit fired", file=sys.stderr)
    report(baseline, fast, args.routes, args.replace)
    print(f"ExaBGP and BIRD ran at nice {args.nice}; batches of {args.batch} prefixes per command; "
          f"ExaBGP under {args.exabgp_python or sys.executable}" + (" and cProfile" if args.profile else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
