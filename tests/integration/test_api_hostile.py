"""Hostile clients against ``topfib run`` over loopback: a stranger's idle TLS handshakes next to
an access point, an endless header, a body trickled after an early 401, an encrypted key at SIGHUP."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.integration.api_transport_support import AP_TOKEN, api_address, running_topfib, standalone_config
from tests.integration.test_api_tls import client_context, https_get, wait_for_https
from tests.tls_support import Issuer

pytestmark = pytest.mark.integration


def _tls_config(tmp_path: Path, cert: Path, key: Path, extra: str = "") -> Path:
    return standalone_config(tmp_path, f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"\n'
                                       f"request_read_timeout_s = 20\n{extra}")


def test_idle_tls_handshakes_from_one_stranger_do_not_lock_out_an_access_point(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    cert, key, _ = issuer.issue("topfib-api", server=True)
    config = _tls_config(tmp_path, cert, key, "max_connections = 8\nmax_connections_per_client = 3")
    with running_topfib(config, healthy=False) as topfib:
        context = client_context(issuer)
        wait_for_https(topfib, context)
        host, port = api_address(topfib)
        stranger = []
        try:
            for _ in range(20):  # TCP connected, never a ClientHello: each would hold a slot 20 s
                sock = socket.socket()
                sock.bind(("127.0.0.2", 0))
                sock.settimeout(5)
                sock.connect((host, port))
                stranger.append(sock)
            started = time.monotonic()
            connection = http.client.HTTPSConnection(host, port, context=context, timeout=5,
                                                     source_address=("127.0.0.3", 0))
            connection.request("GET", "/v1/requests", headers={"Authorization": f"Bearer {AP_TOKEN}"})
            assert connection.getresponse().status == 200
            assert time.monotonic() - started < 3
            connection.close()
        finally:
            for sock in stranger:
                sock.close()
        metrics = http.client.HTTPSConnection(host, port, context=context, timeout=5)
        metrics.request("GET", "/metrics")
        text = metrics.getresponse().read().decode()
        metrics.close()
    assert 'topfib_api_connections_dropped_total{reason="max_connections_per_client"} 17' in text


def test_an_endless_header_and_a_body_after_an_early_answer_are_bounded(tmp_path: Path) -> None:
    with running_topfib(standalone_config(tmp_path, "request_read_timeout_s = 1")) as topfib:
        host, port = api_address(topfib)
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"a" * 100_000)
            assert sock.recv(64).startswith(b"HTTP/1.1 431 ")
        with socket.create_connection((host, port), timeout=5) as sock:
            # no token: 401 before the body is read; then the body, then silence
            sock.sendall(b"POST /v1/requests HTTP/1.1\r\nHost: t\r\nContent-Length: 20\r\n\r\n")
            assert sock.recv(64).startswith(b"HTTP/1.1 401 ")
            time.sleep(0.2)
            sock.sendall(b"{" * 20)
            started = time.monotonic()
            try:  # closed (aborted at the deadline): EOF or reset
                while sock.recv(4096):
                    pass
            except ConnectionResetError:
                pass
            assert time.monotonic() - started < 3
        assert topfib.alive()


def test_sighup_with_an_encrypted_key_keeps_serving_the_old_certificate(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    cert, key, first = issuer.issue("topfib-api", server=True)
    with running_topfib(_tls_config(tmp_path, cert, key), healthy=False) as topfib:
        context: ssl.SSLContext = client_context(issuer)
        wait_for_https(topfib, context)
        _, new_key, _ = issuer.issue("topfib-api", server=True)  # renewal in place ...
        private = serialization.load_pem_private_key(new_key.read_bytes(), None)
        new_key.write_bytes(private.private_bytes(  # ... with its key encrypted
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret")))
        os.kill(topfib.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "is encrypted" not in topfib.log():
            assert time.monotonic() < deadline, topfib.log()[-2000:]
            time.sleep(0.1)
        assert https_get(topfib, context, "/healthz") == (200, first)
        assert topfib.alive()
