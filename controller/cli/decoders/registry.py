"""The decoders ``topfib decode`` knows, by the protocol name :func:`sniff_protocol` gives a datagram.

A protocol module registers a handler factory for the names it decodes; :meth:`DecoderRegistry.handlers`
makes fresh handlers for one run, one per factory shared by its names, so state a decoder learns
(NetFlow v9/IPFIX templates) carries from one file to the next and not from one run to the next.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

MAX_REPORTS_PER_KIND = 10


@dataclass
class DecodeStats:
    datagrams: int = 0
    flow_samples: int = 0
    counter_samples: int = 0
    discard_samples: int = 0
    malformed: Counter[str] = field(default_factory=Counter)  # reason -> datagrams
    unsupported: Counter[str] = field(default_factory=Counter)  # protocol -> datagrams
    unreadable_files: int = 0
    reported: Counter[str] = field(default_factory=Counter)  # messages printed per kind

    def should_report(self, kind: str) -> bool:
        """Limit error lines: the first few of each kind are printed, the rest only counted."""
        self.reported[kind] += 1
        return self.reported[kind] <= MAX_REPORTS_PER_KIND

    def summary(self) -> str:
        parts = [
            f"datagrams={self.datagrams}",
            f"flow_samples={self.flow_samples}",
            f"counter_samples={self.counter_samples}",
            f"discard_samples={self.discard_samples}",
            f"malformed={sum(self.malformed.values())}",
        ]
        parts += [f"malformed.{reason}={count}" for reason, count in sorted(self.malformed.items())]
        parts += [f"unsupported.{proto}={count}" for proto, count in sorted(self.unsupported.items())]
        if self.unreadable_files:
            parts.append(f"unreadable_files={self.unreadable_files}")
        return " ".join(parts)


# A handler decodes one datagram from `exporter`, writes its records to `out` and counts in `stats`.
Handler = Callable[[str, bytes, TextIO, DecodeStats], None]


def sniff_protocol(payload: bytes) -> str:
    """Name the flow protocol from the version field every one of them starts with."""
    if payload[:4] == b"\x00\x00\x00\x05":
        return "sflow5"
    version = payload[:2]
    if version == b"\x00\x05":
        return "netflow5"
    if version == b"\x00\x09":
        return "netflow9"
    if version == b"\x00\x0a":
        return "ipfix"
    return "unknown"


class DecoderRegistry:
    """Protocol name → the factory of its handler; a protocol without one is counted as unsupported."""

    def __init__(self) -> None:
        self._factories: list[tuple[tuple[str, ...], Callable[[], Handler]]] = []

    def register(self, protocols: tuple[str, ...], make_handler: Callable[[], Handler]) -> None:
        self._factories.append((protocols, make_handler))

    def handlers(self) -> dict[str, Handler]:
        """Fresh handlers for one run: each factory is called once, its handler serves all its names."""
        handlers: dict[str, Handler] = {}
        for protocols, make_handler in self._factories:
            handler = make_handler()
            handlers.update(dict.fromkeys(protocols, handler))
        return handlers
