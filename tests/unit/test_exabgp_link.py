"""ExabgpLink over a real unix socket; the test plays the bridge (and, once, ExaBGP behind it)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from topfib.collector.common.metrics import REGISTRY
from topfib.controller.exabgp.config import BRIDGE_PATH
from topfib.controller.exabgp.link import (
    ConnectionHandler,
    ExabgpLink,
    ExabgpLinkDown,
    is_pipelined_command,
)

TIMEOUT_S = 5.0
A1 = "neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri 16.0.1.0/24 16.0.2.0/24"
A2 = "neighbor 10.0.0.2 withdraw attributes next-hop 192.0.2.1 nlri 16.0.3.0/24"
A3 = "neighbor 10.0.0.2 announce route 16.0.4.0/24 next-hop 192.0.2.2"
BAD = "neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri 16.0.0.0/33"


class FakeBridge:
    """The socket side of a bridge: says hello, reads commands, writes what ExaBGP would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, path: Path, pid: int = 4242, dropped: int = 0) -> FakeBridge:
        reader, writer = await asyncio.open_unix_connection(str(path))
        bridge = cls(reader, writer)
        await bridge.say(f"#topfib-bridge pid={pid} pgid={pid} dropped={dropped}")
        return bridge

    async def say(self, *lines: str) -> None:
        self.writer.write("".join(line + "\n" for line in lines).encode())
        await self.writer.drain()

    async def commands(self, count: int) -> list[str]:
        return [(await asyncio.wait_for(self.reader.readline(), TIMEOUT_S)).decode().rstrip("\n")
                for _ in range(count)]

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def _run(scenario: Callable[[ExabgpLink, list[str]], Awaitable[None]], path: Path,
         ack_stall_s: float = TIMEOUT_S, on_connection: ConnectionHandler | None = None) -> list[str]:
    messages: list[str] = []

    async def main() -> None:
        link = ExabgpLink(path, messages.append, switch_name="edge1", ack_stall_s=ack_stall_s,
                          on_connection=on_connection)
        await link.start()
        try:
            await asyncio.wait_for(scenario(link, messages), TIMEOUT_S * 2)
        finally:
            await link.stop()

    asyncio.run(main())
    return messages


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "edge1.sock"


def test_acks_are_matched_in_order_and_errors_logged(sock: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(link: ExabgpLink, messages: list[str]) -> None:
        bridge = await FakeBridge.connect(sock)
        assert await link.wait_connected(TIMEOUT_S)
        assert link.bridge is not None and link.bridge.pid == 4242
        sending = asyncio.create_task(link.send([A1, BAD, A3]))
        assert await bridge.commands(3) == [A1, BAD, A3]
        await bridge.say("done", '{"type": "update"}', "error", "done")
        assert await sending == [True, False, True]
        assert messages == ['{"type": "update"}']
        assert link.stats.acks_done == 2 and link.stats.acks_error == 1
        await bridge.close()

    with caplog.at_level(logging.ERROR, logger="topfib.controller.exabgp.link"):
        _run(scenario, sock)
    assert any("16.0.0.0/33" in r.getMessage() for r in caplog.records)


def test_concurrent_senders_each_get_their_own_acks(sock: Path) -> None:
    async def scenario(link: ExabgpLink, messages: list[str]) -> None:
        bridge = await FakeBridge.connect(sock)
        await link.wait_connected(TIMEOUT_S)
        first = asyncio.create_task(link.send([A1, A2]))
        second = asyncio.create_task(link.send([A3]))
        assert await bridge.commands(3) == [A1, A2, A3]
        await bridge.say("error", "done", "error")
        assert await first == [False, True]
        assert await second == [False]
        await bridge.close()

    _run(scenario, sock)


def test_disconnect_fails_pending_commands_and_shows_state(sock: Path) -> None:
    changes: list[bool] = []

    async def scenario(link: ExabgpLink, messages: list[str]) -> None:
        bridge = await FakeBridge.connect(sock)
        await link.wait_connected(TIMEOUT_S)
        assert link.connected
        sending = asyncio.create_task(link.send([A1, A2]))
        await bridge.commands(2)
        await bridge.say("done")
        await bridge.close()
        assert await sending == [True, False]
        assert not link.connected
        with pytest.raises(ExabgpLinkDown):
            await link.send([A3])

    _run(scenario, sock, on_connection=changes.append)
    assert changes == [True, False]


def test_stalled_exabgp_fails_the_send_and_drops_the_connection(sock: Path) -> None:
    async def scenario(link: ExabgpLink, messages: list[str]) -> None:
        bridge = await FakeBridge.connect(sock)
        await link.wait_connected(TIMEOUT_S)
        assert await link.send([A1]) == [False]
        assert not link.connected
        assert link.stats.commands_unconfirmed == 1
        await bridge.close()

    _run(scenario, sock, ack_stall_s=0.2)


def test_new_bridge_replaces_the_old_and_reports_drops(sock: Path) -> None:
    async def scenario(link: ExabgpLink, messages: list[str]) -> None:
        old = await FakeBridge.connect(sock, pid=1)
        await link.wait_connected(TIMEOUT_S)
        pending = asyncio.create_task(link.send([A1]))
        await old.commands(1)
        new = await FakeBridge.connect(sock, pid=2, dropped=7)
        assert await pending == [False]
        await new.say('{"n": 1}')
        for _ in range(100):
            if messages:
                break
            await asyncio.sleep(0.01)
        assert link.connected and link.bridge is not None and link.bridge.pid == 2
        assert link.stats.bridge_dropped == 7
        await old.close()
        await new.close()

    assert _run(scenario, sock) == ['{"n": 1}']


def test_consumer_exception_does_not_stop_reading(sock: Path) -> None:
    seen: list[str] = []

    def consumer(line: str) -> None:
        seen.append(line)
        if line == "boom":
            raise RuntimeError("consumer bug")

    async def main() -> None:
        link = ExabgpLink(sock, consumer)
        await link.start()
        bridge = await FakeBridge.connect(sock)
        await link.wait_connected(TIMEOUT_S)
        await bridge.say("boom", "after")
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.01)
        assert link.stats.consumer_errors == 1
        await bridge.close()
        await link.stop()
        assert not sock.exists()

    asyncio.run(main())
    assert seen == ["boom", "after"]


def test_rejects_multi_line_commands(sock: Path) -> None:
    async def scenario(link: ExabgpLink, messages: list[str]) -> None:
        bridge = await FakeBridge.connect(sock)
        await link.wait_connected(TIMEOUT_S)
        with pytest.raises(ValueError):
            await link.send(["a\nb"])
        with pytest.raises(ValueError):
            await link.send(["  "])
        with pytest.raises(ValueError, match="split"):
            await link.send([A1 + " 16.0.0.0/24" * 50_000])
        await bridge.close()

    _run(scenario, sock)


def test_with_the_real_bridge_process(sock: Path) -> None:
    """Link ↔ bridge.py ↔ (the test as ExaBGP on the bridge's stdin/stdout)."""

    async def scenario(link: ExabgpLink, messages: list[str]) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(BRIDGE_PATH), str(sock),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            assert await link.wait_connected(TIMEOUT_S)
            assert link.bridge is not None and link.bridge.pid == proc.pid
            assert link.bridge.pgid == os.getpgid(proc.pid)
            sending = asyncio.create_task(link.send([A1, A2]))
            got = [(await asyncio.wait_for(proc.stdout.readline(), TIMEOUT_S)).decode() for _ in range(2)]
            assert got == [A1 + "\n", A2 + "\n"]
            proc.stdin.write(b'{"type": "state"}\ndone\nerror\n')
            await proc.stdin.drain()
            assert await sending == [True, False]
            assert messages == ['{"type": "state"}']
            proc.stdin.close()
            assert await asyncio.wait_for(proc.wait(), TIMEOUT_S) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    _run(scenario, sock)


@pytest.mark.parametrize(("command", "pipelined"), [
    (A1, True), (A2, True), (A3, True), (BAD, True),
    ("announce route 16.0.0.0/24 next-hop self", True),
    ("neighbor 10.0.0.2 local-as 65000 announce ipv6 unicast 2001:db8::/32 next-hop ::1", True),
    ("show neighbor summary", False),
    ("neighbor 10.0.0.2 announce eor", False),
    ("neighbor 10.0.0.2 announce nonsense 16.0.0.0/24", False),
    ("neighbor 10.0.0.2 teardown 2", False),
])
def test_which_commands_are_pipelined(command: str, pipelined: bool) -> None:
    assert is_pipelined_command(command) is pipelined


def test_other_commands_wait_for_earlier_acks_and_go_alone(sock: Path) -> None:
    """ExaBGP answers non-route commands at once: they must not overtake queued route commands."""

    async def scenario(link: ExabgpLink, messages: list[str]) -> None:
        bridge = await FakeBridge.connect(sock)
        await link.wait_connected(TIMEOUT_S)
        sending = asyncio.create_task(link.send([A1, "bogus command", A2]))
        assert await bridge.commands(1) == [A1]
        with pytest.raises(TimeoutError):  # nothing more is written until A1 is acked
            await asyncio.wait_for(bridge.reader.readline(), 0.2)
        await bridge.say("done")
        assert await bridge.commands(1) == ["bogus command"]
        await bridge.say("error")
        assert await bridge.commands(1) == [A2]
        await bridge.say("done")
        assert await sending == [True, False, True]
        await bridge.close()

    _run(scenario, sock)


def test_drop_reports_count_only_what_is_new_per_bridge(sock: Path) -> None:
    metric = REGISTRY.counter("topfib_exabgp_bridge_dropped_total", "", ("switch",))
    before = metric.value(switch="edge1")

    async def scenario(link: ExabgpLink, messages: list[str]) -> None:
        first = await FakeBridge.connect(sock, pid=10, dropped=7)
        await link.wait_connected(TIMEOUT_S)
        await first.say("#topfib-bridge dropped=9", '{"n": 1}')
        assert await async_until(lambda: bool(messages))
        assert link.stats.bridge_dropped == 9
        await first.close()
        again = await FakeBridge.connect(sock, pid=10, dropped=9)  # same process reconnecting
        second = await FakeBridge.connect(sock, pid=11, dropped=2)  # a new bridge process
        await second.say('{"n": 2}')
        assert await async_until(lambda: len(messages) == 2)
        assert link.stats.bridge_dropped == 11
        await again.close()
        await second.close()

    _run(scenario, sock)
    assert metric.value(switch="edge1") - before == 11


async def async_until(condition: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> bool:
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()
