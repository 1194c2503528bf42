"""Read a possibly compressed file (gzip, bzip2 or plain) as decompressed chunks, cut-tolerant.

A stream cut short (a partial download, the corpus's "first MB" dumps) yields everything that
decompresses before the cut and then reports it, instead of raising: the caller decodes what is
there and counts the truncation. Concatenated members (pigz, pbzip2) are read in turn.
"""

from __future__ import annotations

import bz2
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes) -> bytes: ...


@dataclass
class StreamStatus:
    """How the read ended: ``compression`` is gzip, bzip2 or none; ``error`` names a cut or damage."""

    compression: str = "none"
    error: str | None = None


def _new(compression: str) -> _Decompressor:
    if compression == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    return bz2.BZ2Decompressor()


def read_chunks(path: Path, status: StreamStatus, chunk_size: int = CHUNK) -> Iterator[bytes]:
    """Decompressed chunks of ``path``; ``status`` is filled in as the read goes."""
    with path.open("rb") as raw:
        yield from _chunks(raw, status, chunk_size)


def _chunks(raw: BinaryIO, status: StreamStatus, chunk_size: int) -> Iterator[bytes]:
    head = raw.read(chunk_size)
    if head.startswith(GZIP_MAGIC):
        status.compression = "gzip"
    elif head.startswith(BZIP2_MAGIC):
        status.compression = "bzip2"
    else:
        while head:
            yield head
            head = raw.read(chunk_size)
        return
    decompressor = _new(status.compression)
    data = head
    while data:
        try:
            out = decompressor.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            status.error = f"corrupt {status.compression} data: {exc}"
            return
        if out:
            yield out
        if decompressor.eof:
            data = decompressor.unused_data
            if data.strip(b"\0"):  # another member follows
                decompressor = _new(status.compression)
                continue
            data = raw.read(chunk_size)
            if data:
                decompressor = _new(status.compression)
            continue
        data = raw.read(chunk_size)
    if not decompressor.eof:
        status.error = f"truncated {status.compression} stream"
