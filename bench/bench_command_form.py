"""What the form of its lines costs ExaBGP: topfib's ``attributes`` lines vs per-prefix statements.

    sudo .venv/bin/python -m bench.bench_command_form [--routes 10000] [--rounds 2]

In the integration lab (BIRD 2 switch, ExaBGP at topfib's reactor speed 0.1), alternately:

- topfib (the baseline): ``announce|withdraw attributes [next-hop NH] nlri P1 … P1000``
  (``topfib.controller.exabgp.commands.render_commands``: no 224/4 prefix last on a line);
- statements: ``announce ipv4 unicast P1 next-hop NH ; unicast P2 next-hop NH …``, 1,000 a line
  (what topfib writes for a line of 224/4 prefixes only);
- one a line: topfib's lines with one prefix each (what topfib falls back to after an ``error``).

Each programs ``routes`` prefixes from an empty FIB and withdraws them all again; time runs from
the first line written until the switch's kernel FIB holds exactly the expected set. Prints the
best round of each form, ExaBGP's CPU seconds and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable

from bench.bench_injection import prioritize, timed
from tests.integration.lab import NEXT_HOPS_V4, SW_V4, Lab, async_wait_until, lab_unavailable_reason
from topfib.controller.exabgp.commands import render_commands
from topfib.controller.program.plan import Action, Plan, Step

BATCH = 1000


def statements(verb: str, prefixes: list[str]) -> list[str]:
    lines = []
    for start in range(0, len(prefixes), BATCH):
        hop = NEXT_HOPS_V4[(start // BATCH) % len(NEXT_HOPS_V4)]
        tail = f" next-hop {hop}" if verb == "announce" else ""
        body = " ; ".join(f"unicast {prefix}{tail}" for prefix in prefixes[start:start + BATCH])
        lines.append(f"neighbor {SW_V4} {verb} ipv4 {body}")
    return lines


def family_lines(chunk: int) -> Callable[[str, list[str]], list[str]]:
    def render(verb: str, prefixes: list[str]) -> list[str]:
        action: Action = "announce" if verb == "announce" else "withdraw"
        steps = []
        for start in range(0, len(prefixes), BATCH):
            hop = NEXT_HOPS_V4[(start // BATCH) % len(NEXT_HOPS_V4)] if action == "announce" else None
            steps.append(Step(action, 4, hop, tuple(prefixes[start:start + BATCH])))
        return render_commands(Plan(tuple(steps)), SW_V4, chunk)
    return render


FORMS = {"topfib": family_lines(BATCH), "statements": statements, "one a line": family_lines(1)}


async def measure(lab: Lab, routes: int, rounds: int) -> dict[str, list[tuple[float, float, float, float]]]:
    prefixes = lab.prefixes_v4[:routes]
    results: dict[str, list[tuple[float, float, float, float]]] = {form: [] for form in FORMS}
    async with lab.exabgp(reactor_speed=0.1) as session:
        if not await session.wait_up(30):
            raise RuntimeError("BGP session did not come up")
        bridge = session.link.bridge
        for pid in (session.runner.pid, bridge.pid if bridge else None, lab.bird_pid):
            if pid is not None:
                prioritize(pid, -10)
        if not await async_wait_until(lambda: session.end_of_rib() >= {"ipv4 unicast", "ipv6 unicast"}, 120):
            raise RuntimeError("no End-of-RIB from the switch")
        for _ in range(rounds):
            for form, render in FORMS.items():
                announce, withdraw = render("announce", prefixes), render("withdraw", prefixes)
                program_s, program_cpu = await timed(lab, session, announce, set(prefixes), 120)
                withdraw_s, withdraw_cpu = await timed(lab, session, withdraw, set(), 120)
                results[form].append((program_s, program_cpu, withdraw_s, withdraw_cpu))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routes", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    reason = lab_unavailable_reason()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    with Lab(routes_v4=args.routes, routes_v6=10, import_limit=args.routes) as lab:
        results = asyncio.run(measure(lab, args.routes, max(1, args.rounds)))
    print(f"{args.routes:,} routes, best of {args.rounds} round(s)")
    print(f"{'':<26}" + "".join(f"{form:>12}" for form in FORMS) + "   (ratio to topfib)")
    for phase, (time_at, cpu_at) in (("program from empty", (0, 1)), ("withdraw all", (2, 3))):
        best = {form: min(runs, key=lambda r: r[time_at]) for form, runs in results.items()}
        for name, at in ((f"{phase} (s)", time_at), ("  ExaBGP CPU (s)", cpu_at)):
            base = best["topfib"][at]
            print(f"{name:<26}" + "".join(f"{best[form][at]:>12.2f}" for form in FORMS) + "   "
                  + " ".join(f"{best[form][at] / base:.2f}x" for form in FORMS if form != "topfib"))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; ExaBGP reactor speed 0.1, "
          "ExaBGP and BIRD at nice -10")
    return 0


if __name__ == "__main__":
    sys.exit(main())
