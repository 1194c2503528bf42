"""TLS on topfib.api.transport.server in process, as a hostile client or a careless operator meets it: client
certificates that must not get in, and SIGHUP reloads of files that are half written, renewed
out of step with their key, encrypted or gone (the previous certificate keeps serving)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import random
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.tls_support import Issuer
from tests.unit.test_api_server import app, run
from topfib.api.transport.server import ApiServer
from topfib.api.transport.tls import TlsContexts, build_tls_context
from topfib.controller.config import ApiConfig, ConfigError


@asynccontextmanager
async def tls_serving(api: ApiConfig) -> AsyncIterator[tuple[ApiServer, int]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    tls = TlsContexts.from_config(api)
    server = ApiServer(app, api, tls, 16)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield server, int(sock.getsockname()[1])
    finally:
        server.request_exit()
        await asyncio.wait_for(task, 10)


async def tls_get(port: int, ca_file: Path, client: tuple[Path, Path] | None = None) -> tuple[bytes, int]:
    """(the answer's first bytes, the server certificate's serial); b"" when refused."""
    context = ssl.create_default_context(cafile=str(ca_file))
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=context), 5)
    except (OSError, TimeoutError):
        return b"", 0
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    serial = x509.load_der_x509_certificate(der).serial_number
    try:
        writer.write(b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(15), 5)
    except (OSError, TimeoutError):  # TLS 1.3: a refused client certificate shows after the handshake
        answer = b""
    writer.close()
    return answer, serial


def expired_client(issuer: Issuer, directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired")]))
            .issuer_name(issuer.name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=10))
            .not_valid_after(now - datetime.timedelta(days=1))
            .sign(issuer.key, hashes.SHA256()))
    cert_file, key_file = directory / "expired.crt", directory / "expired.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_mutual_tls_refuses_no_certificate_another_ca_and_an_expired_one(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    cert, key, _ = issuer.issue("server", server=True)
    good_cert, good_key, _ = issuer.issue("ap", server=False)
    stranger = Issuer(tmp_path, "stranger CA").issue("intruder", server=False)[:2]
    api = ApiConfig(request_read_timeout_s=2.0, tls_cert_file=str(cert), tls_key_file=str(key),
                    tls_client_ca_file=str(issuer.ca_file))

    async def body() -> None:
        async with tls_serving(api) as (server, port):
            assert (await tls_get(port, issuer.ca_file, (good_cert, good_key)))[0] == b"HTTP/1.1 200 OK"
            for client in (None, stranger, expired_client(issuer, tmp_path)):
                assert (await tls_get(port, issuer.ca_file, client))[0] == b"", client
            assert server.acceptor is not None
            for _ in range(100):  # every refused handshake gave its slot back
                if server.acceptor.open_connections == 0:
                    break
                await asyncio.sleep(0.02)
            assert server.acceptor.open_connections == 0
    run(body)


def encrypt(key_file: Path) -> None:
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.BestAvailableEncryption(b"secret")))


def test_an_encrypted_key_is_refused_naming_the_key_without_asking_for_a_passphrase(tmp_path: Path) -> None:
    # without a password callback OpenSSL prompts on the terminal (blocking `topfib run` in a
    # shell) or, with none, failed with an OSError that was no ConfigError
    cert, key, _ = Issuer(tmp_path).issue("server", server=True)
    encrypt(key)
    with pytest.raises(ConfigError, match=r"api.tls_key_file: .* is encrypted"):
        build_tls_context(ApiConfig(tls_cert_file=str(cert), tls_key_file=str(key)))


def test_failed_reloads_keep_the_previous_certificate_serving(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    cert, key, serial = issuer.issue("server", server=True)
    renewed_cert, renewed_key, renewed_serial = issuer.issue("server", server=True, stem="renewed")
    api = ApiConfig(request_read_timeout_s=2.0, tls_cert_file=str(cert), tls_key_file=str(key))
    good = cert.read_bytes()

    async def body() -> None:
        async with tls_serving(api) as (server, port):
            assert server.tls is not None
            def half_written() -> None:
                cert.write_bytes(good[: len(good) // 2])

            def renewed_before_its_key() -> None:
                cert.write_bytes(renewed_cert.read_bytes())

            def key_encrypted() -> None:
                key.write_bytes(renewed_key.read_bytes())
                encrypt(key)

            def key_gone() -> None:
                key.unlink()

            tls = server.tls

            def reload() -> bool:
                """What a SIGHUP does with the TLS files (topfib.controller.service.reload): build, then
                install."""
                try:
                    context = build_tls_context(api)
                except ConfigError:
                    return False
                assert context is not None
                tls.install(api, context)
                return True

            attempts: list[Callable[[], None]] = [half_written, renewed_before_its_key, key_encrypted,
                                                  key_gone]
            for damage in attempts:
                damage()
                assert reload() is False
                assert await tls_get(port, issuer.ca_file) == (b"HTTP/1.1 200 OK", serial)
            key.write_bytes(renewed_key.read_bytes())  # the renewal completed: both files in step
            assert reload() is True
            assert await tls_get(port, issuer.ca_file) == (b"HTTP/1.1 200 OK", renewed_serial)
    run(body)


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_plain_http_garbage_and_churn_on_the_tls_port_leak_no_slot_or_descriptor(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    cert, key, _ = issuer.issue("server", server=True)
    api = ApiConfig(request_read_timeout_s=2.0, tls_cert_file=str(cert), tls_key_file=str(key))

    async def body() -> None:
        async with tls_serving(api) as (server, port):
            assert server.acceptor is not None
            before = open_descriptors()
            for attempt in range(60):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                if attempt % 3 == 0:
                    writer.write(b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n")
                elif attempt % 3 == 1:
                    writer.write(random.randbytes(300))
                else:  # connect and reset at once (SO_LINGER 0)
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    continue
                with contextlib.suppress(OSError, TimeoutError):
                    assert not (await asyncio.wait_for(reader.read(100), 3)).startswith(b"HTTP/")
                writer.close()
            for _ in range(100):
                if server.acceptor.open_connections == 0:
                    break
                await asyncio.sleep(0.02)
            assert server.acceptor.open_connections == 0
            assert open_descriptors() <= before + 2
            assert (await tls_get(port, issuer.ca_file))[0] == b"HTTP/1.1 200 OK"
    run(body)


def test_a_trickled_tls_handshake_is_closed_at_the_request_deadline(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    cert, key, _ = issuer.issue("server", server=True)
    api = ApiConfig(request_read_timeout_s=0.5, tls_cert_file=str(cert), tls_key_file=str(key))

    async def body() -> None:
        async with tls_serving(api) as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            started = asyncio.get_running_loop().time()
            writer.write(b"\x16\x03\x01\x02\x00")  # a TLS record header announcing a ClientHello
            closed = False
            for _ in range(30):  # then a byte every 100 ms, for at most 3 s
                try:
                    writer.write(b"\x01")
                    if await asyncio.wait_for(reader.read(1), 0.1) == b"":
                        closed = True
                        break
                except TimeoutError:
                    continue
                except OSError:
                    closed = True
                    break
            assert closed and asyncio.get_running_loop().time() - started < 1.5
            writer.close()
    run(body)
