"""Real sFlow captures over loopback into the listener, collector and traffic matrix: every sample
lands in the row of its input interface, its RIB path's next hop and peer AS, as the typed decoder
and the RIB say, and the matrix's totals equal the collector's."""

from __future__ import annotations

import socket
import time
from collections import defaultdict
from pathlib import Path

from tests.unit.test_pipeline_end_to_end import corpus_payloads, wait_for_datagrams
from topfib.collector.accounting.pipeline import Collector
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.collector.common.metrics import Registry
from topfib.collector.flow.receiver import FlowReceiver
from topfib.collector.matrix.traffic_matrix import TrafficMatrix
from topfib.collector.rib.paths import BgpPath
from topfib.collector.rib.rib import Rib
from topfib.collector.sflow.decoder import decode_datagram
from topfib.collector.sflow.encode import datagrams_for_destinations
from topfib.collector.sflow.fast import FastSflowDecoder
from topfib.collector.sflow.records import FlowSample

# prefix → (next hop, AS path); an empty AS path (iBGP) has peer AS 0
ROUTES = {
    "0.0.0.0/1": ("192.0.2.1", (64500, 3356)),
    "10.0.0.0/8": ("192.0.2.2", (64501,)),
    "10.1.0.0/16": ("192.0.2.1", (64500, 1299)),
    "172.16.0.0/12": ("192.0.2.3", ()),
    "192.168.0.0/16": ("192.0.2.2", (64501, 174)),
    "2001:db8::/32": ("2001:db8:ffff::1", (64502,)),
}
Key = tuple[int, str | None, int]


def make_rib() -> Rib:
    rib = Rib()
    for prefix, (next_hop, as_path) in ROUTES.items():
        rib.announce(next_hop, prefix, BgpPath(next_hop=next_hop, as_path=as_path, peer=next_hop))
    return rib


def ingress_if(sample: FlowSample) -> int:
    """The collector's reading (topfib.collector.common.batch): a single interface's ifIndex; 0 when unknown,
    several
    interfaces, or the agent itself (0x3FFFFFFF)."""
    return sample.input_if if sample.input_format == 0 and sample.input_if != 0x3FFFFFFF else 0


def expected_cells(payloads: list[bytes], rib: Rib) -> dict[Key, float]:
    """(input ifIndex, next hop, peer AS) → scaled bytes, per the typed decoder and the RIB."""
    cells: dict[Key, float] = defaultdict(float)
    for payload in payloads:
        for sample in decode_datagram(payload).flow_samples:
            if sample.dst is None or sample.frame_length is None:
                continue
            prefix = rib.lpm.lookup(sample.dst)
            next_hop, as_path = ROUTES[prefix] if prefix is not None else (None, ())
            key = (ingress_if(sample), next_hop, as_path[0] if as_path else 0)
            cells[key] += sample.frame_length * sample.sampling_rate
    return dict(cells)


def test_corpus_traffic_reaches_the_matrix_by_interface_next_hop_and_peer_as(corpus: Path) -> None:
    payloads = corpus_payloads(corpus) + datagrams_for_destinations(
        ["10.1.2.3", "10.200.0.1", "8.8.8.8", "172.16.0.9", "2001:db8::1", "fc00::1", "203.0.113.1"] * 3,
        agent="192.0.2.1",
    )
    rib = make_rib()
    expected = expected_cells(payloads, rib)
    assert len({key[1] for key in expected}) >= 4 and len({key[0] for key in expected}) >= 2  # has teeth
    agents = {decode_datagram(p).header.agent for p in payloads}
    registry = Registry()
    matrix = TrafficMatrix(interval_s=3600, registry=registry)
    collector = Collector(FastSflowDecoder(), {a: "sw" for a in agents}, lambda _: rib.lpm,
                          PrefixRates(), registry, rib_for=lambda _: rib, matrix=matrix)
    listener = FlowReceiver(collector, ["127.0.0.1:0"], flush_interval_s=0.01, gil_switch_interval_s=None,
                             registry=registry)
    listener.start()
    try:
        host, port = listener.addresses[0]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for payload in payloads:
                sender.sendto(payload, (host, port))
        wait_for_datagrams(collector, len(payloads))
    finally:
        listener.stop()
    rows = [row for interval in matrix.flush(time.monotonic()) for row in interval.rows]
    got: dict[Key, float] = defaultdict(float)
    for row in rows:
        assert row.input_if is not None and row.peer_asn is not None  # no "other" row at this size
        got[(row.input_if, row.next_hop, row.peer_asn)] += row.bytes
    assert dict(got) == expected
    assert sum(row.bytes for row in rows) == collector.totals.bytes
    assert sum(row.samples for row in rows) == collector.totals.flow_samples
