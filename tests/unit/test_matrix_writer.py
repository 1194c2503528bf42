"""Traffic matrix files: names, rotation, retention, atomic completion, both formats parse back."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from topfib.collector.common.metrics import Registry
from topfib.collector.matrix.traffic_matrix import MatrixInterval, MatrixRow
from topfib.collector.matrix.writer import MatrixFileWriter, MatrixFormat

START = 1_764_104_400  # 2025-11-25T21:00:00Z


def interval(start: int, length: int = 60, complete: bool = True, scale: float = 1.0) -> MatrixInterval:
    return MatrixInterval(start, start + length, complete, (
        MatrixRow("edge1", 7, "192.0.2.1", 64496, 1500.0 * scale, 1.0 * scale, 1),
        MatrixRow("edge1", 7, None, 0, 0.5, 2.0, 2),
        MatrixRow("edge1", None, None, None, 99.0, 3.0, 3, other=True),
    ))


def writer(tmp_path: Path, file_format: MatrixFormat = "jsonl", file_interval_s: int = 60,
           keep_files: int = 100, registry: Registry | None = None) -> MatrixFileWriter:
    out = MatrixFileWriter(tmp_path / "matrix", file_format, file_interval_s, keep_files,
                           registry or Registry())
    out.prepare()
    return out


def names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def counter(registry: Registry, name: str, **labels: str) -> float:
    found = registry.get(name)
    assert found is not None
    return found.value(**labels)


def test_one_file_per_interval_named_by_its_utc_start_parses_back(tmp_path: Path) -> None:
    out = writer(tmp_path)
    out.write([interval(START), interval(START + 60, complete=False)])
    assert names(out.directory) == ["matrix-20251125T210000Z.jsonl", "matrix-20251125T210100Z.jsonl"]
    lines = (out.directory / "matrix-20251125T210000Z.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0] == {"interval_start": "2025-11-25T21:00:00Z", "interval_end": "2025-11-25T21:01:00Z",
                          "complete": True, "switch": "edge1", "input_if": 7, "next_hop": "192.0.2.1",
                          "peer_asn": 64496, "bytes": 1500, "packets": 1, "samples": 1, "other": False}
    assert records[1]["next_hop"] is None and records[1]["bytes"] == 0.5
    assert records[2]["other"] is True and records[2]["input_if"] is None
    later = json.loads((out.directory / "matrix-20251125T210100Z.jsonl").read_text().splitlines()[0])
    assert later["complete"] is False


def test_csv_has_one_header_per_file_and_parses_back(tmp_path: Path) -> None:
    out = writer(tmp_path, "csv", file_interval_s=180)
    out.write([interval(START + 60 * i, scale=i + 1) for i in range(3)])
    (name,) = names(out.directory)
    assert name == "matrix-20251125T210000Z.csv"
    text = (out.directory / name).read_text()
    assert text.count("interval_start") == 1
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == 9
    assert [r["bytes"] for r in rows[::3]] == ["1500", "3000", "4500"]
    assert [r["interval_start"] for r in rows[::3]] == ["2025-11-25T21:00:00Z", "2025-11-25T21:01:00Z",
                                                        "2025-11-25T21:02:00Z"]
    assert rows[1]["next_hop"] == "" and rows[1]["peer_asn"] == "0"  # unrouted, unknown ASN
    assert (rows[2]["other"], rows[2]["input_if"], rows[2]["switch"]) == ("true", "", "edge1")


def test_a_file_appears_under_its_name_only_when_its_span_is_over(tmp_path: Path) -> None:
    registry = Registry()
    out = writer(tmp_path, file_interval_s=180, registry=registry)
    out.write([interval(START), interval(START + 60)])
    assert names(out.directory) == [".matrix-20251125T210000Z.jsonl.part"]
    out.write([interval(START + 120)])
    assert names(out.directory) == ["matrix-20251125T210000Z.jsonl"]
    assert len((out.directory / "matrix-20251125T210000Z.jsonl").read_text().splitlines()) == 9
    out.write([interval(START + 240)])  # a gap: the next span starts its own file
    assert names(out.directory) == [".matrix-20251125T210300Z.jsonl.part", "matrix-20251125T210000Z.jsonl"]
    out.close()
    assert names(out.directory) == ["matrix-20251125T210000Z.jsonl", "matrix-20251125T210300Z.jsonl"]
    assert counter(registry, "topfib_matrix_files_written_total") == 2


def test_only_the_newest_keep_files_remain(tmp_path: Path) -> None:
    registry = Registry()
    out = writer(tmp_path, keep_files=2, registry=registry)
    (out.directory / "notes.txt").write_text("not ours")
    out.write([interval(START + 60 * i) for i in range(5)])
    assert names(out.directory) == ["matrix-20251125T210300Z.jsonl", "matrix-20251125T210400Z.jsonl",
                                    "notes.txt"]
    assert counter(registry, "topfib_matrix_files_deleted_total") == 3


def test_a_restart_within_a_span_adds_a_numbered_file(tmp_path: Path) -> None:
    first = writer(tmp_path, file_interval_s=3600)
    first.write([interval(START, complete=False)])
    first.close()
    second = writer(tmp_path, file_interval_s=3600)
    second.write([interval(START + 60, complete=False)])
    second.close()
    assert names(second.directory) == ["matrix-20251125T210000Z.1.jsonl", "matrix-20251125T210000Z.jsonl"]
    assert [p.name for p in second.final_files()] == ["matrix-20251125T210000Z.jsonl",
                                                       "matrix-20251125T210000Z.1.jsonl"]


def test_prepare_finishes_a_part_file_cut_by_a_crash(tmp_path: Path) -> None:
    directory = tmp_path / "matrix"
    directory.mkdir()
    (directory / ".matrix-20251125T210000Z.csv.part").write_text("interval_start,bytes\nA,1\nB,")
    writer(tmp_path, "csv")
    assert names(directory) == ["matrix-20251125T210000Z.csv"]
    assert (directory / "matrix-20251125T210000Z.csv").read_text() == "interval_start,bytes\nA,1\n"


def test_write_errors_are_counted_not_raised(tmp_path: Path) -> None:
    registry = Registry()
    out = writer(tmp_path, registry=registry)
    out.directory.rmdir()
    out.directory.write_text("a file where the directory was")
    out.write([interval(START)])  # must not raise
    assert counter(registry, "topfib_matrix_write_errors_total", operation="write") == 1
    out.directory.unlink()
    out.directory.mkdir()
    out.write([interval(START + 60)])  # recovers once the directory is back
    assert names(out.directory) == ["matrix-20251125T210100Z.jsonl"]


def test_prepare_raises_when_the_directory_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    out = MatrixFileWriter(tmp_path / "taken" / "matrix", registry=Registry())
    with pytest.raises(OSError):
        out.prepare()
