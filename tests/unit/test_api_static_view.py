from __future__ import annotations

import asyncio
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.api_support import anyio_backend  # noqa: F401
from topfib.controller.service.static_view import StaticView

ROUTES = {"0.0.0.0/0": "192.0.2.9", "10.0.0.0/8": "192.0.2.1", "10.1.0.0/16": "192.0.2.2",
          "10.1.2.0/24": "192.0.2.3", "10.1.2.3/32": "192.0.2.4", "2001:db8::/32": "2001:db8::1",
          "2001:db8:1::/48": "2001:db8::2"}
VIEW = StaticView(routes={"edge1": ROUTES})


def brute_force(ip: str) -> str | None:
    address = ipaddress.ip_address(ip)
    matches = [p for p in ROUTES if address in ipaddress.ip_network(p)]
    return max(matches, key=lambda p: ipaddress.ip_network(p).prefixlen, default=None)


@given(st.one_of(
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.sampled_from(["10.1.2.3", "10.1.2.4", "10.1.3.1", "10.2.0.0", "2001:db8:1::5", "2001:db8:2::5",
                     "2001:db9::1"]),
    st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n))),
))
@settings(max_examples=150, deadline=None)
def test_resolve_is_the_longest_match(ip: str) -> None:
    assert asyncio.run(VIEW.resolve(ip)) == [("edge1", brute_force(ip))]


@pytest.mark.anyio
async def test_rib_lookup_reports_the_match_and_its_path() -> None:
    view = StaticView(routes={"a": ROUTES, "b": {}})
    matches = await view.rib_lookup("10.1.2.200")
    assert [(m.switch, m.prefix, [p.next_hop for p in m.paths]) for m in matches] == [
        ("a", "10.1.2.0/24", ["192.0.2.3"]), ("b", None, [])]
