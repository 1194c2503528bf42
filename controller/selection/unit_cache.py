"""What selection asks the RIB, remembered across selections: next-hops and no-cache-hiding units.

A selection over a full table asks the same few tens of thousands of prefixes the same two
questions every loop: the best next-hop, and the unit the prefix must be installed with
(:func:`topfib.controller.selection.closure.unit_of`, which needs the RIB's more-specifics, ~15 µs a call on
the
live RIB). Both only change when the RIB does, so a :class:`UnitCache` kept by the caller answers
them from dicts while the RIB stands still. So it does the longest match of each requested address
(:class:`topfib.controller.selection.request_memo.AddressMatches`).

Invalidation is the caller's job and must be exact: every prefix whose best path changed, appeared
or disappeared goes to :meth:`UnitCache.forget` (``Rib.drain_changed()`` gives exactly that set)
before the next selection. A changed prefix also voids the units of every cached prefix covering
it (their closures may now need it, or no longer need it), and the longest matches of the
requested addresses inside it (it may have appeared), and with them their requests' no-route
answers (:class:`topfib.controller.selection.answer_memo.AnswerMemo`). Without a cache passed in, selection
uses a fresh one per call, which is the old per-call memo.
"""

from __future__ import annotations

from collections.abc import Iterable

from topfib.collector.common.prefixes import PrefixError, format_network, prefix_sort_key, split_prefix
from topfib.controller.selection.answer_memo import AnswerMemo
from topfib.controller.selection.closure import unit_of
from topfib.controller.selection.model import RibView
from topfib.controller.selection.name_kinds import NameKinds, NamePositions
from topfib.controller.selection.request_memo import AddressMatches

# More changes than this in one go (a session reset): dropping everything is cheaper than
# working out which units they touch.
FORGET_ALL_ABOVE = 5_000
# Entries kept before the cache starts over: bounds memory when the scored set wanders (a full
# table cached would hold a million next-hops). Steady state touches about 2-3 N prefixes.
MAX_ENTRIES = 400_000

Unit = dict[str, str]  # prefix → next-hop, the root included


class UnitCache:
    """Best next-hop and unit per prefix of one RIB, valid until :meth:`forget` says otherwise."""

    def __init__(self) -> None:
        self._rib: RibView | None = None
        self._next_hops: dict[str, str | None] = {}
        # root → (its next-hop, its unit: None when it is the root alone, as for most prefixes)
        self._entries: dict[str, tuple[str | None, Unit | None]] = {}
        # lengths of the cached unit roots per family: where a change can have covering roots
        self._root_lengths: dict[int, set[int]] = {4: set(), 6: set()}
        # prefix → prefix_sort_key: ties are ordered by it, and a Zipf tail ties by the thousand
        self._sort_keys: dict[str, tuple[int, int, int]] = {}
        self._prefix_errors: dict[str, str] = {}  # pin → why it is no prefix ("": it is one)
        # the FIB table kind of each scored name, by identity (does not depend on the RIB)
        self.name_kinds = NameKinds()
        self.name_positions = NamePositions()  # of the scored names, by identity
        self.addresses = AddressMatches()  # requested address → longest match
        self.answers = AnswerMemo(self.addresses)  # request → its no-route answer

    def __len__(self) -> int:
        return len(self._next_hops)

    def bind(self, rib: RibView) -> None:
        """Use this cache for ``rib``; another RIB object than last time starts it over."""
        sizes = (len(self._next_hops), len(self._sort_keys), len(self._prefix_errors))
        if rib is not self._rib or max(sizes) > MAX_ENTRIES:
            self.clear()
            self._rib = rib

    def clear(self) -> None:
        self._sort_keys.clear()
        self._prefix_errors.clear()
        self._next_hops.clear()
        self._entries.clear()
        self._root_lengths = {4: set(), 6: set()}
        self.addresses.clear()

    def sort_key(self, prefix: str) -> tuple[int, int, int]:
        """:func:`topfib.controller.selection.closure.prefix_sort_key`, remembered (it does not depend on the
        RIB)."""
        try:
            return self._sort_keys[prefix]
        except KeyError:
            key = self._sort_keys[prefix] = prefix_sort_key(prefix)
            return key

    def prefix_error(self, prefix: str) -> str:
        """Why ``prefix`` is not a prefix (:func:`split_prefix`'s error), "" when it is; remembered."""
        try:
            return self._prefix_errors[prefix]
        except KeyError:
            pass
        try:
            split_prefix(prefix)
            error = ""
        except PrefixError as exc:
            error = str(exc)
        self._prefix_errors[prefix] = error
        return error

    def next_hop(self, prefix: str) -> str | None:
        """The best next-hop of ``prefix``, None when it has no live path."""
        try:
            return self._next_hops[prefix]
        except KeyError:
            assert self._rib is not None, "bind() first"
            path = self._rib.best(prefix)
            next_hop = path.next_hop if path is not None else None
            self._next_hops[prefix] = next_hop
            return next_hop

    def unit(self, root: str, next_hop: str) -> Unit | None:
        """``root``'s unit (:func:`topfib.controller.selection.closure.unit_of`), None when it is ``root``
        alone.

        ``next_hop`` must be :meth:`next_hop` of ``root``.
        """
        return self.entry(root)[1]

    def entry(self, root: str) -> tuple[str | None, Unit | None]:
        """(:meth:`next_hop`, :meth:`unit`) of ``root`` in one look-up: selection's hot path."""
        try:
            return self._entries[root]
        except KeyError:
            pass
        assert self._rib is not None, "bind() first"
        next_hop = self.next_hop(root)
        unit = None
        if next_hop is not None:  # a live path: root is a RIB prefix, canonical
            more_specifics = self._rib.more_specifics(root)
            if more_specifics:
                unit = unit_of(root, next_hop, more_specifics, self.next_hop)
                if len(unit) == 1:
                    unit = None
            # a change inside root must find this entry: note where such entries are
            self._root_lengths[6 if ":" in root else 4].add(int(root.rpartition("/")[2]))
        entry = self._entries[root] = (next_hop, unit)
        return entry

    def entries(self, roots: list[str]) -> list[tuple[str | None, Unit | None]]:
        """:meth:`entry` of each of ``roots``: one C-level pass when they are all cached."""
        found = list(map(self._entries.get, roots))
        for index in [i for i, entry in enumerate(found) if entry is None]:
            found[index] = self.entry(roots[index])
        return found  # type: ignore[return-value]  # no None left

    def forget(self, changed: Iterable[str]) -> None:
        """The RIB changed at these prefixes: drop what depended on them."""
        changed = list(changed)
        if len(changed) > FORGET_ALL_ABOVE:
            self.clear()
            return
        for prefix in changed:
            self._next_hops.pop(prefix, None)
            self._entries.pop(prefix, None)
            try:
                family, network, length = split_prefix(prefix)
            except PrefixError:
                self.clear()  # not ours to judge; being safe costs one cold selection
                return
            self.addresses.forget_inside(family, network, length)
            bits = 32 if family == 4 else 128
            for root_length in self._root_lengths[family]:
                if root_length < length:
                    shift = bits - root_length
                    self._entries.pop(format_network(family, network >> shift << shift, root_length), None)
