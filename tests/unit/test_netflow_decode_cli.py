"""`topfib decode` on NetFlow/IPFIX files: one decoder per run, files in the given order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from topfib.controller.cli.decode import run_decode

LI = "ipfix/logstash-codec-netflow__"
NF = "netflow/akvorado__"
FLOW_KEYS = {
    "exporter",
    "sequence",
    "sampling_rate",
    "input_if",
    "output_if",
    "bytes",
    "packets",
    "src",
    "dst",
}
EXTRA_KEYS = {"protocol", "src_port", "dst_port", "src_vlan", "dst_vlan", "next_hop", "bgp_next_hop"}
EXTRA_KEYS |= {"src_as", "dst_as", "flow_start_ms", "flow_end_ms"}


def run(files: list[Path], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, object]], str]:
    status = run_decode(files)
    out, err = capsys.readouterr()
    return status, [json.loads(line) for line in out.splitlines()], err.strip().splitlines()[-1]


def test_templates_carry_across_files(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [corpus / f"{LI}ipfix_test_netscaler_tpl.dat", corpus / f"{LI}ipfix_test_netscaler_data.dat"]
    status, records, summary = run(files, capsys)
    assert status == 0
    assert [(r["src"], r["dst"], r["exporter"]) for r in records] == [
        ("192.168.0.1", "10.0.0.1", None),
        ("10.0.0.1", "192.168.0.1", None),
        ("192.168.0.1", "10.0.0.1", None),
    ]
    assert set(records[0]) >= FLOW_KEYS | EXTRA_KEYS
    assert summary == "datagrams=2 flow_samples=3 counter_samples=0 discard_samples=0 malformed=0"


def test_templates_do_not_leak_between_runs(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run([corpus / f"{LI}ipfix_test_netscaler_tpl.dat"], capsys)
    _, records, _ = run([corpus / f"{LI}ipfix_test_netscaler_data.dat"], capsys)
    assert records == []


def test_captures_with_options_then_data(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = ("options-template", "options-data", "template", "data")
    _, records, summary = run([corpus / f"{NF}{name}.pcap" for name in names], capsys)
    assert [(r["exporter"], r["sampling_rate"]) for r in records] == [("192.0.2.100", 30000)] * 4
    assert summary == "datagrams=4 flow_samples=4 counter_samples=0 discard_samples=0 malformed=0"


def test_sflow_and_netflow_in_one_run(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [corpus / "sflow" / "goflow2__TestSFlowDecode.bin", corpus / f"{NF}nfv5.pcap"]
    _, records, summary = run(files, capsys)
    assert len(records) == 30
    assert records[0]["agent"] == "172.16.0.17"
    assert (records[1]["version"], records[1]["src_as"], records[1]["dst_as"]) == (5, 36351, 10101)
    assert summary == "datagrams=2 flow_samples=30 counter_samples=0 discard_samples=0 malformed=0"


def test_malformed_netflow_is_counted_by_reason(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, records, summary = run(
        [corpus / "netflow/logstash-codec-netflow__netflow5_test_invalid01.dat"], capsys
    )
    assert (status, records) == (0, [])
    assert summary.endswith("malformed=1 malformed.record-count=1")
