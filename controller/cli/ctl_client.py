"""The HTTP side of ``topfib ctl``: one call to a running topfib's API, failures as exit codes.

Standard library only (``urllib``): the CLI must not need the dev extras. Redirects are refused
rather than followed, so the bearer token is never sent to a host the operator did not name.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # a /v1/top of 100,000 prefixes is ~20 MB
MESSAGE_MAX = 2000  # characters of an error message (the API's detail included)


def terminal_text(text: str, limit: int = MESSAGE_MAX) -> str:
    """``text`` safe for the operator's terminal: what the API (or whoever answers at its URL, or
    another Redis client behind it) sent must not clear the screen, set the title or forge lines
    with escape sequences, so every non-printable character is shown escaped (``\\x1b``); at
    most ``limit`` characters."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                       for c in text[:limit])
    return text if len(text) <= limit else text[:limit - 1] + "…"


class ExitCode(IntEnum):
    """What ``topfib ctl`` exits with (README, Operating)."""

    OK = 0
    REFUSED = 1  # the API answered no: not found, invalid value, rate limited, store down, error
    USAGE = 2  # bad command line (typer's own code for usage errors too)
    UNREACHABLE = 3  # no answer: connection refused, timeout, TLS failure, not an HTTP API
    AUTH = 4  # 401 (no or unknown token) or 403 (the token's role may not do this)


class CtlError(Exception):
    """A call that did not succeed; ``str()`` is the message for stderr."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(terminal_text(message))
        self.code = code


@dataclass(frozen=True)
class Endpoint:
    url: str  # base URL, e.g. http://127.0.0.1:8080
    token: str | None
    ca_file: str | None = None
    timeout_s: float = 10.0


def exit_code_for_status(status: int) -> ExitCode:
    if status < 400:
        return ExitCode.OK
    if status in (401, 403):
        return ExitCode.AUTH
    return ExitCode.REFUSED


def error_detail(body: Any) -> str:
    """The API's ``detail``: a string, or the 422 list as ``field: msg`` pairs."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        parts = [f"{item.get('field', '?')}: {item.get('msg', '')}"
                 for item in detail if isinstance(item, dict)]
        return "; ".join(parts) or "invalid request"
    if isinstance(detail, str):
        return detail
    return "no detail given"


def path_segment(text: str, keep: str = "") -> str:
    """``text`` quoted for a URL path, so ``?``, ``#`` or ``..`` in it cannot reach another endpoint."""
    if any(part in (".", "..") for part in text.split("/")):
        raise CtlError(ExitCode.USAGE, f"{text!r}: not an address or prefix")
    return urllib.parse.quote(text, safe=keep)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


def _opener(endpoint: Endpoint) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if endpoint.url.startswith("https://"):
        try:
            context = ssl.create_default_context(cafile=endpoint.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise CtlError(ExitCode.USAGE, f"--ca-file {endpoint.ca_file}: {exc}") from None
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


def _check_url(url: str) -> None:
    parsed = urllib.parse.urlsplit(url)
    if "@" in parsed.netloc:  # urllib would take USER:PASSWORD@HOST for a host name, and errors show it
        raise CtlError(ExitCode.USAGE, "--url/TOPFIB_URL: no user or password in the URL "
                                       "(the token goes in TOPFIB_TOKEN or --token-file)")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise CtlError(ExitCode.USAGE, f"--url/TOPFIB_URL {url!r}: want http://HOST:PORT or https://HOST:PORT")


def call(endpoint: Endpoint, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """``method path`` with ``body`` as JSON; (status, decoded JSON or None) of a 2xx answer.

    Raises :class:`CtlError` with the exit code for anything else.
    """
    _check_url(endpoint.url)
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(endpoint.url.rstrip("/") + path, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if endpoint.token:
        request.add_header("Authorization", f"Bearer {endpoint.token}")
    try:
        with _opener(endpoint).open(request, timeout=endpoint.timeout_s) as response:
            return response.status, _decode(response.read(MAX_RESPONSE_BYTES + 1), endpoint)
    except urllib.error.HTTPError as exc:
        raise _refusal(exc, endpoint) from None
    except urllib.error.URLError as exc:
        raise CtlError(ExitCode.UNREACHABLE, f"{endpoint.url}: {_reason(exc.reason)}") from None
    except TimeoutError:
        message = f"{endpoint.url}: no answer in {endpoint.timeout_s:g} s"
        raise CtlError(ExitCode.UNREACHABLE, message) from None
    except (ConnectionError, ssl.SSLError, OSError) as exc:
        raise CtlError(ExitCode.UNREACHABLE, f"{endpoint.url}: {_reason(exc)}") from None


def _reason(reason: object) -> str:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS: {reason.verify_message} (give the server's CA with --ca-file or TOPFIB_CA_FILE)"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason)


def _decode(raw: bytes, endpoint: Endpoint) -> Any:
    if len(raw) > MAX_RESPONSE_BYTES:
        raise CtlError(ExitCode.UNREACHABLE, f"{endpoint.url}: answer larger than {MAX_RESPONSE_BYTES} bytes")
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        message = f"{endpoint.url}: the answer is not JSON; not a topfib API?"
        raise CtlError(ExitCode.UNREACHABLE, message) from None


def _refusal(exc: urllib.error.HTTPError, endpoint: Endpoint) -> CtlError:
    status = exc.code
    try:
        body = json.loads(exc.read(MAX_RESPONSE_BYTES))
    except (ValueError, OSError):
        body = None
    detail = error_detail(body)
    if 300 <= status < 400:
        return CtlError(ExitCode.REFUSED, f"HTTP {status}: redirects are not followed (check --url)")
    if status == 401:
        hint = "" if endpoint.token else " (set TOPFIB_TOKEN or --token-file)"
        return CtlError(ExitCode.AUTH, f"HTTP 401: {detail}{hint}")
    if status == 429 and exc.headers.get("Retry-After"):
        detail += f" (retry after {exc.headers['Retry-After']} s)"
    return CtlError(exit_code_for_status(status), f"HTTP {status}: {detail}")
