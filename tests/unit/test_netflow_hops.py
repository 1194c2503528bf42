"""HopResolver: raw next-hop columns to batch indices, named once, bounded per batch."""

from __future__ import annotations

import ipaddress

import numpy as np
import numpy.typing as npt

from topfib.collector.netflow.hops import HopResolver


def v4_column(addresses: list[str]) -> npt.NDArray[np.uint64]:
    return np.array([int(ipaddress.IPv4Address(a)) for a in addresses], np.uint64)


def resolve_v4(resolver: HopResolver, addresses: list[str]) -> list[str | None]:
    values = v4_column(addresses)
    family = np.full(len(values), 4, np.uint8)
    family[values == 0] = 0
    zeros = np.zeros(len(values), np.uint64)
    hops = resolver.resolve(family, values, zeros, zeros)
    return [None if h < 0 else resolver.names.names[h] for h in hops.tolist()]


def test_known_next_hops_are_named_once_per_batch() -> None:
    resolver = HopResolver()
    assert resolve_v4(resolver, ["192.0.2.2", "192.0.2.1", "0.0.0.0", "192.0.2.2"]) == [
        "192.0.2.2", "192.0.2.1", None, "192.0.2.2",
    ]  # fmt: skip
    assert resolve_v4(resolver, ["192.0.2.3", "192.0.2.1"]) == ["192.0.2.3", "192.0.2.1"]
    assert sorted(resolver.names.names) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    resolver.begin_batch()  # a new batch names only what it uses
    assert resolve_v4(resolver, ["192.0.2.3"]) == ["192.0.2.3"] and resolver.names.names == ["192.0.2.3"]


def test_ipv6_next_hops() -> None:
    resolver = HopResolver()
    address = int(ipaddress.IPv6Address("2001:db8::1"))
    mapped = int(ipaddress.IPv6Address("::ffff:192.0.2.1"))
    hi = np.array([address >> 64, mapped >> 64, address >> 64], np.uint64)
    lo = np.array([address & (2**64 - 1), mapped & (2**64 - 1), address & (2**64 - 1)], np.uint64)
    hops = resolver.resolve(np.full(3, 6, np.uint8), np.zeros(3, np.uint64), hi, lo)
    assert [resolver.names.names[h] for h in hops.tolist()] == [
        "2001:db8::1",
        "::ffff:192.0.2.1",
        "2001:db8::1",
    ]


def test_a_flood_of_distinct_next_hops_is_bounded() -> None:
    resolver = HopResolver(max_known_v4=8)
    resolver.names = type(resolver.names)(max_names=4)
    flood = [f"10.0.0.{i}" for i in range(1, 11)]
    assert resolve_v4(resolver, flood) == [None] * 10  # more than the batch may name: none named
    assert resolver.names.refused == 10 and resolver.names.names == []
    assert resolve_v4(resolver, ["10.0.0.1", "10.0.0.2"]) == ["10.0.0.1", "10.0.0.2"]
    resolver.begin_batch()
    # more distinct ones than the resolver keeps across batches: named for this batch only
    resolver2 = HopResolver(max_known_v4=2)
    assert resolve_v4(resolver2, ["10.0.0.1", "10.0.0.2", "10.0.0.3"]) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert resolve_v4(resolver2, ["10.0.0.1"]) == ["10.0.0.1"]


def resolve_v6(resolver: HopResolver, addresses: list[int]) -> list[str | None]:
    hi = np.array([a >> 64 for a in addresses], np.uint64)
    lo = np.array([a & (2**64 - 1) for a in addresses], np.uint64)
    hops = resolver.resolve_v6(hi, lo)
    return [None if h < 0 else resolver.names.names[h] for h in hops.tolist()]


def test_ipv6_next_hops_are_kept_across_batches_and_zero_is_none() -> None:
    resolver = HopResolver()
    one, two = (int(ipaddress.IPv6Address(a)) for a in ("2001:db8::1", "2001:db8::2"))
    assert resolve_v6(resolver, [one, 0, two, one]) == ["2001:db8::1", None, "2001:db8::2", "2001:db8::1"]
    resolver.begin_batch()
    assert resolve_v6(resolver, [two]) == ["2001:db8::2"] and resolver.names.names == ["2001:db8::2"]


def test_ipv6_next_hops_whose_keys_collide_are_still_told_apart() -> None:
    mix, mask = 0x9E3779B97F4A7C15, 2**64 - 1
    hi_a, lo_a = 0x20010DB800000000, 1
    hi_b = hi_a + 1
    lo_b = lo_a ^ ((hi_a * mix) & mask) ^ ((hi_b * mix) & mask)  # the same key as a
    a, b = hi_a << 64 | lo_a, hi_b << 64 | lo_b
    expected = [str(ipaddress.IPv6Address(a)), str(ipaddress.IPv6Address(b))]
    resolver = HopResolver()
    assert resolve_v6(resolver, [a, b, a]) == [*expected, expected[0]]
    resolver.begin_batch()
    assert resolve_v6(resolver, [a]) == [expected[0]]
    assert resolve_v6(resolver, [b]) == [expected[1]]  # collides with a known one: named for the batch
