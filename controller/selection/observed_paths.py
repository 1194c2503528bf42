"""Install the path traffic is seen to take, where one dominates, instead of the BGP best path.

With ADD-PATH a prefix can have several live paths, and the router in front of the samples may
forward by its own policy (multipath, local overrides). ``switch[].follow_observed_paths`` makes
topfib install, per prefix, the path whose next-hop carries most of the prefix's sampled traffic
(``topfib.collector.accounting.path_rates.PathRates.dominant_next_hops``: share and sample-count evidence, so
noise does not flip it), and the best path everywhere else.

It is done by a RIB view whose ``best`` answers the followed path, handed to selection, planning
and the reactor alike: no-cache-hiding then compares the next-hops actually installed (a more
specific whose best exit differs from its cover's *followed* exit is installed with it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from topfib.collector.common.prefixes import canonical_address
from topfib.collector.rib.paths import BgpPath
from topfib.collector.rib.rib import Rib


class ObservedPathRib:
    """``rib`` with ``best(prefix)`` answering the path of ``followed[prefix]`` while it is live."""

    def __init__(self, rib: Rib, followed: Mapping[str, str] | None = None) -> None:
        self.rib = rib
        self.followed: dict[str, str] = {}
        if followed:
            self.follow(followed)

    def follow(self, followed: Mapping[str, str]) -> set[str]:
        """Replace the followed next-hops; returns the prefixes whose choice changed."""
        new = {prefix: canonical_address(next_hop) for prefix, next_hop in followed.items()}
        changed = {p for p in new.keys() | self.followed.keys() if new.get(p) != self.followed.get(p)}
        self.followed = new
        return changed

    def best(self, prefix: str) -> BgpPath | None:
        next_hop = self.followed.get(prefix)
        if next_hop is not None:
            for path in self.rib.paths(prefix):
                if canonical_address(path.next_hop) == next_hop:
                    return path
        return self.rib.best(prefix)

    def longest_match(self, ip: str) -> str | None:
        return self.rib.longest_match(ip)

    def longest_matches(self, family: int, addresses: Sequence[int]) -> list[str | None]:
        return self.rib.longest_matches(family, addresses)

    def more_specifics(self, prefix: str) -> list[str]:
        return self.rib.more_specifics(prefix)
