"""Fixed-length NetFlow v9 / IPFIX records as numpy columns: where accounting's fields sit, and
cutting them out of many records at once.

:func:`column_layout` reads a template once into a :class:`ColumnLayout` (offsets of the
destination, counters, sampling, ingress interface and next hops, as one numpy record type);
:func:`layout_columns` then cuts a batch's records of that layout into :class:`Columns`, once
per batch rather than once per record. Templates the columns cannot describe (variable-length
or vendor fields, packet sections, per-packet sampling elements) get no layout: the typed
record builder decodes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt

from topfib.collector.netflow.fields import (
    BGP_NEXT_HOP_V4,
    BGP_NEXT_HOP_V6,
    DATALINK_FRAME_SECTION,
    DST_IPV4,
    DST_IPV6,
    INITIATOR_OCTETS,
    INITIATOR_PACKETS,
    INPUT_IF,
    INPUT_PHYSICAL_IF,
    IP_HEADER_SECTION,
    IP_NEXT_HOP_V4,
    IP_NEXT_HOP_V6,
    OCTET_DELTA,
    OCTET_TOTAL,
    PACKET_DELTA,
    PACKET_TOTAL,
    POST_OCTET_DELTA,
    POST_PACKET_DELTA,
    SAMPLER_ID,
    SAMPLER_RANDOM_INTERVAL,
    SAMPLING_INTERVAL,
    SAMPLING_PACKET_INTERVAL,
    SAMPLING_PACKET_SPACE,
    SAMPLING_POPULATION,
    SAMPLING_PROBABILITY,
    SAMPLING_SIZE,
    SELECTOR_ID,
)
from topfib.collector.netflow.hops import HopResolver
from topfib.collector.netflow.templates import IANA, Template

V5_RECORD_LENGTH: Final = 48
# elements whose presence in a data record needs the typed builder
TYPED_ONLY: Final = frozenset(
    (
        SAMPLING_PACKET_INTERVAL,
        SAMPLING_PACKET_SPACE,
        SAMPLING_SIZE,
        SAMPLING_POPULATION,
        SAMPLING_PROBABILITY,
    )
)

Field = tuple[int, int]  # (offset, length) in the record


@dataclass(frozen=True, slots=True, eq=False)
class ColumnLayout:
    """Where accounting's fields sit in a fixed-length record."""

    record_length: int
    dst_v4: int | None = None  # offset of a 4-byte IPv4 destination
    dst_v6: int | None = None  # offset of a 16-byte IPv6 destination
    octets: Field | None = None
    packets: Field | None = None
    interval: Field | None = None  # the record's own sampling interval
    sampler: Field | None = None  # the sampler (or selector) id that names its rate
    input_if: Field | None = None  # ingress ifIndex
    bgp_hop_v4: int | None = None  # offsets of 4-/16-byte next-hop addresses
    bgp_hop_v6: int | None = None
    ip_hop_v4: int | None = None
    ip_hop_v6: int | None = None
    dtype: np.dtype[np.void] = field(init=False)  # the fields above as a numpy record
    rate_per_record: bool = field(init=False)  # interval or sampler id: rates resolved per record

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate_per_record", self.interval is not None or self.sampler is not None)
        names, formats, offsets = [], [], []
        columns: list[tuple[str, Field | None]] = [
            ("dst_v4", None if self.dst_v4 is None else (self.dst_v4, 4)),
            ("dst_v6_hi", None if self.dst_v6 is None else (self.dst_v6, 8)),
            ("dst_v6_lo", None if self.dst_v6 is None else (self.dst_v6 + 8, 8)),
            ("octets", self.octets),
            ("packets", self.packets),
            ("interval", self.interval),
            ("sampler", self.sampler),
            ("input_if", self.input_if),
        ]
        for name, v4, v6 in (
            ("bgp_hop", self.bgp_hop_v4, self.bgp_hop_v6),
            ("ip_hop", self.ip_hop_v4, self.ip_hop_v6),
        ):
            columns.append((f"{name}_v4", None if v4 is None else (v4, 4)))
            columns.append((f"{name}_v6_hi", None if v6 is None else (v6, 8)))
            columns.append((f"{name}_v6_lo", None if v6 is None else (v6 + 8, 8)))
        for name, where in columns:
            if where is not None:
                names.append(name)
                offsets.append(where[0])
                # reduced-size integers of odd widths are read as bytes and assembled
                formats.append(f">u{where[1]}" if where[1] in (1, 2, 4, 8) else f"({where[1]},)u1")
        layout: dict[str, Any] = {"names": names, "formats": formats, "offsets": offsets}
        layout["itemsize"] = self.record_length
        object.__setattr__(self, "dtype", np.dtype(cast(Any, layout)))


V5_LAYOUT: Final = ColumnLayout(
    V5_RECORD_LENGTH, dst_v4=4, octets=(20, 4), packets=(16, 4), input_if=(12, 2), ip_hop_v4=8
)


def column_layout(template: Template) -> ColumnLayout | None:
    """The layout of a fixed-length flow template, or None when only the typed path fits it
    (options templates included: their records are state, handled by the dispatcher)."""
    if template.fixed_length is None or template.is_options:
        return None
    offsets: dict[int, Field] = {}
    offset = 0
    for spec in template.fields:
        if spec.enterprise != IANA:
            return None  # RFC 5103 reverse fields and vendor fields: typed path decides
        # a repeated element keeps its last (inner) occurrence, as in the typed path
        offsets[spec.element_id] = (offset, spec.length)
        offset += spec.length
    if TYPED_ONLY & offsets.keys() or (
        {DATALINK_FRAME_SECTION, IP_HEADER_SECTION} & offsets.keys()
        and not {DST_IPV4, DST_IPV6} & offsets.keys()
    ):
        return None

    def first(*elements: int) -> Field | None:
        found = next((offsets[e] for e in elements if e in offsets), None)
        if found is not None and not 1 <= found[1] <= 8:
            raise _NotColumnar
        return found

    def address(element: int, length: int) -> int | None:
        found = offsets.get(element)
        return found[0] if found is not None and found[1] == length else None

    try:
        return ColumnLayout(
            record_length=template.fixed_length,
            dst_v4=address(DST_IPV4, 4),
            dst_v6=address(DST_IPV6, 16),
            octets=first(OCTET_DELTA, POST_OCTET_DELTA, INITIATOR_OCTETS, OCTET_TOTAL),
            packets=first(PACKET_DELTA, POST_PACKET_DELTA, INITIATOR_PACKETS, PACKET_TOTAL),
            interval=first(SAMPLING_INTERVAL, SAMPLER_RANDOM_INTERVAL),
            sampler=first(SAMPLER_ID, SELECTOR_ID),
            input_if=first(INPUT_IF, INPUT_PHYSICAL_IF),
            bgp_hop_v4=address(BGP_NEXT_HOP_V4, 4),
            bgp_hop_v6=address(BGP_NEXT_HOP_V6, 16),
            ip_hop_v4=address(IP_NEXT_HOP_V4, 4),
            ip_hop_v6=address(IP_NEXT_HOP_V6, 16),
        )
    except _NotColumnar:
        return None


class _NotColumnar(Exception):
    """A counter or id wider than 8 bytes: leave the template to the typed path."""


# a record decoded by the typed builder: agent, destination, bytes, packets, input_if, next-hop index
TypedRow = tuple[int, int, float, float, int, int]


@dataclass(slots=True)
class Columns:
    """One address family's records, column by column."""

    agent: npt.NDArray[np.uint32]
    dst: npt.NDArray[np.uint64]  # IPv4 address, or the high half of an IPv6 one
    octets: npt.NDArray[np.float64]
    packets: npt.NDArray[np.float64]
    dst_lo: npt.NDArray[np.uint64] = field(default_factory=lambda: np.empty(0, np.uint64))
    input_if: npt.NDArray[np.uint32] = field(default_factory=lambda: np.empty(0, np.uint32))
    hop: npt.NDArray[np.int32] = field(default_factory=lambda: np.empty(0, np.int32))


def layout_columns(
    layout: ColumnLayout,
    rows: npt.NDArray[np.void],
    agent: npt.NDArray[np.uint32],
    rate: npt.NDArray[np.float64] | float,
    hop_resolver: HopResolver,
) -> tuple[Columns | None, Columns | None]:
    """(IPv4, IPv6) columns of records of one layout, counters scaled by ``rate``; (None, None)
    for a layout without a destination (the caller counts those records as non-IP)."""
    if layout.dst_v4 is None and layout.dst_v6 is None:
        return None, None
    octets = _float_column(rows, "octets")
    octets *= rate
    packets = _float_column(rows, "packets")
    packets *= rate
    input_if = _u32_column(rows, "input_if")
    hop = _hop_column(layout, rows, hop_resolver)
    if layout.dst_v6 is None:
        return Columns(agent, column(rows, "dst_v4"), octets, packets, input_if=input_if, hop=hop), None
    hi, lo = column(rows, "dst_v6_hi"), column(rows, "dst_v6_lo")
    if layout.dst_v4 is None:
        return None, Columns(agent, hi, octets, packets, lo, input_if, hop)
    # dual-stack templates carry both families, the unused one zeroed
    v4_dst = column(rows, "dst_v4")
    is_v6 = (v4_dst == 0) & ((hi != 0) | (lo != 0))
    v4 = ~is_v6
    return (
        Columns(agent[v4], v4_dst[v4], octets[v4], packets[v4], input_if=input_if[v4], hop=hop[v4]),
        Columns(
            agent[is_v6], hi[is_v6], octets[is_v6], packets[is_v6], lo[is_v6], input_if[is_v6], hop[is_v6]
        ),
    )


def _hop_column(
    layout: ColumnLayout, rows: npt.NDArray[np.void], hop_resolver: HopResolver
) -> npt.NDArray[np.int32]:
    """Next-hop index per record: its BGP next hop, else its IP next hop (zero: none), -1: none."""
    candidates = [
        (family, name)
        for family, name, offset in (
            (4, "bgp_hop_v4", layout.bgp_hop_v4),
            (6, "bgp_hop_v6", layout.bgp_hop_v6),
            (4, "ip_hop_v4", layout.ip_hop_v4),
            (6, "ip_hop_v6", layout.ip_hop_v6),
        )
        if offset is not None
    ]
    if not candidates:
        return np.full(rows.size, -1, np.int32)
    families = {family for family, _ in candidates}
    if families == {4}:  # the usual template: one family, BGP and/or IP next hop
        v4 = column(rows, candidates[0][1])
        for _, name in candidates[1:]:
            v4 = np.where(v4 != 0, v4, column(rows, name))
        return hop_resolver.resolve_v4(v4)
    if families == {6}:
        hi, lo = column(rows, f"{candidates[0][1]}_hi"), column(rows, f"{candidates[0][1]}_lo")
        for _, name in candidates[1:]:
            has = (hi != 0) | (lo != 0)
            hi = np.where(has, hi, column(rows, f"{name}_hi"))
            lo = np.where(has, lo, column(rows, f"{name}_lo"))
        return hop_resolver.resolve_v6(hi, lo)
    family = np.zeros(rows.size, np.uint8)
    v4 = hi = lo = np.zeros(rows.size, np.uint64)
    for candidate_family, name in reversed(candidates):  # the first candidate wins: written last
        if candidate_family == 4:
            value = column(rows, name)
            has = value != 0
            v4 = np.where(has, value, v4)
        else:
            h6, l6 = column(rows, f"{name}_hi"), column(rows, f"{name}_lo")
            has = (h6 != 0) | (l6 != 0)
            hi, lo = np.where(has, h6, hi), np.where(has, l6, lo)
        family[has] = candidate_family
    return hop_resolver.resolve(family, v4, hi, lo)


def column(rows: npt.NDArray[np.void], name: str) -> npt.NDArray[np.uint64]:
    """A big-endian unsigned column as uint64; zeros when the layout lacks it."""
    if name not in (rows.dtype.names or ()):
        return np.zeros(rows.size, np.uint64)
    raw = rows[name]
    if raw.ndim == rows.ndim:
        return raw.astype(np.uint64).reshape(-1)
    value = np.zeros(rows.size, np.uint64)
    for index in range(raw.shape[-1]):  # reduced-size encodings (3, 5, 6, 7 bytes)
        value = (value << np.uint64(8)) | raw[..., index].astype(np.uint64).reshape(-1)
    return value


def _float_column(rows: npt.NDArray[np.void], name: str) -> npt.NDArray[np.float64]:
    """A big-endian unsigned column as float64 (a fresh array); zeros when absent."""
    if name in (rows.dtype.names or ()) and rows[name].ndim == rows.ndim:
        return rows[name].astype(np.float64).reshape(-1)
    return column(rows, name).astype(np.float64)


def _u32_column(rows: npt.NDArray[np.void], name: str) -> npt.NDArray[np.uint32]:
    """A big-endian unsigned column as uint32 (wider values keep their low 32 bits); zeros when absent."""
    if name not in (rows.dtype.names or ()):
        return np.zeros(rows.size, np.uint32)
    raw = rows[name]
    if raw.ndim == rows.ndim and raw.dtype.itemsize <= 4:
        return raw.astype(np.uint32).reshape(-1)
    return (column(rows, name) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def per_record(
    values: tuple[int, ...], counts: tuple[int, ...], dtype: type[np.generic]
) -> npt.NDArray[Any]:
    """One value per queued set, expanded to one per record (a constant fill when all agree)."""
    if values.count(values[0]) == len(values):
        return np.full(sum(counts), values[0], dtype)
    return np.repeat(np.array(values, dtype), np.array(counts, np.int64))


def typed_columns(rows: list[TypedRow], v6: bool) -> Columns:
    """Columns of the records the typed builder decoded."""
    agent = np.array([r[0] for r in rows], np.uint32)
    octets = np.array([r[2] for r in rows], np.float64)
    packets = np.array([r[3] for r in rows], np.float64)
    input_if = np.array([r[4] for r in rows], np.uint32)
    hop = np.array([r[5] for r in rows], np.int32)
    if v6:
        hi = np.array([r[1] >> 64 for r in rows], np.uint64)
        lo = np.array([r[1] & 0xFFFFFFFFFFFFFFFF for r in rows], np.uint64)
        return Columns(agent, hi, octets, packets, lo, input_if, hop)
    dst = np.array([r[1] for r in rows], np.uint64)
    return Columns(agent, dst, octets, packets, input_if=input_if, hop=hop)


def concat_columns(parts: list[Columns]) -> Columns:
    """The parts as one set of columns (the part itself when there is one)."""
    if len(parts) == 1:
        return parts[0]
    return Columns(
        np.concatenate([p.agent for p in parts], dtype=np.uint32),
        np.concatenate([p.dst for p in parts], dtype=np.uint64),
        np.concatenate([p.octets for p in parts], dtype=np.float64),
        np.concatenate([p.packets for p in parts], dtype=np.float64),
        np.concatenate([p.dst_lo for p in parts], dtype=np.uint64),
        np.concatenate([p.input_if for p in parts], dtype=np.uint32),
        np.concatenate([p.hop for p in parts], dtype=np.int32),
    )
