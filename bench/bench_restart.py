"""Issue 20's restart figures from the BIRD lab (root; BIRD, ExaBGP, redis-server installed).

    .venv/bin/python -m bench.bench_restart [--only sigterm,sigkill,takeover,gr,gr-kill,gr-off]

Each scenario builds its own lab (namespaces, BIRD) and runs ``topfib run`` under steady Zipf
sFlow on loopback, with the helpers of tests/integration/test_warm_restart.py and
test_graceful_restart.py (the figures are what those tests assert):

- sigterm: SIGTERM + start, memory store + state.directory, graceful restart off
- sigkill: SIGKILL + start on Redis, graceful restart off
- takeover: a standby on the same Redis takes over from a SIGKILLed active
  (each: Jaccard of the first full FIB after with the FIB before, seconds from the new session's
  first route to it, coverage within 10 s as a share of the coverage before)
- gr / gr-kill: graceful restart on (BIRD ``graceful restart on``), SIGTERM / SIGKILL + start:
  the fewest kernel FIB routes after any ``ip monitor`` event, as a share of those before
- gr-frr: gr with FRR as the switch (graceful restart helper, ``bgp graceful-restart``)
- gr-off: the same with topfib's graceful restart off (BIRD still able to): the switch drops all
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from tests.integration.fault_support import PersistentRedis
from tests.integration.frr_lab import frr_unavailable_reason
from tests.integration.lab import Lab, lab_unavailable_reason
from tests.integration.test_graceful_restart import GR_CAP_V4, GR_CAP_V6, gr_lab, planned_restart
from tests.integration.test_warm_restart import CAP_V4, CAP_V6, _restart_keeps_the_fib

SCENARIOS = ("sigterm", "sigkill", "takeover", "gr", "gr-kill", "gr-frr", "gr-off")


def _warm_lab() -> Lab:
    return Lab(routes_v4=400, routes_v6=40, import_limit=CAP_V4 + CAP_V6)


def _with_redis(run: Callable[[str], Coroutine[Any, Any, str]]) -> str:
    with tempfile.TemporaryDirectory(prefix="bench-restart-redis-") as directory:
        redis = PersistentRedis(Path(directory))
        redis.start()
        try:
            return asyncio.run(run(redis.url))
        finally:
            redis.stop()


def _overlap(lab: Lab, store_url: str, *, sigkill: bool, takeover: bool = False) -> Coroutine[Any, Any, str]:
    async def measure() -> str:
        overlap, took, kept = await _restart_keeps_the_fib(lab, store_url, sigkill, takeover)
        return (f"Jaccard {overlap:.3f}, FIB full {took:.2f} s after its first route, "
                f"coverage {kept:.3f} x before")
    return measure()


def _low(lab: Lab, *, sigkill: bool, graceful_restart_s: int = 60) -> str:
    result = asyncio.run(planned_restart(lab, sigkill=sigkill, graceful_restart_s=graceful_restart_s))
    lost = f", {result.overflows} ip monitor overflow(s)" if result.overflows else ""
    return (f"FIB low {result.low}/{result.before} ({result.low_fraction:.3f}) after any event{lost}; "
            f"Jaccard after {result.overlap:.3f}")


def run(name: str) -> str:
    if name == "gr-frr" and (reason := frr_unavailable_reason()) is not None:
        return f"skipped: {reason}"
    if name in ("gr", "gr-kill", "gr-frr", "gr-off"):
        with gr_lab("frr" if name == "gr-frr" else "bird") as lab:
            return _low(lab, sigkill=name == "gr-kill", graceful_restart_s=0 if name == "gr-off" else 60)
    with _warm_lab() as lab:
        if name == "sigterm":
            return asyncio.run(_overlap(lab, "memory://", sigkill=False))
        return _with_redis(lambda url: _overlap(lab, url, sigkill=True, takeover=name == "takeover"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    args = parser.parse_args(argv)
    reason = lab_unavailable_reason()
    if reason is not None:
        print(f"lab unavailable: {reason}", file=sys.stderr)
        return 2
    names = [name for name in args.only.split(",") if name]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        parser.error(f"--only: unknown scenario(s) {', '.join(unknown)}")
    print(f"caps {CAP_V4} IPv4 + {CAP_V6} IPv6 (gr*: {GR_CAP_V4} + {GR_CAP_V6}, as many prefixes), "
          "steady Zipf(1.0) sFlow, 1,500 samples/s")
    for name in names:
        try:
            figure = run(name)
        except (AssertionError, RuntimeError) as exc:  # a helper's bar not met: print, go on
            figure = f"FAILED: {str(exc).splitlines()[0][:200]}"
        print(f"{name:9} {figure}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
