"""No cache-hiding: which more-specifics must come along when a prefix is installed.

If P is in the FIB and a more-specific Q of P is not, the switch sends Q's traffic by P's exit.
That is only right when Q's best next-hop is the one of the longest *installed* prefix above Q.
So the unit of P is the smallest set S ∋ P such that every live Q ⊂ P outside S has the same
best next-hop as the longest member of S containing Q. It is built shortest-first: each
more-specific is compared with its closest ancestor already in S, which makes the rule recursive
(P(A) ⊃ Q(B) ⊃ R(A): Q joins because it differs from P, then R because it differs from Q) without
spending slots where an installed Q already forwards R correctly (P(A) ⊃ Q(B) ⊃ R(B): R stays
out).

The union of such units is cache-hiding free too: for an uninstalled Q, the longest installed
prefix X above Q belongs to a unit rooted at some Y ⊇ X, and within that unit X is Q's closest
member, so Q agrees with X.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from topfib.collector.common.prefixes import prefix_sort_key


def unit_of(
    root: str,
    root_next_hop: str,
    more_specifics: Iterable[str],
    next_hop_of: Callable[[str], str | None],
) -> dict[str, str]:
    """prefix → next-hop of every member of ``root``'s unit, ``root`` included.

    ``more_specifics`` are the RIB's prefixes strictly inside ``root``; ``next_hop_of`` gives a
    prefix's best next-hop, or None when it has no live path (such a prefix forwards nothing).
    """
    family, root_network, root_length = prefix_sort_key(root)
    bits = 32 if family == 4 else 128
    members: dict[str, str] = {root: root_next_hop}
    # network (masked to its own length) → next-hop, per member length; the root first
    by_length: dict[int, dict[int, str]] = {root_length: {root_network: root_next_hop}}
    live: list[tuple[int, int, str, str]] = []
    for prefix in more_specifics:
        next_hop = next_hop_of(prefix)
        if next_hop is None:
            continue
        _, network, length = prefix_sort_key(prefix)  # RIB prefixes: canonical, cheap to parse
        if length > root_length:
            live.append((length, network, prefix, next_hop))
    live.sort()
    for length, network, prefix, next_hop in live:
        cover_next_hop = root_next_hop
        for member_length in sorted(by_length, reverse=True):
            if member_length >= length:
                continue
            shift = bits - member_length
            found = by_length[member_length].get(network >> shift << shift)
            if found is not None:
                cover_next_hop = found
                break
        if next_hop != cover_next_hop:
            members[prefix] = next_hop
            by_length.setdefault(length, {})[network] = next_hop
    return members
