"""Type stub for the C fast path (collector/sflow/_sflow_fast.c); see collector/sflow/fast.py."""

from typing import final

_RawBatch = tuple[
    list[str],  # agents of this batch
    bytearray,  # v4 agent index (uint32)
    bytearray,  # v4 destination (uint32)
    bytearray,  # v4 bytes (float64)
    bytearray,  # v4 packets (float64)
    bytearray,  # v6 agent index (uint32)
    bytearray,  # v6 destination, high 64 bits (uint64)
    bytearray,  # v6 destination, low 64 bits (uint64)
    bytearray,  # v6 bytes (float64)
    bytearray,  # v6 packets (float64)
    int,  # datagrams
    int,  # flow samples
    int,  # counter samples
    int,  # non-IP flow samples
    dict[tuple[str, str], int],  # (reason, agent) -> malformed datagrams
    dict[str, int],  # agent -> lost datagrams
    dict[str, int],  # agent -> agent-reported drops
    list[str],  # next hops of this batch
    bytearray,  # v4 ingress ifIndex (uint32)
    bytearray,  # v4 next-hop index (int32, -1: none)
    bytearray,  # v6 ingress ifIndex (uint32)
    bytearray,  # v6 next-hop index (int32, -1: none)
    dict[str, int],  # kind -> state evicted or refused at its bound (zeros included)
]

@final
class Decoder:
    def __init__(self) -> None: ...
    def feed(self, datagram: bytes, exporter: str, /) -> None: ...
    def feed_many(self, datagrams: list[tuple[bytes, str]], /) -> None: ...
    def take(self) -> _RawBatch: ...
    def state_sizes(self) -> tuple[int, int, int, int]: ...

def screen(
    pairs: list[tuple[bytes, str]], heads_by_source: dict[str, tuple[bytes, ...]], /
) -> tuple[list[tuple[bytes, str]], list[tuple[bytes, str]]]: ...

def unpack_mmsg(
    headers: memoryview, count: int, cache: dict[bytes, str], /
) -> tuple[list[tuple[bytes, str]], int]: ...
