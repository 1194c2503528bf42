"""Planning: the ordered announce/withdraw steps that turn the installed FIB into the desired one.

Withdraws come first, so the switch never holds more routes than the larger of "before" and
"after" in any table — with a desired set within the cap, the cap is never exceeded mid-change
(and a lowered cap is honoured by shrinking before growing). A next-hop change is one re-announce:
BGP replaces the route in place; a withdraw + announce would open a hole.

The commands are ExaBGP 5 API lines (checked against its parser, ``exabgp.configuration.announce``)
in which every prefix names its family, as statements of ExaBGP's ``ipv4``/``ipv6`` section:

* ``neighbor IP announce ipv4 unicast P1 next-hop NH ; unicast P2 next-hop NH …`` (``ipv6`` alike);
* ``neighbor IP withdraw ipv4 unicast P1 ; unicast P2 …`` — a withdraw is keyed by family and NLRI.

The shorter ``announce attributes next-hop NH nlri P1 P2 …`` takes the AFI *and SAFI* of the whole
line from its last prefix: a last prefix in 224.0.0.0/4 made every prefix on it ipv4/multicast,
which the session does not carry, so ExaBGP dropped them all and still acked ``done``. ExaBGP
parses a line whole before placing any of it: ``error`` means none of its prefixes was placed.
Lines are chunked (1,000 prefixes by default: at most ~105 KB, far below ExaBGP's 1 MiB limit);
with ``chunk=1`` each ack belongs to one prefix. Measured in the lab (bench.bench_command_form,
10k routes): these lines cost ExaBGP 1.1–1.25× the time and CPU of the ``attributes`` form, one
prefix per line 2.4–3.1×.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from topfib.collector.common.fastprefix import split_prefix
from topfib.controller.addresses import parse_ip
from topfib.controller.selection.closure import prefix_sort_key
from topfib.controller.selection.model import RibView

Action = Literal["withdraw", "announce"]


@dataclass(frozen=True, slots=True)
class Step:
    """Prefixes of one family withdrawn together, or announced together with one next-hop."""

    action: Action
    family: int
    next_hop: str | None  # None for a withdraw
    prefixes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """Steps in the order they must be sent: every withdraw, then every announce."""

    steps: tuple[Step, ...] = ()

    @property
    def withdraws(self) -> int:
        return sum(len(s.prefixes) for s in self.steps if s.action == "withdraw")

    @property
    def announces(self) -> int:
        return sum(len(s.prefixes) for s in self.steps if s.action == "announce")

    def __bool__(self) -> bool:
        return bool(self.steps)

    def states(self, installed: Mapping[str, str]) -> Iterator[dict[str, str]]:
        """The installed FIB (prefix → next-hop) after each step, in order."""
        state = dict(installed)
        for step in self.steps:
            for prefix in step.prefixes:
                if step.action == "withdraw":
                    state.pop(prefix, None)
                else:
                    assert step.next_hop is not None
                    state[prefix] = step.next_hop
            yield dict(state)


def _family(prefix: str) -> int:
    return 6 if ":" in prefix else 4


def _next_hop_key(next_hop: str) -> tuple[int, int]:
    address = ipaddress.ip_address(next_hop)
    return address.version, int(address)


def plan(
    desired: Mapping[str, str],
    installed: Mapping[str, str],
    *,
    rib: RibView | None = None,
    unusable: Collection[str] = (),
) -> Plan:
    """Steps from ``installed`` to ``desired`` (both prefix → next-hop).

    With ``rib``, ``desired`` is checked against it first: a prefix whose last path vanished
    since selection is withdrawn (never left pointing at a dead exit), and one whose best path
    changed is announced with the new next-hop — unless that next-hop is in ``unusable`` (e.g. a
    preloaded path's placeholder): then it is withdrawn as well.
    """
    if rib is not None:
        current: dict[str, str] = {}
        for prefix in desired:
            path = rib.best(prefix)
            if path is not None and path.next_hop not in unusable:
                current[prefix] = path.next_hop
        desired = current
    withdraw: dict[int, list[str]] = {}
    for prefix in installed:
        if prefix not in desired:
            withdraw.setdefault(_family(prefix), []).append(prefix)
    announce: dict[tuple[int, str], list[str]] = {}
    for prefix, next_hop in desired.items():
        if installed.get(prefix) != next_hop:
            announce.setdefault((_family(prefix), next_hop), []).append(prefix)
    steps = [
        Step("withdraw", family, None, tuple(sorted(withdraw[family], key=prefix_sort_key)))
        for family in sorted(withdraw)
    ]
    for family, next_hop in sorted(announce, key=lambda k: (k[0], _next_hop_key(k[1]))):
        prefixes = tuple(sorted(announce[family, next_hop], key=prefix_sort_key))
        steps.append(Step("announce", family, next_hop, prefixes))
    return Plan(tuple(steps))


DEFAULT_CHUNK = 1000
_FAMILY_NAMES = {4: "ipv4", 6: "ipv6"}


def render_step(step: Step, neighbor: str, chunk: int = DEFAULT_CHUNK) -> list[tuple[tuple[str, ...], str]]:
    """(its prefixes, ExaBGP API line) for each line of ``step``, addressed to ``neighbor``.

    Raises ``ValueError`` (``PrefixError`` is one) on a malformed neighbor, next-hop or prefix,
    on a prefix of another family than the step's (ExaBGP would take it as given), and on the
    announce of a default route.
    """
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    family = _FAMILY_NAMES.get(step.family)
    if family is None:
        raise ValueError(f"unknown address family {step.family!r}")
    # no scope id: ipaddress takes any text after "%" (a newline too) and prints it back
    head = f"neighbor {parse_ip(neighbor, allow_scope=False)} {step.action} {family} "
    next_hop = parse_ip(step.next_hop or "", allow_scope=False) if step.action == "announce" else None
    tail = f" next-hop {next_hop}" if next_hop is not None else ""
    for prefix in step.prefixes:
        # every token is re-validated: a stray space or newline would be a different command
        prefix_family, _, length = split_prefix(prefix)
        if prefix_family != step.family:
            raise ValueError(f"prefix {prefix!r} is not {family}")
        if length == 0 and step.action == "announce":  # the last line of defence (the RIB refuses /0)
            raise ValueError(f"{prefix}: a default route is never announced")
    rendered = []
    for start in range(0, len(step.prefixes), chunk):
        prefixes = step.prefixes[start : start + chunk]
        rendered.append((prefixes, head + " ; ".join(f"unicast {prefix}{tail}" for prefix in prefixes)))
    return rendered


def render_commands(plan: Plan, neighbor: str, chunk: int = DEFAULT_CHUNK) -> list[str]:
    """ExaBGP API lines for ``plan`` in order (see :func:`render_step`)."""
    return [line for step in plan.steps for _, line in render_step(step, neighbor, chunk)]


def clear_adj_rib_out_command(neighbor: str) -> str:
    """The ExaBGP API line that makes it forget (and, on a live session, withdraw) every route it
    announced to ``neighbor``: without it ExaBGP replays them when the session comes back."""
    return f"neighbor {parse_ip(neighbor, allow_scope=False)} clear adj-rib out"


def end_of_rib_commands(neighbor: str) -> list[str]:
    """The ExaBGP API lines sending End-of-RIB to ``neighbor`` for both families topfib programs
    (with graceful restart the switch then drops the stale routes not announced again)."""
    address = parse_ip(neighbor, allow_scope=False)
    return [f"neighbor {address} announce eor {family}" for family in ("ipv4 unicast", "ipv6 unicast")]
