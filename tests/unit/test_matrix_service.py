"""The service's traffic matrix wiring: built from [matrix], rolled on time, written, flushed on stop."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest

from topfib.controller.config import ConfigError, TopfibConfig
from topfib.controller.service.run import Service


def config(matrix: dict[str, object]) -> TopfibConfig:
    """Ports that are never bound: these tests start no listener (start() fails before them)."""
    return TopfibConfig.model_validate({
        "api": {"listen": "127.0.0.1:18080"},
        "collector": {"sflow_listen": ["127.0.0.1:16343"]},
        "matrix": matrix,
        "switch": [{"name": "edge1", "neighbor": "10.0.0.2", "local_address": "10.0.0.1", "local_as": 65000,
                    "peer_as": 65000, "sflow_agents": ["10.0.0.2"], "fib_cap_ipv4": 10, "fib_cap_ipv6": 10}],
    })


def paths(service: Service) -> set[str]:
    return set(service.app.openapi()["paths"])


def stamp(unix_s: int) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(unix_s))


def test_disabled_means_no_matrix_and_no_route(tmp_path: Path) -> None:
    service = Service(config({"enabled": False}), runtime_dir=tmp_path)
    assert service.matrix is None and service.matrix_writer is None
    assert "/v1/matrix" not in paths(service)


def test_enabled_by_default_in_memory_and_fed_by_the_collector(tmp_path: Path) -> None:
    service = Service(config({}), runtime_dir=tmp_path)
    assert service.matrix is not None and service.matrix_writer is None
    assert getattr(service.collector, "matrix", None) is service.matrix
    assert "/v1/matrix" in paths(service)


def test_an_unwritable_directory_fails_start_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    service = Service(config({"directory": str(tmp_path / "file" / "matrix")}), runtime_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"matrix\.directory: cannot write to"):
        asyncio.run(service.start())


def test_intervals_are_rolled_on_time_written_and_the_last_flushed_on_stop(tmp_path: Path) -> None:
    directory = tmp_path / "matrix"
    service = Service(config({"interval_s": 1, "directory": str(directory)}), runtime_dir=tmp_path)
    matrix, writer = service.matrix, service.matrix_writer
    assert matrix is not None and writer is not None
    matrix.close_delay_s = 0.1
    writer.prepare()

    def feed() -> None:
        matrix.add("edge1", np.array([5], np.uint32), np.array([0], np.int64), ["192.0.2.1"],
                   np.array([64496], np.uint32), np.array([1000.0]), np.array([1.0]), time.monotonic())

    async def run() -> None:
        roller = asyncio.create_task(service._roll_matrix(matrix))
        for _ in range(5):  # 2.5 s: two intervals or more close while running
            feed()
            await asyncio.sleep(0.5)
        service._stopping.set()
        await asyncio.wait_for(roller, 5.0)
        await service._write_matrix(matrix.flush(time.monotonic()), final=True)

    asyncio.run(run())
    files = sorted(directory.glob("matrix-*.jsonl"))
    assert len(files) >= 3
    records = [json.loads(line) for path in files for line in path.read_text().splitlines()]
    assert sum(r["bytes"] for r in records) == 5000
    assert {(r["input_if"], r["next_hop"], r["peer_asn"]) for r in records} == {(5, "192.0.2.1", 64496)}
    closed = matrix.closed()  # a file per interval, quiet ones (empty files) included
    assert [path.name for path in files] == [f"matrix-{stamp(i.start)}.jsonl" for i in closed]
    assert closed[-1].complete is False  # the running interval, flushed on stop
    assert all(i.complete for i in closed[1:-1])
    assert not list(directory.glob(".matrix-*"))
