"""Export loss from NetFlow v5 / v9 and IPFIX sequence numbers, per exporter stream.

Each version numbers something different, so loss is counted in that unit:

* v5: ``flow_sequence`` counts flows; a datagram of n flows moves the next expected value by n.
* v9: ``sequence`` counts export packets, per (exporter, source id): the next one is +1.
* IPFIX: ``sequence`` counts data records, per (exporter, observation domain): a message of n
  data records moves it by n. RFC 7011 counts options data records too, some exporters do not:
  a message is in order when it follows either count. When a message's record count is not
  known (a data set waiting for its template, variable-length records) the stream re-baselines
  on the next message instead of guessing.

A forward jump of d (modulo 2^32) counts d missing. A step back within :data:`REORDER_WINDOW` is
a late or duplicated datagram and is ignored; a larger one (or, for v9, one whose uptime went
back by more than a second) is an exporter restart: the stream starts over from there.

Streams are bounded: source ids, observation domains and v5 engines are the sender's choice, so
an exporter keeps at most :data:`MAX_STREAMS_PER_EXPORTER` (a new one evicts its oldest) and one
exporter cycling through ids cannot make the others' streams start over. Past the total bound the
tracker starts over. Both are counted in ``evicted``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

HALF_RANGE: Final = 1 << 31
U32: Final = 0xFFFFFFFF
MAX_STREAMS: Final = 10_000
MAX_STREAMS_PER_EXPORTER: Final = 256
UNIT_BY_VERSION: Final = {5: "flows", 9: "packets", 10: "records"}
# steps back tolerated as reordering, in each version's unit
REORDER_WINDOW: Final = {5: 30 * 64, 9: 64, 10: 64 * 64}
RESTART_UPTIME_STEP_MS: Final = 1000  # v9: a step back with the uptime back this far is a restart

StreamKey = tuple[str, int, int]  # (exporter, version, source id / observation domain / v5 engine)


@dataclass(slots=True)
class _Stream:
    expected: int | None  # next sequence number; None: re-baseline on the next message
    uptime_ms: int | None
    expected_alt: int | None = None  # the same without options records (IPFIX)


@dataclass(slots=True)
class SequenceTracker:
    max_streams: int = MAX_STREAMS
    max_per_exporter: int = MAX_STREAMS_PER_EXPORTER
    # (exporter, unit) → missing count since the tracker started
    lost: dict[tuple[str, str], int] = field(default_factory=dict)
    evicted: int = 0  # streams forgotten at the bounds since the tracker started
    _streams: dict[StreamKey, _Stream] = field(default_factory=dict)
    _by_exporter: dict[str, deque[StreamKey]] = field(default_factory=dict)  # oldest first

    def observe(
        self,
        key: StreamKey,
        sequence: int,
        count: int | None,
        uptime_ms: int | None = None,
        count_without_options: int | None = None,
    ) -> int:
        """One message of stream ``key``: its sequence number and how many units it carries
        (None: unknown; for IPFIX also without options records). Returns the units found missing
        before it."""
        stream = self._streams.get(key)
        if stream is not None and sequence == stream.expected and count is not None:  # in order: most
            stream.expected = (sequence + count) & U32
            without = count if count_without_options is None else count_without_options
            stream.expected_alt = (sequence + without) & U32
            stream.uptime_ms = uptime_ms
            return 0
        following = None if count is None else (sequence + count) & U32
        alt_count = count if count_without_options is None else count_without_options
        following_alt = None if alt_count is None or following is None else (sequence + alt_count) & U32
        if stream is None:
            self._make_room(key)
            self._streams[key] = _Stream(following, uptime_ms, following_alt)
            return 0
        if stream.expected is None:
            stream.expected, stream.uptime_ms, stream.expected_alt = following, uptime_ms, following_alt
            return 0
        steps = [(sequence - stream.expected) & U32]
        if stream.expected_alt is not None:
            steps.append((sequence - stream.expected_alt) & U32)
        step = min(steps)
        if step >= HALF_RANGE:  # behind what was expected: late, or the exporter restarted
            uptime_back = uptime_ms is not None and stream.uptime_ms is not None and (
                uptime_ms + RESTART_UPTIME_STEP_MS < stream.uptime_ms
            )  # fmt: skip
            behind = min((stream.expected - sequence) & U32, ((stream.expected_alt or 0) - sequence) & U32)
            if uptime_back or behind > REORDER_WINDOW.get(key[1], 0):
                stream.expected, stream.uptime_ms, stream.expected_alt = following, uptime_ms, following_alt
            return 0
        stream.expected, stream.uptime_ms, stream.expected_alt = following, uptime_ms, following_alt
        if step:
            unit_key = (key[0], UNIT_BY_VERSION.get(key[1], "records"))
            self.lost[unit_key] = self.lost.get(unit_key, 0) + step
        return step

    def _make_room(self, key: StreamKey) -> None:
        """Room for stream ``key`` (not yet known), forgetting streams at the bounds."""
        order = self._by_exporter.get(key[0])
        if order is not None and len(order) >= self.max_per_exporter:
            del self._streams[order.popleft()]
            self.evicted += 1
        elif len(self._streams) >= self.max_streams:
            self.evicted += len(self._streams)
            self._streams.clear()
            self._by_exporter.clear()
            order = None
        if order is None:
            order = self._by_exporter[key[0]] = deque()
        order.append(key)
