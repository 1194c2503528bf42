"""Data sets that arrived before their template, held briefly so a late template can still claim them.

UDP reorders, and exporters send templates only every few seconds or packets, so the first data
after a collector (re)start or a template refresh often precedes its template. A bounded number
of such sets is held for a bounded number of datagrams (the decoder's clock: it takes no wall
time), then dropped and counted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from topfib.collector.netflow.message import MessageHeader
from topfib.collector.netflow.templates import DomainKey


@dataclass(frozen=True, slots=True)
class PendingSet:
    domain: DomainKey
    template_id: int
    body: bytes  # the data set's records, set header stripped
    header: MessageHeader
    received_at: int  # decoder datagram count when it arrived


class PendingSets:
    def __init__(self, max_sets: int = 256, max_age_datagrams: int = 64) -> None:
        self._max_sets = max_sets
        self._max_age = max_age_datagrams
        self._held: deque[PendingSet] = deque()

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, pending: PendingSet) -> int:
        """Keep ``pending``; returns how many older sets were dropped to make room."""
        if self._max_sets <= 0:
            return 1
        dropped = 0
        while len(self._held) >= self._max_sets:
            self._held.popleft()
            dropped += 1
        self._held.append(pending)
        return dropped

    def release(self, domain: DomainKey, template_id: int) -> list[PendingSet]:
        """Take out every held set waiting for this template, oldest first."""
        if not any(p.domain == domain and p.template_id == template_id for p in self._held):
            return []
        released = [p for p in self._held if p.domain == domain and p.template_id == template_id]
        self._held = deque(p for p in self._held if not (p.domain == domain and p.template_id == template_id))
        return released

    def expire(self, now: int) -> int:
        """Drop sets held for more than the maximum age; returns how many."""
        dropped = 0
        while self._held and now - self._held[0].received_at > self._max_age:
            self._held.popleft()
            dropped += 1
        return dropped
