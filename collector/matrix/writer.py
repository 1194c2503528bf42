"""Traffic matrix files: each closed interval as JSON lines or CSV, in rotated files.

A file covers ``file_interval_s`` (a multiple of the matrix interval) and is named after the UTC
start of that span, ``matrix-20261125T210000Z.jsonl`` (``.csv``). While its span is running it is
written under a hidden temporary name (``.matrix-20261125T210000Z.jsonl.part``) and renamed when the
span is over or the service stops, so a file under its final name is always whole. A name already
taken (the service restarted within a span) gets a sequence number: ``matrix-…Z.1.jsonl``. After
each rename the oldest files beyond ``keep_files`` are deleted. Part files left by a crash are
finished (a cut last line dropped) by :meth:`MatrixFileWriter.prepare`. The directory must be
private and no file is opened through a symlink (:mod:`topfib.collector.common.safe_files`): a planted
``.part`` symlink is reported and left alone, never followed.

Rows carry their interval: ``interval_start``/``interval_end`` (ISO 8601 UTC), ``complete``
(false when the collector did not see the whole interval), then ``switch, input_if, next_hop,
peer_asn, bytes, packets, samples, other``. CSV files start with that header row; an unrouted row
has an empty ``next_hop``, the "other" row empty key fields.

Every method but :meth:`prepare` logs and counts errors instead of raising: files are a side
output, the collector must go on. The service runs them in a thread (``asyncio.to_thread``).

Metrics: ``topfib_matrix_files_written_total``, ``topfib_matrix_files_deleted_total``,
``topfib_matrix_write_errors_total{operation}`` (``recover``: a part file left unfinished
because it is not a plain file of ours).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from topfib.collector.common.metrics import REGISTRY, Registry
from topfib.collector.common.safe_files import (
    UnsafePathError,
    ensure_private_dir,
    open_append_text,
    open_private_fd,
)
from topfib.collector.matrix.traffic_matrix import MatrixInterval, MatrixRow

log = logging.getLogger(__name__)

MatrixFormat = Literal["jsonl", "csv"]
COLUMNS = ("interval_start", "interval_end", "complete", "switch", "input_if", "next_hop", "peer_asn",
           "bytes", "packets", "samples", "other")
_FINAL_RE = re.compile(r"^matrix-(\d{8}T\d{6}Z)(?:\.(\d+))?\.(jsonl|csv)$")
_PART_RE = re.compile(r"^\.matrix-(\d{8}T\d{6}Z)\.(jsonl|csv)\.part$")


def utc_stamp(unix_s: int) -> str:
    """``1764104400`` → ``2025-11-25T21:00:00Z``."""
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _file_stamp(unix_s: int) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y%m%dT%H%M%SZ")


def _number(value: float) -> int | float:
    """Scaled counts are whole numbers almost always: write them without a ``.0``."""
    return int(value) if value.is_integer() else value


def row_record(interval: MatrixInterval, row: MatrixRow) -> dict[str, object]:
    """One row as a flat record (the JSON-lines object; CSV columns in :data:`COLUMNS` order)."""
    return {
        "interval_start": utc_stamp(interval.start),
        "interval_end": utc_stamp(interval.end),
        "complete": interval.complete,
        "switch": row.switch,
        "input_if": row.input_if,
        "next_hop": row.next_hop,
        "peer_asn": row.peer_asn,
        "bytes": _number(row.bytes),
        "packets": _number(row.packets),
        "samples": row.samples,
        "other": row.other,
    }


def format_jsonl(records: Iterable[tuple[MatrixInterval, MatrixRow]]) -> str:
    return "".join(json.dumps(row_record(interval, row), separators=(",", ":")) + "\n"
                   for interval, row in records)


def format_csv(records: Iterable[tuple[MatrixInterval, MatrixRow]], header: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(COLUMNS)
    for interval, row in records:
        record = row_record(interval, row)
        writer.writerow(_csv_cell(record[column]) for column in COLUMNS)
    return out.getvalue()


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def interval_records(interval: MatrixInterval,
                     rows: Sequence[MatrixRow] | None = None) -> list[tuple[MatrixInterval, MatrixRow]]:
    return [(interval, row) for row in (interval.rows if rows is None else rows)]


@dataclass(frozen=True, slots=True)
class _PartFile:
    window: int  # start of the file's span, Unix seconds
    path: Path


class MatrixFileWriter:
    """Writes closed matrix intervals into ``directory``. Inert until :meth:`prepare`."""

    def __init__(
        self,
        directory: Path,
        file_format: MatrixFormat = "jsonl",
        file_interval_s: int = 60,
        keep_files: int = 1440,
        registry: Registry = REGISTRY,
    ) -> None:
        if file_interval_s < 1 or keep_files < 1:
            raise ValueError("file_interval_s and keep_files must be positive")
        self.directory = directory
        self.file_format = file_format
        self.file_interval_s = file_interval_s
        self.keep_files = keep_files
        self._part: _PartFile | None = None
        # one caller at a time: a write stuck on a slow disk may still run when stop() flushes
        self._lock = threading.Lock()
        self._m_written = registry.counter("topfib_matrix_files_written_total",
                                           "Traffic matrix files completed (renamed to their final name).")
        self._m_deleted = registry.counter("topfib_matrix_files_deleted_total",
                                           "Traffic matrix files deleted, past matrix.keep_files.")
        self._m_errors = registry.counter(
            "topfib_matrix_write_errors_total",
            "Traffic matrix file operations that failed (the data stays served by the API), by operation.",
            ("operation",),
        )

    def prepare(self) -> None:
        """Create the directory (0700), check it is private and takes files, finish part files a
        crash left. Raises OSError (:class:`UnsafePathError` for a directory others can write to)."""
        ensure_private_dir(self.directory)
        tempfile.TemporaryFile(dir=self.directory).close()  # exclusive, unnamed: nothing to plant
        for path in sorted(self.directory.iterdir()):
            match = _PART_RE.match(path.name)
            if match is None:
                continue
            try:
                _drop_cut_line(path)
            except UnsafePathError as exc:
                self._failed("recover", path, exc)
                continue
            self._finish(path, match.group(1), match.group(2))
        self._prune()

    def write(self, intervals: Sequence[MatrixInterval]) -> None:
        """Append closed intervals (oldest first) to their files; completes files whose span ended."""
        with self._lock:
            for interval in intervals:
                self._write_one(interval)

    def _write_one(self, interval: MatrixInterval) -> None:
        window = interval.start - interval.start % self.file_interval_s
        if self._part is not None and self._part.window != window:
            self._complete_part()
        if self._part is None:
            stamp = _file_stamp(window)
            self._part = _PartFile(window, self.directory / f".matrix-{stamp}.{self.file_format}.part")
        try:
            self._append(self._part.path, interval)
        except OSError as exc:
            self._failed("write", self._part.path, exc)
            return
        if interval.end >= window + self.file_interval_s:
            self._complete_part()

    def close(self) -> None:
        """Complete the file being written (shutdown)."""
        with self._lock:
            if self._part is not None:
                self._complete_part()

    def _append(self, path: Path, interval: MatrixInterval) -> None:
        records = interval_records(interval)
        with open_append_text(path) as out:
            size = out.tell()
            text = (format_csv(records, header=size == 0) if self.file_format == "csv"
                    else format_jsonl(records))
            try:
                out.write(text)
                out.flush()
            except OSError:
                out.truncate(size)  # no half interval left behind (best effort: the disk may be full)
                raise

    def _complete_part(self) -> None:
        part = self._part
        self._part = None
        assert part is not None
        if not os.path.lexists(part.path):  # every write to it failed
            return
        self._finish(part.path, _file_stamp(part.window), self.file_format)
        self._prune()

    def _finish(self, part: Path, stamp: str, extension: str) -> None:
        """fsync, then rename to the first free final name."""
        try:
            fd = open_private_fd(part, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            sequence = 0
            while True:
                suffix = f".{sequence}" if sequence else ""
                final = self.directory / f"matrix-{stamp}{suffix}.{extension}"
                if not os.path.lexists(final):  # a dangling symlink takes the name too
                    break
                sequence += 1
            os.replace(part, final)
        except OSError as exc:
            self._failed("rename", part, exc)
            return
        self._m_written.inc()

    def final_files(self) -> list[Path]:
        """Completed files in the directory, oldest first."""
        found: list[tuple[str, int, Path]] = []
        for path in self.directory.iterdir():
            match = _FINAL_RE.match(path.name)
            if match is not None:
                found.append((match.group(1), int(match.group(2) or 0), path))
        return [path for _, _, path in sorted(found)]

    def _prune(self) -> None:
        try:
            files = self.final_files()
        except OSError as exc:
            self._failed("list", self.directory, exc)
            return
        for path in files[: max(0, len(files) - self.keep_files)]:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                self._failed("delete", path, exc)
                continue
            self._m_deleted.inc()

    def _failed(self, operation: str, path: Path, exc: OSError) -> None:
        self._m_errors.inc(operation=operation)
        log.warning("traffic matrix: %s %s failed: %s", operation, path, exc.strerror or exc)


def _drop_cut_line(path: Path) -> None:
    """Truncate a file after its last newline (a crash may have cut the last line)."""
    with os.fdopen(open_private_fd(path, os.O_RDWR), "r+b") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)
