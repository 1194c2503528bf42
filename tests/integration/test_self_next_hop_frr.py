"""FRR with ``next-hop-self`` on the session to topfib (what README says not to do): every path
arrives via the switch's own address, which FRR would refuse to install back. topfib ignores
those paths, counts them, and reports nothing as installed: it announces nothing at all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.integration.fault_support import free_port
from tests.integration.frr_lab import FrrLab, frr_unavailable_reason
from tests.integration.lab import SW_V6, async_wait_until
from topfib.controller.config import TopfibConfig
from topfib.controller.service.run import Service
from topfib.controller.state.store import Pin

pytestmark = pytest.mark.integration


@pytest.fixture
def self_lab() -> Iterator[FrrLab]:
    reason = frr_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    lab = FrrLab(routes_v4=30, routes_v6=10, next_hop_self=True)
    with lab:
        yield lab


async def _next_hop_self(lab: FrrLab) -> None:
    switch = lab.switch_config(fib_cap_ipv4=20, fib_cap_ipv6=5, loop_period_s=0.2, min_dwell_s=0.0,
                               own_addresses=[SW_V6])
    config = TopfibConfig.model_validate({
        "api": {"listen": f"127.0.0.1:{free_port()}"},
        "collector": {"sflow_listen": [f"127.0.0.1:{free_port()}"], "receive_buffer_bytes": 1 << 20},
        "switch": [switch.model_dump()],
    })
    service = Service(config, runtime_dir=lab.workdir / "topfib", netns=lab.ctl)
    await service.start()
    try:
        ctl = next(iter(service.controllers.values()))
        assert await async_wait_until(ctl.ready_to_program, 30.0)
        assert await async_wait_until(lab.peers_established, 30.0, 0.5), "FRR's peers not up"
        for prefix in lab.prefixes_v4[:10] + lab.prefixes_v6[:3]:
            await service.store.set_pin(Pin(prefix, "ops", time.time()))
        ctl.wake()
        await asyncio.sleep(2.0)  # ten loop periods: whatever topfib would program is out
        kernel = lab.fib_next_hops()
        assert ctl.installed == {}, (f"{len(ctl.installed)} routes reported installed, the switch's "
                                     f"kernel holds {len(kernel)}")
        assert ctl.occupancy()["ipv4"][0] == 0 and kernel == {}
        expected = len(lab.prefixes_v4) + len(lab.prefixes_v6)  # at least one path each via the switch
        assert ctl.self_next_hops.ignored >= expected
        assert len(ctl.rib) == 0, [ctl.rib.best(p) for p in list(ctl.rib)[:5]]
        print(f"\nnext-hop-self: {ctl.self_next_hops.ignored} paths via the switch ignored, "
              "nothing installed")
    finally:
        await service.stop()


def test_paths_via_the_switch_itself_are_ignored_and_nothing_is_reported_installed(self_lab: FrrLab) -> None:
    asyncio.run(_next_hop_self(self_lab))
