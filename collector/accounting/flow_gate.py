"""Which flow datagrams may be accounted: the UDP source must be allowed, and so must what it claims.

The agent address inside an sFlow datagram is whatever the sender wrote, so it cannot decide
which switch the samples belong to on its own. :class:`FlowGate` accepts a datagram only when

- its UDP source is in some switch's ``flow_sources`` (addresses or CIDRs; by default the
  switch's ``sflow_agents``), and
- for sFlow, its agent address is an agent of one of the switches that source may speak for;
  for NetFlow/IPFIX, which has no agent field, the source itself must be one of those switches'
  exporter addresses (``sflow_agents``).

Everything else is refused before decoding, counted in ``topfib_flow_refused_total{reason}``
(``source``, ``agent``, ``exporter``) and never accounted; refusals are logged within a global
budget per reason. A datagram from an allowed source too short to name an agent is passed on, so
the decoder counts it as malformed.

Cost: it runs once per datagram in the receiver thread. The common case (a known source, sFlow
naming one of its agents) is screened in C: a dict look-up by source text and a comparison of the
datagram's first 12 (IPv6: 24) bytes with the allowed heads, ~20 ns a datagram. The rest goes
through the same rule in Python. A source's rights are computed (from integers, never
``ipaddress`` objects) the first time it is seen, into a bounded cache; strangers into another.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from topfib.collector.common.log_budget import LogBudget
from topfib.collector.common.metrics import REGISTRY, Registry

try:  # the common case in C (collector/sflow/_sflow_fast.c); FlowGate._admit is the same rule in Python
    from topfib.collector.sflow import _sflow_fast
except ImportError:
    _sflow_fast = None  # type: ignore[assignment]

_Pairs = list[tuple[bytes, str]]
_Screen = Callable[[_Pairs, dict[str, tuple[bytes, ...]]], tuple[_Pairs, _Pairs]]

REFUSED_SOURCE = "source"  # UDP source not in any switch's flow_sources
REFUSED_AGENT = "agent"  # sFlow agent address not of a switch this source may speak for
REFUSED_EXPORTER = "exporter"  # NetFlow/IPFIX (or not sFlow) from a source that is no switch's exporter
REASONS = (REFUSED_SOURCE, REFUSED_AGENT, REFUSED_EXPORTER)

_SFLOW_V5_IPV4 = b"\x00\x00\x00\x05\x00\x00\x00\x01"  # version 5, agent address type IPv4
_SFLOW_V5_IPV6 = b"\x00\x00\x00\x05\x00\x00\x00\x02"
_SFLOW_V5 = _SFLOW_V5_IPV4[:4]
MAX_CACHED_SOURCES = 4096


@dataclass(frozen=True)
class SwitchFlowSources:
    """One switch's agents (sFlow agent / NetFlow exporter addresses) and allowed UDP sources."""

    name: str
    agents: tuple[str, ...]
    sources: tuple[str, ...]  # addresses or CIDRs


@dataclass(frozen=True)
class _Rights:
    """What datagrams from one UDP source may claim."""

    # sFlow v5 datagram heads naming an allowed agent: version, address type, address (12 bytes
    # for IPv4, 24 for IPv6), so one slice and one set look-up check all three
    heads: frozenset[bytes]
    exporter: bool  # the source is an exporter of a switch it may speak for (NetFlow/IPFIX)


_NO_RIGHTS = _Rights(frozenset(), False)


def _sflow_head(agent: str) -> bytes:
    """The first bytes of an sFlow v5 datagram from ``agent``: version, address type, address."""
    parsed = ipaddress.ip_address(agent)
    return (_SFLOW_V5_IPV4 if parsed.version == 4 else _SFLOW_V5_IPV6) + parsed.packed


def _address_int(text: str) -> tuple[int, int] | None:
    """(IP version, address as an int) of a socket's source text; None if it is neither."""
    for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
        try:
            return version, int.from_bytes(socket.inet_pton(family, text), "big")
        except OSError:
            continue
    return None


class FlowGate:
    """Filters (datagram, UDP source) pairs; see the module docstring for the rule."""

    def __init__(
        self,
        switches: Iterable[SwitchFlowSources],
        registry: Registry = REGISTRY,
        clock: Callable[[], float] = time.monotonic,
        max_cached_sources: int = MAX_CACHED_SOURCES,
        implementation: Literal["c", "python"] | None = None,
    ) -> None:
        """``implementation``: force the C screen or the Python rule; by default C when built."""
        built: _Screen | None = getattr(_sflow_fast, "screen", None)  # None: not built (or too old)
        self._screen = built if implementation != "python" else None
        if implementation == "c" and self._screen is None:
            raise RuntimeError("topfib.collector.sflow._sflow_fast is not built (pip install -e .)")
        # (version, network int, mask int, switch index) for every flow_sources entry
        self._networks: list[tuple[int, int, int, int]] = []
        self._heads: list[frozenset[bytes]] = []
        self._agents: list[frozenset[tuple[int, int]]] = []
        for index, switch in enumerate(switches):
            self._heads.append(frozenset(_sflow_head(a) for a in switch.agents))
            agents = (ipaddress.ip_address(a) for a in switch.agents)
            self._agents.append(frozenset((a.version, int(a)) for a in agents))
            for source in switch.sources:
                network = ipaddress.ip_network(source, strict=False)
                self._networks.append(
                    (network.version, int(network.network_address), int(network.netmask), index)
                )
        self._cache: dict[str, _Rights] = {}  # sources with rights
        self._strangers: set[str] = set()  # sources with none
        self._heads_by_source: dict[str, tuple[bytes, ...]] = {}  # the same, for the C screen
        self._max_cached = max_cached_sources
        self._clock = clock
        self._log = LogBudget()
        self.refused = dict.fromkeys(REASONS, 0)  # running totals, by reason
        self._m_refused = registry.counter(
            "topfib_flow_refused_total",
            "Flow datagrams refused before decoding: UDP source not in any switch's flow_sources "
            "(source), sFlow agent not of a switch that source may speak for (agent), NetFlow/IPFIX "
            "from a source that is no switch's exporter (exporter).",
            ("reason",),
        )

    def _rights_of(self, source: str) -> _Rights:
        """What ``source`` may claim (computed on a cache miss). Sources with rights and strangers
        are cached apart, each bounded, so spoofed strangers never evict a switch's entry (nor
        its C screen's)."""
        if source in self._strangers:
            return _NO_RIGHTS
        parsed = _address_int(source)
        rights = _NO_RIGHTS
        if parsed is not None:
            version, value = parsed
            switches = {
                index
                for net_version, network, mask, index in self._networks
                if net_version == version and value & mask == network
            }
            if switches:
                keys = frozenset().union(*(self._heads[i] for i in switches))
                exporter = any(parsed in self._agents[i] for i in switches)
                rights = _Rights(keys, exporter)
        if rights is _NO_RIGHTS:
            if len(self._strangers) >= self._max_cached:
                self._strangers.clear()  # bounded under a flood of spoofed sources
            self._strangers.add(source)
            return rights
        if len(self._cache) >= self._max_cached:
            self._cache.clear()  # only sources inside a flow_sources CIDR can fill it; refilled on demand
            self._heads_by_source.clear()
        self._cache[source] = rights
        if rights.heads:
            self._heads_by_source[source] = tuple(rights.heads)
        return rights

    def admit(self, datagrams: list[tuple[bytes, str]]) -> list[tuple[bytes, str]]:
        """The pairs that may be decoded; the others are counted and logged.

        Order is kept among the sFlow datagrams of known sources (the sequence numbers need it);
        the rest (NetFlow/IPFIX, a source's first datagrams, malformed ones) follow them.
        """
        if self._screen is None:
            return self._admit(datagrams)
        admitted, others = self._screen(datagrams, self._heads_by_source)
        if others:
            admitted += self._admit(others)
        return admitted

    def _admit(self, datagrams: list[tuple[bytes, str]]) -> list[tuple[bytes, str]]:
        """The whole rule, in Python (the C screen passes on what it does not admit itself)."""
        cache = self._cache
        admitted: list[tuple[bytes, str]] = []
        append = admitted.append
        refusals: dict[str, int] = {}
        last: dict[str, str] = {}  # reason -> a source refused for it, for the log line
        last_source, rights = "", _NO_RIGHTS
        for pair in datagrams:
            data, source = pair
            if type(data) is not bytes:  # a bytearray or memoryview: compared as bytes
                data = bytes(data)
            if source is not last_source:  # sources repeat: the receiver interns their text
                rights = cache.get(source) or self._rights_of(source)
                last_source = source
            heads = rights.heads
            if data[:12] in heads or data[:24] in heads:
                append(pair)  # sFlow naming an agent this source may speak for: the common case
                continue
            reason = _refusal(data, rights)
            if reason is None:
                append(pair)
            else:
                refusals[reason] = refusals.get(reason, 0) + 1
                last[reason] = source
        for reason, count in refusals.items():
            self._count(reason, count, last[reason])
        return admitted

    def flush_logs(self, now: float) -> None:
        self._log.flush(now)

    def _count(self, reason: str, count: int, source: str) -> None:
        self.refused[reason] += count
        self._m_refused.inc(count, reason=reason)
        self._log.warn(
            f"flow_refused:{reason}",
            self._clock(),
            f"refused {count} flow datagram(s) ({reason}), the last from UDP source {source}",
        )


def _refusal(data: bytes, rights: _Rights) -> str | None:
    """Why a datagram whose head names no allowed agent is refused; None: pass it on."""
    if rights is _NO_RIGHTS:
        return REFUSED_SOURCE
    head = data[:8]
    if head in (_SFLOW_V5_IPV4, _SFLOW_V5_IPV6):
        # an agent of no switch this source may speak for, unless too short to name one at all
        complete = len(data) >= (12 if head == _SFLOW_V5_IPV4 else 24)
        return REFUSED_AGENT if complete else None
    if head[:4] == _SFLOW_V5 or rights.exporter:
        return None  # sFlow with a bad address type (malformed: counted by the decoder), or NetFlow/IPFIX
    return REFUSED_EXPORTER
