"""Longest-prefix match over a changing set of prefixes (IPv4 and IPv6), single and batched.

Layout, chosen for a full table that changes all the time:

* **Per-length hash maps** (network int → prefix id) are the truth. Membership, single IPv6
  lookups and "which prefix covers this one" questions go through them.
* **IPv4 batches: DIR-24** (:mod:`topfib.collector.rib.dir24`): one cell per /24 block naming the
  longest prefix ≤ /24 covering it, painted lazily, so a batch lookup is one gather. Prefixes
  longer than /24 are rare; addresses in a /24 block that holds any go through small per-length
  sorted arrays.
* **IPv6 batches: per-length sorted arrays** of the high 64 bits (each rebuilt only when its
  length changed), and per /16 and /32 block the set of lengths the block holds. Each address
  tries only its own block's lengths, longest first, in rounds grouped by length. Lengths above
  /64 (rare) are filtered by their high 64 bits, then confirmed in the hash map.
* **More-specifics index** (:mod:`topfib.collector.rib.more_specifics`): sorted ``network << 8 | length``
  keys per family, in which the prefixes inside P form one run; route churn goes to a small
  overlay instead of forcing a rebuild.

Ids: a prefix keeps the same id for the life of the table (also across remove and re-add), so an
id never names two different prefixes; ``-1`` means no match.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import numpy.typing as npt

from topfib.collector.common.prefixes import IPV4, IPV6, PrefixError, parse_address, split_prefix
from topfib.collector.rib.dir24 import DIR_BITS, Dir24, pack_pending
from topfib.collector.rib.more_specifics import MoreSpecificsIndex

_MASK64 = (1 << 64) - 1

Int64Array = npt.NDArray[np.int64]
UInt64Array = npt.NDArray[np.uint64]


def _sorted_match(keys: UInt64Array, values: Int64Array, query: UInt64Array) -> Int64Array:
    """values[i] where keys[i] == query, else -1 (keys sorted ascending, non-empty)."""
    pos = np.searchsorted(keys, query)
    np.minimum(pos, keys.size - 1, out=pos)
    return np.where(keys[pos] == query, values[pos], -1)


class LpmTable:
    """Prefixes of both families; ``lookup`` returns the longest matching prefix string."""

    def __init__(self, prefixes: Iterable[str] = ()) -> None:
        self._ids: dict[str, int] = {}
        self._prefix_by_id: list[str] = []
        self._by_len: dict[int, list[dict[int, int]]] = {
            IPV4: [{} for _ in range(33)],
            IPV6: [{} for _ in range(129)],
        }
        self._counts = {IPV4: 0, IPV6: 0}
        self._lengths_desc: dict[int, list[int] | None] = {IPV4: [], IPV6: []}
        # DIR-24 for IPv4 lengths ≤ 24; its change buffers and painting method bound here, so
        # add/remove and lookups reach them as directly as before
        self._dir24_index = Dir24(self._by_len[IPV4])
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
        self._more_specifics = {family: MoreSpecificsIndex(family == IPV6, self._key_id_pairs(family))
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

    def knows(self, prefix: str) -> bool:
        """True if ``prefix`` was ever added: it is then a valid canonical prefix string."""
        return prefix in self._ids

    def id_of(self, prefix: str) -> int | None:
        """The id of ``prefix`` while it is in the table, else None."""
        prefix_id = self._ids.get(prefix)
        if prefix_id is None:
            return None
        family, network, length = split_prefix(prefix)
        return prefix_id if self._by_len[family][length].get(network) == prefix_id else None

    def prefixes(self) -> Iterator[str]:
        for family in (IPV4, IPV6):
            for table in self._by_len[family]:
                for prefix_id in table.values():
                    yield self._prefix_by_id[prefix_id]

    def add(self, prefix: str, parsed: tuple[int, int, int] | None = None) -> None:
        """Add a canonical prefix string (host bits must be zero). Adding twice is a no-op.

        ``parsed`` is ``split_prefix(prefix)`` when the caller has it already (trusted as given).
        """
        family, network, length = parsed if parsed is not None else split_prefix(prefix)
        table = self._by_len[family][length]
        if network in table:
            return
        prefix_id = self._ids.get(prefix)
        if prefix_id is None:
            prefix_id = len(self._prefix_by_id)
            self._ids[prefix] = prefix_id
            self._prefix_by_id.append(prefix)
        if not table:
            self._lengths_desc[family] = None
        table[network] = prefix_id
        self._counts[family] += 1
        self._more_specifics[family].added((network << 8) | length, prefix_id)
        if family == IPV4 and length <= DIR_BITS:
            self._pending_add.append((prefix_id << 38) | (length << 32) | network)  # pack_pending, inlined
        else:
            self._sorted.pop((family, length), None)
            if family == IPV4:
                self._count_long_block(network >> 8, +1)
            elif length >= 16:
                self._count_v6_block(network, length, +1)

    def remove(self, prefix: str) -> None:
        """Remove a prefix; removing an absent prefix is a no-op."""
        try:
            family, network, length = split_prefix(prefix)
        except PrefixError:
            return
        table = self._by_len[family][length]
        prefix_id = table.pop(network, None)
        if prefix_id is None:
            return
        if not table:
            self._lengths_desc[family] = None
        self._counts[family] -= 1
        self._more_specifics[family].removed((network << 8) | length)
        if family == IPV4 and length <= DIR_BITS:
            self._pending_remove.append(pack_pending(network, length, prefix_id))
        else:
            self._sorted.pop((family, length), None)
            if family == IPV4:
                self._count_long_block(network >> 8, -1)
            elif length >= 16:
                self._count_v6_block(network, length, -1)

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
            tables = self._by_len[family]
            lengths = [length for length in range(len(tables) - 1, -1, -1) if tables[length]]
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
        return self._prefix_by_id[found] if found >= 0 else None

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
        names = self._prefix_by_id
        return [names[i] if i >= 0 else None for i in ids.tolist()]

    def prefix_of_id(self, prefix_id: int) -> str:
        return self._prefix_by_id[prefix_id]

    def known_id(self, prefix: str) -> int:
        """The id of a prefix that was added once (in the table or removed since); KeyError if never."""
        return self._ids[prefix]

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
        """Ids of the longest matches of IPv6 addresses given as (high, low) 64-bit halves.

        Each address carries the set of lengths its /16 and /32 blocks hold (bit L-16; bit 49 for
        lengths above /64). Rounds try every address's longest remaining candidate length, grouped
        by length, and drop the bit on a miss; the work is the candidates an address really has,
        not the lengths of the whole table. Lengths below /16 are tried last.
        """
        high = np.asarray(high, dtype=np.uint64)
        low = np.asarray(low, dtype=np.uint64)
        if high.shape != low.shape:
            raise ValueError("high and low halves differ in length")
        out = np.full(high.shape, -1, dtype=np.int64)
        if not high.size:
            return out
        candidates = self._v6_mask16[(high >> np.uint64(48)).astype(np.intp)] | (
            self._v6_masks32(high) << np.uint64(16))
        pending = np.flatnonzero(candidates)
        while pending.size:
            # frexp gives floor(log2(x)) + 1: the highest set bit (all bits < 53, exact in a double)
            top = np.frexp(candidates[pending].astype(np.float64))[1] - 1
            order = np.argsort(top, kind="stable")
            pending, top = pending[order], top[order]
            bits, starts = np.unique(top, return_index=True)
            ends = [*starts[1:].tolist(), pending.size]
            for bit, start, end in zip(bits.tolist(), starts.tolist(), ends, strict=True):
                group = pending[start:end]
                found = self._match_v6_group(bit, group, high, low)
                out[group] = np.where(found >= 0, found, out[group])
                candidates[group] &= ~np.uint64(1 << bit)
            pending = pending[(out[pending] < 0) & (candidates[pending] != 0)]
        short = [length for length in self._lengths(IPV6) if length < 16]
        if short:
            unmatched = np.flatnonzero(out < 0)
            for length in short:
                if not unmatched.size:
                    break
                keys, ids = self._sorted_arrays(IPV6, length)
                mask = np.uint64((_MASK64 << (64 - length)) & _MASK64) if length else np.uint64(0)
                found = _sorted_match(keys, ids, high[unmatched] & mask)
                hit = found >= 0
                out[unmatched[hit]] = found[hit]
                unmatched = unmatched[~hit]
        return out

    def _match_v6_group(self, bit: int, group: Int64Array, high: UInt64Array, low: UInt64Array) -> Int64Array:
        """Matches of the addresses ``group`` at the length(s) of candidate bit ``bit``."""
        if bit < 49:
            length = bit + 16
            keys, ids = self._sorted_arrays(IPV6, length)
            mask = np.uint64((_MASK64 << (64 - length)) & _MASK64)
            return _sorted_match(keys, ids, high[group] & mask)
        # Bit 49: some prefix longer than /64 in the block; try those lengths, longest first.
        found = np.full(group.size, -1, dtype=np.int64)
        tables = self._by_len[IPV6]
        for length in self._lengths(IPV6):
            if length <= 64:
                break
            keys, _ = self._sorted_arrays(IPV6, length)
            shift = 128 - length
            for position in np.flatnonzero((found < 0) & np.isin(high[group], keys)).tolist():
                index = int(group[position])
                address = (int(high[index]) << 64) | int(low[index])
                found[position] = tables[length].get((address >> shift) << shift, -1)
        return found

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
        names = self._prefix_by_id
        return [names[i] for i in ids]

    def _key_id_pairs(self, family: int) -> Callable[[], Iterator[tuple[int, int]]]:
        tables = self._by_len[family]

        def pairs() -> Iterator[tuple[int, int]]:
            for length, table in enumerate(tables):
                for network, prefix_id in table.items():
                    yield (network << 8) | length, prefix_id

        return pairs
