from __future__ import annotations

from typing import Any

import pytest

from tests.api_support import (
    AP2_TOKEN,
    AP_TOKEN,
    ROLE_TOKENS,
    FakeClock,
    anyio_backend,  # noqa: F401
    auth,
    build,
    client,
    make_config,
)
from topfib.api.metrics import AUTH_FAILURES, RATE_LIMITED

pytestmark = pytest.mark.anyio

# (method, path, body, roles allowed)
ENDPOINTS: list[tuple[str, str, Any, set[str]]] = [
    ("POST", "/v1/requests", {"ips": ["198.51.100.7"]}, {"ap", "operator"}),
    ("DELETE", "/v1/requests/198.51.100.7", None, {"ap", "operator"}),
    ("GET", "/v1/requests", None, {"ap", "viewer", "operator"}),
    ("GET", "/v1/config", None, {"operator"}),
    ("PUT", "/v1/config/switches/edge1", {"margin": 0.5}, {"operator"}),
    ("PUT", "/v1/pins/198.51.100.0/24", {"note": "x"}, {"operator"}),
    ("DELETE", "/v1/pins/198.51.100.0/24", None, {"operator"}),
    ("GET", "/v1/pins", None, {"viewer", "operator"}),
    ("GET", "/v1/fib", None, {"viewer", "operator"}),
    ("GET", "/v1/top?n=5", None, {"viewer", "operator"}),
    ("GET", "/v1/rib/198.51.100.7", None, {"viewer", "operator"}),
    ("GET", "/v1/status", None, {"viewer", "operator"}),
]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS)
async def test_every_endpoint_needs_a_token_and_the_right_role(
    method: str, path: str, body: Any, allowed: set[str]
) -> None:
    app = build()
    async with client(app) as c:
        for headers in ({}, auth("tfb_wrong"), {"Authorization": "Basic dXNlcjpwYXNz"}):
            response = await c.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
        for role, token in ROLE_TOKENS.items():
            response = await c.request(method, path, json=body, headers=auth(token))
            if role in allowed:
                assert response.status_code not in (401, 403), (role, response.text)
            else:
                assert response.status_code == 403, (role, response.text)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
async def test_health_metrics_and_docs_answer_without_token(path: str) -> None:
    async with client(build()) as c:
        assert (await c.get(path)).status_code == 200


async def test_unknown_paths_answer_401_not_404_without_token() -> None:
    async with client(build()) as c:
        assert (await c.get("/v1/secret-admin")).status_code == 401
        assert (await c.get("/v1/secret-admin", headers=auth(AP_TOKEN))).status_code == 404


async def test_auth_failures_are_counted_by_reason() -> None:
    before = {r: AUTH_FAILURES.value(reason=r) for r in ("missing", "invalid", "forbidden")}
    async with client(build()) as c:
        await c.get("/v1/fib")
        await c.get("/v1/fib", headers=auth("nope"))
        await c.get("/v1/fib", headers=auth(AP_TOKEN))
    assert {r: AUTH_FAILURES.value(reason=r) - before[r] for r in before} == {
        "missing": 1, "invalid": 1, "forbidden": 1}


async def test_rate_limit_per_token_answers_429_with_retry_after_and_refills() -> None:
    clock = FakeClock()
    app = build(config=make_config(api={"rate_limit_per_s": 1.0, "rate_limit_burst": 3}), clock=clock)
    before = RATE_LIMITED.value(client="ap1")
    async with client(app) as c:
        codes = [(await c.get("/v1/requests", headers=auth(AP_TOKEN))).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = await c.get("/v1/requests", headers=auth(AP_TOKEN))
        assert limited.headers["retry-after"] == "1"
        assert (await c.get("/v1/requests", headers=auth(AP2_TOKEN))).status_code == 200
        clock.advance(1.0)
        assert (await c.get("/v1/requests", headers=auth(AP_TOKEN))).status_code == 200
        assert (await c.get("/healthz")).status_code == 200  # never limited
    assert RATE_LIMITED.value(client="ap1") - before == 2
