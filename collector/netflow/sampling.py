"""Sampling rates exporters announce in options data, per (exporter, version, domain, sampler id).

NetFlow v9 / IPFIX exporters send the rate of each sampler in options records (v9
FLOW_SAMPLER_ID + FLOW_SAMPLER_RANDOM_INTERVAL, IPFIX samplerId/selectorId + samplingInterval…);
data records name their sampler. Sampler 0 stands for "the exporter's rate" (options without a
sampler id, e.g. SAMPLING_INTERVAL scoped to the system).
"""

from __future__ import annotations

from collections import OrderedDict

from topfib.collector.netflow.templates import DomainKey

EXPORTER_WIDE = 0


class SamplerTable:
    """Bounded map of sampler rates, as the template cache is bounded (sampler ids are the
    sender's choice): an exporter keeps at most ``max_per_exporter`` (a tenth of the total by
    default; a new one evicts its oldest), and a full table takes the oldest of the exporter holding
    the most while it holds two more than the one asking, else refuses. Known samplers are always
    updated. Counted in ``evicted`` and ``refused``."""

    def __init__(self, max_samplers: int = 10_000, max_per_exporter: int | None = None) -> None:
        self._max_samplers = max_samplers
        self._max_per_exporter = max_per_exporter or max(1, max_samplers // 10)
        self._rates: dict[DomainKey, dict[int, int]] = {}
        self._by_exporter: dict[str, OrderedDict[tuple[DomainKey, int], None]] = {}  # oldest first
        self._count = 0
        self.evicted = 0
        self.refused = 0

    def learn(self, domain: DomainKey, sampler_id: int, rate: int) -> bool:
        rates = self._rates.get(domain)
        if rates is not None and sampler_id in rates:
            rates[sampler_id] = rate
            return True
        order = self._by_exporter.setdefault(domain[0], OrderedDict())
        if len(order) >= self._max_per_exporter:
            self._evict_oldest(order)
        elif self._count >= self._max_samplers:
            largest = max(self._by_exporter.values(), key=len)
            if len(largest) < len(order) + 2:
                self.refused += 1
                if not order:
                    del self._by_exporter[domain[0]]
                return False
            self._evict_oldest(largest)
        self._rates.setdefault(domain, {})[sampler_id] = rate
        order[(domain, sampler_id)] = None
        self._count += 1
        return True

    def _evict_oldest(self, order: OrderedDict[tuple[DomainKey, int], None]) -> None:
        (domain, sampler_id), _ = order.popitem(last=False)
        rates = self._rates[domain]
        del rates[sampler_id]
        if not rates:
            del self._rates[domain]
        self._count -= 1
        self.evicted += 1

    def rate_for(self, domain: DomainKey, sampler_id: int) -> int | None:
        """The sampler's rate; else the exporter-wide one; else the domain's only rate, if unambiguous."""
        rates = self._rates.get(domain)
        if not rates:
            return None
        rate = rates.get(sampler_id)
        if rate is None:
            rate = rates.get(EXPORTER_WIDE)
        if rate is None and len(set(rates.values())) == 1:
            rate = next(iter(rates.values()))
        return rate
