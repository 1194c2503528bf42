"""Give freed heap memory back to the OS after a bulk rebuild.

glibc raises its mmap threshold each time a big block is freed, so the large numpy temporaries of
a table load, a DIR-24 paint or an index rebuild end up on the heap, and their memory stays with
the process once freed (a full-table load kept ~100 MB that way). ``malloc_trim`` returns it;
called only after bulk work (it walks the heap), and a no-op where the C library lacks it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

# Bulk work below this size frees too little to be worth a trim.
BULK = 1 << 16


def _find_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # not glibc
        return None
    return trim


_trim = _find_trim()


def trim_heap() -> None:
    if _trim is not None:
        _trim(0)
