"""topfib replay: payload extraction, sample counting, pacing, and sending over loopback."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from topfib.collector.flow.replay import Pacer, flow_payloads, flow_protocol, replay, sample_count
from topfib.collector.sflow.encode import FlowSampleSpec, encode_datagram
from topfib.controller.cli.replay import parse_destination, run_replay

SPEC = FlowSampleSpec(src="198.51.100.1", dst="192.0.2.1")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += seconds


def test_sample_count_reads_the_header_of_each_protocol() -> None:
    assert sample_count(encode_datagram("192.0.2.1", 0, 1, 0, [SPEC] * 7)) == 7
    assert sample_count(encode_datagram("2001:db8::1", 0, 1, 0, [SPEC] * 3)) == 3
    netflow5 = struct.pack("!HH", 5, 30) + bytes(20)
    assert flow_protocol(netflow5) == "netflow5" and sample_count(netflow5) == 30
    ipfix = struct.pack("!HH", 10, 16) + bytes(12)
    assert flow_protocol(ipfix) == "ipfix" and sample_count(ipfix) == 1
    assert flow_protocol(b"GET / HTTP/1.1\r\n") is None
    assert flow_protocol(b"\x00\x00\x00\x05") is None  # too short for an sFlow header


def test_flow_payloads_from_captures_and_raw_files(corpus: Path, tmp_path: Path) -> None:
    pcap = corpus / "sflow" / "akvorado__data-1140.pcap"
    payloads = flow_payloads(pcap, pcap.read_bytes())
    assert len(payloads) == 1 and payloads[0][:4] == b"\x00\x00\x00\x05"
    assert sample_count(payloads[0]) == 5
    raw = corpus / "sflow" / "goflow2__TestSFlowDecode.bin"
    assert flow_payloads(raw, raw.read_bytes()) == [raw.read_bytes()]
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a flow datagram")
    assert flow_payloads(junk, junk.read_bytes()) == []


def test_pacer_delay() -> None:
    pacer = Pacer(rate=1000.0, start=10.0)
    assert pacer.delay(500, now=10.2) == pytest.approx(0.3)
    assert pacer.delay(500, now=11.0) == 0.0
    assert Pacer(rate=0.0, start=0.0).delay(10**9, now=0.0) == 0.0


def test_replay_paces_by_samples_and_repeats_passes() -> None:
    payloads = [encode_datagram("192.0.2.1", 0, i, 0, [SPEC] * 10) for i in range(64)]
    sent: list[bytes] = []
    clock = FakeClock()
    stats = replay(payloads, sent.append, rate=1000.0, passes=range(3), clock=clock, sleep=clock.sleep)
    assert sent == payloads * 3
    assert (stats.datagrams, stats.samples) == (192, 1920)
    # 1920 samples at 1000/s: the last pacing check (before datagram 160, 1600 samples) waits until 1.6 s
    assert clock.slept == pytest.approx(1.6)
    assert stats.seconds == pytest.approx(1.6)


def test_replay_counts_send_errors_and_continues() -> None:
    calls = 0

    def flaky(payload: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionRefusedError

    stats = replay([encode_datagram("192.0.2.1", 0, 1, 0, [SPEC])] * 3, flaky, rate=0.0, passes=range(1))
    assert (stats.datagrams, stats.send_errors) == (2, 1)


def test_run_replay_sends_every_payload_to_loopback(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = corpus / "sflow" / "akvorado__data-1140.pcap"
    expected = flow_payloads(capture, capture.read_bytes())
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("::1", 0))
        receiver.settimeout(5.0)
        port = receiver.getsockname()[1]
        assert run_replay(capture, f"[::1]:{port}", rate=0.0, loop=False) == 0
        received = [receiver.recv(65535) for _ in expected]
    assert received == expected
    assert "datagrams=1 samples=5" in capsys.readouterr().err


@pytest.mark.parametrize("to", ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", ":6343"])
def test_run_replay_rejects_bad_destinations(to: str, corpus: Path) -> None:
    assert run_replay(corpus / "sflow" / "goflow2__TestSFlowDecode.bin", to, 0.0, False) == 2


def test_run_replay_rejects_negative_rate(corpus: Path) -> None:
    assert run_replay(corpus / "sflow" / "goflow2__TestSFlowDecode.bin", "127.0.0.1:9", -1.0, False) == 2


def test_run_replay_reports_unreadable_and_empty_files(tmp_path: Path) -> None:
    assert run_replay(tmp_path / "missing.pcap", "127.0.0.1:9", 0.0, False) == 1
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert run_replay(empty, "127.0.0.1:9", 0.0, False) == 1


def test_parse_destination() -> None:
    assert parse_destination("[::1]:6343") == ("::1", 6343)
    assert parse_destination("localhost:6343") == ("localhost", 6343)
