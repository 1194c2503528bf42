"""Through the real collector: samples reach the traffic matrix with their interface, the RIB path's
next hop and peer AS, and the matrix's totals equal what the collector accounted."""

from __future__ import annotations

from tests.unit.test_pipeline import ListDecoder
from tests.unit.test_pipeline_paths import AGENT, batch_of, make_rib
from topfib.collector.accounting.pipeline import Collector
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.collector.common.metrics import Registry
from topfib.collector.matrix.traffic_matrix import MatrixRow, TrafficMatrix

START = 1_764_104_400


def test_collector_batches_become_matrix_rows() -> None:
    rib = make_rib()
    rows: list[tuple[str, str | None, int, float]] = [
        ("198.51.100.7", "192.0.2.2", 3, 1000.0),  # names the other path: AS 64501
        ("198.51.100.8", None, 3, 100.0),  # names none: the best path, AS 64500
        ("198.51.100.9", None, 3, 10.0),
        ("203.0.113.5", "192.0.2.2", 6, 1.0),  # single path, empty AS path: ASN 0
        ("192.0.2.77", "192.0.2.2", 7, 5.0),  # unrouted
    ]
    batches = [batch_of(rows, ["192.0.2.2"]), batch_of(rows[:1], ["192.0.2.2"])]
    matrix = TrafficMatrix(interval_s=60, registry=Registry())
    collector = Collector(ListDecoder(batches), {AGENT: "edge1"}, lambda _: rib.lpm, PrefixRates(),
                          Registry(), rib_for=lambda _: rib, matrix=matrix)
    collector.flush(START + 1.0)
    collector.flush(START + 61.0)  # the next interval
    first, second = matrix.flush(START + 62.0)
    assert first.rows == (
        MatrixRow("edge1", 3, "192.0.2.2", 64501, 1000.0, 1.0, 1),
        MatrixRow("edge1", 3, "192.0.2.1", 64500, 110.0, 2.0, 2),
        MatrixRow("edge1", 7, None, 0, 5.0, 1.0, 1),
        MatrixRow("edge1", 6, "192.0.2.1", 0, 1.0, 1.0, 1),
    )
    assert second.rows == (MatrixRow("edge1", 3, "192.0.2.2", 64501, 1000.0, 1.0, 1),)
    assert sum(r.bytes for i in (first, second) for r in i.rows) == collector.totals.bytes
