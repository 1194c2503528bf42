"""State in Redis outlives a topfib restart and is shared by API processes."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api_support import (
    AP2_TOKEN,
    AP_TOKEN,
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    FakeClock,
    anyio_backend,  # noqa: F401
    auth,
    build,
    client,
    make_config,
)
from topfib.api.tokens import hash_token
from topfib.controller.state.redis_store import RedisStore

pytest_plugins = ["tests.redis_fixture"]
pytestmark = pytest.mark.integration
T0 = 1_700_000_000.0
OPS, AP, VIEW = auth(OPERATOR_TOKEN), auth(AP_TOKEN), auth(VIEWER_TOKEN)


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.anyio
async def test_requests_config_and_pins_survive_a_restart(redis_url: str) -> None:
    config = make_config(switch_extra={"max_requests_per_ap": 2})
    first = RedisStore.from_url(redis_url)
    try:
        async with client(build(store=first, config=config, wall_clock=FakeClock(T0))) as c:
            await c.post("/v1/requests", json={"ips": ["198.51.100.1", "198.51.100.2"]}, headers=AP)
            await c.put("/v1/pins/198.51.100.0/24", json={"note": "keep"}, headers=OPS)
            await c.put("/v1/config/switches/edge1", json={"fib_cap_ipv4": 42}, headers=OPS)
    finally:
        await first.aclose()

    second = RedisStore.from_url(redis_url)  # a new process would build exactly this
    try:
        async with client(build(store=second, config=config, wall_clock=FakeClock(T0 + 1))) as c:
            requests = (await c.get("/v1/requests", headers=VIEW)).json()["requests"]
            assert sorted(r["ip"] for r in requests) == ["198.51.100.1", "198.51.100.2"]
            assert (await c.get("/v1/pins", headers=VIEW)).json()["pins"][0]["note"] == "keep"
            settings = (await c.get("/v1/config", headers=OPS)).json()["switches"][0]["settings"]
            assert settings["fib_cap_ipv4"] == 42
            # The per-AP cap counts what the AP held before the restart.
            third = await c.post("/v1/requests", json={"ips": ["198.51.100.3"]}, headers=AP)
            assert third.json()["results"][0]["status"] == "rejected"
    finally:
        await second.aclose()


@pytest.fixture
def two_api_processes(redis_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    tokens = {AP_TOKEN: ("ap1", "ap"), AP2_TOKEN: ("ap2", "ap"), VIEWER_TOKEN: ("viewer", "viewer")}
    token_tables = "".join(f'[[token]]\nname = "{name}"\nrole = "{role}"\nsha256 = "{hash_token(t)}"\n'
                           for t, (name, role) in tokens.items())
    config = tmp_path / "topfib.toml"
    config.write_text(f"""
[store]
url = "{redis_url}"
[special_use]
documentation = false
[[switch]]
name = "edge1"
neighbor = "10.0.0.2"
local_address = "10.0.0.1"
local_as = 65000
peer_as = 65000
fib_cap_ipv4 = 100
fib_cap_ipv6 = 100
{token_tables}""")
    ports = [free_loopback_port(), free_loopback_port()]
    processes = [subprocess.Popen([sys.executable, "-m", "bench.api_server", "--config", str(config),
                                   "--port", str(port)]) for port in ports]
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url in urls:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"{url} did not start"
                time.sleep(0.05)
        yield urls[0], urls[1]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def test_two_api_processes_on_one_redis_see_the_same_requests(two_api_processes: tuple[str, str]) -> None:
    one, two = two_api_processes
    posted = httpx.post(f"{one}/v1/requests", json={"ips": ["198.18.0.7"]}, headers=AP, timeout=5)
    assert posted.status_code == 200 and posted.json()["results"][0]["status"] == "pending"
    seen = httpx.get(f"{two}/v1/requests", headers=VIEW, timeout=5).json()["requests"]
    assert [(r["ap"], r["ip"]) for r in seen] == [("ap1", "198.18.0.7")]
    # Ending it through the other process ends it for both.
    assert httpx.delete(f"{two}/v1/requests/198.18.0.7", headers=AP, timeout=5).status_code == 204
    assert httpx.get(f"{one}/v1/requests", headers=VIEW, timeout=5).json()["requests"] == []
