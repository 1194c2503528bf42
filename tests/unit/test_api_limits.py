from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.api_support import (
    AP_TOKEN,
    anyio_backend,  # noqa: F401
    auth,
    build,
    client,
    make_config,
)

pytestmark = pytest.mark.anyio


async def test_declared_oversize_body_is_413_before_reading() -> None:
    app = build(config=make_config(api={"max_body_bytes": 64}))
    big = b'{"ips": ["' + b"1" * 100 + b'"]}'
    async with client(app) as c:
        response = await c.post("/v1/requests", content=big, headers={**auth(AP_TOKEN),
                                                                         "content-type": "application/json"})
    assert response.status_code == 413
    assert "64 bytes" in response.json()["detail"]


async def test_streamed_oversize_body_is_413() -> None:
    app = build(config=make_config(api={"max_body_bytes": 64}))

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"ips": ["198.51.100.7",'
        for _ in range(10):
            yield b' "198.51.100.7",'
        yield b' "198.51.100.7"]}'

    async with client(app) as c:
        headers = {**auth(AP_TOKEN), "content-type": "application/json"}
        response = await c.post("/v1/requests", content=chunks(), headers=headers)
    assert response.status_code == 413


async def test_body_at_the_limit_is_accepted() -> None:
    body = b'{"ips": ["198.51.100.7"]}'
    app = build(config=make_config(api={"max_body_bytes": len(body)}))
    async with client(app) as c:
        response = await c.post("/v1/requests", content=body, headers={**auth(AP_TOKEN),
                                                                          "content-type": "application/json"})
    assert response.status_code == 200


async def test_unauthenticated_oversize_body_is_401_not_read() -> None:
    app = build(config=make_config(api={"max_body_bytes": 8}))
    async with client(app) as c:
        response = await c.post("/v1/requests", content=b"x" * 100)
    assert response.status_code == 401


async def test_invalid_content_length_is_400() -> None:
    app = build()
    scope_headers = [(b"host", b"x"), (b"authorization", f"Bearer {AP_TOKEN}".encode()),
                     (b"content-length", b"12abc")]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "path": "/v1/requests", "raw_path": b"/v1/requests", "query_string": b"", "root_path": "",
             "scheme": "http", "headers": scope_headers, "client": ("127.0.0.1", 1), "server": ("x", 80)}
    await app(scope, receive, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 400
