"""MRT RIB dumps (RFC 6396, RFC 8050 ADD-PATH) → (prefix, Path) pairs. Pure: bytes in, records out.

Record kinds read: TABLE_DUMP (type 12, IPv4 and IPv6) and TABLE_DUMP_V2 (type 13):
PEER_INDEX_TABLE, RIB_IPV4/IPV6_UNICAST, RIB_GENERIC (AFI 1/2, SAFI 1) and their ADD-PATH
variants (subtypes 8, 10, 12). Multicast RIBs, BGP4MP update streams and other types are counted
as ``skipped_*`` and passed over: the record length in the common header says where the next
record starts, so nothing is guessed.

The decoder is fed chunks (a dump may be gigabytes, or a compressed stream cut short); a record
split across chunks waits for the rest, and what remains at the end is counted as ``truncated``.
A record that does not parse is counted by reason and skipped; a bad entry ends its own record
only. Lengths are checked before use, so a lying length field cannot run past the record.

Path attributes are decoded once per distinct (peer, path-id, attribute bytes): full tables
repeat the same attribute sets for many prefixes.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from topfib.collector.common.prefixes import IPV4, IPV6, format_network
from topfib.collector.rib.paths import BgpPath

TABLE_DUMP = 12
TABLE_DUMP_V2 = 13
PEER_INDEX_TABLE = 1
# TABLE_DUMP_V2 subtype → (family, ADD-PATH); None family = RIB_GENERIC (AFI/SAFI in the record).
_RIB_SUBTYPES: dict[int, tuple[int | None, bool]] = {
    2: (IPV4, False), 4: (IPV6, False), 6: (None, False),
    8: (IPV4, True), 10: (IPV6, True), 12: (None, True),
}
_MULTICAST_SUBTYPES = frozenset({3, 5, 9, 11})
_HEADER = struct.Struct("!IHHI")
_ORIGINS = ("igp", "egp", "incomplete")
_AS_SET, _AS_SEQUENCE = 1, 2
_AS_TRANS = 23456
_MAX_ATTRIBUTE_CACHE = 200_000


class MrtError(ValueError):
    """A record or attribute that does not parse; ``reason`` is the counter key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Peer:
    address: str
    asn: int


class MrtRibDecoder:
    """Feed MRT bytes, get (canonical prefix, Path) pairs; ``counters`` says what was seen.

    Counter keys: ``records``, ``rib_entries``, ``peer_index``, ``skipped_multicast``,
    ``skipped_type_<T>``, ``skipped_family``, ``truncated`` and bad-input reasons
    (``bad_record``, ``bad_prefix``, ``bad_attribute``, ``unknown_peer``, ``no_peer_index``).
    """

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self._buffer = b""
        self._peers: list[_Peer] = []
        self._paths: dict[tuple[str, int, int, bool, bytes], BgpPath] = {}

    def feed(self, chunk: bytes) -> Iterator[tuple[str, BgpPath]]:
        """Routes of every record completed by ``chunk``."""
        data = self._buffer + chunk if self._buffer else chunk
        offset = 0
        end = len(data)
        while end - offset >= _HEADER.size:
            _timestamp, kind, subtype, length = _HEADER.unpack_from(data, offset)
            body_start = offset + _HEADER.size
            if end - body_start < length:
                break
            body = data[body_start:body_start + length]
            offset = body_start + length
            self.counters["records"] += 1
            try:
                yield from self._record(kind, subtype, body)
            except MrtError as exc:
                self.counters[exc.reason] += 1
            except (struct.error, IndexError, ValueError):
                self.counters["bad_record"] += 1
        self._buffer = data[offset:]

    def finish(self) -> None:
        """End of input: a partial record left over means the stream was cut."""
        if self._buffer:
            self.counters["truncated"] += 1
            self._buffer = b""

    # -- records ---------------------------------------------------------------------------------

    def _record(self, kind: int, subtype: int, body: bytes) -> Iterator[tuple[str, BgpPath]]:
        if kind == TABLE_DUMP_V2:
            if subtype == PEER_INDEX_TABLE:
                self._peer_index(body)
                return
            rib = _RIB_SUBTYPES.get(subtype)
            if rib is not None:
                yield from self._rib_v2(body, rib[0], rib[1])
            elif subtype in _MULTICAST_SUBTYPES:
                self.counters["skipped_multicast"] += 1
            else:
                self.counters[f"skipped_type_{kind}_{subtype}"] += 1
            return
        if kind == TABLE_DUMP:
            yield from self._table_dump_v1(subtype, body)
            return
        self.counters[f"skipped_type_{kind}"] += 1

    def _peer_index(self, body: bytes) -> None:
        _need(body, 0, 6)
        (name_length,) = struct.unpack_from("!H", body, 4)
        offset = 6 + name_length
        _need(body, offset, 2)
        (count,) = struct.unpack_from("!H", body, offset)
        offset += 2
        peers: list[_Peer] = []
        for _ in range(count):
            _need(body, offset, 1)
            peer_type = body[offset]
            address_size = 16 if peer_type & 1 else 4
            as_size = 4 if peer_type & 2 else 2
            _need(body, offset, 5 + address_size + as_size)
            address = _address(body[offset + 5:offset + 5 + address_size])
            asn = int.from_bytes(body[offset + 5 + address_size:offset + 5 + address_size + as_size], "big")
            peers.append(_Peer(address, asn))
            offset += 5 + address_size + as_size
        self._peers = peers
        self.counters["peer_index"] += 1

    def _rib_v2(self, body: bytes, family: int | None, add_path: bool) -> Iterator[tuple[str, BgpPath]]:
        if not self._peers:
            raise MrtError("no_peer_index", "RIB record before any PEER_INDEX_TABLE")
        offset = 4  # sequence number
        if family is None:  # RIB_GENERIC: AFI, SAFI, then the NLRI
            _need(body, offset, 3)
            afi, safi = struct.unpack_from("!HB", body, offset)
            offset += 3
            if safi != 1 or afi not in (1, 2):
                self.counters["skipped_family"] += 1
                return
            family = IPV4 if afi == 1 else IPV6
        prefix, offset = _prefix(body, offset, family)
        _need(body, offset, 2)
        (entry_count,) = struct.unpack_from("!H", body, offset)
        offset += 2
        header_size = 10 if add_path else 6
        for _ in range(entry_count):
            _need(body, offset, header_size + 2)
            peer_index = struct.unpack_from("!H", body, offset)[0]
            path_id = struct.unpack_from("!I", body, offset + 6)[0] if add_path else 0
            offset += header_size
            (attributes_length,) = struct.unpack_from("!H", body, offset)
            offset += 2
            _need(body, offset, attributes_length)
            attributes = body[offset:offset + attributes_length]
            offset += attributes_length
            if peer_index >= len(self._peers):
                self.counters["unknown_peer"] += 1
                continue
            peer = self._peers[peer_index]
            yield prefix, self._path(peer.address, path_id, family, True, attributes)
            self.counters["rib_entries"] += 1

    def _table_dump_v1(self, subtype: int, body: bytes) -> Iterator[tuple[str, BgpPath]]:
        if subtype not in (1, 2):
            self.counters[f"skipped_type_{TABLE_DUMP}_{subtype}"] += 1
            return
        family = IPV4 if subtype == 1 else IPV6
        size = 4 if family == IPV4 else 16
        # view(2) sequence(2) prefix(size) length(1) status(1) originated(4) peer(size) peer_as(2) attr_len(2)
        _need(body, 0, 4 + size + 6 + size + 4)
        network = int.from_bytes(body[4:4 + size], "big")
        length = body[4 + size]
        bits = size * 8
        if length > bits:
            raise MrtError("bad_prefix", f"length {length}")
        network &= ((1 << bits) - 1) ^ ((1 << (bits - length)) - 1)
        offset = 4 + size + 6
        peer = _address(body[offset:offset + size])
        offset += size + 2
        (attributes_length,) = struct.unpack_from("!H", body, offset)
        offset += 2
        _need(body, offset, attributes_length)
        path = self._path(peer, 0, family, False, body[offset:offset + attributes_length])
        self.counters["rib_entries"] += 1
        yield format_network(family, network, length), path

    def _path(self, peer: str, path_id: int, family: int, as4: bool, attributes: bytes) -> BgpPath:
        key = (peer, path_id, family, as4, attributes)
        path = self._paths.get(key)
        if path is None:
            path = _decode_attributes(attributes, peer, path_id, family, as4)
            if len(self._paths) >= _MAX_ATTRIBUTE_CACHE:
                self._paths.clear()
            self._paths[key] = path
        return path


def _need(body: bytes, offset: int, size: int) -> None:
    if offset + size > len(body):
        raise MrtError("bad_record", f"needs {size} bytes at {offset}, record has {len(body)}")


_ADDRESS_CACHE: dict[bytes, str] = {}


def _address(raw: bytes) -> str:
    """Address string of 4 or 16 raw bytes (peers and next hops repeat: cached, bounded)."""
    text = _ADDRESS_CACHE.get(raw)
    if text is None:
        text = ".".join(map(str, raw)) if len(raw) == 4 else str(ipaddress.IPv6Address(raw))
        if len(_ADDRESS_CACHE) >= _MAX_ATTRIBUTE_CACHE:
            _ADDRESS_CACHE.clear()
        _ADDRESS_CACHE[bytes(raw)] = text
    return text


def _prefix(body: bytes, offset: int, family: int) -> tuple[str, int]:
    _need(body, offset, 1)
    length = body[offset]
    bits = 32 if family == IPV4 else 128
    if length > bits:
        raise MrtError("bad_prefix", f"length {length}")
    size = (length + 7) // 8
    _need(body, offset + 1, size)
    network = int.from_bytes(body[offset + 1:offset + 1 + size], "big") << (bits - size * 8)
    # Stray bits beyond the length are masked, as BGP speakers do (bgpdump's nlri_mask case).
    network &= ((1 << bits) - 1) ^ ((1 << (bits - length)) - 1)
    return format_network(family, network, length), offset + 1 + size


def _decode_attributes(data: bytes, peer: str, path_id: int, family: int, as4: bool) -> BgpPath:
    origin = "incomplete"  # ORIGIN absent (locally originated entries): least preferred, as bgpdump
    as_path: tuple[int, ...] = ()
    as4_path: tuple[int, ...] | None = None
    next_hop = ""
    mp_next_hop = ""
    med = 0
    local_pref = 100
    communities: tuple[str, ...] = ()
    large: tuple[str, ...] = ()
    offset = 0
    while offset < len(data):
        if offset + 3 > len(data):
            raise MrtError("bad_attribute", "attribute header cut")
        flags, code = data[offset], data[offset + 1]
        if flags & 0x10:
            if offset + 4 > len(data):
                raise MrtError("bad_attribute", "extended length cut")
            length = int.from_bytes(data[offset + 2:offset + 4], "big")
            offset += 4
        else:
            length = data[offset + 2]
            offset += 3
        if offset + length > len(data):
            raise MrtError("bad_attribute", f"attribute {code} runs past the entry")
        value = data[offset:offset + length]
        offset += length
        if code == 1 and length == 1:
            origin = _ORIGINS[value[0]] if value[0] < 3 else "incomplete"
        elif code == 2:
            as_path = _as_path(value, 4 if as4 else 2)
        elif code == 17:
            as4_path = _as_path(value, 4)
        elif code == 3 and length == 4:
            next_hop = _address(value)
        elif code == 4 and length == 4:
            med = int.from_bytes(value, "big")
        elif code == 5 and length == 4:
            local_pref = int.from_bytes(value, "big")
        elif code == 8 and length % 4 == 0:
            pairs = struct.unpack(f"!{length // 2}H", value)
            communities = tuple(f"{pairs[i]}:{pairs[i + 1]}" for i in range(0, len(pairs), 2))
        elif code == 32 and length % 12 == 0:
            large = tuple(":".join(str(int.from_bytes(value[i + j:i + j + 4], "big")) for j in (0, 4, 8))
                          for i in range(0, length, 12))
        elif code == 14:
            mp_next_hop = _mp_next_hop(value)
    if as4_path is not None and _AS_TRANS in as_path and len(as4_path) <= len(as_path):
        # RFC 6793 §4.2.3: AS4_PATH replaces the tail of a 2-octet AS_PATH.
        as_path = as_path[:len(as_path) - len(as4_path)] + as4_path
    chosen = mp_next_hop if (family == IPV6 or not next_hop) and mp_next_hop else next_hop
    return BgpPath(next_hop=chosen, as_path=as_path, origin=origin, local_pref=local_pref, med=med,
                communities=communities, large_communities=large, peer=peer, path_id=path_id)


def _as_path(value: bytes, asn_size: int) -> tuple[int, ...]:
    """Sequences in order, AS_SET members sorted; confederation segments left out (RFC 5065)."""
    out: list[int] = []
    offset = 0
    while offset < len(value):
        if offset + 2 > len(value):
            raise MrtError("bad_attribute", "AS_PATH segment header cut")
        segment_type, count = value[offset], value[offset + 1]
        offset += 2
        end = offset + count * asn_size
        if end > len(value):
            raise MrtError("bad_attribute", "AS_PATH segment runs past the attribute")
        members = struct.unpack_from(f"!{count}{'I' if asn_size == 4 else 'H'}", value, offset)
        offset = end
        if segment_type == _AS_SEQUENCE:
            out.extend(members)
        elif segment_type == _AS_SET:
            out.extend(sorted(members))
    return tuple(out)


def _mp_next_hop(value: bytes) -> str:
    """Next hop of MP_REACH_NLRI: RFC 6396's abbreviated form (length, address) or the full form."""
    if value and value[0] == len(value) - 1 and value[0] in (4, 16, 32):
        raw = value[1:1 + min(value[0], 16)]
    elif len(value) >= 5 and value[3] in (4, 16, 32) and len(value) >= 4 + value[3]:
        raw = value[4:4 + min(value[3], 16)]
    else:
        return ""
    return _address(bytes(raw))
