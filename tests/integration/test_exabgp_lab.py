"""Runner + bridge + link in ``ctl``, BIRD 2 in ``sw``: the real ExaBGP boundary, end to end."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable

import pytest

from tests.integration.lab import (
    CTL_V4,
    NEXT_HOPS_V4,
    NEXT_HOPS_V6,
    SW_V4,
    ExabgpSession,
    Lab,
    async_wait_until,
    paths_of,
    peer_prefixes,
)

pytestmark = pytest.mark.integration

UP_TIMEOUT_S = 20.0
FIB_TIMEOUT_S = 10.0
RESTART_BACKOFF_S = 3.0


def announce(next_hop: str, prefixes: list[str]) -> str:
    return f"neighbor {SW_V4} announce attributes next-hop {next_hop} nlri {' '.join(prefixes)}"


def withdraw(next_hop: str, prefixes: list[str]) -> str:
    return f"neighbor {SW_V4} withdraw attributes next-hop {next_hop} nlri {' '.join(prefixes)}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False


Body = Callable[[ExabgpSession], Awaitable[None]]


def in_session(lab: Lab, body: Body, backoff_min_s: float = 0.2) -> None:
    async def main() -> None:
        async with lab.exabgp(backoff_min_s=backoff_min_s) as session:
            assert await session.wait_up(UP_TIMEOUT_S), list(session.runner.recent_output)[-20:]
            await body(session)

    asyncio.run(main())


def test_peer_paths_arrive_as_json_with_several_path_ids(lab: Lab) -> None:
    async def body(session: ExabgpSession) -> None:
        assert await async_wait_until(lambda: session.end_of_rib() >= {"ipv4 unicast", "ipv6 unicast"},
                                      FIB_TIMEOUT_S)
        # The raw shape topfib's parser relies on (ExaBGP 5): family → next-hop → [{nlri, path-id}].
        update = next(m for m in session.decoded() if m.get("type") == "update"
                      and "announce" in m["neighbor"]["message"]["update"])  # type: ignore[index]
        assert update["neighbor"]["address"] == {"local": CTL_V4, "peer": SW_V4}  # type: ignore[index]
        announce_block = update["neighbor"]["message"]["update"]["announce"]  # type: ignore[index]
        family_block = announce_block["ipv4 unicast"]
        next_hop, entries = next(iter(family_block.items()))
        assert next_hop in NEXT_HOPS_V4
        assert set(entries[0]) == {"nlri", "path-information"}
        assert update["neighbor"]["message"]["update"]["attribute"]["local-preference"] == 100  # type: ignore[index]
        paths = session.received_paths()
        for family, prefixes, hops in (("ipv4 unicast", lab.prefixes_v4, NEXT_HOPS_V4),
                                       ("ipv6 unicast", lab.prefixes_v6, NEXT_HOPS_V6)):
            for index, prefix in enumerate(prefixes):
                got = paths[(family, prefix)]
                # One path per peer next-hop, each under its own ADD-PATH id.
                assert sorted(got.values()) == sorted(hops[: paths_of(index)]), (family, prefix)
                assert len(set(got)) == paths_of(index)
        assert {p for f, p in paths if f == "ipv4 unicast"} == set(lab.prefixes_v4)
        assert {p for f, p in paths if f == "ipv6 unicast"} == set(lab.prefixes_v6)
        assert max(len(v) for v in paths.values()) == 3
        # Nested prefixes exist in what the switch sent: a /16 and /24s inside it.
        assert ("ipv4 unicast", "16.0.0.0/16") in paths and ("ipv4 unicast", "16.0.1.0/24") in paths
        assert not lab.fib_routes(4) and not lab.fib_routes(6)  # peer routes never reach the FIB

    in_session(lab, body)


def test_announce_lands_in_the_fib_and_withdraw_removes_it(lab: Lab) -> None:
    v4 = peer_prefixes(12, 4)
    v6 = peer_prefixes(4, 6)

    async def body(session: ExabgpSession) -> None:
        commands = [announce(NEXT_HOPS_V4[0], v4[:6]), announce(NEXT_HOPS_V4[1], v4[6:]),
                    announce(NEXT_HOPS_V6[2], v6)]
        assert await session.link.send(commands) == [True, True, True]
        expected = {p: NEXT_HOPS_V4[0] for p in v4[:6]} | {p: NEXT_HOPS_V4[1] for p in v4[6:]}
        expected |= {p: NEXT_HOPS_V6[2] for p in v6}
        assert await lab.wait_fib(lambda fib: fib == expected, FIB_TIMEOUT_S), lab.fib_next_hops()
        # Re-announce with another next-hop: the FIB follows.
        assert await session.link.send([announce(NEXT_HOPS_V4[2], v4[:2])]) == [True]
        expected |= {p: NEXT_HOPS_V4[2] for p in v4[:2]}
        assert await lab.wait_fib(lambda fib: fib == expected, FIB_TIMEOUT_S), lab.fib_next_hops()
        assert await session.link.send([withdraw(NEXT_HOPS_V4[1], v4[6:]), withdraw(NEXT_HOPS_V6[2], v6)]) \
            == [True, True]
        remaining = {p: h for p, h in expected.items() if p in v4[:6]}
        assert await lab.wait_fib(lambda fib: fib == remaining, FIB_TIMEOUT_S), lab.fib_next_hops()
        assert all("default via" in route for route in lab.default_routes())

    in_session(lab, body)


def test_bad_commands_are_acked_error_in_order(lab: Lab) -> None:
    v4 = peer_prefixes(3, 4)

    async def body(session: ExabgpSession) -> None:
        results = await session.link.send([
            announce(NEXT_HOPS_V4[0], [v4[0]]),
            announce(NEXT_HOPS_V4[0], ["16.0.0.0/33"]),  # ExaBGP queues it, then rejects it
            announce(NEXT_HOPS_V4[0], [v4[1]]),
            f"neighbor {SW_V4} announce nonsense",  # ExaBGP rejects it at once
            announce(NEXT_HOPS_V4[0], [v4[2]]),
        ])
        assert results == [True, False, True, False, True]
        assert session.link.stats.acks_error == 2
        assert session.link.pending_acks == 0
        assert await lab.wait_fib(lambda fib: set(fib) == set(v4), FIB_TIMEOUT_S), lab.fib_next_hops()

    in_session(lab, body)


def test_sigkill_of_exabgp_empties_the_fib_then_runner_restores_the_session(lab: Lab) -> None:
    v4 = peer_prefixes(20, 4)

    async def body(session: ExabgpSession) -> None:
        assert await session.link.send([announce(NEXT_HOPS_V4[0], v4)]) == [True]
        assert await lab.wait_fib(lambda fib: set(fib) == set(v4), FIB_TIMEOUT_S)
        old_pid = session.runner.pid
        assert old_pid is not None and session.link.bridge is not None
        old_bridge = session.link.bridge.pid
        os.kill(old_pid, signal.SIGKILL)
        # No graceful restart: the switch drops our routes at once (with it, BIRD would keep them
        # as stale until the restarted ExaBGP, held back by the backoff, ends its RIB).
        assert await lab.wait_fib(lambda fib: not fib, RESTART_BACKOFF_S / 2), lab.fib_next_hops()
        assert all("default via" in route for route in lab.default_routes())
        assert await async_wait_until(lambda: session.runner.restarts == 1 and session.runner.running,
                                      UP_TIMEOUT_S)
        assert session.runner.pid != old_pid
        assert await async_wait_until(
            lambda: session.link.bridge is not None and session.link.bridge.pid != old_bridge, UP_TIMEOUT_S)
        assert await async_wait_until(lambda: session.is_up() and lab.session_established(), UP_TIMEOUT_S)
        assert not _alive(old_pid) and not _alive(old_bridge)
        # The new ExaBGP starts empty: topfib re-announces, and the routes are back.
        assert await session.link.send([announce(NEXT_HOPS_V4[1], v4)]) == [True]
        assert await lab.wait_fib(lambda fib: fib == dict.fromkeys(v4, NEXT_HOPS_V4[1]), FIB_TIMEOUT_S)

    in_session(lab, body, backoff_min_s=RESTART_BACKOFF_S)


def test_stop_leaves_no_process_and_the_switch_keeps_only_its_default(lab: Lab) -> None:
    v4 = peer_prefixes(5, 4)
    seen: dict[str, int] = {}

    async def main() -> None:
        async with lab.exabgp() as session:
            assert await session.wait_up(UP_TIMEOUT_S)
            assert await session.link.send([announce(NEXT_HOPS_V4[0], v4)]) == [True]
            assert await lab.wait_fib(lambda fib: set(fib) == set(v4), FIB_TIMEOUT_S)
            assert session.runner.pid is not None and session.link.bridge is not None
            seen.update(exabgp=session.runner.pid, bridge=session.link.bridge.pid)
            assert set(lab.namespace_pids(lab.ctl)) >= {seen["exabgp"], seen["bridge"]}
        assert await lab.wait_fib(lambda fib: not fib, 3.0)

    asyncio.run(main())
    assert not _alive(seen["exabgp"]) and not _alive(seen["bridge"])
    assert lab.namespace_pids(lab.ctl) == []
    assert lab.namespace_pids(lab.sw) == [lab.bird_pid]
    assert all("default via" in route for route in lab.default_routes())


def test_import_limit_blocks_extra_routes_and_is_detected() -> None:
    from tests.integration.lab import lab_unavailable_reason

    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    v4 = peer_prefixes(10, 4)
    with Lab(routes_v4=3, routes_v6=1, import_limit=4) as small:
        async def body(session: ExabgpSession) -> None:
            assert not small.import_limit_fired()
            assert await session.link.send([announce(NEXT_HOPS_V4[0], v4[:4])]) == [True]
            assert await small.wait_fib(lambda fib: len(fib) == 4, FIB_TIMEOUT_S)
            assert not small.import_limit_fired()
            assert await session.link.send([announce(NEXT_HOPS_V4[0], v4[4:])]) == [True]
            assert await async_wait_until(small.import_limit_fired, FIB_TIMEOUT_S)
            assert len(small.fib_routes(4)) == 4
            assert small.session_established()  # `action block` keeps the session up

        in_session(small, body)


def test_switch_side_changes_reach_topfib(lab: Lab) -> None:
    """The lab's switch controls: new peer routes, a session flap and a BIRD restart."""
    v4 = peer_prefixes(30, 4)

    async def body(session: ExabgpSession) -> None:
        assert await async_wait_until(lambda: session.end_of_rib() >= {"ipv4 unicast", "ipv6 unicast"},
                                      FIB_TIMEOUT_S)
        # Peer routes change: the removed prefixes are withdrawn towards topfib, new ones announced.
        lab.replace_peer_routes(v4[10:], lab.prefixes_v6)
        assert await async_wait_until(
            lambda: {p for f, p in session.received_paths() if f == "ipv4 unicast"} == set(v4[10:]),
            FIB_TIMEOUT_S), sorted(p for f, p in session.received_paths() if f == "ipv4 unicast")
        # Session flap from the switch's side: ExaBGP (adj-rib-out) re-sends our routes by itself.
        assert await session.link.send([announce(NEXT_HOPS_V4[0], v4[:3])]) == [True]
        assert await lab.wait_fib(lambda fib: set(fib) == set(v4[:3]), FIB_TIMEOUT_S)
        downs = session.states().count("down")
        lab.disable_session()
        assert await lab.wait_fib(lambda fib: not fib, FIB_TIMEOUT_S)
        assert await async_wait_until(lambda: session.states().count("down") > downs, FIB_TIMEOUT_S)
        lab.enable_session()
        assert await async_wait_until(session.is_up, UP_TIMEOUT_S)
        assert await lab.wait_fib(lambda fib: set(fib) == set(v4[:3]), UP_TIMEOUT_S), lab.fib_next_hops()
        # BIRD restarts: same again, and the switch's peer routes come back to topfib.
        old_bird = lab.bird_pid
        await asyncio.to_thread(lab.restart_bird)
        assert lab.bird_pid != old_bird
        assert await async_wait_until(lambda: session.is_up() and lab.session_established(), UP_TIMEOUT_S)
        assert await lab.wait_fib(lambda fib: set(fib) == set(v4[:3]), UP_TIMEOUT_S), lab.fib_next_hops()

    in_session(lab, body)


def test_exabgp_log_has_no_per_message_statistics(lab: Lab) -> None:
    """ExaBGP logs a "statistics for receive-update counter N" line after every message it
    receives unless told not to: with a full table that was 99.9 % of its log."""
    async def body(session: ExabgpSession) -> None:
        assert await async_wait_until(lambda: session.end_of_rib() >= {"ipv4 unicast", "ipv6 unicast"},
                                      FIB_TIMEOUT_S)

    in_session(lab, body)
    text = (lab.workdir / "exabgp.log").read_text(errors="replace")
    assert "connected to" in text  # the log is written (the session's lines are in it)
    assert "statistics for" not in text, [line for line in text.splitlines() if "statistics" in line][:3]
