"""The answers of new requests worked out ahead of a selection, a slice at a time.

Answering a request that has no route costs ~5 µs (its address parsed and looked up, the answer
built and kept), and the selection reuses a kept answer
(:class:`topfib.controller.selection.answer_memo.AnswerMemo`). With access points busy thousands
arrive between two selections; answered inside the selection they held the event loop (which the
API shares) 15-25 ms at a time. Here they are answered in slices of ``ANSWER_SLICE``, the loop
handed back between them, so the selection that follows finds them answered.
"""

from __future__ import annotations

import asyncio
import threading

from topfib.controller.selection.model import OnDemandRequest, RibView
from topfib.controller.selection.select import answer_ahead, unanswered
from topfib.controller.selection.unit_cache import UnitCache

# Requests answered between two returns to the event loop (~2 ms of it).
ANSWER_SLICE = 400


async def answer_new_requests(cache: UnitCache, rib: RibView, rib_lock: threading.Lock,
                              requests: list[OnDemandRequest], now: float) -> None:
    """Keep the placement-free answers of ``requests`` the cache has none for yet, yielding to
    the event loop before each slice (at least once). The RIB may change between slices: each
    change reaches :meth:`UnitCache.forget` before the selection, which drops what it voids."""
    await asyncio.sleep(0)
    pending = unanswered(cache, requests, now)
    for start in range(0, len(pending), ANSWER_SLICE):
        if start:
            await asyncio.sleep(0)
        with rib_lock:
            answer_ahead(cache, rib, pending[start:start + ANSWER_SLICE], now)
