"""The switch's desired and installed FIBs as JSON snapshots in the store (for the API, `topfib
ctl` and the dashboard of every replica), encoded off the event loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from topfib.controller.selection.select import Selection
from topfib.controller.selection.snapshot_json import SelectionJson
from topfib.controller.state.store import Store, StoreUnavailable


class SnapshotPublisher:
    """Writes ``desired_fib`` and ``installed_fib`` after each selection."""

    def __init__(self, switch_name: str, store: Store) -> None:
        self._switch_name = switch_name
        self._store = store
        self._desired_json = SelectionJson()  # unchanged answers are not re-encoded
        # its own thread (one per switch, made at the first snapshot and kept): encoding every
        # iteration in the loop's shared pool would grow that pool whenever it overlaps other work
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"snapshot-{switch_name}")

    async def publish(self, selection: Selection, installed: Mapping[str, str]) -> None:
        """Store both snapshots; a store that is down is skipped (the next selection writes them)."""
        try:
            # encoded off the event loop (the API's): a FIB of 20k routes is tens of milliseconds
            desired = await asyncio.get_running_loop().run_in_executor(
                self._encoder, self._desired_json.encode, selection)
            await self._store.put_snapshot(self._switch_name, "desired_fib", desired)
            await self._store.put_snapshot(
                self._switch_name, "installed_fib", json.dumps(dict(sorted(installed.items())))
            )
        except StoreUnavailable:
            pass

    def close(self) -> None:
        self._encoder.shutdown(wait=False, cancel_futures=True)
