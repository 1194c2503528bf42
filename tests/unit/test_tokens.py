from __future__ import annotations

import hashlib
import io
import re

from topfib.api.tokens import TOKEN_PREFIX, TokenTable, config_entry, hash_token, new_token, run_token_new
from topfib.controller.config import TokenConfig, parse_config

SWITCH = """
[[switch]]
name = "edge1"
neighbor = "10.0.0.2"
local_address = "10.0.0.1"
local_as = 65000
peer_as = 65000
fib_cap_ipv4 = 10
fib_cap_ipv6 = 10
"""


def test_hash_is_hex_sha256() -> None:
    assert hash_token("secret") == hashlib.sha256(b"secret").hexdigest()


def test_new_tokens_are_distinct_and_long() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(t.startswith(TOKEN_PREFIX) and len(t) >= 40 for t in tokens)


def test_table_finds_the_principal_of_a_known_token_only() -> None:
    table = TokenTable([
        TokenConfig(name="a", role="ap", sha256=hash_token("t-a")),
        TokenConfig(name="o", role="operator", sha256=hash_token("t-o")),
    ])
    found = table.authenticate("t-o")
    assert found is not None and (found.name, found.role) == ("o", "operator")
    assert table.authenticate("t-x") is None
    assert table.authenticate("") is None
    assert TokenTable([]).authenticate("t-a") is None


def test_token_new_prints_a_token_and_a_config_entry_that_loads() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_token_new("ap", 'lobby "west"', out, err) == 0
    text = out.getvalue()
    token = re.search(r"(tfb_\S+)", text)
    assert token is not None
    entry = text[text.index("[[token]]"):]
    config = parse_config(SWITCH + entry)
    assert config.token[0].name == 'lobby "west"'
    assert config.token[0].role == "ap"
    assert TokenTable(config.token).authenticate(token.group(1)) is not None
    assert err.getvalue() == ""


def test_token_new_rejects_unknown_role_and_empty_name() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_token_new("admin", "x", out, err) != 0
    assert "admin" in err.getvalue() and out.getvalue() == ""
    assert run_token_new("viewer", "  ", out, err) != 0


def test_config_entry_escapes_quotes_and_backslashes() -> None:
    entry = config_entry('a\\b"c', "viewer", "0" * 64)
    assert parse_config(SWITCH + entry).token[0].name == 'a\\b"c'
