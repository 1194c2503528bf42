"""The launcher's hooks against ExaBGP's own outgoing RIB and UPDATE builder: topfib's API lines
go through ExaBGP's real command handlers into a configuration with two neighbors, and the UPDATEs
each flush builds are compared byte for byte (a fake reactor only runs the commands at once)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, Literal

import pytest

from topfib.controller.exabgp.commands import clear_adj_rib_out_command, render_step
from topfib.controller.exabgp.launch import (
    copy_routes_without_deep_copy,
    send_only_the_latest_change_of_a_route,
    send_withdraws_before_announces,
)
from topfib.controller.program.plan import Step

pytest.importorskip("exabgp.rib.outgoing")

# eBGP and iBGP (add-path send), each with a local address of its own for ``next-hop self``
CONFIGURATION = """
neighbor 10.0.0.2 {
    router-id 10.0.0.1; local-address 10.0.0.1; local-as 65001; peer-as 65002; hold-time 3;
    adj-rib-out true;
    family { ipv4 unicast; ipv6 unicast; }
    capability { route-refresh enable; }
}
neighbor 10.0.1.2 {
    router-id 10.0.0.1; local-address 10.0.1.1; local-as 65001; peer-as 65001; hold-time 3;
    adj-rib-out true;
    family { ipv4 unicast; ipv6 unicast; }
    capability { add-path send/receive; route-refresh enable; }
}
"""
NEIGHBORS = ("10.0.0.2", "10.0.1.2")


class FakeReactor:
    """What ExaBGP's API command handlers ask of the reactor; each command runs to its end at once."""

    def __init__(self) -> None:
        from exabgp.configuration.configuration import Configuration
        from exabgp.environment import getenv
        from exabgp.logger import log
        from exabgp.reactor.api import API
        from exabgp.rib import RIB

        log.init(getenv())
        log.silence()
        RIB._cache.clear()  # ExaBGP shares a neighbor's RIB across configurations by name
        self.configuration: Any = Configuration([CONFIGURATION], text=True)
        assert self.configuration.reload(), self.configuration.error
        self.api = API(self)
        self.answers: list[bool] = []
        self.processes = SimpleNamespace(answer_done=lambda _service: self.answers.append(True),
                                         answer_error=lambda _service: self.answers.append(False))
        self.asynchronous = SimpleNamespace(schedule=lambda _service, _line, steps: list(steps))

    def peers(self, _service: str = "") -> list[str]:
        return list(self.configuration.neighbors)

    def neighbor_rib_out_withdraw(self, peer: str) -> None:
        self.configuration.neighbors[peer].rib.outgoing.withdraw()

    def outgoing(self) -> list[Any]:
        return [neighbor.rib.outgoing for neighbor in self.configuration.neighbors.values()]

    def command(self, line: str) -> bool:
        self.api.process(self, "topfib", line)
        return self.answers.pop()


def _negotiated(ibgp: bool) -> Any:
    from exabgp.bgp.message.open.asn import ASN
    from exabgp.protocol.family import AFI, SAFI

    return SimpleNamespace(families=[(AFI.ipv4, SAFI.unicast), (AFI.ipv6, SAFI.unicast)], msg_size=4096,
                           local_as=ASN(65001), peer_as=ASN(65001 if ibgp else 65002), asn4=True,
                           addpath=SimpleNamespace(send=lambda _afi, _safi: ibgp), aigp=False, nexthop=[],
                           neighbor=None)


def flush(reactor: FakeReactor) -> list[bytes]:
    """The UPDATE messages ExaBGP would send each neighbor now, as bytes."""
    sent = []
    for rib, ibgp in zip(reactor.outgoing(), (False, True), strict=True):
        negotiated = _negotiated(ibgp)
        for update in rib.updates(True):
            sent += list(update.messages(negotiated, True)) if hasattr(update, "messages") else [b"refresh"]
    return sent


def adj_rib_out(reactor: FakeReactor) -> list[list[tuple[Any, ...]]]:
    from exabgp.bgp.message import Action

    return [sorted((change.index(), change.nlri.action, change.attributes.index(), str(change.nlri.nexthop))
                   for change in rib.cached_changes(None, [Action.ANNOUNCE, Action.WITHDRAW]))
            for rib in reactor.outgoing()]


@pytest.fixture
def exabgp_as_it_is() -> Iterator[None]:
    from exabgp.bgp.neighbor import Neighbor
    from exabgp.rib.outgoing import OutgoingRIB

    remove_self, updates = Neighbor.remove_self, OutgoingRIB.updates
    try:
        yield
    finally:
        Neighbor.remove_self, OutgoingRIB.updates = remove_self, updates


def _lines(action: Literal["announce", "withdraw"], family: int, next_hop: str | None,
           prefixes: list[str]) -> list[str]:
    """The step's lines to each neighbor."""
    step = Step(action, family, next_hop, tuple(prefixes))
    return [line for neighbor in NEIGHBORS for _, line in render_step(step, neighbor)]


V4 = [f"10.{i // 256}.{i % 256}.0/24" for i in range(1000)]
V6 = [f"2001:db8:{i:x}::/48" for i in range(40)]


def script(*, flush_after_clear: bool = False) -> list[str]:
    """topfib's production lines (1,000 prefixes sharing one attribute set a line), flushes, a
    partial withdraw, a next-hop change, ``next-hop self``, a resend and a clear of the adj-rib-out
    (by default in the same batch as announces of some of the routes it withdraws)."""
    self_line = "neighbor 10.0.0.2 announce attributes next-hop self nlri 10.200.0.0/24 10.200.1.0/24"
    return [
        *_lines("announce", 4, "192.0.2.1", V4), *_lines("announce", 6, "2001:db8::1", V6), self_line,
        "FLUSH",
        *_lines("withdraw", 4, None, V4[100:300]), *_lines("announce", 4, "192.0.2.2", V4[500:520]), "FLUSH",
        *_lines("announce", 4, "192.0.2.1", V4[100:150]), "RESEND", "FLUSH",
        clear_adj_rib_out_command("10.0.1.2"), *(["FLUSH"] if flush_after_clear else []),
        *_lines("announce", 4, "192.0.2.2", V4[:10]), "FLUSH",
    ]


def run(script: list[str]) -> list[Any]:
    reactor = FakeReactor()
    seen: list[Any] = []
    for line in script:
        if line == "FLUSH":
            seen.append(flush(reactor))
        elif line == "RESEND":
            for rib in reactor.outgoing():
                rib.resend(False)
        else:
            seen.append(reactor.command(line))
        seen.append(adj_rib_out(reactor))
    return seen


@pytest.mark.usefixtures("exabgp_as_it_is")
def test_the_hooks_build_the_same_updates_and_adj_rib_out_as_exabgp_as_it_is() -> None:
    lines = script()
    as_it_is = run(lines)
    assert copy_routes_without_deep_copy()
    assert run(lines) == as_it_is
    # the other hook changes only batches where a route is queued twice (clear, then announce)
    lines = script(flush_after_clear=True)
    with_shallow_copies = run(lines)
    assert send_only_the_latest_change_of_a_route()
    assert run(lines) == with_shallow_copies
    # and the withdraws first: this script's batches already send theirs first
    assert send_withdraws_before_announces()
    assert run(lines) == with_shallow_copies
    assert all(answer for answer in with_shallow_copies if isinstance(answer, bool))
    updates = [message for step in with_shallow_copies if isinstance(step, list) for message in step
               if isinstance(message, bytes)]
    assert len(updates) > 10


def _prefixes_sent(reactor: FakeReactor) -> list[tuple[str, str]]:
    """(action, prefix) in the order the first neighbor's UPDATEs carry them."""
    rib = reactor.outgoing()[0]
    return [(str(nlri.action), nlri.prefix()) for update in rib.updates(True) for nlri in update.nlris]


@pytest.mark.parametrize("hooked", [False, True])
@pytest.mark.usefixtures("exabgp_as_it_is")
def test_a_withdraw_and_re_announce_in_one_batch_leave_the_route_announced(hooked: bool) -> None:
    if hooked:
        assert send_only_the_latest_change_of_a_route()
        assert send_only_the_latest_change_of_a_route()  # twice: wrapped once only
    reactor = FakeReactor()
    say = reactor.command
    assert say("neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri 10.9.0.0/24")
    assert _prefixes_sent(reactor) == [("announce", "10.9.0.0/24")]
    # one batch: the next-hop's group started, then P withdrawn and announced again through it
    assert say("neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri 10.1.0.0/24")
    assert say("neighbor 10.0.0.2 withdraw attributes nlri 10.9.0.0/24")
    assert say("neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri 10.9.0.0/24")
    sent = _prefixes_sent(reactor)
    if not hooked:  # ExaBGP 5.0.15 as it is: the withdraw goes out last (if this fails, it was fixed)
        assert sent[-1] == ("withdraw", "10.9.0.0/24")
        return
    assert sent == [("announce", "10.1.0.0/24"), ("announce", "10.9.0.0/24")]


@pytest.mark.usefixtures("exabgp_as_it_is")
def test_the_last_change_of_a_route_in_a_batch_is_the_one_sent() -> None:
    assert send_only_the_latest_change_of_a_route()
    reactor = FakeReactor()
    say = reactor.command
    # an announce then a withdraw, the withdraws' group started first: only the withdraw goes out
    assert say("neighbor 10.0.0.2 withdraw attributes nlri 10.8.0.0/24")
    assert say("neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri 10.7.0.0/24")
    assert say("neighbor 10.0.0.2 withdraw attributes nlri 10.7.0.0/24")
    assert _prefixes_sent(reactor) == [("withdraw", "10.8.0.0/24"), ("withdraw", "10.7.0.0/24")]
    # next-hop 2, then 1, then 2 again, next-hop 2's group started first: next-hop 2 is what is sent
    assert say("neighbor 10.0.0.2 announce attributes next-hop 192.0.2.2 nlri 10.6.0.0/24")
    assert say("neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri 10.5.0.0/24")
    assert say("neighbor 10.0.0.2 announce attributes next-hop 192.0.2.2 nlri 10.5.0.0/24")
    rib = reactor.outgoing()[0]
    assert [(str(nlri.nexthop), nlri.prefix()) for update in rib.updates(True) for nlri in update.nlris] == [
        ("192.0.2.2", "10.6.0.0/24"), ("192.0.2.2", "10.5.0.0/24")]
    # a clear then an announce of one of its routes: the other is withdrawn, that one replaced
    assert say("neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri 10.4.0.0/24 10.3.0.0/24")
    list(rib.updates(True))
    assert say("neighbor 10.0.0.2 clear adj-rib out")
    assert say("neighbor 10.0.0.2 announce attributes next-hop 192.0.2.2 nlri 10.4.0.0/24")
    assert sorted(_prefixes_sent(reactor)) == [("announce", "10.4.0.0/24"), ("withdraw", "10.3.0.0/24"),
                                               ("withdraw", "10.5.0.0/24"), ("withdraw", "10.6.0.0/24")]


@pytest.mark.parametrize("hooked", [False, True])
@pytest.mark.usefixtures("exabgp_as_it_is")
def test_a_batch_sends_its_withdraws_before_its_announces(hooked: bool) -> None:
    if hooked:
        assert send_only_the_latest_change_of_a_route()
        assert send_withdraws_before_announces()
        assert send_withdraws_before_announces()  # twice: wrapped once only
    reactor = FakeReactor()
    say = reactor.command
    assert say("neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri 10.2.0.0/24 10.3.0.0/24")
    list(reactor.outgoing()[0].updates(True))
    # one batch: an announce window starts next-hop 1's group, a withdraw makes room, and a
    # second announce through next-hop 1 joins the group started before the withdraw
    assert say("neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri 10.1.0.0/24")
    assert say("neighbor 10.0.0.2 withdraw attributes nlri 10.2.0.0/24")
    assert say("neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri 10.4.0.0/24")
    # and a route announced then withdrawn in the same batch: only its withdraw goes out
    assert say("neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri 10.5.0.0/24")
    assert say("neighbor 10.0.0.2 withdraw attributes nlri 10.5.0.0/24")
    sent = _prefixes_sent(reactor)
    if not hooked:  # ExaBGP 5.0.15 as it is: the announces of the older group go out first
        assert sent[0] == ("announce", "10.1.0.0/24")
        return
    withdrawn = [prefix for action, prefix in sent if action == "withdraw"]
    assert sorted(withdrawn) == ["10.2.0.0/24", "10.5.0.0/24"]
    assert sent[:2] == [("withdraw", prefix) for prefix in withdrawn]
    assert sent[2:] == [("announce", "10.1.0.0/24"), ("announce", "10.4.0.0/24")]
    # the next batch is unaffected by the reordering of this one
    assert say("neighbor 10.0.0.2 announce attributes next-hop 192.0.2.2 nlri 10.6.0.0/24")
    assert _prefixes_sent(reactor) == [("announce", "10.6.0.0/24")]


@pytest.mark.usefixtures("exabgp_as_it_is")
def test_a_route_refresh_waits_for_the_batch_that_makes_room() -> None:
    """The switch asks for every route again (BIRD ``reload in``) while a withdraw making room and
    the announce it makes room for are queued: ExaBGP sends a refresh ahead of every group, with
    the newest announces in it, so the refresh goes with a later batch instead, carrying the
    routes as they are then (not as they were when the switch asked)."""
    assert send_only_the_latest_change_of_a_route()
    assert send_withdraws_before_announces()
    reactor = FakeReactor()
    say = reactor.command
    rib = reactor.outgoing()[0]
    assert say("neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri 10.1.0.0/24 10.3.0.0/24")
    assert sorted(_prefixes_sent(reactor)) == [("announce", "10.1.0.0/24"), ("announce", "10.3.0.0/24")]
    assert say("neighbor 10.0.0.2 withdraw attributes nlri 10.1.0.0/24")
    assert say("neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri 10.2.0.0/24")
    rib.resend(False)  # what ExaBGP does on a ROUTE-REFRESH from the peer
    assert _prefixes_sent(reactor) == [("withdraw", "10.1.0.0/24"), ("announce", "10.2.0.0/24")]
    assert rib.pending()  # the refresh, still to come
    # another batch with a withdraw first: the refresh must not bring back what it withdraws
    assert say("neighbor 10.0.0.2 withdraw attributes nlri 10.3.0.0/24")
    assert _prefixes_sent(reactor) == [("withdraw", "10.3.0.0/24")]
    assert _prefixes_sent(reactor) == [("announce", "10.2.0.0/24")]  # every route the switch should hold
    assert not rib.pending()
    # a refresh with no withdraw queued goes out at once, as ExaBGP sends it
    rib.resend(False)
    assert _prefixes_sent(reactor) == [("announce", "10.2.0.0/24")]
