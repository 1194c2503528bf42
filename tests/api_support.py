"""Shared builders for the API and store tests: config with known tokens, a settable clock, clients."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from topfib.api.app import create_app
from topfib.api.tokens import hash_token
from topfib.controller.config import TopfibConfig
from topfib.controller.service.static_view import StaticView
from topfib.controller.state.store import MemoryStore, Store

AP_TOKEN = "tfb_ap-one-token"
AP2_TOKEN = "tfb_ap-two-token"
VIEWER_TOKEN = "tfb_viewer-token"
OPERATOR_TOKEN = "tfb_operator-token"
TOKENS = {AP_TOKEN: ("ap1", "ap"), AP2_TOKEN: ("ap2", "ap"), VIEWER_TOKEN: ("viewer", "viewer"),
          OPERATOR_TOKEN: ("ops", "operator")}
ROLE_TOKENS = {"ap": AP_TOKEN, "viewer": VIEWER_TOKEN, "operator": OPERATOR_TOKEN}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_config(switches: tuple[str, ...] = ("edge1",), api: dict[str, Any] | None = None,
                switch_extra: dict[str, Any] | None = None) -> TopfibConfig:
    return TopfibConfig.model_validate({
        "api": api or {},
        "switch": [
            {"name": name, "neighbor": f"10.0.{i}.2", "local_address": f"10.0.{i}.1", "local_as": 65000,
             "peer_as": 65000, "fib_cap_ipv4": 100, "fib_cap_ipv6": 50, **(switch_extra or {})}
            for i, name in enumerate(switches)
        ],
        "token": [{"name": name, "role": role, "sha256": hash_token(token)}
                  for token, (name, role) in TOKENS.items()],
        "special_use": {"documentation": False},  # the fixtures route documentation prefixes
    })


def make_view(switches: tuple[str, ...] = ("edge1",)) -> StaticView:
    return StaticView(routes={
        name: {"198.51.100.0/24": "192.0.2.1", "198.51.0.0/16": "192.0.2.2", "2001:db8::/32": "2001:db8::1"}
        for name in switches
    })


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def client(app: FastAPI, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://api.test")


def build(store: Store | None = None, view: StaticView | None = None, config: TopfibConfig | None = None,
          clock: FakeClock | None = None, wall_clock: FakeClock | None = None) -> FastAPI:
    return create_app(config or make_config(), store or MemoryStore(), view or make_view(),
                      clock=clock or FakeClock(), wall_clock=wall_clock or FakeClock(1_700_000_000.0))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
