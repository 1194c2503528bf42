"""Longest-prefix match over a changing set of prefixes (IPv4 and IPv6), single and batched.

Layout, chosen for a full table that changes all the time:

* **Ids** (stable, never reused) by key ``network << 8 | length`` (:mod:`keymap` for IPv4), and per
  id its length, network and presence: no prefix string is kept (names are formatted when asked).
  Per-length maps (network → id) only for IPv4 longer than /24 and IPv6, for single lookups.
* **IPv4 batches: DIR-24** (:mod:`topfib.collector.rib.dir24`): one cell per /24 block naming the
  longest prefix ≤ /24 covering it, painted lazily, so a batch lookup is one gather. Prefixes
  longer than /24 are rare; addresses in a /24 block that holds any go through small per-length
  sorted arrays.
* **IPv6 batches: per-length sorted arrays** of the high 64 bits (each rebuilt only when its
  length changed), and per /16 and /32 block the set of lengths the block holds. Each address
  tries only its own block's lengths, longest first, in rounds grouped by length. Lengths above
  /64 (rare) are filtered by their high 64 bits, then confirmed in the hash map.
* **More-specifics index** (:mod:`topfib.collector.rib.more_specifics`): ids per family sorted by
  ``network << 8 | length`` (keys read from the per-id arrays), in which the prefixes inside P
  form one run; route churn goes to a small overlay instead of forcing a rebuild.

Ids: a prefix keeps the same id for the life of the table (also across remove and re-add), so an
id never names two different prefixes; ``-1`` means no match.
"""

from __future__ import annotations

import weakref
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import numpy.typing as npt

from topfib.collector.common.prefixes import (
    IPV4,
    IPV6,
    PrefixError,
    format_network,
    parse_address,
    split_canonical,
    split_prefix,
)
from topfib.collector.rib import keymap
from topfib.collector.rib.dir24 import DIR_BITS, Dir24, pack_pending
from topfib.collector.rib.heap import BULK, trim_heap
from topfib.collector.rib.keymap import IdSpaceExhausted, KeyIds
from topfib.collector.rib.lpm_v6 import _sorted_match, lookup_v6_ids
from topfib.collector.rib.more_specifics import MoreSpecificsIndex, id_key

_MASK64 = (1 << 64) - 1

Int64Array = npt.NDArray[np.int64]
UInt64Array = npt.NDArray[np.uint64]


class LpmTable:
    """Prefixes of both families; ``lookup`` returns the longest matching prefix string."""

    def __init__(self, prefixes: Iterable[str] = ()) -> None:
        # Per id, for the life of the table: length (+256 for IPv6), IPv4 network (IPv6: in
        # _v6_network), and whether it is in the table now. Names are formatted when asked, so a
        # full table holds no prefix string.
        self._length_of = array("H")
        self._network_of = array("I")
        # Every prefix ever added to its id: an id is never reused, so a re-added prefix gets its
        # old id back. IPv4 in a flat slot array that reads networks from _network_of (see
        # keymap); IPv6 by key network << 8 | length.
        self._v4_ids = KeyIds(self._network_of)
        self._v6_ids: dict[int, int] = {}
        self._v6_network: dict[int, int] = {}
        self._present = bytearray()
        self.max_id = keymap.MAX_ID  # of both families' ids, one counter (26 bits: keymap, DIR-24)
        # Network → id per length, for the lengths that single lookups and the sorted arrays
        # read: IPv4 longer than /24 and IPv6. IPv4 up to /24 is in the DIR-24 table.
        self._by_len: dict[int, list[dict[int, int]]] = {
            IPV4: [{} for _ in range(33)],
            IPV6: [{} for _ in range(129)],
        }
        self._length_counts = {IPV4: [0] * 33, IPV6: [0] * 129}
        self._counts = {IPV4: 0, IPV6: 0}
        self._lengths_desc: dict[int, list[int] | None] = {IPV4: [], IPV6: []}
        # DIR-24 for IPv4 lengths ≤ 24; its change buffers and painting method bound here, so
        # add/remove and lookups reach them as directly as before
        self._dir24_index = Dir24(self)
        self._pending_add = self._dir24_index.pending_add
        self._pending_remove = self._dir24_index.pending_remove
        self._dir24 = self._dir24_index.painted
        # /24 blocks holding prefixes longer than /24, with how many each holds.
        self._long_blocks: dict[int, int] = {}
        self._long_blocks_sorted: UInt64Array | None = None
        # IPv6 length filters, so a batch searches a length's array only with the addresses whose
        # block holds a prefix of that length: per /16 block a bit per length /16../31 (dense
        # array), per /32 block a bit per length /32../64 and bit 33 for anything longer (sorted
        # blocks, rebuilt when the set of (block, length) pairs changed).
        self._v6_pairs16: Counter[tuple[int, int]] = Counter()
        self._v6_mask16 = np.zeros(1 << 16, dtype=np.uint64)
        self._v6_pairs32: Counter[tuple[int, int]] = Counter()
        self._v6_mask32: tuple[UInt64Array, UInt64Array] | None = None
        self._v6_mask32_by_block: dict[int, int] = {}
        # (family, length) -> (sorted keys, ids); absent = to rebuild.
        self._sorted: dict[tuple[int, int], tuple[UInt64Array, Int64Array]] = {}
        self._more_specifics = {
            family: MoreSpecificsIndex(family == IPV6, self._key_id_pairs(family), id_key(
                self._network_of, self._length_of, self._v6_network if family == IPV6 else None))
            for family in (IPV4, IPV6)}
        for prefix in prefixes:
            self.add(prefix)

    # -- membership -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._counts[IPV4] + self._counts[IPV6]

    def count(self, family: int) -> int:
        return self._counts[family]

    def __contains__(self, prefix: object) -> bool:
        return isinstance(prefix, str) and self.id_of(prefix) is not None

    def locate(self, prefix: str, parsed: tuple[int, int, int] | None = None
               ) -> tuple[tuple[int, int, int] | None, int]:
        """(``split_prefix(prefix)``, the id it has or had here, else -1); (None, -1) when
        ``prefix`` is not a prefix string. ``parsed`` is trusted as given."""
        if parsed is None:
            try:
                parsed = split_prefix(prefix)
            except PrefixError:
                return None, -1
        family, network, length = parsed
        if family == IPV4:
            return parsed, self._v4_ids.get(network, length)
        return parsed, self._v6_ids.get((network << 8) | length, -1)

    def knows(self, prefix: str) -> bool:
        """True if ``prefix`` was ever added and is written canonically: it is then a valid
        canonical prefix string (the JSON parser skips checking it again)."""
        split = split_canonical(prefix)
        return split is not None and split[0] == prefix and self.locate(prefix, split[1])[1] >= 0

    def id_of(self, prefix: str) -> int | None:
        """The id of ``prefix`` while it is in the table, else None."""
        prefix_id = self.locate(prefix)[1]
        return prefix_id if prefix_id >= 0 and self._present[prefix_id] else None

    def present(self, prefix_id: int) -> bool:
        """Whether the prefix of ``prefix_id`` is in the table now."""
        return bool(self._present[prefix_id])

    def family_of_id(self, prefix_id: int) -> int:
        return IPV6 if self._length_of[prefix_id] >= 256 else IPV4

    def prefixes(self) -> Iterator[str]:
        """Every prefix in the table: IPv4 then IPv6, by length, then by id."""
        ids, lengths, _ = self._v4_short()
        tables = self._by_len[IPV4]
        long_v4 = [(length, i) for length in range(DIR_BITS + 1, 33) for i in tables[length].values()]
        order = np.lexsort((ids, lengths))
        for prefix_id in ids[order].tolist():
            yield self.prefix_of_id(prefix_id)
        for _, prefix_id in sorted(long_v4):
            yield self.prefix_of_id(prefix_id)
        for table in self._by_len[IPV6]:
            for prefix_id in sorted(table.values()):
                yield self.prefix_of_id(prefix_id)

    def add(self, prefix: str, parsed: tuple[int, int, int] | None = None) -> int:
        """Add a prefix (host bits must be zero); its id. Adding twice is a no-op.

        ``parsed`` is ``split_prefix(prefix)`` when the caller has it already (trusted as given).
        """
        if parsed is None:
            parsed = split_prefix(prefix)
        return self.add_located(parsed, self.locate(prefix, parsed)[1])

    def add_located(self, parsed: tuple[int, int, int], prefix_id: int) -> int:
        """:meth:`add` of a prefix already located (``prefix_id`` from :meth:`locate`, -1: new);
        a new prefix past :attr:`max_id` raises :class:`IdSpaceExhausted`, the table unchanged."""
        family, network, length = parsed
        key = (network << 8) | length
        if prefix_id < 0:
            prefix_id = len(self._present)
            if prefix_id > self.max_id:  # checked before anything is written: a retry leaks nothing
                raise IdSpaceExhausted(prefix_id, self.max_id)
            # what an id names is written before the id can be found or looked up
            self._present.append(0)
            if family == IPV4:
                self._length_of.append(length)
                self._network_of.append(network)
                self._v4_ids.insert(network, length, prefix_id)
            else:
                self._length_of.append(256 + length)
                self._network_of.append(0)
                self._v6_network[prefix_id] = network
                self._v6_ids[key] = prefix_id
        elif self._present[prefix_id]:
            return prefix_id
        self._present[prefix_id] = 1
        counts = self._length_counts[family]  # _count_length(family, length, +1), inlined: per new prefix
        counts[length] += 1
        self._counts[family] += 1
        if counts[length] == 1:
            self._lengths_desc[family] = None
        self._more_specifics[family].added(key, prefix_id)
        if family == IPV4 and length <= DIR_BITS:
            self._pending_add.append((prefix_id << 38) | (length << 32) | network)  # pack_pending, inlined
            return prefix_id
        self._by_len[family][length][network] = prefix_id
        self._sorted.pop((family, length), None)
        if family == IPV4:
            self._count_long_block(network >> 8, +1)
        elif length >= 16:
            self._count_v6_block(network, length, +1)
        return prefix_id

    def remove(self, prefix: str) -> None:
        """Remove a prefix; removing an absent prefix is a no-op."""
        try:
            family, network, length = split_prefix(prefix)
        except PrefixError:
            return
        prefix_id = (self._v4_ids.get(network, length) if family == IPV4
                     else self._v6_ids.get((network << 8) | length, -1))
        if prefix_id >= 0:
            self.remove_id(prefix_id)

    def remove_id(self, prefix_id: int) -> None:
        """Remove the prefix of ``prefix_id``; a no-op when it is not in the table."""
        if not self._present[prefix_id]:
            return
        self._present[prefix_id] = 0
        length = self._length_of[prefix_id]
        if length >= 256:
            family, length, network = IPV6, length - 256, self._v6_network[prefix_id]
        else:
            family, network = IPV4, self._network_of[prefix_id]
        self._count_length(family, length, -1)
        self._more_specifics[family].removed((network << 8) | length)
        if family == IPV4 and length <= DIR_BITS:
            self._pending_remove.append(pack_pending(network, length, prefix_id))
            return
        del self._by_len[family][length][network]
        self._sorted.pop((family, length), None)
        if family == IPV4:
            self._count_long_block(network >> 8, -1)
        elif length >= 16:
            self._count_v6_block(network, length, -1)

    def _count_length(self, family: int, length: int, delta: int) -> None:
        counts = self._length_counts[family]
        counts[length] += delta
        self._counts[family] += delta
        if counts[length] == (1 if delta > 0 else 0):  # the set of lengths changed
            self._lengths_desc[family] = None

    # -- what the DIR-24 table paints from ------------------------------------------------------

    def cover(self, network: int, length: int) -> int:
        """Id of the longest IPv4 prefix in the table shorter than ``length`` covering ``network``, or -1."""
        counts, present, ids = self._length_counts[IPV4], self._present, self._v4_ids
        for shorter in range(length - 1, -1, -1):
            if counts[shorter]:
                found = ids.get((network >> (32 - shorter)) << (32 - shorter), shorter)
                if found >= 0 and present[found]:
                    return found
        return -1

    def lengths(self) -> npt.NDArray[np.uint16]:
        """Length by id (IPv6: 256 + length), a copy: a view would pin the growable array."""
        return np.frombuffer(self._length_of.tobytes(), dtype=np.uint16)

    def _v4_short(self) -> tuple[Int64Array, Int64Array, Int64Array]:
        """(ids, lengths, networks) of the IPv4 prefixes up to /24 in the table, by id."""
        # copies through bytes: a numpy view would pin the growable arrays' buffers
        lengths = self.lengths()
        present = np.frombuffer(bytes(self._present), dtype=np.uint8)[:lengths.size]
        ids = np.flatnonzero(present.astype(bool) & (lengths <= DIR_BITS))
        networks = np.frombuffer(self._network_of.tobytes(), dtype=np.uint32)[ids].astype(np.int64)
        return ids.astype(np.int64), lengths[ids].astype(np.int64), networks

    def short_v4(self) -> tuple[Int64Array, Int64Array, Int64Array]:
        """(networks, lengths, ids) of the IPv4 prefixes up to /24 in the table."""
        ids, lengths, networks = self._v4_short()
        return networks, lengths, ids

    def _count_long_block(self, block: int, delta: int) -> None:
        count = self._long_blocks.get(block, 0) + delta
        if count:
            self._long_blocks[block] = count
        else:
            self._long_blocks.pop(block, None)
        if count in (0, 1):  # the set of blocks changed
            self._long_blocks_sorted = None

    def _count_v6_block(self, network: int, length: int, delta: int) -> None:
        if length < 32:
            key, bit = (network >> 112, length - 16), length - 16
            pairs = self._v6_pairs16
        else:
            key, bit = (network >> 96, min(length, 65) - 32), min(length, 65) - 32
            pairs = self._v6_pairs32
        count = pairs[key] + delta
        if count > 0:
            pairs[key] = count
        else:
            del pairs[key]
        if count not in (0, 1):
            return  # the set of pairs is unchanged
        if length < 32:
            if count:
                self._v6_mask16[key[0]] |= np.uint64(1 << bit)
            else:
                self._v6_mask16[key[0]] &= ~np.uint64(1 << bit)
        else:
            self._v6_mask32 = None

    def _v6_masks32(self, high: UInt64Array) -> UInt64Array:
        """Per address, the length bits (/32 and longer) of its /32 block (0: no such prefix)."""
        if self._v6_mask32 is None:
            masks: dict[int, int] = {}
            for block, bit in self._v6_pairs32:
                masks[block] = masks.get(block, 0) | (1 << bit)
            blocks = np.array(sorted(masks), dtype=np.uint64)
            self._v6_mask32 = (blocks, np.array([masks[b] for b in blocks.tolist()], dtype=np.uint64))
            self._v6_mask32_by_block = masks
        blocks, bits = self._v6_mask32
        if not blocks.size:
            return np.zeros(high.shape, dtype=np.uint64)
        query = high >> np.uint64(32)
        pos = np.minimum(np.searchsorted(blocks, query), blocks.size - 1)
        return np.where(blocks[pos] == query, bits[pos], np.uint64(0))

    def _lengths(self, family: int) -> list[int]:
        lengths = self._lengths_desc[family]
        if lengths is None:
            counts = self._length_counts[family]
            lengths = [length for length in range(len(counts) - 1, -1, -1) if counts[length]]
            self._lengths_desc[family] = lengths
        return lengths

    def settle(self) -> None:
        """Bring every lazily rebuilt structure up to date, so that lookups until the next
        add/remove only read: one thread may then look up while another does too (the control
        loop selecting outside the RIB lock while the collector's threads account)."""
        self._dir24()
        self._v6_masks32(np.empty(0, dtype=np.uint64))
        for family in (IPV4, IPV6):
            self._lengths(family)

    # -- single lookups -------------------------------------------------------------------------

    def lookup_id_int(self, family: int, address: int) -> int:
        """Id of the longest prefix containing ``address`` (an int of ``family``), or -1."""
        if family == IPV4:
            return self._lookup_v4_id(address)
        # Only the lengths the address's /16 and /32 blocks hold, longest first (as in batches).
        if self._v6_mask32 is None:
            self._v6_masks32(np.empty(0, dtype=np.uint64))  # brings the per-block dict up to date
        candidates = int(self._v6_mask16[address >> 112])
        candidates |= self._v6_mask32_by_block.get(address >> 96, 0) << 16
        tables = self._by_len[IPV6]
        while candidates:
            bit = candidates.bit_length() - 1
            candidates ^= 1 << bit
            lengths = [bit + 16] if bit < 49 else [n for n in self._lengths(IPV6) if n > 64]
            for length in lengths:
                found = tables[length].get((address >> (128 - length)) << (128 - length))
                if found is not None:
                    return found
        for length in self._lengths(IPV6):
            if length < 16:
                found = tables[length].get((address >> (128 - length)) << (128 - length))
                if found is not None:
                    return found
        return -1

    def _lookup_v4_id(self, address: int) -> int:
        block = address >> 8
        if block in self._long_blocks:
            tables = self._by_len[IPV4]
            for length in self._lengths(IPV4):
                if length <= DIR_BITS:
                    break
                found = tables[length].get((address >> (32 - length)) << (32 - length))
                if found is not None:
                    return found
        dir_ids = self._dir24()
        return int(dir_ids[block]) - 1 if dir_ids is not None else -1

    def lookup_int(self, family: int, address: int) -> str | None:
        found = self.lookup_id_int(family, address)
        return self.prefix_of_id(found) if found >= 0 else None

    def lookup(self, address: str) -> str | None:
        family, value = parse_address(address)
        return self.lookup_int(family, value)

    def lookup_batch(self, family: int, addresses: Sequence[int]) -> list[str | None]:
        if family == IPV4:
            ids = self.lookup_v4_ids(np.array(addresses, dtype=np.uint32))
        else:
            high = np.array([a >> 64 for a in addresses], dtype=np.uint64)
            low = np.array([a & _MASK64 for a in addresses], dtype=np.uint64)
            ids = self.lookup_v6_ids(high, low)
        name = self.prefix_of_id
        return [name(i) if i >= 0 else None for i in ids.tolist()]

    def prefix_of_id(self, prefix_id: int) -> str:
        """The prefix string of an id (also after the prefix left the table); IndexError if none."""
        length = self._length_of[prefix_id]
        if length < 256:
            network = self._network_of[prefix_id]
            return f"{network >> 24}.{(network >> 16) & 255}.{(network >> 8) & 255}.{network & 255}/{length}"
        return format_network(IPV6, self._v6_network[prefix_id], length - 256)

    # -- batched lookups ------------------------------------------------------------------------

    def lookup_v4_ids(self, addresses: npt.NDArray[np.uint32]) -> Int64Array:
        """Ids of the longest matches of IPv4 addresses (uint32), -1 where none."""
        addresses = np.asarray(addresses, dtype=np.uint32)
        dir_ids = self._dir24()
        blocks = addresses >> np.uint32(8)
        if dir_ids is None:
            out = np.full(addresses.shape, -1, dtype=np.int64)
        else:
            out = dir_ids[blocks].astype(np.int64)
            out -= 1
        if self._long_blocks and addresses.size:
            if self._long_blocks_sorted is None:
                self._long_blocks_sorted = np.array(sorted(self._long_blocks), dtype=np.uint64)
            block_keys = self._long_blocks_sorted
            pos = np.minimum(np.searchsorted(block_keys, blocks), block_keys.size - 1)
            selected = np.flatnonzero(block_keys[pos] == blocks)
            if selected.size:
                found = self._match_long_v4(addresses[selected].astype(np.uint64))
                hit = found >= 0
                out[selected[hit]] = found[hit]
        return out

    def lookup_v6_ids(self, high: npt.NDArray[np.uint64], low: npt.NDArray[np.uint64]) -> Int64Array:
        """Ids of the longest matches of IPv6 addresses given as (high, low) 64-bit halves
        (see :func:`topfib.collector.rib.lpm_v6.lookup_v6_ids`)."""
        return lookup_v6_ids(self, high, low)

    def _match_long_v4(self, addresses: UInt64Array) -> Int64Array:
        """Longest match among IPv4 prefixes longer than /24 (the slow path; such prefixes are rare)."""
        out = np.full(addresses.shape, -1, dtype=np.int64)
        for length in self._lengths(IPV4):
            if length <= DIR_BITS:
                break
            keys, ids = self._sorted_arrays(IPV4, length)
            mask = np.uint64(0xFFFFFFFF ^ ((1 << (32 - length)) - 1))
            found = _sorted_match(keys, ids, addresses & mask)
            fill = (out < 0) & (found >= 0)
            out[fill] = found[fill]
        return out

    def _sorted_arrays(self, family: int, length: int) -> tuple[UInt64Array, Int64Array]:
        """Sorted keys of one length (IPv6: high 64 bits) and their ids, rebuilt when changed."""
        cached = self._sorted.get((family, length))
        if cached is not None:
            return cached
        table = self._by_len[family][length]
        shift = 64 if family == IPV6 else 0
        keys = np.fromiter((network >> shift for network in table), dtype=np.uint64, count=len(table))
        ids = np.fromiter(table.values(), dtype=np.int64, count=len(table))
        order = np.argsort(keys, kind="stable")
        cached = (keys[order], ids[order])
        self._sorted[(family, length)] = cached
        return cached

    # -- more-specifics -------------------------------------------------------------------------

    def more_specifics(self, prefix: str) -> list[str]:
        """Every prefix in the table strictly inside ``prefix``, in address order."""
        family, network, length = split_prefix(prefix)
        bits = 32 if family == IPV4 else 128
        last = network | ((1 << (bits - length)) - 1)
        ids = self._more_specifics[family].between((network << 8) | (length + 1), (last << 8) | 255)
        names = list(map(self.prefix_of_id, ids))
        if len(ids) >= BULK:  # a big answer's id list (8 bytes an id) stays on the heap once freed
            del ids
            trim_heap()
        return names

    def _key_id_pairs(self, family: int) -> Callable[[], Iterator[tuple[int, int]]]:
        tables = self._by_len[family]
        owner_ref = weakref.ref(self)  # the index is this table's: no cycle to wait for the collector

        def pairs() -> Iterator[tuple[int, int]]:
            if family == IPV4:
                owner = owner_ref()
                if owner is None:  # not an assert: it must hold under python -O too
                    raise ReferenceError("the more-specifics index outlived its LPM table")
                ids, lengths, networks = owner._v4_short()
                yield from zip(((networks << 8) | lengths).tolist(), ids.tolist(), strict=True)
            for length, table in enumerate(tables):
                for network, prefix_id in table.items():
                    yield (network << 8) | length, prefix_id

        return pairs
