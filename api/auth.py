"""Who may call what: bearer-token authentication, per-token rate limits, and roles.

Roles and what they may do:

- ``viewer``: every read — ``GET /v1/fib``, ``/v1/top``, ``/v1/requests`` (all APs' entries),
  ``/v1/rib/{ip}``, ``/v1/status``, ``/v1/pins``.
- ``operator``: everything a viewer may, plus ``GET /v1/config``, ``PUT /v1/config/switches/{name}``,
  ``PUT``/``DELETE /v1/pins/{prefix}``, and making requests as an AP does (to try one out; the
  per-client request cap applies to it too).
- ``ap`` (an access point): ``POST /v1/requests``, ``DELETE /v1/requests/{ip}`` and
  ``GET /v1/requests``, which shows it only its own entries. Nothing else: an AP has no need to
  see the FIB, the traffic ranking, the pins or other clients' requests, and an AP's token sits on
  a less-trusted device than an operator's.

Without a valid token only ``/healthz``, ``/readyz``, ``/metrics`` and the API docs answer (401
otherwise, even for unknown paths, so routes cannot be probed). Authentication and the rate limit
run as ASGI middleware, before the body is read; the role check is a route dependency (403).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from topfib.api.metrics import AUTH_FAILURES, RATE_LIMITED
from topfib.api.rate_limit import RateLimiter
from topfib.api.tokens import Principal, Role, TokenTable

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect",
                          "/openapi.json", "/redoc"})
METRICS_PATH = "/metrics"


def public_paths(metrics_token_required: bool) -> frozenset[str]:
    """Paths answered without a token (``/metrics`` only while ``api.metrics_token_required`` is off)."""
    return PUBLIC_PATHS - {METRICS_PATH} if metrics_token_required else PUBLIC_PATHS
VIEWER_ROLES: tuple[Role, ...] = ("viewer", "operator")
OPERATOR_ROLES: tuple[Role, ...] = ("operator",)
REQUEST_ROLES: tuple[Role, ...] = ("ap", "operator")
_PRINCIPAL_KEY = "topfib.principal"



def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return str(token.strip())
            return None
    return None


class AuthMiddleware:
    """401 without a known token, 429 past the token's rate; else records who is calling."""

    def __init__(self, app: ASGIApp, tokens: TokenTable, limiter: RateLimiter,
                 public: frozenset[str] = PUBLIC_PATHS) -> None:
        self._app = app
        self._tokens = tokens
        self._limiter = limiter
        self._public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._public:
            await self._app(scope, receive, send)
            return
        token = _bearer_token(scope)
        principal = self._tokens.authenticate(token) if token is not None else None
        if principal is None:
            AUTH_FAILURES.inc(reason="missing" if token is None else "invalid")
            response = JSONResponse({"detail": "missing or invalid bearer token"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        wait_s = self._limiter.acquire(principal.name)
        if wait_s > 0:
            RATE_LIMITED.inc(client=principal.name)
            response = JSONResponse({"detail": "rate limit exceeded for this token"}, status_code=429,
                                    headers={"Retry-After": str(max(1, math.ceil(wait_s)))})
            await response(scope, receive, send)
            return
        scope[_PRINCIPAL_KEY] = principal
        await self._app(scope, receive, send)


def authorize(request: Request, roles: tuple[Role, ...]) -> Principal:
    """The caller's principal if its role is among ``roles``; 403 otherwise."""
    principal = request.scope.get(_PRINCIPAL_KEY)
    if not isinstance(principal, Principal):  # only if a route was made public by mistake
        raise HTTPException(401, "missing or invalid bearer token", {"WWW-Authenticate": "Bearer"})
    if principal.role not in roles:
        AUTH_FAILURES.inc(reason="forbidden")
        raise HTTPException(403, f"role {principal.role!r} may not use this endpoint")
    return principal


def require_role(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A route dependency doing :func:`authorize`."""

    async def dependency(request: Request) -> Principal:
        return authorize(request, roles)

    return dependency

