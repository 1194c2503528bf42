"""TLS settings: pairs checked when the config is read, files when the API starts (key named)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tls_support import Issuer
from topfib.api.transport.tls import build_tls_context
from topfib.controller.cli.check_config import check_config_file
from topfib.controller.config import ApiConfig, ConfigError, parse_config

BASE = """
[[switch]]
name = "edge1"
neighbor = "10.0.0.2"
local_address = "10.0.0.1"
local_as = 65000
peer_as = 65000
fib_cap_ipv4 = 10
fib_cap_ipv6 = 10
"""


@pytest.mark.parametrize(("api", "key"), [
    ('tls_cert_file = "/c.pem"', "api.tls_cert_file and api.tls_key_file"),
    ('tls_key_file = "/k.pem"', "api.tls_cert_file and api.tls_key_file"),
    ('tls_client_ca_file = "/ca.pem"', "api.tls_client_ca_file"),
    ("max_connections = 0", "api.max_connections"),
    ("request_read_timeout_s = 0", "api.request_read_timeout_s"),
    ('docs = "yes"', "api.docs"),
])
def test_bad_api_settings_name_the_key(api: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(f"[api]\n{api}\n{BASE}")


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key, _ = Issuer(directory, f"{name} CA").issue(name, server=True)
    return cert, key


def test_unusable_files_name_the_key(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, "one")
    _, other_key = _self_signed(tmp_path, "two")
    assert build_tls_context(ApiConfig(tls_cert_file=str(cert), tls_key_file=str(key))) is not None
    missing = str(tmp_path / "missing.pem")
    cases = [
        ({"tls_cert_file": missing, "tls_key_file": str(key)}, "api.tls_cert_file: cannot read"),
        ({"tls_cert_file": str(cert), "tls_key_file": missing}, "api.tls_key_file: cannot read"),
        ({"tls_cert_file": str(cert), "tls_key_file": str(other_key)},
         "api.tls_key_file: .* is not the key of"),
        ({"tls_cert_file": str(key), "tls_key_file": str(key)},
         "api.tls_cert_file, api.tls_key_file: not a PEM"),
        ({"tls_cert_file": str(cert), "tls_key_file": str(key), "tls_client_ca_file": str(key)},
         "api.tls_client_ca_file: no PEM CA certificate"),
    ]
    for settings, message in cases:
        with pytest.raises(ConfigError, match=message):
            build_tls_context(ApiConfig(**settings))  # type: ignore[arg-type]


def test_check_config_reads_the_tls_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert, key = _self_signed(tmp_path, "one")
    config = tmp_path / "topfib.toml"
    config.write_text(f'[api]\ntls_cert_file = "{cert}"\ntls_key_file = "{tmp_path / "absent.key"}"\n{BASE}')
    assert check_config_file(config) == 2
    assert "api.tls_key_file: cannot read" in capsys.readouterr().err
    config.write_text(f'[api]\ntls_cert_file = "{cert}"\ntls_key_file = "{key}"\n{BASE}')
    assert check_config_file(config) == 0
