"""TLS for the API: the server context from ``api.tls_*`` PEM files, reloaded on SIGHUP.

A client certificate (``api.tls_client_ca_file``, mutual TLS) only admits the connection; what
the caller may do is still decided by its bearer token. Each accepted connection takes the
context current at that moment, so a reload serves new connections with the renewed certificate
while established ones keep theirs; a reload that fails keeps the old context and says why.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from topfib.api.metrics import TLS_RELOADS
from topfib.controller.config import ApiConfig, ConfigError

log = logging.getLogger(__name__)


def _readable(key: str, path: str) -> None:
    try:
        with Path(path).open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"api.{key}: cannot read {path}: {exc.strerror or exc}") from None


def build_tls_context(api: ApiConfig) -> ssl.SSLContext | None:
    """The server context for ``api``, None without TLS; ConfigError naming the key otherwise."""
    if api.tls_cert_file is None or api.tls_key_file is None:
        return None
    _readable("tls_cert_file", api.tls_cert_file)
    _readable("tls_key_file", api.tls_key_file)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2

    def refuse_passphrase() -> bytes:
        # without a password callback OpenSSL asks for the passphrase on the terminal: `topfib run`
        # in a shell would block its event loop there (at start or on SIGHUP)
        raise ConfigError(f"api.tls_key_file: {api.tls_key_file} is encrypted; give topfib an "
                          f"unencrypted key readable only by its user")

    try:
        context.load_cert_chain(api.tls_cert_file, api.tls_key_file, password=refuse_passphrase)
    except OSError as exc:
        if not isinstance(exc, ssl.SSLError):  # a file replaced or removed since it was read above
            raise ConfigError(f"api.tls_cert_file, api.tls_key_file: cannot read: "
                              f"{exc.strerror or exc}") from None
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise ConfigError(f"api.tls_key_file: {api.tls_key_file} is not the key of "
                              f"api.tls_cert_file {api.tls_cert_file}") from None
        raise ConfigError(f"api.tls_cert_file, api.tls_key_file: not a PEM certificate chain and its "
                          f"private key ({exc.reason or exc})") from None
    if api.tls_client_ca_file is not None:
        _readable("tls_client_ca_file", api.tls_client_ca_file)
        try:
            context.load_verify_locations(cafile=api.tls_client_ca_file)
        except ssl.SSLError as exc:
            raise ConfigError(f"api.tls_client_ca_file: no PEM CA certificate in {api.tls_client_ca_file} "
                              f"({exc.reason or exc})") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class TlsContexts:
    """The context new connections get. A config reload (topfib.controller.service.reload) builds a new one
    from
    the files and swaps it in with :meth:`install`, or keeps this one when they are not usable."""

    def __init__(self, current: ssl.SSLContext) -> None:
        self.current = current

    @classmethod
    def from_config(cls, api: ApiConfig) -> TlsContexts | None:
        context = build_tls_context(api)
        return None if context is None else cls(context)

    def install(self, api: ApiConfig, context: ssl.SSLContext) -> None:
        """New connections get ``context``, built from ``api``'s files (a config reload)."""
        self.current = context
        TLS_RELOADS.inc(result="ok")
        log.info("API TLS: reloaded %s for new connections", api.tls_cert_file)
