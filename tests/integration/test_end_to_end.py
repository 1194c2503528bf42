"""The whole loop, for real: sFlow in, selection, ExaBGP out, routes in BIRD's kernel FIB.

topfib's service runs in this process (its ExaBGP in the lab's ``ctl`` namespace); sFlow goes to
its listener on loopback; the API is served on a loopback port. Every assertion about what is
installed reads the switch namespace's kernel FIB (``ip -n sw route show proto bird``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from tests.integration.lab import LAB_SPECIAL_USE, NEXT_HOPS_V4, Lab, async_wait_until
from topfib.collector.sflow.encode import FlowSampleSpec, encode_datagram
from topfib.controller.config import TopfibConfig
from topfib.controller.service.run import Service

pytestmark = pytest.mark.integration

AGENT = "192.0.2.200"
AP_TOKEN = "e2e-ap-token"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _netflow_v5(sequence: int, destinations: list[str]) -> bytes:
    """One NetFlow v5 export datagram, a flow of 1,000 packets / 1.5 MB per destination (v4 only)."""
    header = struct.pack("!HHIIIIBBH", 5, len(destinations), 1000, 1_700_000_000, 0, sequence, 0, 0, 0)
    records = b"".join(
        struct.pack("!4s4s4sHHIIIIHHxBBBHHBBxx", socket.inet_aton("198.51.100.7"), socket.inet_aton(dst),
                    socket.inet_aton("0.0.0.0"), 1, 2, 1000, 1_500_000, 0, 900, 443, 50000, 0x10, 6, 0,
                    0, 0, 24, 24)
        for dst in destinations
    )
    return header + records


def _config(lab: Lab, cap_v4: int, cap_v6: int) -> TopfibConfig:
    import hashlib

    switch = lab.switch_config(
        fib_cap_ipv4=cap_v4, fib_cap_ipv6=cap_v6, sflow_agents=[AGENT, "127.0.0.1"], loop_period_s=0.2,
        min_dwell_s=0.0, margin=0.1,
    )
    return TopfibConfig.model_validate(
        {
            "api": {"listen": f"127.0.0.1:{_free_port()}"},
            "collector": {
                "sflow_listen": [f"127.0.0.1:{_free_port()}"],
                "netflow_listen": [f"127.0.0.1:{_free_port()}"],
                "fast_half_life_s": 5.0,
            },
            "switch": [switch.model_dump()],
            "special_use": LAB_SPECIAL_USE,
            "token": [{"name": "ap1", "role": "ap", "sha256": hashlib.sha256(AP_TOKEN.encode()).hexdigest()}],
        }
    )


@asynccontextmanager
async def running(lab: Lab, cap_v4: int = 8, cap_v6: int = 4) -> AsyncIterator[Service]:
    config = _config(lab, cap_v4, cap_v6)
    service = Service(config, runtime_dir=lab.workdir / "topfib", netns=lab.ctl)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


class CapWatch:
    """Samples the switch's FIB in the background; remembers the largest size seen per family."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.max_v4 = 0
        self.max_v6 = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.max_v4 = max(self.max_v4, len(await asyncio.to_thread(self.lab.fib_routes, 4)))
            self.max_v6 = max(self.max_v6, len(await asyncio.to_thread(self.lab.fib_routes, 6)))
            await asyncio.sleep(0.05)

    def __enter__(self) -> CapWatch:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


def _send_sflow(service: Service, destinations: list[str], rounds: int = 20) -> None:
    host, port = service.config.collector.sflow_listen[0].rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sequence = 0
        for _ in range(rounds):
            for dst in destinations:
                sequence += 1
                src = "2001:db8:ffff::7" if ":" in dst else "198.51.100.7"
                specs = [FlowSampleSpec(src=src, dst=dst, sampling_rate=1000) for _ in range(5)]
                sock.sendto(encode_datagram(AGENT, 0, sequence, sequence * 10, specs), (host, int(port)))


def _host_in(prefix: str) -> str:
    network = prefix.split("/")[0]
    if ":" in network:
        return network.rstrip(":") + "::99" if network.endswith("::") else network + "99"
    a, b, c, _ = network.split(".")
    return f"{a}.{b}.{c}.99"


async def _ready(service: Service) -> None:
    """Wait until the session is up and the switch's table is in the RIB (traffic before that is
    unrouted: it goes to the default route and is not counted for any prefix)."""
    ctl = next(iter(service.controllers.values()))
    assert await async_wait_until(ctl.ready_to_program, 30.0), f"session not ready: {ctl.session}"


async def _hot(lab: Lab, service: Service, prefixes: list[str], timeout_s: float = 20.0) -> None:
    await _ready(service)
    _send_sflow(service, [_host_in(p) for p in prefixes])
    installed = await lab.wait_fib(lambda fib: set(prefixes) <= set(fib), timeout_s)
    assert installed, f"hot prefixes {prefixes} not installed; FIB {sorted(lab.fib_next_hops())}"


def _desired(service: Service) -> dict[str, str]:
    ctl = next(iter(service.controllers.values()))
    return ctl.selection.desired() if ctl.selection else {}


async def _converged(lab: Lab, service: Service, timeout_s: float = 15.0) -> bool:
    return await lab.wait_fib(lambda fib: bool(fib) and fib == _desired(service), timeout_s, interval_s=0.1)


async def _hot_prefixes_reach_the_switch_fib_under_the_cap(lab: Lab) -> None:
    async with running(lab, cap_v4=8, cap_v6=4) as service:
        hot = [p for p in lab.prefixes_v4 if p.endswith("/24")][:3] + lab.prefixes_v6[1:2]
        with CapWatch(lab) as watch:
            await _hot(lab, service, hot)
            assert await _converged(lab, service)
        assert watch.max_v4 <= 8 and watch.max_v6 <= 4
        assert not lab.import_limit_fired()
        fib = lab.fib_next_hops()
        ctl = next(iter(service.controllers.values()))
        for prefix, next_hop in fib.items():
            best = ctl.rib.best(prefix)
            assert best is not None and best.next_hop == next_hop


async def _request_through_the_api_installs_its_prefix(lab: Lab) -> None:
    async with running(lab) as service:
        target = lab.prefixes_v4[5]
        url = f"http://{service.config.api.listen}"
        await _ready(service)
        headers = {"Authorization": f"Bearer {AP_TOKEN}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            started = time.monotonic()
            response = await client.post("/v1/requests", json={"ips": [_host_in(target)], "ttl_s": 60})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["results"][0]["prefix"] == target
            assert await lab.wait_fib(lambda fib: target in fib, 10.0)
            assert time.monotonic() - started < 5.0
            response = await client.delete(f"/v1/requests/{_host_in(target)}")
            assert response.status_code in (200, 204)
        assert await lab.wait_fib(lambda fib: target not in fib, 10.0)


async def _withdrawn_and_changed_peer_routes_are_followed(lab: Lab) -> None:
    async with running(lab, cap_v4=20) as service:
        hot = [p for p in lab.prefixes_v4 if p.endswith("/24")][:6]
        await _hot(lab, service, hot)
        # prefix index 1 has 2 paths, index 3 has 1 path (paths_of: i % 3 + 1)
        gone = lab.prefixes_v4[3]
        assert gone in hot
        remaining = [p for p in lab.prefixes_v4 if p != gone]
        lab.replace_peer_routes(remaining, lab.prefixes_v6)
        assert await lab.wait_fib(lambda fib: gone not in fib, 5.0), "withdrawn route stayed"
        # next-hop change: prefix 1 has two peer paths; take away the one installed
        changed = lab.prefixes_v4[1]
        assert changed in hot
        before = lab.fib_next_hops()[changed]
        peer_file = lab.workdir / f"peer4_{NEXT_HOPS_V4.index(before)}.conf"
        peer_file.write_text(peer_file.read_text().replace(f"    route {changed} via {before};\n", ""))
        lab.birdc("configure")
        assert await lab.wait_fib(
            lambda fib: fib.get(changed) not in (None, before), 5.0
        ), "next-hop change not followed"
        assert await _converged(lab, service)


async def _exabgp_killed_is_restarted_and_fib_rebuilt(lab: Lab) -> None:
    async with running(lab) as service:
        hot = [p for p in lab.prefixes_v4 if p.endswith("/24")][:4]
        await _hot(lab, service, hot)
        ctl = next(iter(service.controllers.values()))
        pid = ctl.runner.pid
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)
        assert await lab.wait_fib(lambda fib: not fib, 10.0), "switch kept stale routes"
        assert await async_wait_until(lambda: ctl.runner.pid not in (None, pid), 15.0)
        assert await lab.wait_fib(lambda fib: set(hot) <= set(fib), 30.0), "FIB not rebuilt"
        assert not lab.import_limit_fired()


async def _netflow_traffic_is_accounted_too(lab: Lab) -> None:
    async with running(lab) as service:
        await _ready(service)
        hot = [p for p in lab.prefixes_v4 if p.endswith("/24")][5:7]
        host, port = service.config.collector.netflow_listen[0].rsplit(":", 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for sequence in range(20):
                # the exporter's source address is 127.0.0.1: map it like an sFlow agent
                sock.sendto(_netflow_v5(sequence, [_host_in(p) for p in hot]), (host, int(port)))
        assert await lab.wait_fib(lambda fib: set(hot) <= set(fib), 20.0), "NetFlow-hot prefixes missing"


async def _bird_restart_resyncs(lab: Lab) -> None:
    async with running(lab) as service:
        hot = [p for p in lab.prefixes_v4 if p.endswith("/24")][:4]
        await _hot(lab, service, hot)
        await asyncio.to_thread(lab.restart_bird)
        assert await lab.wait_fib(lambda fib: set(hot) <= set(fib), 30.0), "no resync after restart"
        assert await _converged(lab, service)


async def _stopping_topfib_empties_the_fib_and_keeps_the_default(lab: Lab) -> None:
    async with running(lab) as service:
        hot = [p for p in lab.prefixes_v4 if p.endswith("/24")][:3]
        await _hot(lab, service, hot)
        runner = next(iter(service.controllers.values())).runner
        pid = runner.pid
    assert await async_wait_until(lambda: not lab.fib_routes(4) and not lab.fib_routes(6), 5.0)
    assert all(route for route in lab.default_routes())
    assert pid is not None and not os.path.exists(f"/proc/{pid}")
    assert lab.namespace_pids(lab.ctl) == []


def test_hot_prefixes_reach_the_switch_fib_under_the_cap(lab: Lab) -> None:
    asyncio.run(_hot_prefixes_reach_the_switch_fib_under_the_cap(lab))


def test_request_through_the_api_installs_its_prefix(lab: Lab) -> None:
    asyncio.run(_request_through_the_api_installs_its_prefix(lab))


def test_withdrawn_and_changed_peer_routes_are_followed(lab: Lab) -> None:
    asyncio.run(_withdrawn_and_changed_peer_routes_are_followed(lab))


def test_exabgp_killed_is_restarted_and_fib_rebuilt(lab: Lab) -> None:
    asyncio.run(_exabgp_killed_is_restarted_and_fib_rebuilt(lab))


def test_netflow_traffic_is_accounted_too(lab: Lab) -> None:
    asyncio.run(_netflow_traffic_is_accounted_too(lab))


def test_bird_restart_resyncs(lab: Lab) -> None:
    asyncio.run(_bird_restart_resyncs(lab))


def test_stopping_topfib_empties_the_fib_and_keeps_the_default(lab: Lab) -> None:
    asyncio.run(_stopping_topfib_empties_the_fib_and_keeps_the_default(lab))
