"""An append-only line log that rotates by size: ``path`` and one previous ``path.1``.

ExaBGP's output is copied into a log per switch for as long as topfib runs; without a bound a
session flapping for a week fills the disk. Rotating in process (rename, reopen) needs no
logrotate and loses no line: the line that crosses the bound is the last of the old file.
The directory must be private and the log is opened without following symlinks
(:mod:`topfib.collector.common.safe_files`): topfib may run as root.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

from topfib.collector.common.safe_files import ensure_private_dir, open_append_text

DEFAULT_MAX_BYTES = 16 * 1024 * 1024


class LineLog:
    """Append lines to ``path``; past ``max_bytes`` it becomes ``path.1`` (replacing the last one).

    Raises ``OSError`` (:class:`topfib.collector.common.safe_files.UnsafePathError` for a symlink, a foreign
    file or a directory others can write to) when the log cannot be opened."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.path = path
        self.max_bytes = max_bytes
        ensure_private_dir(path.parent)
        self._file: TextIO = open_append_text(path)
        self._size = self._file.tell()

    @property
    def previous(self) -> Path:
        return self.path.with_name(self.path.name + ".1")

    def write(self, line: str) -> None:
        text = line + "\n"
        self._file.write(text)
        self._file.flush()
        self._size += len(text.encode("utf-8"))
        if self._size >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._file.close()
        os.replace(self.path, self.previous)
        self._file = open_append_text(self.path)
        self._size = 0

    def close(self) -> None:
        self._file.close()
