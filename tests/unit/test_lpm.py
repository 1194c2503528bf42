"""LpmTable: longest match single and batched, incremental changes, ids, more-specifics.

The random tests compare against a brute-force reference (every prefix tested against every
address) after every burst of adds and removes.
"""

from __future__ import annotations

import ipaddress
import random

import numpy as np
import numpy.typing as npt
import pytest

from topfib.collector.common.prefixes import IPV4, IPV6, PrefixError, format_network
from topfib.collector.rib.lpm import LpmTable

MASK64 = (1 << 64) - 1


def v4(address: str) -> np.uint32:
    return np.uint32(int(ipaddress.IPv4Address(address)))


def v6_halves(addresses: list[str]) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    ints = [int(ipaddress.IPv6Address(a)) for a in addresses]
    return (np.array([i >> 64 for i in ints], dtype=np.uint64),
            np.array([i & MASK64 for i in ints], dtype=np.uint64))


def names(table: LpmTable, ids: npt.NDArray[np.int64]) -> list[str | None]:
    return [table.prefix_of_id(i) if i >= 0 else None for i in ids.tolist()]


def test_longest_match_single_and_batched_ipv4() -> None:
    table = LpmTable(["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25", "10.1.2.129/32"])
    cases = {
        "10.9.9.9": "10.0.0.0/8",
        "10.1.9.9": "10.1.0.0/16",
        "10.1.2.1": "10.1.2.0/24",
        "10.1.2.200": "10.1.2.128/25",
        "10.1.2.129": "10.1.2.129/32",
        "11.0.0.1": None,
    }
    for address, expected in cases.items():
        assert table.lookup(address) == expected
    ids = table.lookup_v4_ids(np.array([v4(a) for a in cases], dtype=np.uint32))
    assert names(table, ids) == list(cases.values())
    assert ids.dtype == np.int64
    assert len(table) == 5
    assert table.count(IPV4) == 5 and table.count(IPV6) == 0


def test_longest_match_ipv6_including_longer_than_64() -> None:
    table = LpmTable(["2001:db8::/32", "2001:db8:1::/48", "2001:db8:1:2::/64", "2001:db8:1:2::1/128", "::/0"])
    cases = {
        "2001:db8:ffff::1": "2001:db8::/32",
        "2001:db8:1:5::1": "2001:db8:1::/48",
        "2001:db8:1:2::2": "2001:db8:1:2::/64",
        "2001:db8:1:2::1": "2001:db8:1:2::1/128",
        "3fff::1": "::/0",
    }
    for address, expected in cases.items():
        assert table.lookup(address) == expected
    high, low = v6_halves(list(cases))
    assert names(table, table.lookup_v6_ids(high, low)) == list(cases.values())


def test_remove_hands_cells_back_to_the_cover() -> None:
    table = LpmTable(["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16"])
    assert table.lookup("10.1.1.1") == "10.1.0.0/16"
    table.remove("10.1.0.0/16")
    assert table.lookup("10.1.1.1") == "10.0.0.0/8"
    table.remove("10.0.0.0/8")
    assert table.lookup("10.1.1.1") == "0.0.0.0/0"
    table.remove("0.0.0.0/0")
    assert table.lookup("10.1.1.1") is None
    assert len(table) == 0
    table.remove("0.0.0.0/0")  # absent: a no-op
    table.remove("not a prefix")
    assert len(table) == 0


def test_remove_of_a_cover_keeps_more_specifics() -> None:
    table = LpmTable(["10.0.0.0/8", "10.1.0.0/16"])
    table.lookup("10.0.0.1")  # paint before the change
    table.remove("10.0.0.0/8")
    assert table.lookup("10.1.0.1") == "10.1.0.0/16"
    assert table.lookup("10.2.0.1") is None


def test_ids_are_stable_and_never_name_two_prefixes() -> None:
    table = LpmTable(["192.0.2.0/24"])
    first = int(table.lookup_v4_ids(np.array([v4("192.0.2.1")], dtype=np.uint32))[0])
    table.add("198.51.100.0/24")
    table.remove("192.0.2.0/24")
    assert table.id_of("192.0.2.0/24") is None
    other = int(table.lookup_v4_ids(np.array([v4("198.51.100.1")], dtype=np.uint32))[0])
    assert other != first
    table.add("192.0.2.0/24")
    assert table.id_of("192.0.2.0/24") == first
    assert table.prefix_of_id(first) == "192.0.2.0/24"


def test_add_rejects_host_bits_and_garbage() -> None:
    table = LpmTable()
    for bad in ("10.0.0.1/8", "10.0.0.0/33", "10.0.0/8", "2001:db8::1/32", "x/1", "10.0.0.0", "010.0.0.0/8"):
        with pytest.raises(PrefixError):
            table.add(bad)
    assert len(table) == 0


def test_add_twice_counts_once() -> None:
    table = LpmTable(["10.0.0.0/8", "10.0.0.0/8"])
    assert len(table) == 1
    assert sorted(table.prefixes()) == ["10.0.0.0/8"]
    assert "10.0.0.0/8" in table and "10.0.0.0/9" not in table


def test_more_specifics_both_families() -> None:
    table = LpmTable(["10.0.0.0/8", "10.0.0.0/9", "10.1.0.0/16", "10.1.2.0/24", "11.0.0.0/8",
                      "9.255.255.0/24", "2001:db8::/32", "2001:db8:1::/48", "2001:db9::/32"])
    assert table.more_specifics("10.0.0.0/8") == ["10.0.0.0/9", "10.1.0.0/16", "10.1.2.0/24"]
    assert table.more_specifics("10.1.0.0/16") == ["10.1.2.0/24"]
    assert table.more_specifics("10.1.2.0/24") == []
    assert table.more_specifics("0.0.0.0/0") == [
        "9.255.255.0/24", "10.0.0.0/8", "10.0.0.0/9", "10.1.0.0/16", "10.1.2.0/24", "11.0.0.0/8"]
    assert table.more_specifics("2001:db8::/32") == ["2001:db8:1::/48"]
    assert table.more_specifics("2001:db8::/31") == ["2001:db8::/32", "2001:db8:1::/48", "2001:db9::/32"]
    table.remove("10.1.0.0/16")
    assert table.more_specifics("10.0.0.0/8") == ["10.0.0.0/9", "10.1.2.0/24"]


def test_lookup_batch_returns_strings() -> None:
    table = LpmTable(["10.0.0.0/8", "2001:db8::/32"])
    assert table.lookup_batch(IPV4, [int(v4("10.1.1.1")), 0]) == ["10.0.0.0/8", None]
    address = int(ipaddress.IPv6Address("2001:db8::5"))
    assert table.lookup_batch(IPV6, [address, 1]) == ["2001:db8::/32", None]


def test_empty_table_and_empty_batches() -> None:
    table = LpmTable()
    assert table.lookup_v4_ids(np.array([1, 2], dtype=np.uint32)).tolist() == [-1, -1]
    assert table.lookup_v4_ids(np.empty(0, dtype=np.uint32)).size == 0
    empty = np.empty(0, dtype=np.uint64)
    assert table.lookup_v6_ids(empty, empty).size == 0
    assert table.lookup("::1") is None
    with pytest.raises(ValueError):
        table.lookup_v6_ids(np.zeros(2, dtype=np.uint64), np.zeros(1, dtype=np.uint64))


# -- random comparison against brute force -------------------------------------------------------


def random_prefixes(rng: random.Random, family: int, count: int) -> set[str]:
    """Prefixes clustered in a few regions so that nesting and long prefixes are common."""
    bits = 32 if family == IPV4 else 128
    cluster = 8 if family == IPV4 else 24  # bits shared by a region
    regions = [rng.getrandbits(cluster) << (bits - cluster) for _ in range(4)]
    lengths = ([0, 8, 12, 16, 19, 20, 22, 23, 24, 24, 24, 25, 28, 32] if family == IPV4
               else [0, 16, 29, 32, 32, 40, 44, 48, 48, 56, 64, 65, 96, 127, 128])
    out: set[str] = set()
    while len(out) < count:
        address = rng.choice(regions) | rng.getrandbits(bits - cluster)
        length = rng.choice(lengths)
        network = (address >> (bits - length)) << (bits - length) if length else 0
        out.add(format_network(family, network, length))
    return out


def brute_force(prefixes: set[str], family: int, addresses: list[int]) -> list[str | None]:
    parsed = [(ipaddress.ip_network(p), p) for p in prefixes if (":" in p) == (family == IPV6)]
    bits = 32 if family == IPV4 else 128
    out: list[str | None] = []
    for address in addresses:
        best: tuple[int, str] | None = None
        for net, text in parsed:
            length = net.prefixlen
            shift = bits - length
            inside = length == 0 or (address >> shift) == (int(net.network_address) >> shift)
            if inside and (best is None or length > best[0]):
                best = (length, text)
        out.append(best[1] if best else None)
    return out


def sample_addresses(rng: random.Random, prefixes: set[str], family: int, count: int) -> list[int]:
    """Random addresses, two thirds of them inside some present prefix."""
    bits = 32 if family == IPV4 else 128
    inside = [ipaddress.ip_network(p) for p in sorted(prefixes)]
    out = []
    for index in range(count):
        if index % 3 == 0 or not inside:
            out.append(rng.getrandbits(bits))
        else:
            net = rng.choice(inside)
            out.append(int(net.network_address) | rng.getrandbits(bits - net.prefixlen))
    return out


@pytest.mark.parametrize("family", [IPV4, IPV6])
def test_random_changes_match_brute_force(family: int) -> None:
    rng = random.Random(7 + family)
    universe = sorted(random_prefixes(rng, family, 300))
    table = LpmTable()
    present: set[str] = set()
    for _round in range(6):
        for prefix in rng.sample(universe, 120):
            if prefix in present and rng.random() < 0.5:
                table.remove(prefix)
                present.discard(prefix)
            else:
                table.add(prefix)
                present.add(prefix)
        addresses = sample_addresses(rng, present, family, 400)
        expected = brute_force(present, family, addresses)
        if family == IPV4:
            ids = table.lookup_v4_ids(np.array(addresses, dtype=np.uint32))
        else:
            ids = table.lookup_v6_ids(np.array([a >> 64 for a in addresses], dtype=np.uint64),
                                      np.array([a & MASK64 for a in addresses], dtype=np.uint64))
        assert names(table, ids) == expected
        assert [table.lookup_int(family, a) for a in addresses] == expected
        assert len(table) == len(present)
        for outer in rng.sample(sorted(present), 10):
            net = ipaddress.ip_network(outer)
            inside = sorted((p for p in present if p != outer and (":" in p) == (family == IPV6)
                             and ipaddress.ip_network(p).subnet_of(net)),  # type: ignore[arg-type]
                            key=lambda p: (int(ipaddress.ip_network(p).network_address),
                                           ipaddress.ip_network(p).prefixlen))
            assert table.more_specifics(outer) == inside


def test_bulk_removal_repaints_everything() -> None:
    prefixes = [format_network(IPV4, (10 << 24) | (i << 8), 24) for i in range(25_000)]
    table = LpmTable(["10.0.0.0/8", *prefixes])
    probe = np.array([(10 << 24) | (i << 8) | 1 for i in range(0, 25_000, 997)], dtype=np.uint32)
    assert set(names(table, table.lookup_v4_ids(probe))) == {p for p in prefixes[::997]}
    for prefix in prefixes:
        table.remove(prefix)
    assert set(names(table, table.lookup_v4_ids(probe))) == {"10.0.0.0/8"}
