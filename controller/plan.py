"""Planning: the ordered announce/withdraw steps that turn the installed FIB into the desired one.

Withdraws come first, so the switch never holds more routes than the larger of "before" and
"after" in any table — with a desired set within the cap, the cap is never exceeded mid-change
(and a lowered cap is honoured by shrinking before growing). A next-hop change is one re-announce:
BGP replaces the route in place; a withdraw + announce would open a hole.

The commands are ExaBGP 5 API lines (checked against its parser, ``exabgp.configuration.static``):

* ``neighbor IP announce attributes next-hop NH nlri P1 P2 …`` — one line per next-hop, since
  attributes are shared by all NLRI of the line.
* ``neighbor IP withdraw attributes nlri P1 P2 …`` — ExaBGP keys a withdraw by family, path-id and
  NLRI, never by next-hop, so all withdraws of a family share lines.
* ExaBGP takes the address family of a whole line from its *last* prefix, so IPv4 and IPv6 never
  share a line. Lines are chunked (1,000 prefixes by default, ~20–45 KB, well below ExaBGP's
  1 MiB command limit).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from collector.fastprefix import split_prefix
from controller.closure import prefix_sort_key
from controller.selection_types import RibView

DEFAULT_CHUNK = 1000

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


def render_commands(plan: Plan, neighbor: str, chunk: int = DEFAULT_CHUNK) -> list[str]:
    """ExaBGP API lines for ``plan``, addressed to the switch session ``neighbor``.

    Raises ``ValueError`` (``PrefixError`` is one) on a malformed neighbor, next-hop or prefix.
    """
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    selector = f"neighbor {ipaddress.ip_address(neighbor)}"
    lines = []
    for step in plan.steps:
        # every token is re-validated: a stray space or newline would be a different command
        for prefix in step.prefixes:
            split_prefix(prefix)
        if step.action == "announce":
            next_hop = ipaddress.ip_address(step.next_hop or "")
            head = f"{selector} announce attributes next-hop {next_hop} nlri"
        else:
            head = f"{selector} withdraw attributes nlri"
        for start in range(0, len(step.prefixes), chunk):
            lines.append(f"{head} {' '.join(step.prefixes[start : start + chunk])}")
    return lines


def clear_adj_rib_out_command(neighbor: str) -> str:
    """The ExaBGP API line that makes it forget (and, on a live session, withdraw) every route it
    announced to ``neighbor``: without it ExaBGP replays them when the session comes back."""
    return f"neighbor {ipaddress.ip_address(neighbor)} clear adj-rib out"
