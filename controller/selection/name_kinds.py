"""Which FIB table each scored name belongs in, remembered across selections by object identity.

When a table fills, selection must sort the rest of 200k scored names by table, and reading
200k scattered strings (``":" in p``) is the costliest thing a selection does. The names of one
loop are mostly the very string objects of the last one (the collector keeps its prefix names),
so their kinds are remembered by ``id``: a name whose id was seen last call, while that call's
list kept the object alive, is that same object, so it has the same kind. Only the new ones are
read.
"""

from __future__ import annotations

import ctypes
import platform

import numpy as np
import numpy.typing as npt

from topfib.controller.selection.model import TABLE_IPV4, TABLE_IPV4_24, TABLE_IPV6

KindArray = npt.NDArray[np.int8]
IdArray = npt.NDArray[np.uint64]

# kinds: what :meth:`SelectionPolicy.table_of` looks at in a name
KIND_IPV4, KIND_IPV4_24, KIND_IPV6 = 0, 1, 2  # NameKinds.kinds has them inlined


def kind_of(name: str) -> int:
    return KIND_IPV6 if ":" in name else KIND_IPV4_24 if name.endswith("/24") else KIND_IPV4


def table_of_kind(tables: list[str]) -> npt.NDArray[np.int64]:
    """Index into ``tables`` per kind (a /24 goes to the ipv4 table when there is no /24 table)."""
    v4 = tables.index(TABLE_IPV4)
    v24 = tables.index(TABLE_IPV4_24) if TABLE_IPV4_24 in tables else v4
    return np.array([v4, v24, tables.index(TABLE_IPV6)], np.int64)


def _list_items(names: list[str]) -> IdArray:
    """The list's item pointers, read from CPython's list object (``PyObject **ob_item`` follows
    the variable-size object header) without touching the items: handing each item to Python
    code increments its reference count, a cache miss per scattered string."""
    items = ctypes.c_void_p.from_address(id(names) + _OB_ITEM_OFFSET).value
    if not names or items is None:
        return np.empty(0, np.uint64)
    pointers = memoryview((ctypes.c_uint64 * len(names)).from_address(items))
    return np.frombuffer(pointers, np.uint64).copy()


def _mapped_ids(names: list[str]) -> IdArray:
    return np.fromiter(map(id, names), np.uint64, len(names))


_OB_ITEM_OFFSET = 3 * ctypes.sizeof(ctypes.c_void_p)  # refcount, type, size
_PROBE = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.0/24"]
# the layout read is CPython's; anything else (or a layout that changed) takes the slow road
_READS_LISTS = platform.python_implementation() == "CPython" and _list_items(_PROBE).tolist() == [
    id(p) for p in _PROBE
]
addresses = _list_items if _READS_LISTS else _mapped_ids


class NameKinds:
    """Kind (``KIND_*``) of each name of a list, remembered from the previous list."""

    def __init__(self) -> None:
        # the last list: holding it keeps its objects alive, which is what makes an id a name
        self._names: list[str] = []
        self._ids: IdArray = np.empty(0, np.uint64)  # in list order
        self._kinds: KindArray = np.empty(0, np.int8)
        self._sorted: tuple[IdArray, KindArray] | None = None  # by id, built when first needed
        self._with_24 = False  # whether the kinds tell /24s apart

    def kinds(self, names: list[str], with_24: bool = True) -> KindArray:
        """Kind of each of ``names``; the caller must not change the list afterwards.

        ``with_24`` False: /24s may come back as ``KIND_IPV4`` (no /24 table: one look less)."""
        ids = addresses(names)
        reusable = len(self._ids) and (self._with_24 or not with_24)
        if reusable and np.array_equal(ids, self._ids):  # the same objects in the same order
            kinds = self._kinds
        else:
            kinds = np.full(len(names), -1, np.int8)
            if reusable:
                known_ids, known_kinds = self._by_id()
                at = np.minimum(np.searchsorted(known_ids, ids), len(known_ids) - 1)
                seen = known_ids[at] == ids
                kinds[seen] = known_kinds[at[seen]]
            new = np.flatnonzero(kinds < 0)
            fresh = names if len(new) == len(names) else map(names.__getitem__, new.tolist())
            if with_24:  # kind_of, inlined
                kinds[new] = [2 if ":" in p else 1 if p.endswith("/24") else 0 for p in fresh]
            else:
                kinds[new] = [2 if ":" in p else 0 for p in fresh]
                with_24 = bool(self._with_24 and reusable and len(new) == 0)
            self._sorted = None
            self._with_24 = bool(with_24)
        self._names, self._ids, self._kinds = names, ids, kinds
        return kinds

    def _by_id(self) -> tuple[IdArray, KindArray]:
        if self._sorted is None:
            order = np.argsort(self._ids)
            self._sorted = self._ids[order], self._kinds[order]
        return self._sorted


# names per wanted one above which a fresh sort by id costs more than looking the wanted up
SORT_PAYS_PER = 16


class NamePositions:
    """Where names sit in a list, found by identity; the sort is kept for the same list again."""

    def __init__(self) -> None:
        self._names: list[str] = []  # held: its objects stay alive, so an id found is that name
        self._ids: IdArray = np.empty(0, np.uint64)
        self._order: npt.NDArray[np.int64] | None = None  # argsort of _ids, once needed

    def positions(self, names: list[str], wanted: list[str]) -> npt.NDArray[np.int64]:
        """Index in ``names`` of each of ``wanted`` that is one of its objects, else -1 (an equal
        string that is another object is not found: the caller looks that one up by value).

        Sorting the names by id costs about what 15k look-ups by value do: a new list is only
        sorted when ``wanted`` is that many (else nothing is found, and the caller looks up)."""
        ids = addresses(names)
        if not np.array_equal(ids, self._ids):
            self._order = None
        self._names, self._ids = names, ids
        found = np.full(len(wanted), -1, np.int64)
        if not len(ids) or not wanted or (self._order is None and len(wanted) * SORT_PAYS_PER < len(ids)):
            return found
        if self._order is None:
            self._order = np.argsort(ids)
        sorted_ids = ids[self._order]
        wanted_ids = addresses(wanted)
        at = np.minimum(np.searchsorted(sorted_ids, wanted_ids), len(ids) - 1)
        hit = sorted_ids[at] == wanted_ids
        found[hit] = self._order[at[hit]]
        return found
