"""The hindsight oracle: the best FIB of N routes for traffic already seen, the yardstick coverage
is read against ("79 % of 86 % possible").

Selection is run once on the traffic each prefix received, with the same caps but no margin and no
dwell time (nothing to keep stable for, nothing installed before): no online selection with the
same N can cover more of that traffic. ``topfib simulate`` and ``topfib demo`` both use it.
"""

from __future__ import annotations

from collections.abc import Mapping

from topfib.controller.selection.model import RibView
from topfib.controller.selection.select import SelectionPolicy, select


def hindsight_policy(policy: SelectionPolicy) -> SelectionPolicy:
    """``policy``'s caps without its stability knobs."""
    return SelectionPolicy(policy.cap_ipv4, policy.cap_ipv6, policy.cap_ipv4_24, margin=0.0, min_dwell_s=0.0)


def hindsight_fib(traffic: Mapping[str, float], rib: RibView, policy: SelectionPolicy) -> list[str]:
    """The prefixes the best FIB under ``policy``'s caps holds for ``traffic`` (prefix → bytes or
    bytes/s), knowing it in advance."""
    return list(select(scores=traffic, rib=rib, policy=hindsight_policy(policy), now=0.0).routes)
