"""Planning: the ordered announce/withdraw steps that turn the installed FIB into the desired one.

Withdraws come first, so the switch never holds more routes than the larger of "before" and
"after" in any table — with a desired set within the cap, the cap is never exceeded mid-change
(and a lowered cap is honoured by shrinking before growing). A next-hop change is one re-announce:
BGP replaces the route in place; a withdraw + announce would open a hole.

Steps are values; :mod:`topfib.controller.exabgp.commands` renders them as ExaBGP API lines.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from topfib.collector.common.prefixes import prefix_family, prefix_sort_key
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
            withdraw.setdefault(prefix_family(prefix), []).append(prefix)
    announce: dict[tuple[int, str], list[str]] = {}
    for prefix, next_hop in desired.items():
        if installed.get(prefix) != next_hop:
            announce.setdefault((prefix_family(prefix), next_hop), []).append(prefix)
    steps = [
        Step("withdraw", family, None, tuple(sorted(withdraw[family], key=prefix_sort_key)))
        for family in sorted(withdraw)
    ]
    for family, next_hop in sorted(announce, key=lambda k: (k[0], _next_hop_key(k[1]))):
        prefixes = tuple(sorted(announce[family, next_hop], key=prefix_sort_key))
        steps.append(Step("announce", family, next_hop, prefixes))
    return Plan(tuple(steps))
