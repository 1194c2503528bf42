"""``GET /v1/matrix`` answers in pages of at most MATRIX_PAGE_MAX rows (bounded size and time)."""

from __future__ import annotations

import httpx
import pytest

from tests.api_support import anyio_backend, client
from tests.unit.test_api_matrix import START, VIEW, matrix_app, two_intervals
from topfib.api.routes.matrix import MATRIX_PAGE_MAX

__all__ = ["anyio_backend"]
pytestmark = pytest.mark.anyio


async def test_pages_walk_every_row_once_in_order() -> None:
    async with client_for() as c:
        whole = (await c.get(f"/v1/matrix?interval={START}", headers=VIEW)).json()
        assert len(whole["rows"]) == 3 and whole["next_offset"] is None
        rows, offset, pages = [], 0, 0
        while offset is not None and pages < 10:
            page = (await c.get(f"/v1/matrix?interval={START}&limit=2&offset={offset}", headers=VIEW)).json()
            rows += page["rows"]
            offset, pages = page["next_offset"], pages + 1
        assert rows == whole["rows"] and pages == 2
        csv = await c.get(f"/v1/matrix?interval={START}&limit=1&format=csv", headers=VIEW)
        assert csv.headers["x-next-offset"] == "1" and len(csv.text.strip().splitlines()) == 2


async def test_a_page_larger_than_the_cap_is_refused_naming_the_field() -> None:
    async with client_for() as c:
        response = await c.get(f"/v1/matrix?limit={MATRIX_PAGE_MAX + 1}", headers=VIEW)
    assert response.status_code == 422 and "limit" in str(response.json()["detail"][0]["loc"])


def client_for() -> httpx.AsyncClient:
    return client(matrix_app(two_intervals()))
