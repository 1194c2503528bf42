"""Faults of whole processes: ``topfib run`` SIGKILLed and restarted on Redis, Redis stopped under
load, the active controller SIGKILLed with a standby on the same Redis.

topfib runs as ``topfib run --config FILE`` in the root namespace (API and sFlow on 127.0.0.1),
its ExaBGP in the lab's ``ctl`` namespace (``exabgp.netns``). The switch's kernel FIB is followed
by ``ip monitor route`` throughout; it must never exceed the cap and BIRD's import limit must
never fire.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.fault_support import (
    AP_TOKEN,
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    PeakWatcher,
    PersistentRedis,
    TopfibProcess,
    children_of,
    host_in,
    watch_fib_peak,
    write_config,
)
from tests.integration.lab import Lab, async_wait_until, lab_unavailable_reason

pytestmark = pytest.mark.integration

CAP_V4, CAP_V6 = 60, 10
ACCEPTED = ("pending", "installed", "no-route")


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab(routes_v4=400, routes_v6=20, import_limit=CAP_V4) as built:
        yield built


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[PersistentRedis]:
    server = PersistentRedis(tmp_path)
    try:
        server.start()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


def _topfib(lab: Lab, redis: PersistentRedis, tag: str) -> TopfibProcess:
    config = write_config(lab, lab.workdir / f"{tag}.toml", cap_v4=CAP_V4, cap_v6=CAP_V6, store_url=redis.url,
                          runtime_dir=lab.workdir / f"run-{tag}")
    return TopfibProcess(config, lab.workdir / f"{tag}.log")


def _request(proc: TopfibProcess, ips: list[str], ttl_s: float) -> list[str]:
    """POST the IPs; the ones accepted (pending, installed or no-route)."""
    with proc.client(AP_TOKEN) as client:
        response = client.post("/v1/requests", json={"ips": ips, "ttl_s": ttl_s})
    assert response.status_code == 200, response.text
    return [r["ip"] for r in response.json()["results"] if r["status"] in ACCEPTED]


def _pin(proc: TopfibProcess, prefixes: list[str]) -> None:
    with proc.client(OPERATOR_TOKEN) as client:
        for prefix in prefixes:
            response = client.put(f"/v1/pins/{prefix}")
            assert response.status_code == 200, response.text


def _listed(proc: TopfibProcess) -> tuple[set[str], set[str]]:
    with proc.client(VIEWER_TOKEN) as client:
        requests = client.get("/v1/requests", params={"limit": 100000}).json()["requests"]
        pins = client.get("/v1/pins").json()["pins"]
    return {r["ip"] for r in requests}, {p["prefix"] for p in pins}


def _assert_within_cap(lab: Lab, watch: PeakWatcher) -> None:
    assert not lab.import_limit_fired(), "BIRD's import limit fired"
    dumped = lab.fib_next_hops()  # the peak counts only if the event stream ends where the kernel is
    assert watch.routes == dumped, f"ip monitor lost events: {len(watch.routes)} ≠ kernel {len(dumped)}"
    assert watch.peak_v4 <= CAP_V4, f"IPv4 FIB reached {watch.peak_v4} > cap {CAP_V4}"
    assert watch.peak_v6 <= CAP_V6, f"IPv6 FIB reached {watch.peak_v6} > cap {CAP_V6}"
    assert not lab.import_limit_fired(), "BIRD's import limit fired"


def _stop_all(*procs: TopfibProcess) -> None:
    for proc in procs:
        proc.stop()


# --- topfib SIGKILLed, restarted on Redis ----------------------------------------------------------


async def _topfib_sigkill_and_restart(lab: Lab, redis: PersistentRedis) -> None:
    slash24 = [p for p in lab.prefixes_v4 if p.endswith("/24")]
    requested = slash24[:30]
    pinned = slash24[30:45] + lab.prefixes_v6[1:4]
    short_lived = slash24[45]
    first = _topfib(lab, redis, "a")
    second = TopfibProcess(first.config_path, first.log_path)  # same config: a restart
    try:
        async with watch_fib_peak(lab) as watch:
            first.start()
            await asyncio.to_thread(first.wait_healthy)
            accepted = await asyncio.to_thread(_request, first, [host_in(p) for p in requested], 600)
            assert len(accepted) == len(requested)
            assert await asyncio.to_thread(_request, first, [host_in(short_lived)], 1)
            await asyncio.to_thread(_pin, first, pinned)
            wanted = set(requested) | set(pinned)
            assert await watch.wait_for(lambda fib: wanted <= set(fib), 40.0), "FIB never built"
            assert children_of(first.pid), "no ExaBGP under topfib"
            exabgp_pids = lab.namespace_pids(lab.ctl)
            assert exabgp_pids

            first.kill()
            killed_at = time.monotonic()
            assert await async_wait_until(lambda: not lab.namespace_pids(lab.ctl), 5.0), (
                f"ExaBGP outlived topfib: {lab.namespace_pids(lab.ctl)}")
            assert await watch.wait_for(lambda fib: not fib, 5.0), "the switch kept unmanaged routes"
            emptied_s = time.monotonic() - killed_at
            await asyncio.sleep(1.5)  # the 1 s request has expired by now

            second.start()
            await asyncio.to_thread(second.wait_healthy)
            ips, pins = await asyncio.to_thread(_listed, second)
            assert ips == set(accepted), "requests lost (or an expired one came back) across the restart"
            assert pins == set(pinned), "pins lost across the restart"
            assert await watch.wait_for(lambda fib: set(fib) == wanted, 30.0), (
                f"FIB not rebuilt: missing {sorted(wanted - set(watch.routes))[:5]}, "
                f"extra {sorted(set(watch.routes) - wanted)[:5]}")
            rebuilt_s = time.monotonic() - killed_at
            _assert_within_cap(lab, watch)
            print(f"\ntopfib-sigkill: FIB empty {emptied_s:.2f}s after the kill, rebuilt "
                  f"({len(wanted)} routes) {rebuilt_s:.2f}s after it (incl. 1.5 s wait + restart)")
    finally:
        _stop_all(first, second)


def test_topfib_sigkill_and_restart_on_redis_brings_back_requests_pins_and_fib(
    lab: Lab, redis: PersistentRedis
) -> None:
    asyncio.run(_topfib_sigkill_and_restart(lab, redis))


# --- Redis stopped under load ---------------------------------------------------------------------

# Longer than the lease TTL (3 s) and its expiry (ExaBGP stopped): the outage the switch sees.
OUTAGE_S = float(os.environ.get("TOPFIB_REDIS_OUTAGE_S", "8"))


class RequestLoad:
    """A thread posting requests at ~``rate`` per second, remembering which the API accepted."""

    def __init__(self, proc: TopfibProcess, prefixes: list[str], rate: float) -> None:
        self.proc, self.prefixes, self.rate = proc, prefixes, rate
        self.accepted: set[str] = set()
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        with self.proc.client(AP_TOKEN) as client:
            while not self._stop.is_set():
                prefix = self.prefixes[n % len(self.prefixes)]
                ip = host_in(prefix).rsplit(".", 1)[0] + f".{n % 200 + 1}"
                n += 1
                try:
                    response = client.post("/v1/requests", json={"ips": [ip], "ttl_s": 600}, timeout=5)
                except httpx.TransportError as exc:
                    self.errors.append(repr(exc))
                    continue
                self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
                if response.status_code == 200 and response.json()["results"][0]["status"] in ACCEPTED:
                    self.accepted.add(ip)
                self._stop.wait(1 / self.rate)

    def __enter__(self) -> RequestLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


async def _redis_outage(lab: Lab, redis: PersistentRedis) -> None:
    slash24 = [p for p in lab.prefixes_v4 if p.endswith("/24")]
    pinned = slash24[:10]
    load_prefixes = slash24[10:50]
    proc = _topfib(lab, redis, "r")
    try:
        async with watch_fib_peak(lab) as watch:
            proc.start()
            await asyncio.to_thread(proc.wait_healthy)
            await asyncio.to_thread(_pin, proc, pinned)
            assert await watch.wait_for(lambda fib: set(pinned) <= set(fib), 40.0)
            with RequestLoad(proc, load_prefixes, rate=25) as load:
                assert await async_wait_until(lambda: len(load.accepted) >= 25, 10.0), load.statuses
                redis.stop()
                stopped_at = time.monotonic()
                accepted_before = set(load.accepted)
                await asyncio.sleep(OUTAGE_S)
                assert proc.alive(), f"topfib died during the outage: {proc.log()[-2000:]}"
                during = dict(load.statuses)
                fib_at_outage_end = len(watch.routes)  # the lease ran out: ExaBGP stopped, FIB empty
                redis.start()
                restarted_at = time.monotonic()
                wanted = set(pinned) | set(load_prefixes)
                rebuilt = await watch.wait_for(lambda fib: wanted <= set(fib), 30.0)
                recovered_s = time.monotonic() - restarted_at
                await asyncio.sleep(2)
            missing = sorted(wanted - set(watch.routes))
            assert rebuilt, f"FIB not rebuilt after Redis returned: missing {missing[:5]}"
            assert proc.alive()
            assert not load.errors, load.errors[:3]
            assert 503 in during, "writes during the outage should be refused with 503"
            assert fib_at_outage_end == 0, "the lease outlived the outage: it was too short to test one"
            assert set(load.statuses) <= {200, 503}, load.statuses
            ips, pins = await asyncio.to_thread(_listed, proc)
            lost = load.accepted - ips
            assert not lost, f"{len(lost)} accepted requests lost, e.g. {sorted(lost)[:3]}"
            assert pins == set(pinned)
            _assert_within_cap(lab, watch)
            assert "Traceback" not in proc.log(), proc.log()[-3000:]
            print(f"\nredis-outage: {OUTAGE_S:.0f}s, {len(accepted_before)} accepted before, "
                  f"{len(load.accepted)} accepted in all, statuses {load.statuses}; "
                  f"FIB {fib_at_outage_end} routes at the outage's end, rebuilt {recovered_s:.2f}s after "
                  f"Redis returned ({time.monotonic() - stopped_at:.1f}s after it stopped)")
    finally:
        _stop_all(proc)


def test_redis_outage_under_load_loses_no_accepted_request_and_recovers(
    lab: Lab, redis: PersistentRedis
) -> None:
    asyncio.run(_redis_outage(lab, redis))


# --- the standby takes over -----------------------------------------------------------------------


async def _standby_takeover(lab: Lab, redis: PersistentRedis) -> None:
    pinned = [p for p in lab.prefixes_v4 if p.endswith("/24")][:25] + lab.prefixes_v6[1:3]
    active = _topfib(lab, redis, "active")
    standby = _topfib(lab, redis, "standby")
    try:
        async with watch_fib_peak(lab) as watch:
            active.start()
            await asyncio.to_thread(active.wait_healthy)
            await asyncio.to_thread(_pin, active, pinned)
            assert await watch.wait_for(lambda fib: set(fib) == set(pinned), 40.0)
            standby.start()
            await asyncio.to_thread(standby.wait_healthy)
            await asyncio.sleep(2)
            assert children_of(active.pid) and not children_of(standby.pid), "the standby runs ExaBGP too"
            assert set(watch.routes) == set(pinned)

            active.kill()
            killed_at = time.monotonic()
            assert await async_wait_until(lambda: bool(children_of(standby.pid)), 10.0), "no takeover"
            took_lease_s = time.monotonic() - killed_at
            assert await watch.wait_for(lambda fib: set(fib) == set(pinned), 30.0), "FIB not rebuilt"
            rebuilt_s = time.monotonic() - killed_at
            _assert_within_cap(lab, watch)
            print(f"\nstandby-takeover: ExaBGP started by the standby {took_lease_s:.2f}s after the kill, "
                  f"FIB rebuilt ({len(pinned)} routes) after {rebuilt_s:.2f}s")
    finally:
        _stop_all(active, standby)


def test_standby_takes_over_when_the_active_controller_is_killed(lab: Lab, redis: PersistentRedis) -> None:
    asyncio.run(_standby_takeover(lab, redis))
