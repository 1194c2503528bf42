"""Hostile input through the app (what held in the review; kept so it keeps holding): query
parameters out of range, bodies too big, too nested or too many IPs, odd tokens, exposed docs,
the token comparison's timing."""

from __future__ import annotations

import hmac
import json
from types import SimpleNamespace

import pytest

import topfib.api.tokens as tokens_module
from tests.api_support import AP_TOKEN, VIEWER_TOKEN, anyio_backend, auth, build, client
from tests.unit.test_api_matrix import START, VIEW, matrix_app, two_intervals
from topfib.api.tokens import TokenTable, hash_token
from topfib.controller.config import TokenConfig

__all__ = ["anyio_backend"]
pytestmark = pytest.mark.anyio
AP_JSON = {**auth(AP_TOKEN), "content-type": "application/json"}


@pytest.mark.parametrize("query", ["n=-1", "n=0", "n=abc", "n=1e3", "n=%00", "n=99999999999999999999999",
                                   "switch=" + "a" * 10_000])
async def test_top_refuses_hostile_parameters_naming_the_field(query: str) -> None:
    async with client(build()) as c:
        response = await c.get(f"/v1/top?{query}", headers=auth(VIEWER_TOKEN))
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == query.partition("=")[0]


@pytest.mark.parametrize("query", ["limit=0", "limit=-5", "offset=-1", "offset=99999999999999999999",
                                   "limit=x", "offset=1.5"])
async def test_matrix_refuses_hostile_parameters_naming_the_field(query: str) -> None:
    async with client(matrix_app(two_intervals())) as c:
        response = await c.get(f"/v1/matrix?interval={START}&{query}", headers=VIEW)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == query.partition("=")[0]


async def test_matrix_offset_past_the_end_is_an_empty_last_page() -> None:
    async with client(matrix_app(two_intervals())) as c:
        page = (await c.get(f"/v1/matrix?interval={START}&offset=1000", headers=VIEW)).json()
    assert page["rows"] == [] and page["next_offset"] is None


@pytest.mark.parametrize(("body", "status", "field"), [
    (b"[" * 20_000 + b"]" * 20_000, 422, "body"),  # a parser recursion bomb: 422, never a 500
    (b'{"ips":["192.0.2.1"],"x":' + b"[" * 5_000 + b"]" * 5_000 + b"}", 422, "body"),
    (b'{"ips":["192.0.2.1"],"ttl_s":' + b"9" * 5_000 + b"}", 422, "body"),
    (json.dumps({"ips": [f"198.18.{i // 256}.{i % 256}" for i in range(3_000)]}).encode(), 422, "ips"),
])
async def test_hostile_request_bodies_get_a_4xx_naming_the_field(body: bytes, status: int,
                                                                 field: str) -> None:
    async with client(build(), raise_app_exceptions=False) as c:
        response = await c.post("/v1/requests", content=body, headers=AP_JSON)
    assert response.status_code == status, response.text
    assert response.json()["detail"][0]["field"] == field


async def test_a_body_over_max_body_bytes_is_413() -> None:
    async with client(build()) as c:
        body = json.dumps({"ips": ["192.0.2.1"] * 10_000}).encode()
        response = await c.post("/v1/requests", content=body, headers=AP_JSON)
    assert response.status_code == 413


@pytest.mark.parametrize("value", ["Bearer tfb_\u00e9".encode(), "Bearer \u2603".encode(), b"Bearer \xff\xfe",
                                   b"Bearer " + b"x" * 10_000, b"Basic " + AP_TOKEN.encode(),
                                   b"bearer  " + AP_TOKEN.encode()[:-1]])
async def test_odd_authorization_headers_are_401_never_500(value: bytes) -> None:
    async with client(build(), raise_app_exceptions=False) as c:
        response = await c.get("/v1/top", headers={b"authorization": value})
    assert response.status_code == 401


async def test_only_the_schema_and_health_are_open_by_default() -> None:
    async with client(build()) as c:
        for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            assert (await c.get(path)).status_code == 404, path
        for path in ("/v1/fib", "/v1/config", "/v1/nonexistent", "/v1/../v1/config"):
            assert (await c.get(path)).status_code == 401, path


def test_token_lookup_compares_in_constant_time_against_every_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    # the time taken must not tell which entry matched, or how much of a digest did
    table = TokenTable([TokenConfig(name=f"c{i}", role="ap", sha256=hash_token(f"token-{i}"))
                        for i in range(5)])
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens_module, "hmac", SimpleNamespace(compare_digest=counting))
    for presented in ("token-0", "token-4", "nobody", "\u2603" * 1000):
        calls.clear()
        table.authenticate(presented)
        assert len(calls) == 5 and all(len(a) == len(b) == 32 for a, b in calls)
