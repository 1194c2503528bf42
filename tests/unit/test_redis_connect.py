"""store.url forms: redis+sentinel:// is parsed, validated by the config and built into a
Sentinel-backed client (no I/O here; tests/integration/test_redis_sentinel.py fails one over)."""

from __future__ import annotations

import pytest
from redis.asyncio.sentinel import SentinelConnectionPool

from topfib.controller.config import ConfigError, parse_config
from topfib.controller.state.redis_connect import SentinelTarget, parse_sentinel_url, redis_client
from topfib.controller.state.redis_store import RedisStore

STORE = """
[store]
url = "{url}"
{extra}
[[switch]]
name = "edge1"
neighbor = "10.0.0.2"
local_address = "10.0.0.1"
local_as = 65000
peer_as = 65000
sflow_agents = ["10.0.0.2"]
fib_cap_ipv4 = 16000
fib_cap_ipv6 = 4000
"""


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/topfib/3",
         SentinelTarget((("10.0.0.1", 26379), ("10.0.0.2", 26380)), "topfib", 3)),
        ("redis+sentinel://s1,[2001:db8::1]:5000/topfib",
         SentinelTarget((("s1", 26379), ("2001:db8::1", 5000)), "topfib", 0)),
        ("redis+sentinel://:se%40cret@s1:1/topfib/",
         SentinelTarget((("s1", 1),), "topfib", 0, None, "se@cret")),
        ("redis+sentinel://app:pw@s1:1/topfib/0",
         SentinelTarget((("s1", 1),), "topfib", 0, "app", "pw")),
    ],
)
def test_sentinel_url_parts(url: str, target: SentinelTarget) -> None:
    assert parse_sentinel_url(url) == target


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+sentinel:///topfib/0", "at least one sentinel"),
        ("redis+sentinel://s1:26379", "service name"),
        ("redis+sentinel://s1:26379/", "service name"),
        ("redis+sentinel://s1:26379/topfib/zero", "database must be a number"),
        ("redis+sentinel://s1:26379/topfib/0/extra", "path is /SERVICE"),
        ("redis+sentinel://s1:99999/topfib", "bad sentinel port"),
        ("redis+sentinel://s1:,s2:1/topfib", "bad sentinel port"),
        ("redis+sentinel://[::1/topfib", "bad sentinel address"),
        ("redis+sentinel://s1:1/topfib?db=1", "no query"),
    ],
)
def test_bad_sentinel_url_names_the_store_url_key_and_the_fault(url: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(STORE.format(url=url, extra=""))
    assert "store.url" in str(info.value) and reason in str(info.value)


def test_config_accepts_sentinel_and_replica_acks() -> None:
    config = parse_config(STORE.format(url="redis+sentinel://127.0.0.1:26379/topfib/0", extra=""))
    assert config.store.url.startswith("redis+sentinel://") and config.store.replica_acks == 1
    config = parse_config(STORE.format(url="redis+sentinel://s1/topfib", extra="replica_acks = 0"))
    assert config.store.replica_acks == 0
    with pytest.raises(ConfigError, match=r"store\.replica_acks"):
        parse_config(STORE.format(url="redis://127.0.0.1:6379/0", extra="replica_acks = -1"))


def test_sentinel_url_builds_a_client_that_asks_the_sentinels_for_the_master() -> None:
    client = redis_client("redis+sentinel://127.0.0.1:26379,127.0.0.2:26380/topfib/2", timeout_s=0.5)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "topfib" and pool.is_master
    assert pool.connection_kwargs["db"] == 2 and pool.connection_kwargs["socket_timeout"] == 0.5
    addresses = [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
                 for s in pool.sentinel_manager.sentinels]
    assert addresses == [("127.0.0.1", 26379), ("127.0.0.2", 26380)]


def test_replica_acks_apply_to_sentinel_only() -> None:
    single = RedisStore.from_url("redis://127.0.0.1:6379/0", replica_acks=1)
    sentinel = RedisStore.from_url("redis+sentinel://127.0.0.1:26379/topfib/0", replica_acks=1)
    assert single._replica_acks == 0 and sentinel._replica_acks == 1


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://:s3cr/etpw@s1:1/topfib",  # a password with '/' not percent-encoded
        "redis+sentinel://app:s3cr/etpw/x/y@s1:1/topfib",
        "redis+sentinel://app:s3cr?etpw@s1:1/topfib",
        "redis+sentinel://app:s3cr#etpw@s1:1/topfib",
        "redis+sentinel://app:s3cr,etpw@s1:1/topfib/zero",
        "redis+sentinel://app:s3cr:etpw@s1:99999/topfib",
        "redis+sentinel://s3cretpw@[::1/topfib",
        "redis://:s3cr/etpw@127.0.0.1:6379/0",  # redis-py took 's3cr' for the port and said so
        "rediss://app:s3cr?etpw@127.0.0.1:6379/0",
        "redis://app:s3cretpw@127.0.0.1:99x/0",
    ],
)
def test_a_bad_store_url_never_shows_its_credentials(url: str) -> None:
    """check-config prints (and run logs) what is wrong with store.url: never a piece of the
    password, however the URL is broken."""
    try:
        parse_config(STORE.format(url=url, extra=""))
    except ConfigError as exc:
        message = str(exc)
        assert "s3cr" not in message and "etpw" not in message and "store.url" in message
    else:
        assert url.startswith("redis+") and parse_sentinel_url(url).password is not None


def test_a_sentinel_password_may_hold_slash_query_and_fragment_characters() -> None:
    """Everything before the last '@' is the user information (hosts, service and database
    hold no '@'), so an unencoded '/', '?' or '#' in the password is still the password."""
    target = parse_sentinel_url("redis+sentinel://app:a/b?c#d@s1:1/topfib/2")
    assert (target.username, target.password, target.service, target.db) == ("app", "a/b?c#d", "topfib", 2)


@pytest.mark.parametrize(("url", "reason"), [
    ("redis://127.0.0.1:63a79/0", "bad HOST:PORT"),
    ("redis:///0", "needs a HOST"),
    ("http://127.0.0.1:6379", "must be memory://"),
])
def test_a_bad_redis_url_is_a_config_error_naming_the_fault(url: str, reason: str) -> None:
    """A broken store.url passed check-config, then run died in redis-py's parser."""
    with pytest.raises(ConfigError) as info:
        parse_config(STORE.format(url=url, extra=""))
    assert "store.url" in str(info.value) and reason in str(info.value)


@pytest.mark.parametrize("url", ["memory://", "redis://127.0.0.1:6379/0", "rediss://:p%2Fw@[::1]:6380/1",
                                 "unix:///run/redis.sock?db=1", "redis://redis"])
def test_good_store_urls_pass(url: str) -> None:
    parse_config(STORE.format(url=url, extra=""))
