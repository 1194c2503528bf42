"""On-demand request → prefix in the switch's kernel FIB, through the whole of topfib.

The namespace lab (BIRD 2 as the switch), topfib's service in this process with its ExaBGP in
``ctl``, the API on a loopback port. Each request is one ``POST /v1/requests`` for an address in
a peer prefix not yet installed; the latency runs from sending the POST until ``ip monitor
route`` in the switch namespace shows the prefix. Run once per ExaBGP reactor speed and print
both side by side (the issue's bar: p99 ≤ 500 ms over ≥ 200 requests).

    sudo .venv/bin/python -m bench.bench_request_latency [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import socket
import statistics
import time

import httpx

from tests.integration.lab import LAB_SPECIAL_USE, Lab, lab_unavailable_reason
from topfib.controller.config import TopfibConfig
from topfib.controller.service.run import Service

TOKEN = "bench-ap-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _host_in(prefix: str) -> str:
    a, b, c, _ = prefix.split("/")[0].split(".")
    return f"{a}.{b}.{c}.7"


async def measure(requests: int, reactor_speed: float) -> list[float]:
    with Lab(routes_v4=requests + 300, routes_v6=10) as lab:
        switch = lab.switch_config(fib_cap_ipv4=requests + 50, fib_cap_ipv6=100, loop_period_s=1.0)
        config = TopfibConfig.model_validate({
            "api": {"listen": f"127.0.0.1:{_free_port()}", "rate_limit_per_s": 1e4, "rate_limit_burst": 9999},
            "collector": {"sflow_listen": [f"127.0.0.1:{_free_port()}"]},
            "exabgp": {"reactor_speed": reactor_speed},
            "switch": [switch.model_dump()],
            "special_use": LAB_SPECIAL_USE,
            "token": [{"name": "bench", "role": "ap", "sha256": hashlib.sha256(TOKEN.encode()).hexdigest()}],
        })
        service = Service(config, runtime_dir=lab.workdir / "topfib", netns=lab.ctl)
        await service.start()
        try:
            ctl = next(iter(service.controllers.values()))
            deadline = time.monotonic() + 60
            while not ctl.ready_to_program() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            targets = [p for p in lab.prefixes_v4 if p.endswith("/24")][:requests]
            latencies: list[float] = []
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with lab.watch_fib() as fib, httpx.AsyncClient(
                base_url=f"http://{config.api.listen}", headers=headers
            ) as client:
                for prefix in targets:
                    started = time.monotonic()
                    body = {"ips": [_host_in(prefix)], "ttl_s": 600}
                    response = await client.post("/v1/requests", json=body)
                    response.raise_for_status()
                    if not await fib.wait_for(lambda routes, p=prefix: p in routes, 10.0):  # type: ignore[misc]
                        raise RuntimeError(f"{prefix} never reached the FIB")
                    latencies.append(time.monotonic() - started)
            return latencies
        finally:
            await service.stop()


def _summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {"p50_ms": statistics.median(ordered) * 1000, "p99_ms": p99 * 1000, "max_ms": ordered[-1] * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    reason = lab_unavailable_reason()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    results = {}
    for speed in (1.0, 0.1):
        results[speed] = _summary(asyncio.run(measure(args.requests, speed)))
    print(f"request → switch kernel FIB, {args.requests} sequential requests (bar: p99 ≤ 500 ms)")
    print(f"{'reactor speed':>14} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for speed, row in results.items():
        print(f"{speed:>14} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} {row['max_ms']:>8.1f}")
    print(f"p99 ratio default/0.1: {results[1.0]['p99_ms'] / results[0.1]['p99_ms']:.2f}")


if __name__ == "__main__":
    main()
