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

Cost: it runs once per datagram in the receiver thread, so per datagram it is one dict look-up
by source text, a slice or two and one set look-up of the raw agent bytes; addresses are parsed
(to integers, never ``ipaddress`` objects) only the first time a source is seen, and that cache
is bounded.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from collector.log_budget import LogBudget
from collector.metrics import REGISTRY, Registry

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

    agent_keys: frozenset[bytes]  # sFlow address type (4 bytes) + address, as on the wire
    exporter: bool  # the source is an exporter of a switch it may speak for (NetFlow/IPFIX)


_NO_RIGHTS = _Rights(frozenset(), False)


def _agent_key(address: str) -> bytes:
    """The sFlow wire form of an agent address: type (1 IPv4, 2 IPv6) then the address."""
    parsed = ipaddress.ip_address(address)
    return (1 if parsed.version == 4 else 2).to_bytes(4, "big") + parsed.packed


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
    ) -> None:
        # (version, network int, mask int, switch index) for every flow_sources entry
        self._networks: list[tuple[int, int, int, int]] = []
        self._agent_keys: list[frozenset[bytes]] = []
        self._agents: list[frozenset[tuple[int, int]]] = []
        for index, switch in enumerate(switches):
            self._agent_keys.append(frozenset(_agent_key(a) for a in switch.agents))
            agents = (ipaddress.ip_address(a) for a in switch.agents)
            self._agents.append(frozenset((a.version, int(a)) for a in agents))
            for source in switch.sources:
                network = ipaddress.ip_network(source, strict=False)
                self._networks.append(
                    (network.version, int(network.network_address), int(network.netmask), index)
                )
        self._cache: dict[str, _Rights] = {}
        self._max_cached = max_cached_sources
        self._clock = clock
        self._log = LogBudget()
        self.refused = dict.fromkeys(REASONS, 0)  # running totals, by reason
        self._m_refused = registry.counter(
            "topfib_flow_refused_total",
            "Flow datagrams refused before decoding, by reason: UDP source not in any switch's "
            "flow_sources (source), sFlow agent not of a switch the source may speak for (agent), "
            "NetFlow/IPFIX from a source that is no switch's exporter (exporter).",
            ("reason",),
        )

    def _rights_of(self, source: str) -> _Rights:
        """What ``source`` may claim (computed on a cache miss; the cache is bounded)."""
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
                keys = frozenset().union(*(self._agent_keys[i] for i in switches))
                exporter = any(parsed in self._agents[i] for i in switches)
                rights = _Rights(keys, exporter)
        if len(self._cache) >= self._max_cached:
            self._cache.clear()  # bounded under a flood of spoofed sources; refilled on demand
        self._cache[source] = rights
        return rights

    def admit(self, datagrams: list[tuple[bytes, str]]) -> list[tuple[bytes, str]]:
        """The pairs that may be decoded, in order; the others are counted and logged."""
        cache = self._cache
        admitted: list[tuple[bytes, str]] = []
        append = admitted.append
        refused_source = refused_agent = refused_exporter = 0
        last: dict[str, str] = {}  # reason -> a source refused for it, for the log line
        for pair in datagrams:
            data, source = pair
            rights = cache.get(source)
            if rights is None:
                rights = self._rights_of(source)
            if rights is _NO_RIGHTS:
                refused_source += 1
                last[REFUSED_SOURCE] = source
                continue
            head = data[:8]
            if head == _SFLOW_V5_IPV4:
                key = data[4:12]
            elif head == _SFLOW_V5_IPV6:
                key = data[4:24]
            elif head[:4] == _SFLOW_V5 or rights.exporter:
                append(pair)  # sFlow without a valid agent type (malformed), or a known exporter
                continue
            else:
                refused_exporter += 1
                last[REFUSED_EXPORTER] = source
                continue
            if key in rights.agent_keys or len(key) < (8 if head == _SFLOW_V5_IPV4 else 20):
                append(pair)  # too short to name its agent: the decoder counts it as truncated
            else:
                refused_agent += 1
                last[REFUSED_AGENT] = source
        if refused_source or refused_agent or refused_exporter:
            self._count(REFUSED_SOURCE, refused_source, last)
            self._count(REFUSED_AGENT, refused_agent, last)
            self._count(REFUSED_EXPORTER, refused_exporter, last)
        return admitted

    def _count(self, reason: str, count: int, last: dict[str, str]) -> None:
        if not count:
            return
        self.refused[reason] += count
        self._m_refused.inc(count, reason=reason)
        self._log.warn(
            f"flow_refused:{reason}",
            self._clock(),
            f"refused {count} flow datagram(s) ({reason}), the last from UDP source {last[reason]}",
        )
