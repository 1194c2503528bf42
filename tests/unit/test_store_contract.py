"""One contract for every Store: the memory store always, Redis (a real server) as integration."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.api_support import anyio_backend  # noqa: F401
from topfib.controller.state.redis_store import RedisStore
from topfib.controller.state.store import MemoryStore, Pin, RequestCursor, RequestEntry, Store

# Until tests/conftest.py registers it for every test.
pytest_plugins = ["tests.redis_fixture"]

pytestmark = pytest.mark.anyio
T0 = 1_700_000_000.0
LIMITS = {"edge1": 3, "edge2": 1}


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    backend: Store
    if request.param == "memory":
        backend = MemoryStore()
    else:
        backend = RedisStore.from_url(request.getfixturevalue("redis_url"))
    try:
        yield backend
    finally:
        await backend.aclose()


def req(ip: str, ap: str = "ap1", switch: str = "edge1", at: float = T0, ttl: float = 60) -> RequestEntry:
    return RequestEntry(switch, ip, ap, at, at + ttl)


async def test_requests_round_trip_newest_first(store: Store) -> None:
    entries = [req("198.51.100.1", at=T0), req("198.51.100.2", at=T0 + 1), req("2001:db8::1", switch="edge2")]
    assert await store.add_requests(entries, LIMITS, T0 + 1) == [True, True, True]
    assert await store.active_requests("edge1", T0 + 2) == [entries[1], entries[0]]
    assert await store.active_requests(None, T0 + 2) == [entries[1], entries[0], entries[2]]
    assert await store.active_requests("nowhere", T0) == []


async def test_requests_expire_at_their_time(store: Store) -> None:
    await store.add_requests([req("198.51.100.1", ttl=10), req("198.51.100.2", ttl=20)], LIMITS, T0)
    before_first_expiry = await store.active_requests("edge1", T0 + 9.999)
    assert [e.ip for e in before_first_expiry] == ["198.51.100.1", "198.51.100.2"]
    assert [e.ip for e in await store.active_requests("edge1", T0 + 10)] == ["198.51.100.2"]
    assert await store.active_requests("edge1", T0 + 20) == []


async def test_same_ap_same_ip_newest_wins_even_if_shorter(store: Store) -> None:
    await store.add_requests([req("198.51.100.1", ttl=600)], LIMITS, T0)
    newer = req("198.51.100.1", at=T0 + 5, ttl=10)
    assert await store.add_requests([newer], LIMITS, T0 + 5) == [True]
    assert await store.active_requests("edge1", T0 + 5) == [newer]
    assert await store.active_requests("edge1", T0 + 15) == []


async def test_per_ap_cap_counts_active_entries_per_switch(store: Store) -> None:
    first = [req(f"198.51.100.{i}") for i in range(1, 5)]
    assert await store.add_requests(first, LIMITS, T0) == [True, True, True, False]
    # Refreshing a held entry is fine at the cap; another AP and another switch have their own counts.
    assert await store.add_requests([req("198.51.100.1", at=T0 + 1)], LIMITS, T0 + 1) == [True]
    assert await store.add_requests([req("198.51.100.4", ap="ap2")], LIMITS, T0 + 1) == [True]
    on_edge2 = [req("198.51.100.4", switch="edge2"), req("198.51.100.5", switch="edge2")]
    assert await store.add_requests(on_edge2, LIMITS, T0 + 1) == [True, False]
    # Once entries expire they free their places.
    assert await store.add_requests([req("198.51.100.9", at=T0 + 61)], LIMITS, T0 + 61) == [True]


async def test_remove_ends_one_aps_entries_on_every_switch(store: Store) -> None:
    await store.add_requests([req("198.51.100.1"), req("198.51.100.1", switch="edge2"),
                              req("198.51.100.1", ap="ap2"), req("198.51.100.2", ttl=5)], LIMITS, T0)
    assert await store.remove_requests("ap1", "198.51.100.1", T0) == 2
    assert await store.remove_requests("ap1", "198.51.100.1", T0) == 0
    assert await store.remove_requests("ap1", "198.51.100.2", T0 + 5) == 0  # already expired
    assert [(e.ap, e.switch) for e in await store.active_requests(None, T0)] == [("ap2", "edge1")]
    # A removed entry frees its place under the cap.
    assert await store.add_requests([req("198.51.100.3", switch="edge2")], LIMITS, T0) == [True]


async def test_pins(store: Store) -> None:
    await store.set_pin(Pin("2001:db8::/32", "ops", T0, "cdn"))
    await store.set_pin(Pin("198.51.100.0/24", "ops", T0))
    await store.set_pin(Pin("198.51.100.0/24", "ops2", T0 + 1, "again"))
    assert await store.pins() == [Pin("198.51.100.0/24", "ops2", T0 + 1, "again"),
                                  Pin("2001:db8::/32", "ops", T0, "cdn")]
    assert await store.remove_pin("198.51.100.0/24") is True
    assert await store.remove_pin("198.51.100.0/24") is False
    assert [p.prefix for p in await store.pins()] == ["2001:db8::/32"]


async def test_config_overrides_set_and_clear(store: Store) -> None:
    assert await store.config_overrides() == {}
    assert await store.update_config_overrides("edge1", {"fib_cap_ipv4": 5000, "margin": 0.25}, ()) == {
        "fib_cap_ipv4": 5000, "margin": 0.25}
    assert await store.update_config_overrides("edge1", {"min_dwell_s": 1.5}, {"margin", "absent"}) == {
        "fib_cap_ipv4": 5000, "min_dwell_s": 1.5}
    await store.update_config_overrides("edge2", {}, {"margin"})
    overrides = await store.config_overrides()
    assert overrides == {"edge1": {"fib_cap_ipv4": 5000, "min_dwell_s": 1.5}}
    assert isinstance(overrides["edge1"]["fib_cap_ipv4"], int)


async def test_snapshots(store: Store) -> None:
    assert await store.snapshot("edge1", "installed_fib") is None
    await store.put_snapshot("edge1", "installed_fib", '{"routes": []}')
    await store.put_snapshot("edge1", "top", '{"prefixes": [1]}')
    await store.put_snapshot("edge1", "installed_fib", '{"routes": [2]}')
    assert await store.snapshot("edge1", "installed_fib") == '{"routes": [2]}'
    assert await store.snapshot("edge1", "top") == '{"prefixes": [1]}'
    assert await store.snapshot("edge2", "top") is None


async def test_ping(store: Store) -> None:
    assert await store.ping() is True


async def test_request_changes_give_everything_then_only_what_changed(store: Store) -> None:
    first = await store.request_changes("edge1", None, T0)
    assert first.full and first.active == []
    one, two = req("198.51.100.1"), req("198.51.100.2", ap="ap2")
    await store.add_requests([one, two, req("198.51.100.3", switch="edge2")], LIMITS, T0)
    everything = await store.request_changes("edge1", None, T0)
    assert everything.full and sorted(everything.active, key=lambda e: e.ip) == [one, two]
    quiet = await store.request_changes("edge1", everything.cursor, T0 + 1)
    assert (quiet.full, quiet.active, quiet.ended) == (False, [], [])
    refreshed = req("198.51.100.1", at=T0 + 2, ttl=100)
    await store.add_requests([refreshed], LIMITS, T0 + 2)
    assert await store.remove_requests("ap2", "198.51.100.2", T0 + 2) == 1
    changed = await store.request_changes("edge1", quiet.cursor, T0 + 2)
    assert not changed.full and changed.active == [refreshed] and changed.ended == [("ap2", "198.51.100.2")]
    assert (await store.request_changes("edge1", changed.cursor, T0 + 3)).active == []


async def test_request_changes_leave_out_what_expired_meanwhile(store: Store) -> None:
    start = await store.request_changes("edge1", None, T0)
    await store.add_requests([req("198.51.100.1", ttl=5), req("198.51.100.2", ttl=50)], LIMITS, T0)
    changes = await store.request_changes("edge1", start.cursor, T0 + 10)
    assert [e.ip for e in changes.active] == ["198.51.100.2"]
    assert changes.ended in ([], [("ap1", "198.51.100.1")])  # the reader expires it by itself anyway


async def test_a_cursor_of_another_store_gets_everything(store: Store) -> None:
    await store.add_requests([req("198.51.100.1")], LIMITS, T0)
    foreign = await MemoryStore().request_changes("edge1", None, T0)  # another generation
    answer = await store.request_changes("edge1", foreign.cursor, T0)
    assert answer.full and [e.ip for e in answer.active] == ["198.51.100.1"]


async def test_a_cursor_ahead_of_the_log_gets_everything(store: Store) -> None:
    """The store went back (Redis restored from an older copy): later changes could reuse the
    sequence numbers the reader has already passed."""
    await store.add_requests([req("198.51.100.1")], LIMITS, T0)
    now_at = (await store.request_changes("edge1", None, T0)).cursor
    ahead = RequestCursor(now_at.generation, now_at.sequence + 10)
    answer = await store.request_changes("edge1", ahead, T0)
    assert answer.full and [e.ip for e in answer.active] == ["198.51.100.1"]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
async def short_log_store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    backend: Store
    if request.param == "memory":
        backend = MemoryStore(change_log_max=4)
    else:
        backend = RedisStore.from_url(request.getfixturevalue("redis_url"), change_log_max=4)
    try:
        yield backend
    finally:
        await backend.aclose()


async def test_a_reader_behind_the_trimmed_log_gets_everything(short_log_store: Store) -> None:
    store = short_log_store
    start = await store.request_changes("edge1", None, T0)
    entries = [req(f"198.51.100.{i}", ap=f"ap{i}") for i in range(1, 11)]
    for entry in entries:  # one change each: the log (4, trimmed past 5) forgets the first ones
        await store.add_requests([entry], LIMITS, T0)
    behind = await store.request_changes("edge1", start.cursor, T0)
    assert behind.full and sorted(e.ip for e in behind.active) == sorted(e.ip for e in entries)
    await store.add_requests([req("198.51.100.1", ap="ap1", at=T0 + 1)], LIMITS, T0 + 1)
    recent = await store.request_changes("edge1", behind.cursor, T0 + 1)
    assert not recent.full and [e.ip for e in recent.active] == ["198.51.100.1"]
