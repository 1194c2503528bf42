"""The control loop's answers ahead of a selection: kept in slices, the event loop handed back."""

from __future__ import annotations

import asyncio
import threading
from unittest import mock

from topfib.collector.rib.rib import Rib
from topfib.controller.selection import answer_ahead
from topfib.controller.selection.answer_ahead import answer_new_requests
from topfib.controller.selection.select import OnDemandRequest, SelectionPolicy, UnitCache, select


def test_new_requests_are_answered_in_slices_with_the_loop_handed_back() -> None:
    rib, cache, lock = Rib(), UnitCache(), threading.Lock()
    requests = [OnDemandRequest(f"198.18.0.{i}", 100.0, float(i)) for i in range(7)]
    turns: list[int] = []

    async def other_task() -> None:  # records how many answers were kept at each of its turns
        for _ in range(10):
            turns.append(len(cache.answers))
            await asyncio.sleep(0)

    async def both() -> None:
        await asyncio.gather(answer_new_requests(cache, rib, lock, requests, 0.0), other_task())

    with mock.patch.object(answer_ahead, "ANSWER_SLICE", 3):
        asyncio.run(both())
    assert len(cache.answers) == 7
    assert {0, 3, 6} <= set(turns)  # it ran before each slice, and between them
    policy = SelectionPolicy(cap_ipv4=5, cap_ipv6=5)
    kept = cache.answers.lookup(requests, 0.0)
    answers = select(scores={}, rib=rib, policy=policy, now=0.0, requests=requests, cache=cache).requests
    assert all(a is b for a, b in zip(kept, answers, strict=True))


def test_requests_answered_already_cost_no_slice() -> None:
    rib, cache, lock = Rib(), UnitCache(), threading.Lock()
    requests = [OnDemandRequest(f"198.18.0.{i}", 100.0) for i in range(4)]
    asyncio.run(answer_new_requests(cache, rib, lock, requests, 0.0))
    with mock.patch.object(answer_ahead, "answer_ahead") as work:
        asyncio.run(answer_new_requests(cache, rib, lock, requests, 1.0))
    work.assert_not_called()
