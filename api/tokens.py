"""API bearer tokens: minting, hashing and constant-time lookup.

The config keeps only the hex SHA-256 of each token (``[[token]]`` tables), so a leaked config file
does not leak credentials. Tokens carry 256 bits of randomness, so an unsalted hash is enough: there
is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TextIO, get_args

from topfib.controller.config import TokenConfig, repeated_token

Role = Literal["ap", "operator", "viewer"]
ROLES: tuple[str, ...] = get_args(Role)
TOKEN_PREFIX = "tfb_"  # makes a topfib token recognisable to secret scanners and in logs


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated client: its config name and role."""

    name: str
    role: Role


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def config_entry(name: str, role: Role, sha256: str) -> str:
    """The ``[[token]]`` TOML table for one client (name escaped as a TOML basic string)."""
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'[[token]]\nname = "{escaped}"\nrole = "{role}"\nsha256 = "{sha256}"\n'


class TokenTable:
    """Looks a presented token up among the configured hashes."""

    def __init__(self, tokens: Sequence[TokenConfig]) -> None:
        self._entries = self._checked(tokens)

    @staticmethod
    def _checked(tokens: Sequence[TokenConfig]) -> list[tuple[bytes, Principal]]:
        problem = repeated_token(tokens)
        if problem is not None:  # with a hash twice, the last entry would silently win
            raise ValueError(problem)
        return [(bytes.fromhex(t.sha256), Principal(t.name, t.role)) for t in tokens]

    def replace(self, tokens: Sequence[TokenConfig]) -> None:
        """Authenticate against ``tokens`` from now on (a config reload); one assignment, so a
        request sees either the old table or the new one."""
        self._entries = self._checked(tokens)

    def authenticate(self, token: str) -> Principal | None:
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found: Principal | None = None
        # Compare against every entry without stopping early: the time taken does not depend on
        # which entry (if any) matched.
        for expected, principal in self._entries:
            if hmac.compare_digest(digest, expected):
                found = principal
        return found


def run_token_new(role: str, name: str, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """CLI body of ``topfib token new``: print a fresh token and its config entry; 2 on bad input."""
    if role not in ROLES:
        print(f"unknown role {role!r}: expected one of {', '.join(ROLES)}", file=err)
        return 2
    if not name.strip():
        print("name must not be empty", file=err)
        return 2
    checked_role: Role = role  # type: ignore[assignment]  # narrowed by the membership test above
    token = new_token()
    print(f"token (give it to {name}; it is not stored anywhere): {token}", file=out)
    print("config entry (add it to the topfib config):", file=out)
    print(config_entry(name, checked_role, hash_token(token)), file=out, end="")
    return 0
