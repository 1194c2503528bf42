"""Special-use space: the filter's rule, and the RIB refusing such prefixes at ingest."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_switch_controller import _announce, _withdraw
from topfib.collector.common.prefixes import PrefixError
from topfib.collector.common.special_use import FILTERED, SpecialUseFilter
from topfib.collector.rib.exabgp_json import ExabgpJsonParser
from topfib.collector.rib.paths import BgpPath
from topfib.collector.rib.rib import Rib, RibChange
from topfib.controller.config import ConfigError, SpecialUseConfig, parse_config

DEFAULT = SpecialUseFilter.from_settings()
PATH = BgpPath(next_hop="192.168.50.11", peer="10.99.0.2")

REFUSED = [
    ("0.0.0.0/0", "default route"),
    ("::/0", "default route"),
    ("0.0.0.0/8", "this network"),
    ("127.0.0.0/8", "loopback"),
    ("127.0.0.1/32", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("239.255.255.0/24", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("255.255.255.255/32", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("::ffff:10.0.0.0/104", "IPv4-mapped"),
    ("fe80::/10", "link-local"),
    ("febf:ffff::/32", "link-local"),
    ("ff00::/8", "multicast"),
    ("ff02::/16", "multicast"),
    ("192.0.2.0/24", "documentation"),
    ("198.51.100.128/25", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("2001:db8:1::/48", "documentation"),
    ("3fff::/20", "documentation"),
    # special-use as a whole though inside no single range: refused, named after both
    ("224.0.0.0/3", "multicast + reserved"),
    ("::/127", "unspecified + loopback"),
]
KEPT = ["0.0.0.0/1", "128.0.0.0/1", "1.0.0.0/8", "8.8.8.0/24", "126.0.0.0/8", "128.0.0.0/8", "169.255.0.0/16",
        "223.255.255.0/24", "100.64.0.0/10", "10.0.0.0/8", "192.0.3.0/24", "::/1", "::/96", "2001:db9::/32",
        "2000::/3", "fec0::/10", "fe00::/9", "fc00::/7", "feff::/16"]


@pytest.mark.parametrize(("prefix", "name"), REFUSED)
def test_a_prefix_inside_a_special_use_range_or_a_default_route_is_refused(prefix: str, name: str) -> None:
    assert DEFAULT.reason(prefix) == name


@pytest.mark.parametrize("prefix", KEPT)
def test_ordinary_prefixes_and_those_only_covering_a_range_are_kept(prefix: str) -> None:
    assert DEFAULT.reason(prefix) is None


def test_documentation_shared_space_and_extra_ranges_follow_the_settings() -> None:
    lab = SpecialUseFilter.from_settings(documentation=False, shared_address_space=True, extra=["10.0.0.0/8"])
    assert lab.reason("192.0.2.0/24") is None
    assert lab.reason("2001:db8::/32") is None
    assert lab.reason("100.64.1.0/24") == "shared address space"
    assert lab.reason("10.1.0.0/16") == "configured"
    assert lab.reason("0.0.0.0/0") == "default route"  # never configurable
    assert lab.reason("224.0.0.0/4") == "multicast"


def test_addresses_are_checked_as_host_prefixes() -> None:
    assert DEFAULT.reason_for_address("127.0.0.1") == "loopback"
    assert DEFAULT.reason_for_address("224.0.0.5") == "multicast"
    assert DEFAULT.reason_for_address("255.255.255.255") == "reserved"
    assert DEFAULT.reason_for_address("fe80::1") == "link-local"
    assert DEFAULT.reason_for_address("::ffff:8.8.8.8") == "IPv4-mapped"
    assert DEFAULT.reason_for_address("8.8.8.8") is None
    assert DEFAULT.reason_for_address("2a00::1") is None
    with pytest.raises(PrefixError):
        DEFAULT.reason_for_address("banana")


def test_the_rib_refuses_special_use_prefixes_at_ingest_and_counts_them() -> None:
    rib = Rib(special_use=DEFAULT)
    before = FILTERED.value(where="rib", range="default route")
    for prefix, _ in REFUSED:
        assert rib.announce("10.99.0.2", prefix, PATH) is None
    assert len(rib) == 0 and rib.refused_special_use == len(REFUSED)
    assert FILTERED.value(where="rib", range="default route") == before + 2
    # nothing resolves to a default route: 8.8.8.8 stays unrouted
    assert rib.longest_match("8.8.8.8") is None
    assert rib.longest_match("127.0.0.1") is None
    for prefix in ("0.0.0.0/1", "8.8.8.0/24"):
        assert rib.announce("10.99.0.2", prefix, PATH) is not None
    assert rib.longest_match("8.8.8.8") == "8.8.8.0/24"
    assert rib.longest_match("9.9.9.9") == "0.0.0.0/1"
    assert Rib().announce("10.99.0.2", "0.0.0.0/0", PATH) is not None  # no filter: as before


def test_exabgp_json_from_a_peer_never_brings_a_special_use_prefix_into_the_rib() -> None:
    rib = Rib(special_use=DEFAULT)
    parser = ExabgpJsonParser(known_prefix=rib.lpm.knows)
    hop = "192.168.50.11"
    announced = ["0.0.0.0/0", "224.0.0.0/4", "127.0.0.0/8", "169.254.0.0/16", "16.0.1.0/24"]
    for _ in range(2):  # a repeated announce is refused again (it was never known)
        rib.apply_all(parser.parse_line(_announce(hop, *((p, 1) for p in announced))))
    assert sorted(rib) == ["16.0.1.0/24"]
    assert rib.refused_special_use == 8
    changes = rib.apply_all(parser.parse_line(_withdraw(("0.0.0.0/0", 1), ("16.0.1.0/24", 1))))
    assert changes == [RibChange("16.0.1.0/24", None)]  # the refused prefix's withdraw: nothing


def test_config_names_a_bad_extra_range() -> None:
    assert SpecialUseConfig(extra=["10.0.0.0/8"]).build().reason("10.9.0.0/16") == "configured"
    base = '[[switch]]\nname="s"\nneighbor="10.0.0.2"\nlocal_address="10.0.0.1"\nlocal_as=1\npeer_as=1\n' \
           'fib_cap_ipv4=1\nfib_cap_ipv6=1\n'
    with pytest.raises(ConfigError, match=r"special_use\.extra"):
        parse_config(base + '[special_use]\nextra = ["10.0.0.1/8"]\n')
    with pytest.raises(ConfigError, match=r"special_use\.extra"):  # ipaddress keeps the scope id
        parse_config(base + '[special_use]\nextra = ["fe80::%eth0/64"]\n')
    with pytest.raises(ConfigError, match=r"special_use\.documentaton"):
        parse_config(base + '[special_use]\ndocumentaton = false\n')
    assert parse_config(base).special_use.documentation is True


def _reference(prefix: str, flt: SpecialUseFilter) -> str | None:
    """The rule spelled out with ``ipaddress``: /0, else the narrowest range containing the
    prefix, else (when the ranges together cover it) the names of those inside it."""
    network = ipaddress.ip_network(prefix)
    if network.prefixlen == 0:
        return "default route"
    same = [(ipaddress.ip_network(text), name) for text, name in flt.ranges]
    same = [(special, name) for special, name in same if special.version == network.version]
    holding = [(special, name) for special, name in same if network.subnet_of(special)]  # type: ignore[arg-type]
    if holding:
        return max(holding, key=lambda item: item[0].prefixlen)[1]
    inside = [(special, name) for special, name in same if special.subnet_of(network)]  # type: ignore[arg-type]
    covered = sum(special.num_addresses for special, _ in inside) == network.num_addresses  # disjoint ranges
    return " + ".join(dict.fromkeys(name for _, name in inside)) if inside and covered else None


_v4 = st.builds(lambda address, length: str(ipaddress.ip_network((address, length), strict=False)),
                st.one_of(st.integers(0, 2**32 - 1), st.just(0xE0000000)), st.integers(0, 32))
_v6 = st.builds(lambda address, length: str(ipaddress.ip_network((address, length), strict=False)),
                st.one_of(st.integers(0, 2**128 - 1), st.integers(0, 2**48 - 1).map(lambda x: x << 80),
                          st.sampled_from([0xFE80 << 112, 0xFF00 << 112, 0xFFFF << 32, 0x20010DB8 << 96, 1])),
                st.integers(0, 128))


@given(st.one_of(_v4, _v6), st.booleans(), st.booleans())
@settings(max_examples=500, deadline=None)
def test_the_bucketed_lookup_agrees_with_the_rule_spelled_out(prefix: str, documentation: bool,
                                                               shared: bool) -> None:
    flt = SpecialUseFilter.from_settings(documentation=documentation, shared_address_space=shared,
                                         extra=["10.0.0.0/8", "2a00::/12"])
    assert flt.reason(prefix) == _reference(prefix, flt)
