"""Sampling rates exporters announce in options data, per (exporter, version, domain, sampler id).

NetFlow v9 / IPFIX exporters send the rate of each sampler in options records (v9
FLOW_SAMPLER_ID + FLOW_SAMPLER_RANDOM_INTERVAL, IPFIX samplerId/selectorId + samplingInterval…);
data records name their sampler. Sampler 0 stands for "the exporter's rate" (options without a
sampler id, e.g. SAMPLING_INTERVAL scoped to the system).
"""

from __future__ import annotations

from collector.flow_templates import DomainKey

EXPORTER_WIDE = 0


class SamplerTable:
    """Bounded map of sampler rates; a full table refuses new samplers, keeps updating known ones."""

    def __init__(self, max_samplers: int = 10_000) -> None:
        self._max_samplers = max_samplers
        self._rates: dict[DomainKey, dict[int, int]] = {}
        self._count = 0

    def learn(self, domain: DomainKey, sampler_id: int, rate: int) -> bool:
        rates = self._rates.setdefault(domain, {})
        if sampler_id not in rates:
            if self._count >= self._max_samplers:
                if not rates:
                    del self._rates[domain]
                return False
            self._count += 1
        rates[sampler_id] = rate
        return True

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
