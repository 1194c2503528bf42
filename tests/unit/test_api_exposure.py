"""What the API shows to whom: docs off by default, /metrics behind a token on request, top n capped."""

from __future__ import annotations

import pytest

from tests.api_support import AP_TOKEN, VIEWER_TOKEN, anyio_backend, auth, build, client, make_config

__all__ = ["anyio_backend"]
pytestmark = pytest.mark.anyio


async def test_swagger_ui_and_redoc_are_off_by_default_and_the_schema_stays() -> None:
    async with client(build()) as c:
        assert (await c.get("/docs")).status_code == 404
        assert (await c.get("/redoc")).status_code == 404
        assert (await c.get("/openapi.json")).status_code == 200


async def test_api_docs_true_serves_them() -> None:
    async with client(build(config=make_config(api={"docs": True}))) as c:
        assert (await c.get("/docs")).status_code == 200
        assert (await c.get("/redoc")).status_code == 200


async def test_metrics_token_required_needs_a_viewer_or_operator_token() -> None:
    async with client(build(config=make_config(api={"metrics_token_required": True}))) as c:
        assert (await c.get("/metrics")).status_code == 401
        assert (await c.get("/metrics", headers=auth(AP_TOKEN))).status_code == 403
        response = await c.get("/metrics", headers=auth(VIEWER_TOKEN))
        assert response.status_code == 200 and "topfib_api_http_responses_total" in response.text
        schema = (await c.get("/openapi.json")).json()
        assert schema["paths"]["/metrics"]["get"]["security"] == [{"bearer": []}]
    async with client(build()) as c:
        assert (await c.get("/metrics")).status_code == 200  # the default: open


async def test_top_n_past_api_top_max_is_refused_naming_the_field() -> None:
    async with client(build(config=make_config(api={"top_max": 50}))) as c:
        assert (await c.get("/v1/top?n=50", headers=auth(VIEWER_TOKEN))).status_code == 200
        response = await c.get("/v1/top?n=51", headers=auth(VIEWER_TOKEN))
        assert response.status_code == 422
        assert "top_max" in response.text and "n" in str(response.json()["detail"][0]["loc"])
