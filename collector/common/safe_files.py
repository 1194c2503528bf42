"""Creating files safely in directories topfib writes to, possibly as root.

A name in a directory someone else can write to may be a symlink or hard link they planted:
opened by name, topfib would append to (or truncate) whatever it points at. So every file topfib
writes is opened through here: directories are private (created 0700; an existing one must be
ours and not group/world-writable, nor may any directory above it be, unless sticky like /tmp),
files are opened with ``O_NOFOLLOW`` and must be plain files of ours, whole files are written to
an exclusively created temporary name and renamed over the final one.

Errors are :class:`UnsafePathError`, an ``OSError`` whose message names the path and the fix:
callers that already count or report ``OSError`` keep working.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import TextIO

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a planted FIFO fails, not hangs


class UnsafePathError(OSError):
    """A path topfib refuses to write through; ``strerror`` is a sentence naming the path."""

    def __init__(self, path: Path, sentence: str) -> None:
        super().__init__(errno.EPERM, sentence)
        self.filename = str(path)

    def __str__(self) -> str:
        return str(self.strerror)


def _owners() -> tuple[int, ...]:
    return (os.geteuid(), 0)


def _check_directory(path: Path, info: os.stat_result, *, is_target: bool) -> None:
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePathError(path, f"{path} is not a directory")
    if info.st_uid not in _owners():
        raise UnsafePathError(path, f"directory {path} is owned by uid {info.st_uid}, "
                                    f"not by us (uid {os.geteuid()}) or root")
    writable_by_others = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    # a sticky directory (/tmp) lets nobody else rename or delete our entries in it
    if writable_by_others and (is_target or not info.st_mode & stat.S_ISVTX):
        mode = stat.S_IMODE(info.st_mode)
        raise UnsafePathError(path, f"directory {path} is writable by group or others (mode {mode:o}): "
                                    "chmod go-w it or choose another directory")


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) mode 0700, then check it and every directory above
    it. Raises :class:`UnsafePathError` (or another ``OSError`` when it cannot be created)."""
    path = Path(os.path.abspath(path))
    missing: list[Path] = []
    current = path
    while not os.path.lexists(current):
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # created concurrently: the checks below decide
            os.mkdir(directory, PRIVATE_DIR_MODE)
    for index, directory in enumerate([path, *path.parents]):
        # A component may be a symlink, then checked by what it points at (stat follows, as the
        # kernel does) — if the link is ours or root's: one someone else planted in a shared
        # directory would choose where we write (what fs.protected_symlinks = 1 refuses too).
        link = os.lstat(directory)
        if stat.S_ISLNK(link.st_mode) and link.st_uid not in _owners():
            raise UnsafePathError(directory, f"{directory} is a symlink owned by uid {link.st_uid}, "
                                             "not by us or root: refusing to follow it")
        _check_directory(directory, os.stat(directory), is_target=index == 0)


def _check_opened(path: Path, fd: int) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise UnsafePathError(path, f"{path} is not a regular file")
    if info.st_uid not in _owners():
        raise UnsafePathError(path, f"file {path} is owned by uid {info.st_uid}, not by us or root")
    if info.st_nlink > 1:
        raise UnsafePathError(path, f"file {path} has other hard links")


def open_private_fd(path: Path, flags: int, mode: int = PRIVATE_FILE_MODE) -> int:
    """``os.open`` that never follows a symlink at ``path`` and accepts only a plain file of ours."""
    try:
        fd = os.open(path, flags | _OPEN_FLAGS, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError(path, f"{path} is a symlink: refusing to follow it") from None
        if exc.errno == errno.ENXIO:
            raise UnsafePathError(path, f"{path} is not a regular file") from None
        raise
    try:
        _check_opened(path, fd)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_append_text(path: Path) -> TextIO:
    """Open ``path`` for appending UTF-8 text (created 0600 when missing), refusing symlinks and
    anything but a plain file of ours."""
    fd = open_private_fd(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    return os.fdopen(fd, "a", encoding="utf-8", newline="")


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (mode 0600) through an exclusively created temporary file in the
    same directory, fsynced and renamed over ``path``: readers see the old or the new file whole,
    and a symlink planted at either name is replaced, never followed."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # O_EXCL, 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
