"""Paths whose next hop is the switch itself, kept out of the RIB.

A switch sends such paths with ``next-hop-self`` on the session to topfib, and RFC 5549
(unnumbered) peers' IPv4 paths may arrive with its own address. Announced back to the switch, a
route via itself is refused ("martian or self next-hop" in FRR) although ExaBGP acknowledges it:
topfib would report as installed a route the switch does not hold. So such a path is dropped on
arrival (an announce of it withdraws whatever its path-id carried before), counted, and warned
about at a limited rate; the prefix's usable paths, if any, are the ones that count.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

from topfib.collector.common.log_budget import LogLimiter
from topfib.collector.common.metrics import REGISTRY
from topfib.collector.rib.events import Event, RouteUpdate
from topfib.controller.config import SwitchConfig

_m_self_next_hop = REGISTRY.counter(
    "topfib_self_next_hop_paths_total",
    "Paths from the switch ignored because their next hop is the switch's own address, by switch.",
    ("switch",),
)


class SelfNextHopFilter:
    """Turns announces of paths via the switch's own addresses into withdraws of those paths."""

    def __init__(self, switch: SwitchConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.switch_name = switch.name
        own = (switch.neighbor, *switch.own_addresses)
        self.addresses = frozenset(str(ipaddress.ip_address(address)) for address in own)
        self.ignored = 0
        self._clock = clock
        self._log = LogLimiter(interval_s=60.0)

    def __call__(self, events: list[Event]) -> list[Event]:
        addresses = self.addresses
        if not any(type(event) is RouteUpdate and event.path is not None and event.path.next_hop in addresses
                   for event in events):
            return events
        kept: list[Event] = []
        for event in events:
            if type(event) is RouteUpdate and event.path is not None and event.path.next_hop in addresses:
                self._note(event)
                event = RouteUpdate(event.neighbor, event.family, event.prefix, event.path_id, None)
            kept.append(event)
        return kept

    def _note(self, event: RouteUpdate) -> None:
        assert event.path is not None
        self.ignored += 1
        _m_self_next_hop.inc(switch=self.switch_name)
        self._log.warn(
            "self-next-hop", self._clock(),
            f"switch {self.switch_name}: path for {event.prefix} has the switch's own address "
            f"{event.path.next_hop} as next hop (next-hop-self or an unnumbered peer?): ignored")
