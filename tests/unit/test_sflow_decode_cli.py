"""`topfib decode`: JSON lines on stdout, a summary on stderr, exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from topfib.collector.sflow.encode import FlowSampleSpec, encode_datagram
from topfib.controller.cli.decode import run_decode
from topfib.controller.cli.decoders.registry import sniff_protocol


def test_sniff_protocol_versions() -> None:
    assert sniff_protocol(b"\x00\x00\x00\x05rest") == "sflow5"
    assert sniff_protocol(b"\x00\x05\x00\x01") == "netflow5"
    assert sniff_protocol(b"\x00\x09\x00\x01") == "netflow9"
    assert sniff_protocol(b"\x00\x0a\x00\x10") == "ipfix"
    assert sniff_protocol(b"") == "unknown"


def test_decode_raw_payload_and_capture(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = FlowSampleSpec(src="2001:db8::7", dst="2001:db8::9", src_port=1234, dst_port=443)
    raw = tmp_path / "one.bin"
    raw.write_bytes(encode_datagram("192.0.2.1", 2, 9, 1000, [spec]))
    status = run_decode([raw, corpus / "sflow" / "akvorado__data-1140.pcap"])
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert status == 0
    assert len(records) == 6
    assert records[0]["agent"] == "192.0.2.1" and records[0]["dst"] == "2001:db8::9"
    assert records[0]["exporter"] is None
    assert records[1]["agent"] == "172.16.0.3" and records[1]["exporter"] == "192.0.2.100"
    assert records[4]["dst_as_path"] == [203698, 6762, 26615]
    assert err.strip().splitlines()[-1] == (
        "datagrams=2 flow_samples=6 counter_samples=0 discard_samples=0 malformed=0"
    )


def test_malformed_and_unsupported_are_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truncated = tmp_path / "cut.dat"
    truncated.write_bytes(b"\x00\x00\x00\x05\x00\x00\x00\x01\x7f")
    garbage = tmp_path / "garbage.dump"
    garbage.write_bytes(b"\x12\x34" + b"\x00" * 18)
    status = run_decode([truncated, garbage])
    out, err = capsys.readouterr()
    assert status == 0 and out == ""
    assert "malformed sFlow datagram" in err and "truncated" in err
    assert err.strip().splitlines()[-1] == (
        "datagrams=2 flow_samples=0 counter_samples=0 discard_samples=0 malformed=1 "
        "malformed.truncated=1 unsupported.unknown=1"
    )


def test_missing_file_gives_exit_status_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_decode([tmp_path / "absent.pcap"]) == 1
    assert "unreadable_files=1" in capsys.readouterr().err


def test_whole_corpus_through_the_cli(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted((corpus / "sflow").glob("*"))
    assert run_decode(files) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 50
    assert err.strip().splitlines()[-1] == (
        "datagrams=35 flow_samples=50 counter_samples=22 discard_samples=3 malformed=0"
    )


def test_malformed_messages_are_limited_per_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = []
    for index in range(25):
        path = tmp_path / f"bad{index}.bin"
        path.write_bytes(b"\x00\x00\x00\x05\x00\x00\x00\x09")
        files.append(path)
    assert run_decode(files) == 0
    err = capsys.readouterr().err
    assert err.count("malformed sFlow datagram") == 10
    assert err.strip().splitlines()[-1].endswith("malformed=25 malformed.bad_address_type=25")
