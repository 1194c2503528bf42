"""Flow to path: each routed sample goes to the RIB path whose next hop it names, else the best
path; per-path rates, the traffic matrix feed, and batches merged with their next hops."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tests.unit.test_pipeline import ListDecoder
from topfib.collector.accounting.path_attribution import PathAttributor
from topfib.collector.accounting.path_rates import PathRates
from topfib.collector.accounting.pipeline import Collector
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.collector.common.batch import SampleBatch, merge_batches
from topfib.collector.common.metrics import Registry
from topfib.collector.common.prefixes import canonical_address
from topfib.collector.rib.paths import BgpPath
from topfib.collector.rib.rib import Rib

AGENT = "10.9.9.9"
MULTI = "198.51.100.0/24"  # best: via 192.0.2.1 (AS 64500); also via 192.0.2.2 (AS 64501)
SINGLE = "203.0.113.0/24"  # only via 192.0.2.1, empty AS path (iBGP)
BEST = BgpPath(next_hop="192.0.2.1", as_path=(64500, 3356), local_pref=200, peer="192.0.2.1")
OTHER = BgpPath(next_hop="192.0.2.2", as_path=(64501, 1299, 3356), peer="192.0.2.2")
V6_PREFIX = "2001:db8:100::/48"
V6_BEST = BgpPath(next_hop="2001:db8::1", as_path=(64500,), local_pref=200, peer="2001:db8::1")
V6_OTHER = BgpPath(next_hop="2001:db8::2", as_path=(64502,), peer="2001:db8::2")


def make_rib() -> Rib:
    rib = Rib()
    rib.announce("192.0.2.1", MULTI, BEST)
    rib.announce("192.0.2.2", MULTI, OTHER)
    rib.announce("192.0.2.1", SINGLE, BgpPath(next_hop="192.0.2.1", peer="192.0.2.1"))
    rib.announce("2001:db8::1", V6_PREFIX, V6_BEST)
    rib.announce("2001:db8::2", V6_PREFIX, V6_OTHER)
    return rib


@dataclass
class MatrixCall:
    switch: str
    input_if: list[int]
    next_hops: list[str | None]
    peer_asn: list[int]
    nbytes: list[float]


class FakeMatrix:
    """Records what the collector hands the traffic matrix."""

    def __init__(self) -> None:
        self.calls: list[MatrixCall] = []

    def add(
        self,
        switch: str,
        input_if: npt.NDArray[np.uint32],
        next_hop_ids: npt.NDArray[np.int64],
        next_hops: Sequence[str],
        peer_asn: npt.NDArray[np.uint32],
        nbytes: npt.NDArray[np.float64],
        packets: npt.NDArray[np.float64],
        now: float,
    ) -> None:
        assert next_hop_ids.dtype == np.int64 and peer_asn.dtype == np.uint32 and input_if.dtype == np.uint32
        assert len(input_if) == len(next_hop_ids) == len(peer_asn) == len(nbytes) == len(packets)
        names = [None if i < 0 else next_hops[i] for i in next_hop_ids.tolist()]
        self.calls.append(MatrixCall(switch, input_if.tolist(), names, peer_asn.tolist(), nbytes.tolist()))


def v4(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def batch_of(rows: Sequence[tuple[str, str | None, int, float]], next_hops: list[str]) -> SampleBatch:
    """IPv4 rows (destination, sample next hop, ingress ifIndex, bytes) from one agent."""
    return SampleBatch(
        agents=[AGENT],
        v4_agent=np.zeros(len(rows), np.uint32),
        v4_dst=np.array([v4(dst) for dst, _, _, _ in rows], np.uint32),
        v4_bytes=np.array([b for _, _, _, b in rows], np.float64),
        v4_packets=np.ones(len(rows)),
        next_hops=next_hops,
        v4_input_if=np.array([i for _, _, i, _ in rows], np.uint32),
        v4_next_hop=np.array([-1 if h is None else next_hops.index(h) for _, h, _, _ in rows], np.int32),
        datagrams=1,
        flow_samples=len(rows),
    )


def make_collector(batches: list[SampleBatch], rib: Rib) -> tuple[Collector, PathRates, FakeMatrix]:
    path_rates = PathRates(fast_half_life_s=1e6, slow_half_life_s=1e6)
    matrix = FakeMatrix()
    collector = Collector(
        ListDecoder(batches), {AGENT: "edge1"}, lambda _: rib.lpm, PrefixRates(), Registry(),
        rib_for=lambda _: rib, path_rates=path_rates, matrix=matrix,  # type: ignore[arg-type]
    )  # fmt: skip
    return collector, path_rates, matrix


def byte_split(path_rates: PathRates, prefix: str) -> dict[str, float]:
    """Bytes per next hop (rates × the 1 s minimum window, with half-lives far longer)."""
    return {r.next_hop: round(r.fast_bps) for r in path_rates.paths_of("edge1", prefix, 0.0)}


def test_samples_follow_their_next_hop_else_the_best_path() -> None:
    rib = make_rib()
    rows: list[tuple[str, str | None, int, float]] = [
        ("198.51.100.7", "192.0.2.2", 3, 1000.0),  # names the other path
        ("198.51.100.8", "192.0.2.9", 4, 100.0),  # names no path of the prefix: best
        ("198.51.100.9", None, 5, 10.0),  # names none: best
        ("203.0.113.5", "192.0.2.2", 6, 1.0),  # single-path prefix: its path, whatever it names
        ("192.0.2.77", "192.0.2.2", 7, 5.0),  # unrouted
    ]
    collector, path_rates, matrix = make_collector([batch_of(rows, ["192.0.2.2", "192.0.2.9"])], rib)
    collector.flush(0.0)
    assert byte_split(path_rates, MULTI) == {"192.0.2.2": 1000, "192.0.2.1": 110}
    assert byte_split(path_rates, SINGLE) == {"192.0.2.1": 1}
    [call] = matrix.calls
    assert call.switch == "edge1" and call.input_if == [3, 4, 5, 6, 7]
    assert call.next_hops == ["192.0.2.2", "192.0.2.1", "192.0.2.1", "192.0.2.1", None]
    assert call.peer_asn == [64501, 64500, 64500, 0, 0]  # first AS; empty AS path and unrouted: 0
    assert call.nbytes == [1000.0, 100.0, 10.0, 1.0, 5.0]


def test_ipv6_samples_and_families_keep_their_order() -> None:
    rib = make_rib()
    hops = ["2001:db8::2", "192.0.2.2"]
    address = int(ipaddress.IPv6Address("2001:db8:100::5"))
    batch = batch_of([("198.51.100.1", "192.0.2.2", 1, 10.0)], hops)
    batch.v6_agent = np.zeros(2, np.uint32)
    batch.v6_dst_hi = np.full(2, address >> 64, np.uint64)
    batch.v6_dst_lo = np.full(2, address & (2**64 - 1), np.uint64)
    batch.v6_bytes = np.array([20.0, 30.0])
    batch.v6_packets = np.ones(2)
    batch.v6_input_if = np.array([8, 9], np.uint32)
    batch.v6_next_hop = np.array([0, -1], np.int32)
    collector, path_rates, matrix = make_collector([batch], rib)
    collector.flush(0.0)
    assert byte_split(path_rates, V6_PREFIX) == {"2001:db8::2": 20, "2001:db8::1": 30}
    [call] = matrix.calls
    assert call.input_if == [1, 8, 9]  # IPv4 samples first, as the prefix ids
    assert call.next_hops == ["192.0.2.2", "2001:db8::2", "2001:db8::1"]
    assert call.peer_asn == [64501, 64502, 64500]


def test_new_paths_are_seen_after_the_refresh_interval() -> None:
    rib = Rib()
    rib.announce("192.0.2.1", MULTI, BEST)
    row = [("198.51.100.7", "192.0.2.2", 1, 1.0)]
    batches = [batch_of(row, ["192.0.2.2"]) for _ in range(3)]
    collector, path_rates, _ = make_collector(batches, rib)
    collector.flush(0.0)
    rib.announce("192.0.2.2", MULTI, OTHER)
    collector.flush(1.0)  # within the refresh interval: the cached single path
    collector.flush(10.0)
    assert byte_split(path_rates, MULTI) == {"192.0.2.1": 2, "192.0.2.2": 1}


def test_without_a_rib_the_matrix_still_gets_every_sample() -> None:
    rib = make_rib()
    matrix = FakeMatrix()
    collector = Collector(ListDecoder([batch_of([("198.51.100.7", None, 2, 1.0)], [])]), {AGENT: "edge1"},
                          lambda _: rib.lpm, PrefixRates(), Registry(),
                          matrix=matrix)  # type: ignore[arg-type]  # fmt: skip
    collector.flush(0.0)
    assert [(c.input_if, c.next_hops, c.peer_asn) for c in matrix.calls] == [([2], [None], [0])]


def test_attribution_canonicalises_rib_next_hops() -> None:
    rib = Rib()
    rib.announce("2001:db8::1", V6_PREFIX, BgpPath(next_hop="2001:DB8:0:0::1", peer="2001:db8::1"))
    rib.announce("2001:db8::2", V6_PREFIX,
                 BgpPath(next_hop="2001:db8::2", peer="2001:db8::2", local_pref=300))
    attributor = PathAttributor(lambda _: rib)
    prefix_id = rib.lpm.id_of(V6_PREFIX)
    assert prefix_id is not None
    result = attributor.attribute(
        "s", rib.lpm, np.array([prefix_id], np.int64), np.array([0], np.int32), ["2001:db8::1"], 0.0
    )
    assert [result.hop_names[i] for i in result.hop_ids.tolist()] == ["2001:db8::1"]
    assert canonical_address("::FFFF:192.0.2.1") == "::ffff:192.0.2.1" and canonical_address("x") == "x"


def test_merge_batches_renumbers_next_hops_and_keeps_interfaces() -> None:
    first = batch_of([("198.51.100.1", "192.0.2.2", 1, 1.0), ("198.51.100.2", None, 2, 1.0)], ["192.0.2.2"])
    second = batch_of(
        [("198.51.100.3", "192.0.2.9", 3, 1.0), ("198.51.100.4", "192.0.2.2", 4, 1.0)],
        ["192.0.2.9", "192.0.2.2"],
    )
    bare = SampleBatch(agents=[AGENT], v4_agent=np.zeros(1, np.uint32), v4_dst=np.ones(1, np.uint32),
                       v4_bytes=np.ones(1), v4_packets=np.ones(1))  # fmt: skip
    merged = merge_batches([first, second, bare])
    names = [None if i < 0 else merged.next_hops[i] for i in merged.v4_next_hop.tolist()]
    assert names == ["192.0.2.2", None, "192.0.2.9", "192.0.2.2", None]
    assert merged.next_hops == ["192.0.2.2", "192.0.2.9"]
    assert merged.v4_input_if.tolist() == [1, 2, 3, 4, 0]


def test_prefixes_with_many_paths_match_every_one() -> None:
    rib = Rib()
    hops = [f"192.0.2.{i}" for i in range(1, 8)]  # more paths than a cache row holds
    for rank, hop in enumerate(hops):
        rib.announce(hop, MULTI,
                     BgpPath(next_hop=hop, as_path=(64500 + rank,), local_pref=300 - rank, peer=hop))
    rows: list[tuple[str, str | None, int, float]] = [("198.51.100.1", hop, 1, 1.0) for hop in hops[::-1]]
    rows.append(("198.51.100.1", "10.0.0.1", 1, 1.0))  # names no path: the best
    collector, path_rates, matrix = make_collector([batch_of(rows, [*hops, "10.0.0.1"])], rib)
    collector.flush(0.0)
    [call] = matrix.calls
    assert call.next_hops == [*hops[::-1], hops[0]]
    assert call.peer_asn == [*range(64500 + len(hops) - 1, 64499, -1), 64500]
    assert byte_split(path_rates, MULTI) == {hop: 2 if hop == hops[0] else 1 for hop in hops}


def test_quiet_paths_are_pruned_by_the_collector() -> None:
    rib = make_rib()
    rows: list[tuple[str, str | None, int, float]] = [("198.51.100.7", "192.0.2.2", 3, 1000.0)]
    path_rates = PathRates(fast_half_life_s=1.0, slow_half_life_s=1.0)
    collector = Collector(
        ListDecoder([batch_of(rows, ["192.0.2.2"]), SampleBatch(), SampleBatch()]), {AGENT: "edge1"},
        lambda _: rib.lpm, PrefixRates(), Registry(), rib_for=lambda _: rib, path_rates=path_rates,
    )  # fmt: skip
    collector.flush(0.0)
    collector.flush(30.0)  # too soon to prune
    assert path_rates.path_count("edge1") == 1
    collector.flush(61.0)
    assert path_rates.path_count("edge1") == 0


class CountingRib(Rib):
    """A RIB that counts how often attribution reads a prefix's paths."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def paths(self, prefix: str) -> list[BgpPath]:
        self.reads += 1
        return super().paths(prefix)


def test_a_refresh_rereads_only_prefixes_whose_paths_changed() -> None:
    rib = CountingRib()
    rib.announce("192.0.2.1", MULTI, BEST)
    rib.announce("192.0.2.2", MULTI, OTHER)
    rib.announce("192.0.2.1", SINGLE, BgpPath(next_hop="192.0.2.1", peer="192.0.2.1"))
    rows: list[tuple[str, str | None, int, float]] = [
        ("198.51.100.7", "192.0.2.2", 1, 1.0), ("203.0.113.5", "192.0.2.2", 1, 1.0)
    ]
    collector, _, matrix = make_collector([batch_of(rows, ["192.0.2.2"]) for _ in range(4)], rib)
    collector.flush(0.0)
    assert rib.reads == 2
    collector.flush(10.0)  # refreshed, nothing changed: the decisions stand, no path read again
    assert rib.reads == 2
    rib.withdraw("192.0.2.2", MULTI, "192.0.2.2", 0)  # the path the first sample names is gone
    collector.flush(20.0)
    assert rib.reads == 3  # MULTI only
    rib.announce("192.0.2.2", MULTI, OTHER)  # and back
    collector.flush(30.0)
    assert [call.next_hops for call in matrix.calls] == [
        ["192.0.2.2", "192.0.2.1"], ["192.0.2.2", "192.0.2.1"], ["192.0.2.1", "192.0.2.1"],
        ["192.0.2.2", "192.0.2.1"],
    ]
    assert [call.peer_asn for call in matrix.calls][-2:] == [[64500, 0], [64501, 0]]


def test_a_prefix_that_changes_paths_again_and_again_reuses_its_cache_row() -> None:
    attributor = PathAttributor(lambda _: rib, refresh_s=1.0)
    rib = Rib()
    rib.announce("192.0.2.1", MULTI, BEST)
    ids = np.array([rib.lpm.id_of(MULTI)], np.int64)
    hops = np.array([0], np.int32)
    for step in range(6):
        if step % 2:
            rib.withdraw("192.0.2.2", MULTI, "192.0.2.2", 0)
        else:
            rib.announce("192.0.2.2", MULTI, OTHER)
        attribution = attributor.attribute("edge1", rib.lpm, ids, hops, ["192.0.2.2"], float(step))
        expected = "192.0.2.1" if step % 2 else "192.0.2.2"
        assert attribution.hop_names[int(attribution.hop_ids[0])] == expected
    assert attributor._cache("edge1").rows_used == 1
