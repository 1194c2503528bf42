"""TLS on the API through ``topfib run``: certificates the test makes, real clients over loopback.

HTTPS answers; plain HTTP on the TLS port gets no HTTP answer; with ``api.tls_client_ca_file``
a client without a certificate from that CA is refused at the handshake, and one with it still
needs a bearer token for its role; SIGHUP serves a renewed certificate to new connections.
"""

from __future__ import annotations

import http.client
import os
import signal
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509

from tests.integration.api_transport_support import (
    VIEWER_TOKEN,
    api_address,
    running_topfib,
    standalone_config,
)
from tests.integration.fault_support import TopfibProcess
from tests.tls_support import Issuer

pytestmark = pytest.mark.integration


def client_context(issuer: Issuer, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(issuer.ca_file))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    return context


def https_get(topfib: TopfibProcess, context: ssl.SSLContext, path: str,
              token: str | None = None) -> tuple[int, int]:
    """(status, serial number of the server's certificate) over a new connection."""
    host, port = api_address(topfib)
    connection = http.client.HTTPSConnection(host, port, context=context, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        assert isinstance(connection.sock, ssl.SSLSocket)
        der = connection.sock.getpeercert(binary_form=True)
        assert der is not None
        peer = x509.load_der_x509_certificate(der)
        return response.status, peer.serial_number
    finally:
        connection.close()


def tls_config(tmp_path: Path, cert: Path, key: Path, client_ca: Path | None = None) -> Path:
    lines = [f'tls_cert_file = "{cert}"', f'tls_key_file = "{key}"']
    if client_ca is not None:
        lines.append(f'tls_client_ca_file = "{client_ca}"')
    return standalone_config(tmp_path, "\n".join(lines))


def wait_for_https(topfib: TopfibProcess, context: ssl.SSLContext, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert topfib.alive(), topfib.log()[-2000:]
        try:
            if https_get(topfib, context, "/healthz")[0] == 200:
                return
        except (OSError, http.client.HTTPException):
            time.sleep(0.1)
    raise AssertionError(f"no HTTPS answer: {topfib.log()[-2000:]}")


def test_https_answers_and_plain_http_on_the_tls_port_is_refused(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    cert, key, serial = issuer.issue("topfib-api", server=True)
    with running_topfib(tls_config(tmp_path, cert, key), healthy=False) as topfib:
        wait_for_https(topfib, client_context(issuer))
        assert https_get(topfib, client_context(issuer), "/healthz") == (200, serial)
        assert https_get(topfib, client_context(issuer), "/v1/status")[0] == 401  # TLS is no credential
        host, port = api_address(topfib)
        plain = http.client.HTTPConnection(host, port, timeout=10)
        with pytest.raises((OSError, http.client.HTTPException)):
            plain.request("GET", "/healthz")
            plain.getresponse().read()
        plain.close()
        metrics = https_get_text(topfib, client_context(issuer), "/metrics")
        assert 'topfib_api_connections_dropped_total{reason="tls_handshake"} 1' in metrics


def https_get_text(topfib: TopfibProcess, context: ssl.SSLContext, path: str) -> str:
    host, port = api_address(topfib)
    connection = http.client.HTTPSConnection(host, port, context=context, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def test_mutual_tls_admits_only_clients_of_the_ca_and_the_token_still_decides(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    cert, key, _ = issuer.issue("topfib-api", server=True)
    client = issuer.issue("ap-1", server=False)[:2]
    stranger = Issuer(tmp_path, "another CA").issue("intruder", server=False)[:2]
    with running_topfib(tls_config(tmp_path, cert, key, issuer.ca_file), healthy=False) as topfib:
        wait_for_https(topfib, client_context(issuer, client))
        assert https_get(topfib, client_context(issuer, client), "/v1/status")[0] == 401
        assert https_get(topfib, client_context(issuer, client), "/v1/status", VIEWER_TOKEN)[0] == 200
        for context in (client_context(issuer), client_context(issuer, stranger)):
            with pytest.raises((ssl.SSLError, OSError, http.client.HTTPException)):
                https_get(topfib, context, "/healthz")


def test_sighup_serves_a_renewed_certificate_to_new_connections(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    cert, key, first = issuer.issue("topfib-api", server=True)
    with running_topfib(tls_config(tmp_path, cert, key), healthy=False) as topfib:
        context = client_context(issuer)
        wait_for_https(topfib, context)
        host, port = api_address(topfib)
        kept = http.client.HTTPSConnection(host, port, context=context, timeout=10)
        kept.request("GET", "/healthz")
        assert kept.getresponse().read()
        # a broken renewal (key of another certificate) is refused and the old one kept
        key.write_bytes(issuer.directory.joinpath(issuer.issue("other", server=True)[1].name).read_bytes())
        os.kill(topfib.pid, signal.SIGHUP)
        time.sleep(1.0)
        assert https_get(topfib, context, "/healthz") == (200, first)
        _, _, renewed = issuer.issue("topfib-api", server=True)  # same file names: a renewal in place
        os.kill(topfib.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while https_get(topfib, context, "/healthz")[1] != renewed:
            assert time.monotonic() < deadline, "the renewed certificate was not served after SIGHUP"
            time.sleep(0.1)
        kept.request("GET", "/healthz")  # the connection made before the reload goes on
        assert kept.getresponse().status == 200
        kept.close()
        assert topfib.alive()
        log = topfib.log()
    assert "reload failed" in log and "is not the key of" in log
    assert "reloaded" in log


def test_an_unreadable_certificate_stops_topfib_run_naming_the_key(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    _, key, _ = issuer.issue("topfib-api", server=True)
    with running_topfib(tls_config(tmp_path, tmp_path / "absent.crt", key), healthy=False) as topfib:
        assert topfib.process is not None
        assert topfib.process.wait(timeout=30) == 2
        log = topfib.log()
    assert "api.tls_cert_file: cannot read" in log and "Traceback" not in log
