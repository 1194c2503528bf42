"""The typed sFlow decoder against the real captures in tests/data.

Expected records carry the values the source projects assert (akvorado, goflow2 and
gopacket tests); fields those projects do not assert were read from the bytes.
Akvorado reports Bytes as the IP length (our ``ip_length``), and folds special output
interfaces (local/discard/multiple) into OutIf=0 (we keep format and value apart).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from topfib.collector.common.pcap import is_capture, udp_payloads
from topfib.collector.sflow.decoder import decode_datagram
from topfib.collector.sflow.records import (
    INTERFACE_DISCARDED,
    INTERFACE_MULTIPLE,
    DatagramHeader,
    DiscardSample,
    FlowSample,
    SflowDatagram,
)


def sflow_payloads(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if is_capture(data):
        return [payload for _, payload in udp_payloads(data)]
    return [data]


def decode_one(corpus: Path, name: str) -> SflowDatagram:
    payloads = sflow_payloads(corpus / "sflow" / name)
    assert len(payloads) == 1
    return decode_datagram(payloads[0])


def all_sflow_files() -> list[str]:
    from tests.conftest import TEST_DATA

    return sorted(p.name for p in (TEST_DATA / "sflow").glob("*"))


@pytest.mark.parametrize("name", all_sflow_files())
def test_every_corpus_file_decodes(corpus: Path, name: str) -> None:
    payloads = sflow_payloads(corpus / "sflow" / name)
    assert payloads, name
    for payload in payloads:
        datagram = decode_datagram(payload)
        samples = (
            len(datagram.flow_samples)
            + len(datagram.counter_samples)
            + len(datagram.discard_samples)
            + datagram.skipped_samples
        )
        assert samples == datagram.header.sample_count


def test_corpus_has_the_files_the_readme_lists() -> None:
    assert len(all_sflow_files()) >= 35


# akvorado data-1140.pcap, flow #1 (flows #3 and #5 repeat it with other sequence numbers)
AKVORADO_IPV6_SSH = FlowSample(
    agent="172.16.0.3",
    sub_agent=0,
    datagram_sequence=812646826,
    sequence=588827825,
    expanded=False,
    source_id_type=0,
    source_id_index=28,
    sampling_rate=1024,
    sample_pool=1664271360,
    drops=0,
    input_format=0,
    input_if=27,
    output_format=0,
    output_if=28,
    records=("0:1001", "0:1"),
    frame_length=1518,
    header_protocol=1,
    header_length=128,
    stripped=4,
    src_mac="24:6e:96:90:7a:50",  # 40057391053392
    dst_mac="24:6e:96:04:3c:08",  # 40057381862408
    ethertype=0x86DD,
    src="2a0c:8880:2:0:185:21:130:38",
    dst="2a0c:8880:2:0:185:21:130:39",
    ip_length=1500,
    protocol=6,
    tos=0x8,
    ttl=64,
    src_port=46026,
    dst_port=22,
    tcp_flags=0x10,
    src_vlan=100,
    src_priority=0,
    dst_vlan=100,
    dst_priority=0,
)


def test_akvorado_1140_all_flows(corpus: Path) -> None:
    datagram = decode_one(corpus, "akvorado__data-1140.pcap")
    assert datagram.header == DatagramHeader("172.16.0.3", 0, 812646826, 930960704, 5)
    assert datagram.counter_samples == () and datagram.discard_samples == ()
    flow2 = FlowSample(
        agent="172.16.0.3",
        sub_agent=0,
        datagram_sequence=812646826,
        sequence=350388893,
        expanded=False,
        source_id_type=0,
        source_id_index=25,
        sampling_rate=1024,
        sample_pool=2315940864,
        drops=0,
        input_format=0,
        input_if=49001,
        output_format=0,
        output_if=25,
        records=("0:1001", "0:1", "0:1003", "0:1002"),
        frame_length=439,
        header_protocol=1,
        header_length=128,
        stripped=4,
        src_mac="c4:ca:2b:ae:34:37",
        dst_mac="ae:18:b0:4b:26:8a",
        ethertype=0x0800,
        src="104.26.8.24",
        dst="45.90.161.46",
        ip_length=421,
        protocol=6,
        tos=0,
        ttl=59,
        src_port=443,
        dst_port=56876,
        tcp_flags=0x18,
        src_vlan=0xFFFFFFFF,  # unknown; akvorado leaves SrcVlan unset
        src_priority=0,
        dst_vlan=100,
        dst_priority=0,
        next_hop="45.90.161.46",
        src_mask=20,
        dst_mask=27,
        bgp_next_hop="0.0.0.0",
        as_number=39421,  # akvorado DstAS (empty AS path: the router's own AS)
        src_as=13335,
        src_peer_as=203698,
        dst_as_path=(),
        communities=(),
        local_pref=0,
    )
    flow4 = replace(
        flow2,
        sequence=588827826,
        source_id_index=28,
        sample_pool=1664272384,
        input_if=28,
        output_if=49001,
        frame_length=64,
        header_length=60,
        src_mac="7e:12:7c:7b:fa:f0",
        dst_mac="c4:ca:2b:ae:34:37",
        src="45.90.161.148",
        dst="191.87.91.27",
        ip_length=40,
        ttl=255,
        src_port=55658,
        dst_port=5555,
        tcp_flags=0x2,
        src_vlan=100,
        dst_vlan=0xFFFFFFFF,
        next_hop="31.14.69.110",
        src_mask=27,
        dst_mask=17,
        bgp_next_hop="31.14.69.110",
        src_as=0,
        src_peer_as=0,
        dst_as_path=(203698, 6762, 26615),
        communities=(2583495656, 2583495657, 4259880000, 4259880001, 4259900001),
        local_pref=100,
    )
    flow3 = replace(AKVORADO_IPV6_SSH, sequence=488298591, source_id_index=27, sample_pool=1801550848)
    flow5 = replace(AKVORADO_IPV6_SSH, sequence=588827827, sample_pool=1664273408)
    assert datagram.flow_samples == (AKVORADO_IPV6_SSH, flow2, flow3, flow4, flow5)


@pytest.mark.parametrize(
    ("name", "output_format", "output_if"),
    [
        ("akvorado__data-local-interface.pcap", 0, 0x3FFFFFFF),  # the agent itself
        ("akvorado__data-discard-interface.pcap", INTERFACE_DISCARDED, 1),
        ("akvorado__data-multiple-interfaces.pcap", INTERFACE_MULTIPLE, 7),
    ],
)
def test_akvorado_special_output_interfaces(
    corpus: Path, name: str, output_format: int, output_if: int
) -> None:
    datagram = decode_one(corpus, name)
    expected = replace(AKVORADO_IPV6_SSH, output_format=output_format, output_if=output_if)
    assert datagram.flow_samples == (expected,)


def test_akvorado_expanded_sample_with_router_and_gateway(corpus: Path) -> None:
    datagram = decode_one(corpus, "akvorado__data-sflow-expanded-sample.pcap")
    assert datagram.flow_samples == (
        FlowSample(
            agent="49.49.49.49",
            sub_agent=0,
            datagram_sequence=115694180,
            sequence=2170480284,
            expanded=True,
            source_id_type=0,
            source_id_index=11001,
            sampling_rate=1000,
            sample_pool=1521799520,
            drops=0,
            input_format=0,
            input_if=29001,
            output_format=0,
            output_if=1285816721,
            records=("0:1", "0:1003", "0:1002"),
            frame_length=126,
            header_protocol=1,
            header_length=122,
            stripped=4,
            src_mac="94:8e:d3:0a:71:3b",
            dst_mac="22:42:1f:4a:9f:cd",
            ethertype=0x0800,
            vlan=809,
            src="52.52.52.52",
            dst="53.53.53.53",
            ip_length=104,
            protocol=6,
            tos=0x8,
            ttl=61,
            src_port=22,
            dst_port=52237,
            tcp_flags=0x18,
            next_hop="54.54.54.54",
            src_mask=32,
            dst_mask=22,
            bgp_next_hop="54.54.54.54",
            as_number=28976,
            src_as=203476,
            src_peer_as=203476,
            dst_as_path=(8218, 29605, 203361),
            communities=(538574949, 1911619684, 1911669584, 1911671290),
            local_pref=100,
        ),
    )


def test_akvorado_ipv4_data_prefers_the_raw_header(corpus: Path) -> None:
    datagram = decode_one(corpus, "akvorado__data-sflow-ipv4-data.pcap")
    assert datagram.flow_samples == (
        FlowSample(
            agent="49.49.49.49",
            sub_agent=1,
            datagram_sequence=52291006,
            sequence=2013426,
            expanded=True,
            source_id_type=0,
            source_id_index=182,
            sampling_rate=256,
            sample_pool=515437056,
            drops=0,
            input_format=0,
            input_if=0,
            output_format=0,
            output_if=182,
            records=("0:1", "0:2", "0:1001", "0:3"),
            frame_length=1390,
            header_protocol=1,
            header_length=128,
            stripped=1262,
            src_mac="00:fe:c8:99:05:47",  # 1094287164743
            dst_mac="01:00:5e:2a:aa:04",  # 1101091482116
            ethertype=0x0800,
            src="50.50.50.50",
            dst="51.51.51.51",
            ip_length=1344,
            protocol=17,
            tos=0,
            ttl=64,
            src_port=46622,
            dst_port=58631,
            src_vlan=0,
            src_priority=0,
            dst_vlan=3001,
            dst_priority=0,
        ),
    )


def test_akvorado_raw_ipv4_header_protocol(corpus: Path) -> None:
    datagram = decode_one(corpus, "akvorado__data-sflow-raw-ipv4.pcap")
    first = FlowSample(
        agent="172.19.64.116",
        sub_agent=100000,
        datagram_sequence=1,
        sequence=1,
        expanded=False,
        source_id_type=0,
        source_id_index=2,
        sampling_rate=1,
        sample_pool=1,
        drops=0,
        input_format=0,
        input_if=0,
        output_format=0,
        output_if=2,
        records=("0:1",),
        frame_length=50,
        header_protocol=11,
        header_length=32,
        stripped=18,
        src="69.58.92.107",
        dst="92.222.186.1",
        ip_length=32,
        protocol=1,
        tos=8,
        ttl=64,
        icmp_type=0,
        icmp_code=0,
    )
    second = replace(first, sequence=2, sample_pool=2, dst="92.222.184.1")
    assert datagram.flow_samples == (first, second)


def test_akvorado_icmp(corpus: Path) -> None:
    v4 = decode_one(corpus, "akvorado__data-icmpv4.pcap").flow_samples
    v6 = decode_one(corpus, "akvorado__data-icmpv6.pcap").flow_samples
    base = FlowSample(
        agent="127.0.0.1",
        sub_agent=1402,
        datagram_sequence=1,
        sequence=1,
        expanded=False,
        source_id_type=0,
        source_id_index=1,
        sampling_rate=1,
        sample_pool=1,
        drops=0,
        input_format=0,
        input_if=0x3FFFFFFF,
        output_format=0,
        output_if=0x3FFFFFFF,
        records=("0:1001", "0:1"),
        frame_length=102,
        header_protocol=1,
        header_length=98,
        stripped=4,
        src_mac="e2:ef:c6:8f:8c:d4",
        dst_mac="d2:5b:45:ee:5e:cf",
        ethertype=0x0800,
        src="203.0.113.4",
        dst="203.0.113.5",
        ip_length=84,
        protocol=1,
        tos=0,
        ttl=64,
        icmp_type=8,
        icmp_code=0,
        src_vlan=0,
        src_priority=0,
        dst_vlan=0,
        dst_priority=0,
    )
    assert v4 == (base,)
    assert v6 == (
        replace(
            base,
            datagram_sequence=5,
            sequence=7,
            sample_pool=7,
            frame_length=90,
            header_length=86,
            src_mac="d2:5b:45:ee:5e:cf",
            dst_mac="e2:ef:c6:8f:8c:d4",
            ethertype=0x86DD,
            src="fe80::d05b:45ff:feee:5ecf",
            dst="2001:db8::",
            ip_length=72,
            protocol=58,
            ttl=255,
            icmp_type=135,
        ),
    )


def test_akvorado_qinq_takes_the_inner_tag(corpus: Path) -> None:
    (sample,) = decode_one(corpus, "akvorado__data-qinq.pcap").flow_samples
    assert sample == FlowSample(
        agent="172.17.128.58",
        sub_agent=100,
        datagram_sequence=184089,
        sequence=791,
        expanded=True,
        source_id_type=0,
        source_id_index=369098852,
        sampling_rate=4096,
        sample_pool=12237120,
        drops=30,
        input_format=0,
        input_if=369098852,
        output_format=0,
        output_if=369098851,
        records=("0:1",),
        frame_length=106,
        header_protocol=1,
        header_length=102,
        stripped=4,
        src_mac="4c:ae:a3:52:0f:f6",
        dst_mac="00:01:10:62:14:93",
        ethertype=0x0800,
        vlan=1493,
        src="49.49.49.2",
        dst="49.49.49.109",
        ip_length=80,
        protocol=6,
        tos=0,
        ttl=62,
        src_port=32017,
        dst_port=443,
        tcp_flags=16,
    )


def test_akvorado_vxlan_outer_packet(corpus: Path) -> None:
    # we do not decapsulate VXLAN: the record describes the outer UDP packet
    (sample,) = decode_one(corpus, "akvorado__data-encap-vxlan.pcap").flow_samples
    assert (sample.src, sample.dst, sample.protocol, sample.dst_port) == (
        "192.168.108.40",
        "192.168.15.14",
        17,
        4789,
    )


def test_gopacket_packet1_header_and_first_samples(corpus: Path) -> None:
    datagram = decode_one(corpus, "gopacket__SFlowTestPacket1.pcap")
    assert datagram.header == DatagramHeader("10.1.248.22", 17, 40443, 1078576845, 7)
    first, second = datagram.flow_samples[:2]
    assert first == FlowSample(
        agent="10.1.248.22",
        sub_agent=17,
        datagram_sequence=40443,
        sequence=0x2627E8,
        expanded=False,
        source_id_type=0,
        source_id_index=0x213,
        sampling_rate=0x3E80,
        sample_pool=0x50BDE580,
        drops=0,
        input_format=0,
        input_if=0x213,
        output_format=0,
        output_if=0,
        records=("0:1", "0:1001"),
        frame_length=0x5D2,
        header_protocol=1,
        header_length=0x80,
        stripped=4,
        src_mac="b8:ca:3a:6d:f0:40",
        dst_mac="3c:8a:b0:e7:54:41",
        ethertype=0x0800,
        src="10.1.14.22",
        dst="54.240.235.69",
        ip_length=1472,
        protocol=6,
        tos=0,
        ttl=64,
        src_port=30461,
        dst_port=80,
        tcp_flags=16,
        src_vlan=0x202,
        src_priority=0,
        dst_vlan=0,
        dst_priority=0,
    )
    assert (second.sequence, second.source_id_index, second.sampling_rate) == (0x15E5C1E, 0x257, 2000)
    assert len(datagram.flow_samples) == 6 and len(datagram.counter_samples) == 1


def test_gopacket_packet2_reference_agent(corpus: Path) -> None:
    datagram = decode_one(corpus, "gopacket__SFlowTestPacket2.pcap")
    assert datagram.header == DatagramHeader("192.168.91.17", 0, 46394, 52000, 3)
    gateway = datagram.flow_samples[0]
    assert gateway.records == ("0:1005", "0:1004", "0:1003", "0:1")
    assert (gateway.bgp_next_hop, gateway.as_number, gateway.src_as, gateway.src_peer_as) == (
        "13.12.11.10",
        65001,
        123,
        999,
    )
    assert gateway.dst_as_path == (123, 456, 789, 11111, 22222, 33333, 777, 888, 999)
    assert (gateway.communities, gateway.local_pref) == ((12, 13), 432)


def test_gopacket_ethernet_frame_records(corpus: Path) -> None:
    datagram = decode_one(corpus, "gopacket__SFlowEthernetFramePacket.bin")
    assert datagram.header == DatagramHeader("185.120.22.246", 0x186A0, 0xB, 0x3297, 7)
    assert datagram.flow_samples[0] == FlowSample(
        agent="185.120.22.246",
        sub_agent=0x186A0,
        datagram_sequence=0xB,
        sequence=0x7D,
        expanded=False,
        source_id_type=0,
        source_id_index=3,
        sampling_rate=1000,
        sample_pool=125000,
        drops=0,
        input_format=0,
        input_if=0x3FFFFFFF,
        output_format=0,
        output_if=3,
        records=("0:2",),
        frame_length=16,
        src_mac="00:25:90:a2:53:58",
        dst_mac="00:1d:b5:a2:5f:c0",
        ethertype=3,
    )
    assert all(sample.dst is None for sample in datagram.flow_samples)


def test_gopacket_extended_switch_and_router(corpus: Path) -> None:
    (switch,) = decode_one(corpus, "gopacket__SFlowTestPacket4.bin").flow_samples
    assert (switch.src_vlan, switch.src_priority, switch.dst_vlan, switch.dst_priority) == (
        3,
        2,
        5,
        0xFFFFFFFF,
    )
    assert (switch.sequence, switch.sampling_rate, switch.sample_pool, switch.drops) == (
        0x123,
        256,
        0x337,
        0x5623,
    )
    v4 = decode_one(corpus, "gopacket__SFlowTestPacket5.bin")
    v6 = decode_one(corpus, "gopacket__SFlowTestPacket8.bin")
    # both datagrams understate their only sample's length; the datagram end bounds it
    assert v4.last_sample_length_mismatch and v6.last_sample_length_mismatch
    assert (v4.flow_samples[0].next_hop, v4.flow_samples[0].src_mask, v4.flow_samples[0].dst_mask) == (
        "192.168.1.33",
        0xFFFFFFFF,
        0xFFFFFF80,
    )
    assert v6.flow_samples[0].next_hop == "2001:db8::"


def test_goflow2_drop_samples(corpus: Path) -> None:
    base = DiscardSample(
        sequence=2,
        source_id_type=0,
        source_id_index=1,
        drops=256,
        input_if=1,
        output_if=2,
        reason=1,
        records=(),
    )
    queue = decode_one(corpus, "goflow2__TestSFlowDecodeDropEgressQueue.bin")
    acl = decode_one(corpus, "goflow2__TestSFlowDecodeDropExtendedACL.bin")
    function = decode_one(corpus, "goflow2__TestSFlowDecodeDropExtendedFunction.bin")
    assert queue.discard_samples == (replace(base, records=("0:1036",), egress_queue=42),)
    assert acl.discard_samples == (
        replace(base, records=("0:1037",), acl_number=42, acl_name="foo!", acl_direction=2),
    )
    assert function.discard_samples == (replace(base, records=("0:1038",), function_symbol="foobar"),)
    assert queue.header == DatagramHeader("192.168.119.184", 100000, 3, 12414, 1)


def test_logstash_counter_samples(corpus: Path) -> None:
    datagram = decode_one(corpus, "logstash-codec-sflow__sflow_counters_sample.dat")
    assert len(datagram.counter_samples) == 12
    formats = [name for sample in datagram.counter_samples for name in sample.records]
    assert sorted(set(formats)) == ["0:1", "0:1001", "0:2201"]
    lag = decode_one(corpus, "logstash-codec-sflow__sflow_with_lag_counters.dat")
    assert (len(lag.flow_samples), len(lag.counter_samples)) == (5, 2)
    assert {sample.sampling_rate for sample in lag.flow_samples} == {16384, 1024}
