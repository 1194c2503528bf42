"""topfib's side of the collector benchmark: the real listener + pipeline with the full table loaded.

Started by ``bench.bench_collector`` (pinned to one core with taskset). It loads the IPv4 and IPv6
tables into one :class:`LpmTable`, warms it, starts :class:`FlowReceiver` and prints one line
``READY {json}``. Then it answers commands on stdin, one JSON line each on stdout:

- ``snapshot``: collector totals, datagrams received, kernel socket drops, own CPU seconds
- ``dump PATH``: write ``prefix<TAB>bytes`` of every prefix (unrouted included) to PATH
- ``quit``: stop the listener (accounting what was received), final snapshot, exit

Half-lives default to 10⁹ s so the decayed byte sums are plain totals and can be compared with
another collector's; the work per sample is the same as with production half-lives.

    .venv/bin/python -m bench.collector_sink --listen 127.0.0.1:16343
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from bench.gen_traffic import AGENTS, V4_TABLE, V6_TABLE, load_pfx2as
from topfib.collector.accounting.flow_gate import FlowGate, SwitchFlowSources
from topfib.collector.accounting.pipeline import Collector
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.collector.common.metrics import Registry
from topfib.collector.flow.receiver import FLUSH_INTERVAL_S, FlowReceiver
from topfib.collector.rib.lpm import LpmTable
from topfib.collector.sflow.fast import FastSflowDecoder

SWITCH = "bench"


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def load_table(v4_path: Path, v6_path: Path) -> LpmTable:
    prefixes = load_pfx2as(v4_path, 4).prefix_strings(4) + load_pfx2as(v6_path, 6).prefix_strings(6)
    table = LpmTable(prefixes)
    # the first batch lookup builds the lookup structures: do it before traffic arrives
    table.lookup_v4_ids(np.zeros(1, np.uint32))
    table.lookup_v6_ids(np.zeros(1, np.uint64), np.zeros(1, np.uint64))
    return table


def snapshot(listener: FlowReceiver, collector: Collector) -> dict[str, float | int | str]:
    totals = collector.totals
    return {
        "datagrams": totals.datagrams,
        "flow_samples": totals.flow_samples,
        "unrouted_samples": totals.unrouted_samples,
        "unknown_agent_samples": totals.unknown_agent_samples,
        "non_ip_samples": totals.non_ip_samples,
        "malformed_datagrams": totals.malformed_datagrams,
        "lost_datagrams": totals.lost_datagrams,
        "packets": totals.packets,
        "bytes": totals.bytes,
        "received": listener.received,
        "socket_drops": listener.kernel_drops(),
        "cpu_s": cpu_seconds(),
        "decoder": getattr(collector.decoder, "implementation", "?"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="topfib collector sink for bench.bench_collector")
    parser.add_argument("--listen", default="127.0.0.1:16343")
    parser.add_argument("--receive-buffer", type=int, default=32 * 1024 * 1024)
    parser.add_argument("--half-life", type=float, default=1e9)
    parser.add_argument("--v4-table", type=Path, default=V4_TABLE)
    parser.add_argument("--v6-table", type=Path, default=V6_TABLE)
    parser.add_argument("--flush-interval", type=float, default=FLUSH_INTERVAL_S)
    parser.add_argument(
        "--switch-interval", type=float, default=0.0, help="sys.setswitchinterval (0: Python's default)"
    )
    parser.add_argument("--no-flow-gate", action="store_true", help="account datagrams from any source")
    args = parser.parse_args()

    if args.switch_interval > 0:
        sys.setswitchinterval(args.switch_interval)
    started = time.monotonic()
    table = load_table(args.v4_table, args.v6_table)
    # the table's ~10⁶ long-lived objects: keep the cyclic GC from rescanning them (pauses)
    gc.collect()
    gc.freeze()
    rates = PrefixRates(fast_half_life_s=args.half_life, slow_half_life_s=args.half_life)
    # as `topfib run` does, with a flow gate (the benchmark sends over loopback)
    allowed = SwitchFlowSources(SWITCH, tuple(agent for agent, _ in AGENTS), ("127.0.0.0/8", "::1"))
    collector = Collector(
        FastSflowDecoder(), {agent: SWITCH for agent, _ in AGENTS}, lambda _: table, rates, Registry(),
        flow_gate=None if args.no_flow_gate else FlowGate([allowed], Registry()),
    )
    listener = FlowReceiver(
        collector,
        [args.listen],
        receive_buffer_bytes=args.receive_buffer,
        flush_interval_s=args.flush_interval,
        registry=Registry(),
    )
    listener.start()
    ready = {"prefixes": len(table), "load_s": round(time.monotonic() - started, 2), "pid": os.getpid()}
    print("READY " + json.dumps(ready), flush=True)

    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "snapshot":
            print(json.dumps(snapshot(listener, collector)), flush=True)
        elif command == "dump":
            sums = rates.byte_sums(SWITCH, time.monotonic())
            with open(argument, "w") as out:
                out.writelines(f"{prefix}\t{value:.1f}\n" for prefix, value in sums.items())
            print(json.dumps({"dumped": len(sums)}), flush=True)
        elif command == "quit":
            break
        else:
            print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
    listener.stop()
    print(json.dumps(snapshot(listener, collector)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
