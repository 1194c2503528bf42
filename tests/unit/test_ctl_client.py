"""``topfib ctl``'s HTTP client against small loopback servers: TLS with a CA file, answers a topfib
API never gives (redirects, non-JSON, silence), and the exit code each failure maps to."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Generator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from topfib.controller.cli.ctl_client import (
    CtlError,
    Endpoint,
    ExitCode,
    call,
    error_detail,
    exit_code_for_status,
)


class Canned(BaseHTTPRequestHandler):
    """Answers by path: ``/ok``, ``/redirect``, ``/html``, ``/busy``, ``/slow``; records headers."""

    seen: ClassVar[list[tuple[str, str | None]]] = []
    target = ""

    def do_GET(self) -> None:
        Canned.seen.append((self.path, self.headers.get("Authorization")))
        if self.path == "/ok":
            self._send(200, b'{"fine": true}', "application/json")
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", f"{Canned.target}/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/html":
            self._send(200, b"<html>a proxy login page</html>", "text/html")
        elif self.path == "/busy":
            self.send_response(429)
            self.send_header("Retry-After", "3")
            body = b'{"detail": "rate limit exceeded for this token"}'
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/hostile":
            detail = "\x1b]0;owned\x07\x1b[2Jgone\x9b31m\r\nforged line" + "A" * 100_000
            self._send(400, json.dumps({"detail": detail}).encode(), "application/json")
        elif self.path == "/slow":
            threading.Event().wait(2.0)

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(context: ssl.SSLContext | None = None) -> Generator[str, None, None]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    server.daemon_threads = True
    scheme = "http"
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_url() -> Iterator[str]:
    Canned.seen = []
    yield from _serve()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA)."""
    work = tmp_path_factory.mktemp("tls")
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=topfib test", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def https_url(certificate: tuple[Path, Path]) -> Iterator[str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    yield from _serve(context)


def _fails(endpoint: Endpoint, path: str) -> CtlError:
    with pytest.raises(CtlError) as caught:
        call(endpoint, "GET", path)
    return caught.value


def test_https_with_the_ca_file_succeeds(https_url: str, certificate: tuple[Path, Path]) -> None:
    assert call(Endpoint(https_url, "t", ca_file=str(certificate[0])), "GET", "/ok") == (200, {"fine": True})


def test_https_without_the_ca_file_is_unreachable_and_says_how_to_fix_it(https_url: str) -> None:
    error = _fails(Endpoint(https_url, "t"), "/ok")
    assert error.code == ExitCode.UNREACHABLE and "TLS" in str(error) and "--ca-file" in str(error)


def test_an_unreadable_ca_file_is_a_usage_error(https_url: str, tmp_path: Path) -> None:
    error = _fails(Endpoint(https_url, "t", ca_file=str(tmp_path / "missing.pem")), "/ok")
    assert error.code == ExitCode.USAGE and "--ca-file" in str(error)


def test_a_redirect_is_not_followed_so_the_token_goes_nowhere_else(http_url: str) -> None:
    with _other_server() as other:
        Canned.target = other
        error = _fails(Endpoint(http_url, "tfb_secret"), "/redirect")
    assert error.code == ExitCode.REFUSED and "redirects are not followed" in str(error)
    assert Canned.seen == [("/redirect", "Bearer tfb_secret")]


def test_an_answer_that_is_not_json_means_not_a_topfib_api(http_url: str) -> None:
    error = _fails(Endpoint(http_url, "t"), "/html")
    assert error.code == ExitCode.UNREACHABLE and "not JSON" in str(error)


def test_rate_limited_says_when_to_retry(http_url: str) -> None:
    error = _fails(Endpoint(http_url, "t"), "/busy")
    assert error.code == ExitCode.REFUSED and "HTTP 429" in str(error) and "retry after 3 s" in str(error)


def test_a_hostile_detail_reaches_the_terminal_printable_and_bounded(http_url: str) -> None:
    """An API (or whoever answers at its URL) cannot send the operator's terminal escape
    sequences (clear the screen, set the title, forge lines) nor flood it through an error."""
    message = str(_fails(Endpoint(http_url, "t"), "/hostile"))
    assert message.isprintable() and len(message) <= 2100
    assert "HTTP 400" in message and "gone" in message and "forged line" in message


def test_silence_times_out_as_unreachable(http_url: str) -> None:
    error = _fails(Endpoint(http_url, "t", timeout_s=0.3), "/slow")
    assert error.code == ExitCode.UNREACHABLE


def test_nothing_listening_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = _fails(Endpoint(f"http://127.0.0.1:{port}", "t"), "/ok")
    assert error.code == ExitCode.UNREACHABLE and "refused" in str(error)


@pytest.mark.parametrize(("status", "code"), [(200, 0), (204, 0), (401, 4), (403, 4), (404, 1), (422, 1),
                                              (429, 1), (500, 1), (503, 1)])
def test_status_to_exit_code(status: int, code: int) -> None:
    assert exit_code_for_status(status) == code


def test_error_detail_names_the_fields_of_a_422() -> None:
    body = {"detail": [{"field": "ips.0", "msg": "not an address"}, {"field": "ttl_s", "msg": "> 0"}]}
    assert error_detail(body) == "ips.0: not an address; ttl_s: > 0"
    assert error_detail({"detail": "unknown switch"}) == "unknown switch"
    assert error_detail(json.loads("[1, 2]")) == "no detail given"


class _other_server:
    """A second plain server the redirect points at; it must see no request."""

    def __enter__(self) -> str:
        self._gen = _serve()
        return next(self._gen)

    def __exit__(self, *exc: object) -> None:
        self._gen.close()


@pytest.mark.parametrize("url", ["http://ops:s3cret@127.0.0.1:1", "https://s3cret@127.0.0.1:1/"])
def test_credentials_in_the_url_are_refused_without_repeating_them(url: str) -> None:
    """urllib took ``ops:s3cret@127.0.0.1`` for a host name and every error then printed it."""
    error = _fails(Endpoint(url, "t", timeout_s=1.0), "/ok")
    assert error.code == ExitCode.USAGE and "s3cret" not in str(error) and "TOPFIB_TOKEN" in str(error)


def test_https_checks_the_name_too_not_only_the_ca(https_url: str, certificate: tuple[Path, Path]) -> None:
    """The certificate is for 127.0.0.1: reached as ``localhost`` (same server, trusted CA) it
    must be refused, so a certificate the CA gave another host cannot stand in for topfib's; and
    the token is never sent."""
    Canned.seen = []
    other_name = https_url.replace("127.0.0.1", "localhost")
    error = _fails(Endpoint(other_name, "t", ca_file=str(certificate[0])), "/ok")
    assert error.code == ExitCode.UNREACHABLE and "TLS" in str(error) and Canned.seen == []
