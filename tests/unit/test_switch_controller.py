"""The switch control loop without ExaBGP: preload, overrides, requests and pins into a selection."""

from __future__ import annotations

import asyncio
import gzip
import threading
from pathlib import Path

from collector.accounting import PrefixRates
from controller.config import TopfibConfig
from controller.store import MemoryStore, Pin, RequestEntry
from controller.switch_controller import SwitchController

TABLE = "\n".join(
    ["10.0.0.0\t16\t64500", "10.0.1.0\t24\t64501", "10.0.2.0\t24\t64502", "192.0.2.0\t24\t64503",
     "198.51.100.0\t24\t64504", "2001:db8::\t32\t64505"]
)


def _controller(tmp_path: Path, store: MemoryStore, clock: list[float]) -> SwitchController:
    rib_file = tmp_path / "table.pfx2as.gz"
    rib_file.write_bytes(gzip.compress(TABLE.encode()))
    config = TopfibConfig.model_validate({
        "switch": [{
            "name": "sw1", "neighbor": "10.99.0.2", "local_address": "10.99.0.1", "local_as": 65000,
            "peer_as": 65000, "fib_cap_ipv4": 3, "fib_cap_ipv6": 1, "rib_file": str(rib_file),
            "min_dwell_s": 0, "sflow_agents": ["192.0.2.200"],
        }],
    })
    rates = PrefixRates(fast_half_life_s=30.0, slow_half_life_s=3600.0)
    return SwitchController(
        config.switch[0], config, rates, store, threading.Lock(), tmp_path / "run",
        clock=lambda: clock[0], wall_clock=lambda: 1_000_000.0 + clock[0],
    )


def test_preloaded_table_ranks_traffic_but_nothing_is_programmed_without_a_session(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = MemoryStore()
        clock = [100.0]
        ctl = _controller(tmp_path, store, clock)
        await ctl.start(active=False)
        try:
            assert ctl.rib.counts().ipv4_prefixes == 5
            assert ctl.rib.longest_match("10.0.1.9") == "10.0.1.0/24"
            for prefix, nbytes in (("192.0.2.0/24", 9e6), ("198.51.100.0/24", 5e6), ("10.0.2.0/24", 1e6)):
                ctl.rates.add("sw1", prefix, nbytes, nbytes / 1500, clock[0])
            await store.set_pin(Pin(prefix="10.0.1.0/24", by="op", since=0.0))
            await store.add_requests(
                [RequestEntry(switch="sw1", ip="2001:db8::7", ap="ap1", requested_at=1_000_050.0,
                              expires_at=1_000_700.0)],
                {"sw1": 10}, 1_000_100.0,
            )
            await ctl.tick()
            assert ctl.selection is not None
            routes = ctl.selection.routes
            assert routes["10.0.1.0/24"].reason == "pinned"
            assert routes["2001:db8::/32"].reason == "request"
            topn = sorted(p for p, r in routes.items() if r.reason == "topn")
            assert topn == ["192.0.2.0/24", "198.51.100.0/24"]  # cap 3 = pin + the two hottest
            assert not ctl.ready_to_program()
            assert ctl.installed == {}  # no session: nothing counts as installed

            # an operator lowers the cap: selection follows at the next tick
            await store.update_config_overrides("sw1", {"fib_cap_ipv4": 2}, ())
            clock[0] += 1.0
            await ctl.tick()
            assert ctl.policy.cap_ipv4 == 2
            v4 = [p for p in ctl.selection.routes if ":" not in p]
            assert len(v4) == 2 and "10.0.1.0/24" in v4
        finally:
            await ctl.stop()

    asyncio.run(scenario())
