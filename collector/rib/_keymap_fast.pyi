"""Type stub for the C probes (collector/rib/_keymap_fast.c); see collector/rib/keymap.py."""

from array import array

SLOT_LAYOUT: int

def probe(table: tuple[array[int], int], networks: array[int], network: int, length: int, /) -> int: ...
def place(table: tuple[array[int], int], network: int, length: int, prefix_id: int, /) -> None: ...
