"""Load a RIB file into a :class:`Rib`: an MRT RIB dump or a CAIDA pfx2as table, gz/bz2/plain.

The service preloads a switch's ``rib_file`` under the session ``"file"``; live BGP paths replace
it per family at the session's End-of-RIB (see :meth:`Rib.apply`). The offline commands
(``topfib rib``, ``topfib simulate``) use the same loader.

Bad lines and records are counted by reason and logged at a limited rate; a cut stream loads
what came before the cut. Only a file that is neither format (or unreadable) is an error.

Memory: every path is kept. A pfx2as table is one path per prefix (MOAS: one per origin); an MRT
dump from a collector with P peers holds P paths per prefix, so a full multi-peer dump needs
several GB — give the service a single-peer dump or a pfx2as table.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from topfib.collector.common.compressed import StreamStatus, read_chunks
from topfib.collector.common.log_budget import LogLimiter
from topfib.collector.common.prefixes import PrefixError
from topfib.collector.rib.heap import trim_heap
from topfib.collector.rib.mrt import TABLE_DUMP, TABLE_DUMP_V2, MrtRibDecoder
from topfib.collector.rib.pfx2as import Pfx2asError, Pfx2asParser
from topfib.collector.rib.rib import PRELOAD_SESSION, Rib

log = logging.getLogger(__name__)

MRT = "mrt"
PFX2AS = "pfx2as"
_MRT_TYPES = frozenset({TABLE_DUMP, TABLE_DUMP_V2, 16, 17})  # 16/17: BGP4MP (read, then skipped)


class RibFileError(ValueError):
    """The file cannot be read as a RIB at all."""


@dataclass
class LoadReport:
    """What a load did: ``routes`` paths applied; ``problems`` bad input by reason."""

    path: str
    format: str
    compression: str = "none"
    routes: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    stream_error: str | None = None
    seconds: float = 0.0


def detect_format(head: bytes) -> str:
    """``mrt`` or ``pfx2as`` from the first decompressed bytes; raises :class:`RibFileError`."""
    first_line = head.split(b"\n", 1)[0]
    if b"\t" in first_line and first_line.replace(b"\t", b"").replace(b"\r", b"").isascii():
        return PFX2AS
    if len(head) >= 12 and int.from_bytes(head[4:6], "big") in _MRT_TYPES:
        return MRT
    raise RibFileError("neither an MRT dump nor a pfx2as table (network<TAB>length<TAB>asn)")


def load_rib_file(path: Path, rib: Rib, session: str = PRELOAD_SESSION) -> LoadReport:
    """Add every route of ``path`` to ``rib`` under ``session``."""
    started = time.perf_counter()
    status = StreamStatus()
    try:
        chunks = read_chunks(path, status)
        head = next(chunks, b"")
    except OSError as exc:
        raise RibFileError(f"cannot read {path}: {exc}") from None
    if not head:
        raise RibFileError(f"{path}: empty (or nothing decompressed: {status.error or 'no data'})")
    report = LoadReport(str(path), detect_format(head), status.compression)
    limiter = LogLimiter(interval_s=10.0)
    rest = _prepend(head, chunks)
    if report.format == PFX2AS:
        _load_pfx2as(rest, rib, session, report, limiter)
    else:
        _load_mrt(rest, rib, session, report)
    trim_heap()  # the load's temporaries are gone: hand their memory back
    report.stream_error = status.error
    report.seconds = time.perf_counter() - started
    if status.error:
        log.warning("%s: %s; loaded %d routes read before it", path, status.error, report.routes)
    if report.problems:
        log.warning("%s: skipped bad input %s", path, dict(report.problems))
    return report


def _prepend(head: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    yield head
    yield from chunks


def _load_pfx2as(chunks: Iterator[bytes], rib: Rib, session: str, report: LoadReport,
                 limiter: LogLimiter) -> None:
    parser = Pfx2asParser()
    announce = rib.announce
    for line_number, line in enumerate(_lines(chunks), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            prefix, paths = parser.parse_line(line)
        except Pfx2asError as exc:
            report.problems[exc.reason] += 1
            limiter.warn(exc.reason, time.monotonic(), f"{report.path}:{line_number}: {exc}")
            continue
        try:
            for path in paths:
                announce(session, prefix, path)
        except PrefixError as exc:
            report.problems["bad_prefix"] += 1
            limiter.warn("bad_prefix", time.monotonic(), f"{report.path}:{line_number}: {exc}")
            continue
        report.routes += len(paths)


def _lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """Text lines across chunk boundaries (undecodable bytes become U+FFFD and fail parsing)."""
    pending = b""
    for chunk in chunks:
        data = pending + chunk
        lines = data.split(b"\n")
        pending = lines.pop()
        for raw in lines:
            yield raw.decode("utf-8", "replace")
    if pending:
        yield pending.decode("utf-8", "replace")


def _load_mrt(chunks: Iterator[bytes], rib: Rib, session: str, report: LoadReport) -> None:
    decoder = MrtRibDecoder()
    announce = rib.announce
    for chunk in chunks:
        for prefix, path in decoder.feed(chunk):
            announce(session, prefix, path)
            report.routes += 1
    decoder.finish()
    for reason, count in decoder.counters.items():
        if reason not in ("records", "rib_entries", "peer_index"):
            report.problems[reason] += count
