"""The pcap/pcapng reader: every container and link-type variant, built here byte by byte."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from topfib.collector.common.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    PcapError,
    is_capture,
    udp_from_frame,
    udp_payloads,
)

PAYLOAD = b"\x00\x00\x00\x05sflow-ish payload"


def udp(payload: bytes, sport: int = 50000, dport: int = 6343) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(src: str, payload: bytes, protocol: int = 17, flags_fragment: int = 0x4000) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        1,
        flags_fragment,
        64,
        protocol,
        0,
        socket.inet_aton(src),
        socket.inet_aton("127.0.0.1"),
    )
    return header + payload


def ipv6(src: str, payload: bytes) -> bytes:
    return (
        struct.pack("!IHBB", 6 << 28, len(payload), 17, 64)
        + socket.inet_pton(socket.AF_INET6, src)
        + socket.inet_pton(socket.AF_INET6, "::1")
        + payload
    )


def ethernet(ethertype: int, payload: bytes, tags: tuple[int, ...] = ()) -> bytes:
    frame = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
    for tpid, vlan in zip((0x88A8, 0x8100), tags, strict=False):
        frame += struct.pack("!HH", tpid, vlan)
    return frame + struct.pack("!H", ethertype) + payload


def pcap(
    frames: list[bytes], link_type: int = LINKTYPE_ETHERNET, order: str = "<", nanos: bool = False
) -> bytes:
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, link_type)
    for frame in frames:
        out += struct.pack(order + "IIII", 1700000000, 123, len(frame), len(frame)) + frame
    return out


def pcapng_block(order: str, block_type: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(order + "II", block_type, length) + body + struct.pack(order + "I", length)


def pcapng(frames: list[bytes], link_type: int = LINKTYPE_ETHERNET, order: str = "<") -> bytes:
    shb = pcapng_block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = pcapng_block(order, 1, struct.pack(order + "HHI", link_type, 0, 65535))
    blocks = [shb, idb]
    for index, frame in enumerate(frames):
        if index % 2:
            blocks.append(pcapng_block(order, 3, struct.pack(order + "I", len(frame)) + frame))
        else:
            epb = struct.pack(order + "IIIII", 0, 1, 2, len(frame), len(frame)) + frame
            blocks.append(pcapng_block(order, 6, epb))
    blocks.append(pcapng_block(order, 5, b"statistics"))  # unknown to us: skipped
    return b"".join(blocks)


V4_FRAME = ethernet(0x0800, ipv4("192.0.2.1", udp(PAYLOAD)))
V6_FRAME = ethernet(0x86DD, ipv6("2001:db8::1", udp(PAYLOAD)))
EXPECTED = [("192.0.2.1", PAYLOAD), ("2001:db8::1", PAYLOAD)]


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nanos", [False, True])
def test_pcap_both_byte_orders_and_resolutions(order: str, nanos: bool) -> None:
    assert list(udp_payloads(pcap([V4_FRAME, V6_FRAME], order=order, nanos=nanos))) == EXPECTED


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_enhanced_and_simple_packet_blocks(order: str) -> None:
    capture = pcapng([V4_FRAME, V6_FRAME, V4_FRAME], order=order)
    assert is_capture(capture)
    assert list(udp_payloads(capture)) == [*EXPECTED, EXPECTED[0]]


def test_vlan_and_qinq_tags() -> None:
    tagged = ethernet(0x0800, ipv4("192.0.2.7", udp(PAYLOAD)), tags=(100,))
    double = ethernet(0x86DD, ipv6("2001:db8::7", udp(PAYLOAD)), tags=(100, 200))
    assert list(udp_payloads(pcap([tagged, double]))) == [("192.0.2.7", PAYLOAD), ("2001:db8::7", PAYLOAD)]


def test_raw_ip_and_linux_cooked_link_types() -> None:
    raw = [ipv4("192.0.2.1", udp(PAYLOAD)), ipv6("2001:db8::1", udp(PAYLOAD))]
    assert list(udp_payloads(pcap(raw, link_type=LINKTYPE_RAW))) == EXPECTED
    sll = b"\x00\x00\x00\x01\x00\x06" + b"\x02" * 8 + b"\x08\x00" + ipv4("192.0.2.1", udp(PAYLOAD))
    assert udp_from_frame(LINKTYPE_LINUX_SLL, sll) == ("192.0.2.1", PAYLOAD)
    sll2 = b"\x86\xdd" + b"\x00" * 18 + ipv6("2001:db8::1", udp(PAYLOAD))
    assert udp_from_frame(LINKTYPE_LINUX_SLL2, sll2) == ("2001:db8::1", PAYLOAD)


def test_non_udp_fragments_and_junk_frames_are_skipped() -> None:
    tcp = ethernet(0x0800, ipv4("192.0.2.1", b"\x00" * 20, protocol=6))
    fragment = ethernet(0x0800, ipv4("192.0.2.1", udp(PAYLOAD), flags_fragment=0x2001))
    arp = ethernet(0x0806, b"\x00" * 28)
    frames = [tcp, fragment, arp, b"\x01\x02", V4_FRAME]
    assert list(udp_payloads(pcap(frames))) == [EXPECTED[0]]


def test_ethernet_padding_after_the_udp_datagram_is_dropped() -> None:
    padded = V4_FRAME + b"\0" * 6
    assert list(udp_payloads(pcap([padded]))) == [EXPECTED[0]]


def test_capture_cut_short_stops_cleanly() -> None:
    whole = pcap([V4_FRAME, V6_FRAME])
    assert list(udp_payloads(whole[:-10])) == [EXPECTED[0]]
    whole_ng = pcapng([V4_FRAME, V6_FRAME])
    assert list(udp_payloads(whole_ng[:-30])) == [EXPECTED[0]]


def test_not_a_capture() -> None:
    assert not is_capture(b"\x00\x00\x00\x05")
    with pytest.raises(PcapError):
        list(udp_payloads(b"\x00\x00\x00\x05" + b"\x00" * 40))
    with pytest.raises(PcapError):
        list(udp_payloads(b"\xd4\xc3"))


def test_corpus_captures_yield_one_sflow_datagram_each(corpus: Path) -> None:
    for path in sorted((corpus / "sflow").glob("*.pcap")):
        datagrams = list(udp_payloads(path.read_bytes()))
        assert len(datagrams) == 1, path.name
        assert datagrams[0][1][:4] == b"\x00\x00\x00\x05", path.name
