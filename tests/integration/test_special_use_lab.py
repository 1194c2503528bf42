"""Forwarding safety in the BIRD lab (issue 15, points 1–2): whatever the peer announces and
whatever traffic, requests and pins target, the switch's kernel FIB equals what topfib counts as
installed, never exceeds the cap and never holds a default route or special-use prefix.

The peer is configured with 0.0.0.0/0, 224.0.0.0/4, 127.0.0.0/8, 169.254.0.0/16, ::/0 and
ff00::/8 alongside the lab's ordinary prefixes. BIRD 2 itself drops 127/8, 224/4 and ff00::/8 as
"bogus" static routes, so 0/0, 169.254/16 and ::/0 reach topfib over BGP; the others reach the
RIB's filter in tests/unit/test_special_use.py (ExaBGP JSON) and ExaBGP directly below. sFlow
goes to topfib's listener on loopback, the API is served on a loopback port, and every assertion
about the switch reads its kernel FIB.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from tests.integration.lab import (
    LAB_SPECIAL_USE,
    NEXT_HOPS_V4,
    SW_V4,
    Lab,
    async_wait_until,
    lab_unavailable_reason,
)
from topfib.collector.common.special_use import FILTERED
from topfib.collector.sflow.encode import FlowSampleSpec, encode_datagram
from topfib.controller.config import TopfibConfig
from topfib.controller.exabgp.commands import render_step
from topfib.controller.program.plan import plan
from topfib.controller.service.run import Service
from topfib.controller.switch.controller import SwitchController

pytestmark = pytest.mark.integration

AGENT = "192.0.2.200"
AP_TOKEN, OPS_TOKEN = "special-ap-token", "special-ops-token"
SPECIAL_V4 = ["0.0.0.0/0", "224.0.0.0/4", "127.0.0.0/8", "169.254.0.0/16"]
SPECIAL_V6 = ["::/0", "ff00::/8"]
SPECIAL = set(SPECIAL_V4 + SPECIAL_V6)
BIRD_SENDS = {"0.0.0.0/0", "169.254.0.0/16", "::/0"}  # BIRD refuses the rest as bogus
# destinations only a special-use path would match: unrouted (8.8.8.8 only matches the peer's /0)
SPECIAL_DESTINATIONS = ["8.8.8.8", "224.0.0.5", "127.0.0.9", "169.254.1.1", "2a00::1", "ff02::1"]
CAP_V4, CAP_V6 = 4, 2


def _free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(lab: Lab) -> TopfibConfig:
    switch = lab.switch_config(fib_cap_ipv4=CAP_V4, fib_cap_ipv6=CAP_V6, sflow_agents=[AGENT],
                               loop_period_s=0.2, min_dwell_s=0.0)
    return TopfibConfig.model_validate({
        "api": {"listen": f"127.0.0.1:{_free_port()}", "rate_limit_per_s": 1e4, "rate_limit_burst": 9999},
        "collector": {"sflow_listen": [f"127.0.0.1:{_free_port(socket.SOCK_DGRAM)}"],
                      "receive_buffer_bytes": 1 << 20, "fast_half_life_s": 5.0},
        "special_use": LAB_SPECIAL_USE,
        "switch": [switch.model_dump()],
        "token": [{"name": "ap1", "role": "ap", "sha256": hashlib.sha256(AP_TOKEN.encode()).hexdigest()},
                  {"name": "ops", "role": "operator",
                   "sha256": hashlib.sha256(OPS_TOKEN.encode()).hexdigest()}],
    })


@asynccontextmanager
async def _running(lab: Lab) -> AsyncIterator[tuple[Service, SwitchController]]:
    service = Service(_config(lab), runtime_dir=lab.workdir / "topfib", netns=lab.ctl)
    await service.start()
    try:
        ctl = next(iter(service.controllers.values()))
        assert await async_wait_until(ctl.ready_to_program, 30.0), f"session not ready: {ctl.session}"
        yield service, ctl
    finally:
        await service.stop()


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
        return network.rstrip(":") + "::99"
    a, b, c, _ = network.split(".")
    return f"{a}.{b}.{c}.99"


class _FibGuard:
    """Samples the switch's FIB in the background: the largest size per family and anything
    special-use it ever held."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.max_v4 = self.max_v6 = 0
        self.special_seen: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            fib = await asyncio.to_thread(self.lab.fib_next_hops)
            self.max_v4 = max(self.max_v4, sum(":" not in p for p in fib))
            self.max_v6 = max(self.max_v6, sum(":" in p for p in fib))
            self.special_seen |= SPECIAL & set(fib)
            await asyncio.sleep(0.05)

    def __enter__(self) -> _FibGuard:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


async def _fib_equals_installed(lab: Lab, ctl: SwitchController, timeout_s: float = 15.0) -> bool:
    return await lab.wait_fib(lambda fib: fib == ctl.installed and not ctl.link.pending_acks, timeout_s,
                              interval_s=0.1)


async def _special_use_never_reaches_the_switch(lab: Lab) -> None:
    lab.replace_peer_routes(lab.prefixes_v4 + SPECIAL_V4, lab.prefixes_v6 + SPECIAL_V6)
    ordinary_v4 = [p for p in lab.prefixes_v4 if p.endswith("/24")]
    hot = ordinary_v4[:3] + lab.prefixes_v6[1:2]
    rib_refused_before = sum(FILTERED.value(where="rib", range=name)
                             for name in ("default route", "multicast", "loopback", "link-local"))
    async with _running(lab) as (service, ctl):
        # the switch offered them, the RIB holds none (ADD-PATH: one path or more each)
        assert await async_wait_until(lambda: ctl.rib.refused_special_use >= len(BIRD_SENDS), 10.0)
        assert not SPECIAL & set(ctl.rib)
        assert sum(FILTERED.value(where="rib", range=name) for name in
                   ("default route", "multicast", "loopback", "link-local")) >= rib_refused_before + 3
        url = f"http://{service.config.api.listen}"
        as_ap, as_ops = ({"Authorization": f"Bearer {token}"} for token in (AP_TOKEN, OPS_TOKEN))
        with _FibGuard(lab) as guard:
            # traffic: to ordinary prefixes and to destinations only special paths would match
            _send_sflow(service, [_host_in(p) for p in hot] + SPECIAL_DESTINATIONS)
            async with httpx.AsyncClient(base_url=url, headers=as_ap) as ap:
                response = await ap.post("/v1/requests", json={"ips": SPECIAL_DESTINATIONS, "ttl_s": 60})
                assert response.status_code == 200, response.text
                for result in response.json()["results"]:
                    assert (result["status"], result["prefix"]) == ("no-route", None), result
                requested = ordinary_v4[5]
                response = await ap.post("/v1/requests", json={"ips": [_host_in(requested)], "ttl_s": 60})
                assert response.json()["results"][0]["prefix"] == requested
            async with httpx.AsyncClient(base_url=url, headers=as_ops) as ops:
                for prefix in sorted(SPECIAL):
                    response = await ops.put(f"/v1/pins/{prefix}")
                    assert response.status_code == 422, (prefix, response.text)
                pinned = ordinary_v4[7]
                assert (await ops.put(f"/v1/pins/{pinned}")).status_code == 200
                wanted = {requested, pinned}
                assert await lab.wait_fib(lambda fib: wanted <= set(fib), 20.0), sorted(lab.fib_next_hops())
                assert await _fib_equals_installed(lab, ctl), (lab.fib_next_hops(), ctl.installed)
                fib_api = (await ops.get("/v1/fib")).json()
                assert {route["prefix"] for route in fib_api["routes"]} == set(ctl.installed)
                # the second step: the cap lowered to 1, the FIB follows exactly
                response = await ops.put("/v1/config/switches/labsw", json={"fib_cap_ipv4": 1})
                assert response.status_code == 200, response.text
                assert await lab.wait_fib(lambda fib: sum(":" not in p for p in fib) == 1, 15.0)
                assert await _fib_equals_installed(lab, ctl)
                # and it cannot be raised past the file's cap
                response = await ops.put("/v1/config/switches/labsw", json={"fib_cap_ipv4": CAP_V4 + 1})
                assert response.status_code == 422
        assert guard.max_v4 <= CAP_V4 and guard.max_v6 <= CAP_V6, (guard.max_v4, guard.max_v6)
        assert not guard.special_seen, guard.special_seen
        assert not SPECIAL & set(ctl.installed)
    assert not lab.import_limit_fired()


async def _every_acknowledged_line_is_in_the_fib(lab: Lab) -> None:
    """A line whose last prefix is in 224/4 used to become ipv4/multicast: ExaBGP dropped every
    prefix on it and still answered ``done``. Now such a prefix never ends an ``attributes`` line."""
    ordinary = [p for p in lab.prefixes_v4 if p.endswith("/24")][:3]
    desired = {prefix: NEXT_HOPS_V4[0] for prefix in [*ordinary, "224.0.0.0/4"]}
    rendered = [entry for step in plan(desired, {}).steps for entry in render_step(step, SW_V4)]
    assert rendered[-1][0][-1] == "224.0.0.0/4"  # last on its line: what used to break the line
    lines = [line for _, line in rendered]
    async with lab.exabgp(reactor_speed=0.1) as session:
        assert await session.wait_up(30)
        results = await session.link.send(lines)
        assert all(results), list(zip(lines, results, strict=True))
        assert await lab.wait_fib(lambda fib: set(ordinary) <= set(fib), 10.0), sorted(lab.fib_next_hops())
        acknowledged = {p for (on_line, _), ok in zip(rendered, results, strict=True) if ok for p in on_line}
        assert set(lab.fib_next_hops()) <= acknowledged


@pytest.fixture
def special_lab() -> Lab:
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    return Lab(routes_v4=40, routes_v6=12)


def test_special_use_prefixes_never_reach_the_switch_and_the_fib_equals_installed(special_lab: Lab) -> None:
    with special_lab as lab:
        asyncio.run(_special_use_never_reaches_the_switch(lab))


def test_every_acknowledged_line_is_in_the_fib_even_with_a_multicast_prefix(special_lab: Lab) -> None:
    with special_lab as lab:
        asyncio.run(_every_acknowledged_line_is_in_the_fib(lab))
