"""Selection runs without the RIB lock, so the collector's threads account meanwhile (issue 21)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import topfib.controller.switch.controller as switch_controller
from tests.unit.test_switch_controller import _controller
from topfib.collector.rib.lpm import LpmTable
from topfib.controller.state.store import MemoryStore


def test_selection_runs_while_the_collector_may_take_the_rib_lock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held_during_selection: list[bool] = []
    real_select = switch_controller.select  # type: ignore[attr-defined]

    async def scenario() -> None:
        ctl = _controller(tmp_path, MemoryStore(), [100.0])

        def watched_select(**kwargs: Any) -> Any:
            held_during_selection.append(ctl.rib_lock.locked())
            return real_select(**kwargs)

        monkeypatch.setattr(switch_controller, "select", watched_select)
        await ctl.start(active=False)
        try:
            ctl.rates.add("sw1", "192.0.2.0/24", 9e6, 6000, 100.0)
            await ctl.tick()
            assert ctl.selection is not None and "192.0.2.0/24" in ctl.selection.routes
        finally:
            await ctl.stop()

    asyncio.run(scenario())
    assert held_during_selection == [False]


def test_a_settled_lpm_only_reads_until_the_next_change() -> None:
    table = LpmTable(["10.0.0.0/8", "10.1.0.0/16", "10.1.2.128/25", "2001:db8::/32", "2001:db8:1::/48"])
    table.settle()
    dir24 = table._dir24_index
    state = (dir24.ids, bytes(dir24.pending_add), bytes(dir24.pending_remove), table._v6_mask32,
             list(table._lengths_desc))
    assert table.lookup("10.1.2.200") == "10.1.2.128/25"
    assert table.lookup("10.1.3.1") == "10.1.0.0/16"
    assert table.lookup("2001:db8:1::1") == "2001:db8:1::/48"
    assert (dir24.ids, bytes(dir24.pending_add), bytes(dir24.pending_remove), table._v6_mask32,
            list(table._lengths_desc)) == state
    table.add("10.2.0.0/16")  # a change: the next lookup paints it in
    assert table.lookup("10.2.0.1") == "10.2.0.0/16"
