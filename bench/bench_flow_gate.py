"""CPU of the flow gate (``topfib.collector.accounting.flow_gate``) next to the sFlow decoder it screens for.

    .venv/bin/python -m bench.bench_flow_gate [--datagrams N] [--repeat R]

Mix as in ``bench.bench_sflow_fast`` (7 flow samples per datagram, IPv6 10 %, one agent sending
from its own address). Reports ns per sample (process time, best of R) for: decoding alone,
the gate alone (C screen, and the pure-Python rule), and gate + decoding; the gate's share is
what ``bench.bench_collector`` would see of it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from topfib.collector.accounting.flow_gate import FlowGate, SwitchFlowSources
from topfib.collector.common.metrics import Registry
from topfib.collector.sflow.encode import realistic_mix
from topfib.collector.sflow.fast import FastSflowDecoder

SAMPLES_PER_DATAGRAM = 7
AGENT = "192.0.2.1"


def best_ns_per_sample(run: Callable[[], None], repeat: int, samples: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best / samples * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datagrams", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    items = [(d, AGENT) for d in realistic_mix(args.datagrams, SAMPLES_PER_DATAGRAM, v6_share=0.1, seed=1)]
    samples = len(items) * SAMPLES_PER_DATAGRAM
    switches = [SwitchFlowSources("bench", (AGENT,), (AGENT,))]
    gates = {name: FlowGate(switches, Registry(), implementation=name) for name in ("c", "python")}
    for gate in gates.values():
        assert gate.admit(items) == items

    def decode(gate: FlowGate | None) -> Callable[[], None]:
        def run() -> None:
            decoder = FastSflowDecoder()
            decoder.feed_many(items if gate is None else gate.admit(items))
            decoder.take()

        return run

    def screen(gate: FlowGate) -> Callable[[], None]:
        def run() -> None:
            gate.admit(items)

        return run

    rows = [
        ("decoder alone", best_ns_per_sample(decode(None), args.repeat, samples)),
        ("gate alone (C screen)", best_ns_per_sample(screen(gates["c"]), args.repeat, samples)),
        ("gate alone (Python rule)", best_ns_per_sample(screen(gates["python"]), args.repeat, samples)),
        ("gate (C) + decoder", best_ns_per_sample(decode(gates["c"]), args.repeat, samples)),
    ]
    print(f"{samples:,} samples in {len(items):,} datagrams ({SAMPLES_PER_DATAGRAM}/datagram, IPv6 10 %)")
    for name, ns in rows:
        print(f"{name:26} {ns:7.1f} ns per sample")


if __name__ == "__main__":
    main()
