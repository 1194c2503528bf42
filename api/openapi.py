"""The OpenAPI document: what the middleware does, declared once on the generated schema.

Authentication, rate limits and the body limit run as ASGI middleware (before FastAPI parses
anything), so FastAPI cannot see them; a security dependency per route would cost every request a
header parse. Instead the generated schema is amended here: the bearer scheme and its 401/403/429
on every operation outside the public paths, and 400/413 on every operation that takes a body.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from topfib.api.auth import PUBLIC_PATHS

BEARER_SCHEME = {"type": "http", "scheme": "bearer", "description": "a token from `topfib token new`"}
_ERROR_REF = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
_AUTH_RESPONSES = {
    "401": {"description": "missing or invalid bearer token", **_ERROR_REF},
    "403": {"description": "the token's role may not use this endpoint", **_ERROR_REF},
    "429": {"description": "rate limit exceeded for this token (see Retry-After)", **_ERROR_REF},
}
_BODY_ERRORS = {
    "400": {"description": "body is not decodable (FastAPI's own answer to undecodable bytes)", **_ERROR_REF},
    "413": {"description": "body larger than api.max_body_bytes", **_ERROR_REF},
}


def amend_schema(schema: dict[str, Any], public: frozenset[str] = PUBLIC_PATHS) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearer"] = BEARER_SCHEME
    components.setdefault("schemas", {}).setdefault("ErrorOut", {
        "title": "ErrorOut", "type": "object", "required": ["detail"],
        "properties": {"detail": {"title": "Detail", "type": "string"}},
    })
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "{" in path:  # a parameter value the router cannot place (e.g. a newline) matches no route
                responses.setdefault("404", {"description": "no such resource", **_ERROR_REF})
            if "requestBody" in operation:
                responses.update(_BODY_ERRORS)
            if path not in public:
                operation["security"] = [{"bearer": []}]
                responses.update(_AUTH_RESPONSES)
    return schema


def install_openapi(app: FastAPI, public: frozenset[str] = PUBLIC_PATHS) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = amend_schema(get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes),
                public)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
