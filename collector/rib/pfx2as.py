"""CAIDA RouteViews prefix-to-AS lines → (prefix, paths). Pure: text in, records out.

A line is ``network<TAB>length<TAB>origin``. The origin field may be ``a_b`` (MOAS: different
origins seen for the prefix) or ``a,b`` (an AS set from aggregation), or both (``a_b,c``).

Such a file has no next hops and no AS paths. Each MOAS origin becomes one path (path-id 0, 1,
… in file order) whose AS path is that origin (an AS set's members, in file order); the next hop
is the synthetic :data:`SYNTHETIC_NEXT_HOP_V4` / :data:`SYNTHETIC_NEXT_HOP_V6` (the unspecified
address: "no real next hop, from a file") and the peer is empty.
"""

from __future__ import annotations

from topfib.collector.common.prefixes import IPV4, IPV6, PrefixError, format_network, split_prefix
from topfib.collector.rib.paths import BgpPath

SYNTHETIC_NEXT_HOP_V4 = "0.0.0.0"
SYNTHETIC_NEXT_HOP_V6 = "::"
_MAX_ORIGINS_CACHE = 500_000


class Pfx2asError(ValueError):
    """A line that is not ``network<TAB>length<TAB>origin``; ``reason`` is the counter key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class Pfx2asParser:
    """Parses lines; equal origin fields share their Path objects (a full table has ~75k)."""

    def __init__(self) -> None:
        self._paths: dict[tuple[int, str], tuple[BgpPath, ...]] = {}

    def parse_line(self, line: str) -> tuple[str, tuple[BgpPath, ...]]:
        """(prefix, paths) of one line; raises :class:`Pfx2asError`.

        An IPv4 prefix is returned as written (the RIB's strict check rejects a malformed one);
        an IPv6 prefix is validated and canonicalised here.
        """
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 3:
            raise Pfx2asError("bad_line", f"{len(fields)} fields in {line[:80]!r}")
        network, length, origins = fields
        text = f"{network}/{length}"
        if ":" in network or not (length.isdigit() and length == str(int(length))):
            try:  # IPv6 text may not be canonical: normalise it
                text = format_network(*split_prefix(text))
            except PrefixError as exc:
                raise Pfx2asError("bad_prefix", str(exc)) from None
        # else IPv4: canonical if valid; the RIB validates every new prefix (PrefixError).
        family = IPV6 if ":" in network else IPV4
        key = (family, origins)
        paths = self._paths.get(key)
        if paths is None:
            paths = self._origin_paths(family, origins)
            if len(self._paths) >= _MAX_ORIGINS_CACHE:
                self._paths.clear()
            self._paths[key] = paths
        return text, paths

    @staticmethod
    def _origin_paths(family: int, origins: str) -> tuple[BgpPath, ...]:
        next_hop = SYNTHETIC_NEXT_HOP_V4 if family == IPV4 else SYNTHETIC_NEXT_HOP_V6
        paths = []
        for path_id, group in enumerate(origins.strip().split("_")):
            members = group.split(",")
            if not all(m.isascii() and m.isdigit() and int(m) < 1 << 32 for m in members):
                raise Pfx2asError("bad_origin", f"origin {origins!r}")
            paths.append(BgpPath(next_hop=next_hop, as_path=tuple(int(m) for m in members), path_id=path_id))
        return tuple(paths)
