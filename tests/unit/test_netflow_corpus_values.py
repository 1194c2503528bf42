"""Field values the source projects assert for the NetFlow/IPFIX corpus, and complete records.

Complete records combine what akvorado asserts (its netflow decoder tests) with the fields it does not
assert, read from the bytes. Akvorado reports one NextHop (BGP next hop when present), which we
keep as ``bgp_next_hop`` / ``next_hop`` as the exporter sent them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.test_netflow_corpus import GROUPS, decode_group
from topfib.collector.netflow.decoder import FlowRecord


def group_records(corpus: Path, group: str) -> list[FlowRecord]:
    decoded = decode_group(corpus, GROUPS[group][0])
    assert decoded.errors == []
    return decoded.records


def test_akvorado_sampling_from_options_data(corpus: Path) -> None:
    records = group_records(corpus, "akvorado-options")
    assert {r.sampling_rate for r in records} == {30000}
    assert records[0] == FlowRecord(
        exporter="192.0.2.100",
        version=9,
        observation_domain=0,
        sequence=records[0].sequence,
        sampling_rate=30000,
        input_if=335,
        output_if=450,
        bytes=1500,
        packets=1,
        src="198.38.121.178",
        dst="91.170.143.87",
        protocol=6,
        src_port=443,
        dst_port=19624,
        bgp_next_hop="194.149.174.63",
        src_as=0,
        dst_as=0,
        src_mask=24,
        dst_mask=14,
        tcp_flags=16,
        tos=0,
        flow_start_ms=1647285925050,
        flow_end_ms=1647285925050,
    )


def test_akvorado_nfv5_first_flow(corpus: Path) -> None:
    records = group_records(corpus, "akvorado-nfv5")
    assert records[0] == FlowRecord(
        exporter="10.19.144.41",
        version=5,
        observation_domain=3,
        sequence=1961402419,
        sampling_rate=1,
        input_if=117,
        output_if=86,
        bytes=133,
        packets=1,
        src="161.202.212.212",
        dst="202.152.70.24",
        protocol=6,
        src_port=30104,
        dst_port=11963,
        next_hop="61.6.255.150",
        src_as=36351,
        dst_as=10101,
        src_mask=19,
        dst_mask=24,
        tcp_flags=0x18,
        tos=0,
        flow_start_ms=1680626664000,
        flow_end_ms=1680626664000,
    )


def test_akvorado_rate_per_sampler(corpus: Path) -> None:
    records = group_records(corpus, "akvorado-multiplesamplingrates")
    assert {r.sampling_rate for r in records} == {4000, 2000}
    assert records[0] == FlowRecord(
        exporter="238.0.0.1",
        version=9,
        observation_domain=0,
        sequence=records[0].sequence,
        sampling_rate=4000,
        input_if=97,
        output_if=6,
        bytes=1348,
        packets=18,
        src="ffff::68",
        dst="ffff::1a",
        protocol=6,
        src_port=443,
        dst_port=52616,
        bgp_next_hop="ffff::2",
        src_mask=48,
        dst_mask=56,
        tcp_flags=16,
        tos=64,
        flow_start_ms=1701360969980,
        flow_end_ms=1701360974891,
    )


def test_akvorado_sampling_interval_in_the_record(corpus: Path) -> None:
    first = group_records(corpus, "akvorado-samplingrate")[0]
    assert (first.sampling_rate, first.src, first.dst, first.input_if, first.bytes) == (
        2048,
        "232.131.215.65",
        "142.183.180.65",
        13,
        160,
    )
    assert (first.protocol, first.src_port, first.dst_port) == (6, 13245, 10907)


def test_akvorado_icmp_mpls_nat_physical_interfaces(corpus: Path) -> None:
    icmp = group_records(corpus, "akvorado-icmp")
    assert [(r.src, r.dst, r.protocol, r.bytes) for r in icmp] == [
        ("2001:db8::", "2001:db8::1", 58, 104),
        ("2001:db8::1", "2001:db8::", 58, 104),
        ("203.0.113.4", "203.0.113.5", 1, 84),
        ("203.0.113.5", "203.0.113.4", 1, 84),
    ]
    mpls = group_records(corpus, "akvorado-mpls")
    assert [
        (r.sampling_rate, r.src, r.dst, r.output_if, r.bytes, r.packets, r.src_port, r.dst_port) for r in mpls
    ] == [
        (10, "fd00::1:0:1:7:1", "fd00::1:0:1:5:1", 16, 89, 1, 49153, 862),
        (10, "fd00::1:0:1:7:1", "fd00::1:0:1:6:1", 17, 890, 10, 49153, 862),
    ]
    nat = group_records(corpus, "akvorado-nat")[0]
    assert (nat.src, nat.src_port, nat.dst, nat.dst_port, nat.protocol) == (
        "172.16.100.198",
        35303,
        "10.89.87.1",
        53,
        17,
    )
    physical = group_records(corpus, "akvorado-physicalinterfaces")[0]
    assert (physical.sampling_rate, physical.input_if, physical.src, physical.dst, physical.packets) == (
        1000,
        1342177291,
        "147.53.240.75",
        "212.82.101.24",
        3,
    )


def test_akvorado_biflow_gives_both_directions(corpus: Path) -> None:
    records = group_records(corpus, "akvorado-ipfixprobe")
    pairs = [(r.src, r.src_port, r.dst, r.dst_port, r.bytes) for r in records]
    assert pairs[:2] == [
        ("10.10.1.4", 56166, "10.10.1.1", 53, 62),
        ("10.10.1.1", 53, "10.10.1.4", 56166, 128),
    ]


def test_logstash_asserted_fields(corpus: Path) -> None:
    v5 = group_records(corpus, "logstash-v5")[0]
    assert (v5.version, v5.src, v5.dst, v5.src_port, v5.dst_port) == (5, "10.0.2.2", "10.0.2.15", 54435, 22)
    assert group_records(corpus, "logstash-v9-aci")[0].src == "10.154.231.145"
    # logstash events include the nprobe options record as [0]: its [1] and [8] are our flows 0 and 7
    exporters = group_records(corpus, "logstash-v9-multiple-exporters")
    assert (exporters[0].src_port, exporters[7].src_port) == (123, 22)
    ipfix = group_records(corpus, "logstash-ipfix")  # logstash [1] (its [0] is options data)
    assert (ipfix[0].version, ipfix[0].src, ipfix[0].dst) == (10, "192.168.253.1", "192.168.253.128")
    # systemInitTimeMilliseconds from that options record anchors the sysUpTime flow times
    assert ipfix[0].flow_start_ms is not None and ipfix[0].flow_start_ms >= 1431516013506
    asa = group_records(corpus, "logstash-v9-asa2")[18]
    assert (asa.src, asa.dst, asa.bytes) == ("192.168.0.1", "192.168.0.18", 69)  # fwd_flow_delta_bytes
    pflow = group_records(corpus, "logstash-ipfix-openbsd")[25]
    assert (pflow.src, pflow.dst, pflow.bytes, pflow.dst_port) == ("192.168.0.1", "192.168.0.17", 6425, 64026)
    assert group_records(corpus, "logstash-v9-iptnetflow")[11].src == "2.17.140.47"
    ie150 = group_records(corpus, "logstash-v9-ie150")[1]
    assert (ie150.flow_start_ms, ie150.flow_end_ms) == (1512147869000, 1512147869000)
    assert group_records(corpus, "logstash-v9-nprobe-dpi")[0].bytes == 82
    netscaler = group_records(corpus, "logstash-ipfix-netscaler")[0]
    assert (netscaler.version, netscaler.src, netscaler.dst) == (10, "192.168.0.1", "10.0.0.1")
    assert netscaler.flow_end_ms == 1478866159000  # flowEndMicroseconds 2016-11-11T12:09:19.000Z
    assert group_records(corpus, "logstash-v9-0length")[9].src == "192.168.1.33"


# pmacct golden outputs (README §4.4): group -> (test directory, renormalised by sampling?)
PMACCT_TESTS = {
    "pmacct-100": ("100-IPFIXv10-CISCO", False),
    "pmacct-101": ("101-NFv9-CISCO-cust_primitives", False),
    "pmacct-102": ("102-NFv9-CISCO-f2rd-pretag-sampling-reload", False),  # output-flow-00: before the reload
    "pmacct-103": ("103-IPFIXv10-CISCO-pretag-JSON_encoding", False),
    "pmacct-104": ("104-IPFIXv10-IPv6-CISCO-sampling_option", True),  # 1 out of 256, from options data
    "pmacct-106": ("106-IPFIXv10-HUAWEI-vrf_name", True),
    "pmacct-111": ("111-IPFIXv10-NFv9-IPv6-IPv4-mix_sources", False),
    "pmacct-112": ("112-IPFIXv10-CISCO-options-map-reassignment", False),
    "pmacct-400": ("400-IPFIXv10-BMP-CISCO-SRv6-multiple-sources", False),
    "pmacct-401": ("401-IPFIXv10-BMP-IPv6-CISCO-MPLS-multiple-sources", False),
    "pmacct-403": ("403-IPFIXv10-BMP-IPv6-CISCO-locrib-peerdown-vrf", False),
    "pmacct-500": ("500-IPFIXv10-BGP-CISCO-SRv6", False),
    "pmacct-501": ("501-IPFIXv10-BGP-IPv6-CISCO-MPLS", False),
    "pmacct-502": ("502-IPFIXv10-BGP-IPv6-CISCO-SRv6-lcomms", False),
}
# the README's Σpackets, Σbytes of each golden file, checked against the files themselves
PMACCT_README_TOTALS = {
    "pmacct-100": (34, 34172), "pmacct-101": (56, 4500), "pmacct-102": (107, 7594), "pmacct-103": (34, 34172),
    "pmacct-104": (30976, 2721792), "pmacct-106": (1227, 284557), "pmacct-111": (27, 10775),
    "pmacct-112": (19, 1197), "pmacct-400": (332598, 62555647), "pmacct-401": (613581, 112953938),
    "pmacct-403": (208972, 37595573), "pmacct-500": (558, 53644), "pmacct-501": (27813, 5141109),
    "pmacct-502": (26562, 4989084),
}  # fmt: skip

Totals = dict[tuple[str | None, str | None], tuple[int, int]]


def pmacct_golden(corpus: Path, directory: str) -> Totals:
    """(packets, bytes) by (src, dst) summed over nfacctd's aggregates."""
    totals: Totals = {}
    with (corpus / "expected" / "pmacct" / directory / "output-flow-00.json").open() as lines:
        for line in lines:
            aggregate = json.loads(line)
            key = (aggregate["ip_src"], aggregate["ip_dst"])
            packets, octets = totals.get(key, (0, 0))
            totals[key] = (packets + aggregate["packets"], octets + aggregate["bytes"])
    return totals


def our_totals(records: list[FlowRecord], renormalise: bool) -> Totals:
    totals: Totals = {}
    for record in records:
        scale = record.sampling_rate if renormalise else 1
        packets, octets = totals.get((record.src, record.dst), (0, 0))
        totals[(record.src, record.dst)] = (packets + record.packets * scale, octets + record.bytes * scale)
    return totals


@pytest.mark.parametrize("group", sorted(PMACCT_TESTS))
def test_pmacct_golden_traffic_by_address_pair(corpus: Path, group: str) -> None:
    directory, renormalise = PMACCT_TESTS[group]
    golden = pmacct_golden(corpus, directory)
    ours = our_totals(group_records(corpus, group), renormalise)
    assert ours == golden
    assert (sum(p for p, _ in golden.values()), sum(b for _, b in golden.values())) == PMACCT_README_TOTALS[
        group
    ]


def test_pktvisor_totals(corpus: Path) -> None:
    nf9 = group_records(corpus, "pktvisor-nf9")
    assert {r.exporter for r in nf9} == {"192.168.100.1"}
    assert (sum(r.bytes for r in nf9), sum(r.packets for r in nf9)) == (142139882, 183920)
    assert len({r.dst for r in nf9}) == 24
    ipfix = group_records(corpus, "pktvisor-ipfix")
    assert {r.src for r in ipfix} == {"::1"}
    assert (sum(r.bytes for r in ipfix), sum(r.packets for r in ipfix)) == (120000, 1472)
    assert (len({r.dst_port for r in ipfix}), len({r.src_port for r in ipfix})) == (9, 16)


def test_goflow2_v9_header_fields(corpus: Path) -> None:
    records = group_records(corpus, "goflow2-v9")
    assert {(r.version, r.observation_domain) for r in records} == {(9, 256)}
    assert records[0].sequence == 838987420  # data datagram; the template one is 838987416 (goflow2)


def test_akvorado_packet_sections(corpus: Path) -> None:
    # akvorado reports the IP length as Bytes; we keep dataLinkFrameSize, the bytes on the wire
    # (as sFlow accounting uses the frame length): Ethernet 14 + 802.1Q 4 (+ MPLS/PW overhead)
    [datalink] = group_records(corpus, "akvorado-datalink")
    assert (datalink.src, datalink.dst, datalink.input_if, datalink.protocol) == (
        "51.51.51.51",
        "52.52.52.52",
        582,
        17,
    )
    assert (datalink.src_port, datalink.dst_port, datalink.packets, datalink.bytes - 14 - 4) == (
        55501,
        11777,
        1,
        96,
    )
    [cpid] = group_records(corpus, "akvorado-juniper-cpid")
    assert (cpid.input_if, cpid.src, cpid.dst, cpid.bytes - 14) == (
        737,
        "fc30:2200:1b::f",
        "fc30:2200:23:e009::",
        104,
    )
    eompls = group_records(corpus, "akvorado-eompls")[3]
    # outer Ethernet 14 + 2 MPLS labels 8 + control word 4 + inner Ethernet 14 = 40
    assert (eompls.input_if, eompls.src, eompls.dst, eompls.bytes - 40) == (
        1022,
        "198.51.100.1",
        "198.51.100.2",
        1492,
    )
