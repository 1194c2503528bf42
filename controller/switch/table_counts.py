"""Routes per FIB table, kept as they change instead of recounted on every question.

Counted once with /24s apart (whether they have a table of their own is the policy's, and a
reload may change it) and merged per policy when asked (:meth:`TableCounts.under`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from topfib.controller.selection.model import TABLE_IPV4, TABLE_IPV4_24, SelectionPolicy

# Which table a prefix takes when /24s have one of their own (SelectionPolicy.table_of's rule).
SPLIT_TABLES = SelectionPolicy(cap_ipv4=1, cap_ipv6=1, cap_ipv4_24=1)


class TableCounts:
    """How many of a set of prefixes each FIB table holds; the owner reports every change."""

    def __init__(self, prefixes: Iterable[str] = ()) -> None:
        self._counts = Counter(map(SPLIT_TABLES.table_of, prefixes))

    def add(self, prefixes: Iterable[str]) -> None:
        self._counts.update(map(SPLIT_TABLES.table_of, prefixes))

    def remove(self, prefixes: Iterable[str]) -> None:
        self._counts.subtract(map(SPLIT_TABLES.table_of, prefixes))

    def under(self, policy: SelectionPolicy) -> dict[str, int]:
        """Prefixes per table of ``policy`` (each of its tables present, 0 when empty)."""
        used = dict.fromkeys(policy.caps(), 0)
        for table, count in self._counts.items():
            if table == TABLE_IPV4_24 and not policy.cap_ipv4_24:
                table = TABLE_IPV4
            used[table] = used.get(table, 0) + count
        return used
