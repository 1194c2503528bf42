"""A FastAPI route whose endpoint handles the raw Request itself, for the one hot endpoint."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, cast

from fastapi import Request, Response
from fastapi.routing import APIRoute


class DirectRoute(APIRoute):
    """FastAPI still documents the route (``response_model``, ``responses``, ``openapi_extra``),
    but each call goes straight to the endpoint, ``async (Request) -> Response``: no dependency
    solving, no response re-validation. That saves about 50 µs of CPU per call, a seventh of
    ``POST /v1/requests``; the endpoint does its own validation and authorisation."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return cast(Callable[[Request], Coroutine[Any, Any, Response]], self.endpoint)
