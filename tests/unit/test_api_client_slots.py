"""api.max_connections_per_client: a stranger holding idle connections cannot lock access points out."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.unit.test_api_server import REQUEST, app, run
from topfib.api.metrics import CONNECTIONS_DROPPED
from topfib.api.transport.client_slots import ClientSlots, client_key
from topfib.api.transport.server import ApiServer
from topfib.controller.config import ApiConfig, ConfigError, load_config


def test_a_client_is_an_ipv4_address_or_an_ipv6_64_and_local_proxies_are_not_limited() -> None:
    assert client_key("192.0.2.7") == ipaddress.ip_network("192.0.2.7/32")
    assert client_key("::ffff:192.0.2.7") == ipaddress.ip_network("192.0.2.7/32")
    same_64 = client_key("2001:db8:1:2::5")
    assert same_64 == client_key("2001:db8:1:2:ffff::9") != client_key("2001:db8:1:3::5")
    assert client_key("fe80::1%eth0") == ipaddress.ip_network("fe80::/64")
    assert client_key("127.0.0.1") is None and client_key("::1") is None and client_key("") is None
    slots = ClientSlots(2)
    assert [slots.take("2001:db8::1")[0], slots.take("2001:db8::2")[0], slots.take("2001:db8::3")[0]] == [
        True, True, False]
    slots.give(client_key("2001:db8::1"))
    assert slots.take("2001:db8::4")[0] and slots.open_for("2001:db8::99") == 2
    assert all(slots.take("127.0.0.1")[0] for _ in range(10))


@asynccontextmanager
async def serving(max_connections: int, per_client: int) -> AsyncIterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    api = ApiConfig(request_read_timeout_s=5.0, max_connections_per_client=per_client)
    server = ApiServer(app, api, None, max_connections)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield int(sock.getsockname()[1])
    finally:
        server.request_exit()
        await asyncio.wait_for(task, 10)


async def connect_from(source: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def held_from(source: str, port: int) -> tuple[bool, asyncio.StreamWriter | None]:
    """(whether the server keeps this new, idle connection open, its writer)."""
    try:
        reader, writer = await connect_from(source, port)
    except ConnectionResetError:  # reset before the connect call even completed
        return False, None
    try:
        return await asyncio.wait_for(reader.read(1), 0.3) != b"", writer
    except TimeoutError:
        return True, writer
    except ConnectionResetError:
        return False, writer


def test_a_stranger_holding_idle_connections_leaves_room_for_access_points() -> None:
    async def body() -> None:
        before = CONNECTIONS_DROPPED.value(reason="max_connections_per_client")
        async with serving(max_connections=8, per_client=3) as port:
            stranger = [await held_from("127.0.0.2", port) for _ in range(8)]  # idle, within the deadline
            held = [open_ for open_, _ in stranger]
            assert held == [True] * 3 + [False] * 5, held
            assert CONNECTIONS_DROPPED.value(reason="max_connections_per_client") == before + 5
            reader, writer = await connect_from("127.0.0.3", port)  # an AP, well before the deadline
            writer.write(REQUEST)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            assert head.startswith(b"HTTP/1.1 200 ")
            writer.close()
            for _, stranger_writer in stranger:
                if stranger_writer is not None:
                    stranger_writer.close()
            await asyncio.sleep(0.2)  # their slots come back
            reader, writer = await connect_from("127.0.0.2", port)
            writer.write(REQUEST)
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)).startswith(b"HTTP/1.1 200 ")
            writer.close()
    run(body)


def test_check_config_refuses_a_per_client_limit_below_one_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "topfib.toml"
    config.write_text('[api]\nmax_connections_per_client = 0\n[[switch]]\nname = "edge1"\n'
                      'neighbor = "10.0.0.2"\nlocal_address = "10.0.0.1"\nlocal_as = 65000\n'
                      "peer_as = 65000\nfib_cap_ipv4 = 10\nfib_cap_ipv6 = 10\n")
    with pytest.raises(ConfigError, match=r"api\.max_connections_per_client"):
        load_config(config)
    assert ApiConfig().max_connections_per_client == 64
