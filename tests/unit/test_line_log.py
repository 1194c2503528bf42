"""The rotating line log ExaBGP's output goes to."""

from __future__ import annotations

from pathlib import Path

import pytest

from topfib.controller.exabgp.line_log import LineLog


def test_lines_append_and_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sw1.exabgp.log"
    log = LineLog(path, max_bytes=1000)
    log.write("one")
    log.close()
    log = LineLog(path, max_bytes=1000)
    log.write("two")
    log.close()
    assert path.read_text() == "one\ntwo\n"
    assert not log.previous.exists()


def test_past_the_bound_the_file_becomes_dot_one_and_no_line_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "sw1.exabgp.log"
    log = LineLog(path, max_bytes=20)
    lines = [f"line {i:02d} é" for i in range(7)]  # 11 bytes each with the newline (é is 2)
    for line in lines:
        log.write(line)
    log.close()
    # rotated after lines 1, 3, 5: the current file has line 6, .1 has lines 4-5
    assert path.read_text(encoding="utf-8").splitlines() == lines[6:]
    assert log.previous.read_text(encoding="utf-8").splitlines() == lines[4:6]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sw1.exabgp.log", "sw1.exabgp.log.1"]


def test_a_reopened_log_counts_what_is_already_there(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("x" * 15 + "\n")
    log = LineLog(path, max_bytes=20)
    log.write("1234")  # 16 + 5 = 21 bytes: rotates
    log.close()
    assert path.read_text() == ""
    assert log.previous.read_text() == "x" * 15 + "\n1234\n"


def test_a_bound_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        LineLog(tmp_path / "x.log", max_bytes=0)
