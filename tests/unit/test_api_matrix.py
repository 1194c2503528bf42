"""GET /v1/matrix: intervals by name or start, switch filter, CSV, roles, errors naming the field."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from fastapi import FastAPI

from tests.api_support import (
    AP_TOKEN,
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    FakeClock,
    anyio_backend,  # noqa: F401
    auth,
    build,
    client,
    make_config,
    make_view,
)
from topfib.api.app import create_app
from topfib.collector.common.metrics import Registry
from topfib.collector.matrix.traffic_matrix import TrafficMatrix
from topfib.controller.state.store import MemoryStore

pytestmark = pytest.mark.anyio
VIEW = auth(VIEWER_TOKEN)
START = 1_764_104_400  # 2025-11-25T21:00:00Z
HOPS = ["192.0.2.1", "2001:db8::1"]


def feed(matrix: TrafficMatrix, switch: str, now: float, nbytes: list[float], hop_ids: list[int]) -> None:
    count = len(nbytes)
    matrix.add(switch, np.full(count, 3, np.uint32), np.array(hop_ids, np.int64), HOPS,
               np.full(count, 64496, np.uint32), np.array(nbytes), np.ones(count), now)


def matrix_app(matrix: TrafficMatrix, switches: tuple[str, ...] = ("edge1", "edge2"),
               clock: FakeClock | None = None) -> FastAPI:
    return create_app(make_config(switches, api={"rate_limit_per_s": 1e9, "rate_limit_burst": 10**9}),
                      MemoryStore(), make_view(switches), clock=clock or FakeClock(START + 130.0),
                      traffic_matrix=matrix)


def two_intervals() -> TrafficMatrix:
    matrix = TrafficMatrix(interval_s=60, keep_intervals=5, registry=Registry())
    matrix.roll(START)
    feed(matrix, "edge1", START + 10, [1000, 500], [0, -1])
    feed(matrix, "edge2", START + 20, [70], [1])
    feed(matrix, "edge1", START + 70, [3000], [1])
    matrix.roll(START + 125)  # closes START and START + 60
    feed(matrix, "edge2", START + 126, [9], [0])
    return matrix


async def test_last_interval_with_all_switches_and_one() -> None:
    async with client(matrix_app(two_intervals())) as c:
        everything = (await c.get("/v1/matrix", headers=VIEW)).json()
        edge1 = (await c.get("/v1/matrix?switch=edge1&interval=last", headers=auth(OPERATOR_TOKEN))).json()
        edge2 = (await c.get("/v1/matrix?switch=edge2", headers=VIEW)).json()
    assert everything == {
        "interval_start": START + 60, "interval_end": START + 120,
        "interval_start_utc": "2025-11-25T21:01:00Z", "complete": True, "switch": None,
        "kept_intervals": [START, START + 60], "next_offset": None,
        "rows": [{"switch": "edge1", "input_if": 3, "next_hop": "2001:db8::1", "peer_asn": 64496,
                  "bytes": 3000.0, "packets": 1.0, "samples": 1, "other": False}],
    }
    assert edge1["rows"] == everything["rows"] and edge1["switch"] == "edge1"
    assert edge2["rows"] == [] and edge2["interval_start"] == START + 60


async def test_an_interval_by_start_and_the_running_one() -> None:
    async with client(matrix_app(two_intervals())) as c:
        by_unix = (await c.get(f"/v1/matrix?interval={START}", headers=VIEW)).json()
        by_iso = (await c.get("/v1/matrix?interval=2025-11-25T21:00:00Z", headers=VIEW)).json()
        current = (await c.get("/v1/matrix?interval=current", headers=VIEW)).json()
    assert by_unix == by_iso
    assert [(r["switch"], r["next_hop"], r["bytes"]) for r in by_unix["rows"]] == [
        ("edge1", "192.0.2.1", 1000.0), ("edge1", None, 500.0), ("edge2", "2001:db8::1", 70.0)]
    assert by_unix["complete"] is True
    assert (current["interval_start"], current["complete"]) == (START + 120, False)
    assert [r["bytes"] for r in current["rows"]] == [9.0]


async def test_csv_has_a_header_and_the_file_columns() -> None:
    async with client(matrix_app(two_intervals())) as c:
        response = await c.get(f"/v1/matrix?interval={START}&switch=edge1&format=csv", headers=VIEW)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(response.text.splitlines()))
    assert [(r["next_hop"], r["bytes"], r["interval_start"]) for r in rows] == [
        ("192.0.2.1", "1000", "2025-11-25T21:00:00Z"), ("", "500", "2025-11-25T21:00:00Z")]


@pytest.mark.parametrize(("query", "field"), [
    ("interval=yesterday", "interval"),
    (f"interval={START + 1}", "interval"),  # not a multiple of interval_s
    ("interval=2025-13-25T21:00:00Z", "interval"),
    ("format=xml", "format"),
    ("switch=" + "x" * 65, "switch"),
])
async def test_bad_parameters_are_422_naming_the_field(query: str, field: str) -> None:
    async with client(matrix_app(two_intervals())) as c:
        response = await c.get(f"/v1/matrix?{query}", headers=VIEW)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == field


async def test_unknown_switch_and_missing_intervals_are_404_saying_which() -> None:
    async with client(matrix_app(two_intervals())) as c:
        switch = await c.get("/v1/matrix?switch=zzz", headers=VIEW)
        gone = await c.get(f"/v1/matrix?interval={START - 3600}", headers=VIEW)
    assert switch.status_code == 404 and "'zzz'" in switch.json()["detail"]
    assert gone.status_code == 404 and "2025-11-25T20:00:00Z" in gone.json()["detail"]
    fresh = TrafficMatrix(registry=Registry())
    async with client(matrix_app(fresh)) as c:
        none_yet = await c.get("/v1/matrix", headers=VIEW)
    assert none_yet.status_code == 404
    assert "no traffic matrix interval closed yet" in none_yet.json()["detail"]


async def test_viewers_and_operators_only() -> None:
    async with client(matrix_app(two_intervals())) as c:
        assert (await c.get("/v1/matrix", headers=auth(AP_TOKEN))).status_code == 403
        assert (await c.get("/v1/matrix")).status_code == 401


async def test_absent_when_the_matrix_is_disabled() -> None:
    async with client(build()) as c:
        assert (await c.get("/v1/matrix", headers=VIEW)).status_code == 404
        assert "/v1/matrix" not in (await c.get("/openapi.json")).json()["paths"]
