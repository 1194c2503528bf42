"""The NetFlow/IPFIX template cache is bounded per exporter (oldest evicted, counted), so a flood
from one address cannot fill it and leave the other exporters' templates refused."""

from __future__ import annotations

from tests.unit.test_netflow_decoder import FLOW_FIELDS, ONE_FLOW, ipfix, ipfix_set, ipfix_template
from topfib.collector.flow.mux import FlowBatchMux
from topfib.collector.netflow.fast import FastFlowDecoder
from topfib.collector.netflow.templates import FieldSpec, Template, TemplateCache
from topfib.collector.sflow.fast import FastSflowDecoder

REAL, FLOODER = "192.0.2.10", "192.0.2.66"


def template_datagram(template_id: int, domain: int = 1) -> bytes:
    return ipfix(ipfix_set(2, ipfix_template(template_id, FLOW_FIELDS)), domain=domain)


def test_a_flooding_exporter_cannot_starve_another() -> None:
    """10,000 templates from one address, then a real exporter's: it is learned and used."""
    decoder = FastFlowDecoder(max_templates=100)  # 10 per exporter
    for template_id in range(10_000):
        decoder.feed(template_datagram(256 + template_id % 60_000, domain=template_id % 7), FLOODER)
    assert decoder.take().state_limited == {"netflow_template_evicted": 10_000 - 10}
    decoder.feed(template_datagram(256), REAL)
    decoder.feed(ipfix(ONE_FLOW, sequence=1), REAL)
    assert decoder.take().flow_samples == 1


def test_per_exporter_bound_evicts_the_oldest_and_the_total_bound_takes_from_the_largest() -> None:
    cache = TemplateCache(max_templates=10, max_per_exporter=3)
    domain = (FLOODER, 10, 1)
    templates = [Template(256 + i, (FieldSpec(8, 4),)) for i in range(5)]
    assert all(cache.add(domain, t) for t in templates)
    assert (len(cache), cache.evicted) == (3, 2)
    assert cache.get(domain, 256) is None and cache.get(domain, 260) is templates[4]
    learned = [cache.add((f"192.0.2.{i}", 10, 1), templates[0]) for i in range(9)]
    # 3 + 7 = the total of 10; the last two take the flooder's oldest (3 >= 0 + 2, then 2 >= 0 + 2)
    assert learned == [True] * 9
    assert (len(cache), cache.evicted) == (10, 4)
    assert cache.get(domain, 258) is None and cache.get(domain, 260) is templates[4]
    assert not cache.add(("192.0.2.99", 10, 1), templates[0])  # everyone holds one: refused
    assert len(cache) == 10


def test_template_limits_reach_the_batch_through_the_mux() -> None:
    mux = FlowBatchMux(FastSflowDecoder(), FastFlowDecoder(max_templates=30))  # 3 per exporter
    for template_id in range(256, 261):
        mux.feed(template_datagram(template_id), FLOODER)
    for exporter in range(12):  # 3 templates each: 3 + 36 offered, 30 kept
        for template_id in range(256, 259):
            mux.feed(template_datagram(template_id), f"192.0.2.{exporter}")
    # the last three exporters take two each from the largest (2 + 3 x 2 evicted), the third is refused
    assert mux.take().state_limited == {"netflow_template_evicted": 8, "netflow_template_refused": 3}
