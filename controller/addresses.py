"""Strict IP address parsing for the config: the one rule every configured address goes through.

``ipaddress`` accepts any text after ``%`` as an IPv6 scope id (``fe80::1%x {\\n}`` included), and
an address from the config reaches ExaBGP's configuration verbatim: a scope id must look like an
interface name (Linux: at most 15 characters) or an interface index, nothing else.
"""

from __future__ import annotations

import ipaddress
import re

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SCOPE_ID = re.compile(r"[A-Za-z0-9_.-]{1,15}")  # an interface name (IFNAMSIZ - 1) or an index


def parse_ip(value: str, *, allow_scope: bool = True) -> IpAddress:
    """``value`` as an IPv4 or IPv6 address; raises ValueError saying what is wrong.

    ``allow_scope`` False refuses a scope id altogether (ExaBGP 5 cannot parse one: the BGP
    neighbor and local address must be global or plain link-local addresses)."""
    address = ipaddress.ip_address(value)
    scope = address.scope_id if isinstance(address, ipaddress.IPv6Address) else None
    if scope is None:
        return address
    if not allow_scope:
        raise ValueError(f"{value!r}: a scope id (%{scope!r}) is not supported here")
    if not _SCOPE_ID.fullmatch(scope):
        raise ValueError(f"{value!r}: the scope id must be an interface name or index "
                         f"(letters, digits, '_', '.', '-', at most 15)")
    return address
