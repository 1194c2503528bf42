"""Redis clients from ``store.url``: one place that turns the URL into a client.

``redis://``, ``rediss://`` and ``unix://`` name one server. ``redis+sentinel://`` names a
Redis Sentinel deployment; the client asks the sentinels for the current master before each new
connection, so after a failover it reconnects to the promoted replica by itself::

    redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB]

SERVICE is the name the sentinels monitor (``sentinel monitor SERVICE ...``). The credentials are
those of the data nodes (master and replicas); the sentinels themselves are asked without them.
Everything before the last ``@`` is USER:PASSWORD, and no error message quotes any of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:  # the config validates URLs without importing the redis client
    import redis.asyncio as aioredis

SENTINEL_SCHEME = "redis+sentinel://"
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None = None
    password: str | None = None


def is_sentinel_url(url: str) -> bool:
    return url.startswith(SENTINEL_SCHEME)


def _host_port(item: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or a bare host (the default sentinel port)."""
    if item.startswith("["):
        host, bracket, rest = item[1:].partition("]")
        if not bracket or not host or (rest and not rest.startswith(":")):
            raise ValueError(f"bad sentinel address {item!r}")
        has_port, port_text = bool(rest), rest[1:]
    else:
        host, colon, port_text = item.partition(":")
        has_port = bool(colon)
        if not host or ":" in port_text:
            raise ValueError(f"bad sentinel address {item!r} (write IPv6 as [ADDRESS]:PORT)")
    if not has_port:
        return host, DEFAULT_SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad sentinel port in {item!r}")
    return host, int(port_text)


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The parts of a ``redis+sentinel://`` URL; ValueError saying what is wrong."""
    if not is_sentinel_url(url):
        raise ValueError(f"not a {SENTINEL_SCHEME} URL")
    # The user information is everything before the last '@' (hosts, service and database hold
    # none), split off first: a password with an unencoded '/', '?' or '#' is still a password,
    # and no message below can quote a piece of it.
    userinfo, at, rest = url[len(SENTINEL_SCHEME):].rpartition("@")
    username = password = None
    if at:
        user_text, colon, password_text = userinfo.partition(":")
        username = unquote(user_text) or None
        password = unquote(password_text) if colon else None
    if "?" in rest or "#" in rest:
        raise ValueError("redis+sentinel:// takes no query or fragment")
    netloc, _, path = rest.partition("/")
    if not netloc:
        raise ValueError("redis+sentinel:// needs at least one sentinel HOST:PORT")
    sentinels = tuple(_host_port(item) for item in netloc.split(","))
    parts = path.split("/") if path else []
    if not parts or not parts[0]:
        raise ValueError("redis+sentinel:// needs the monitored service name: .../SERVICE[/DB]")
    if len(parts) > 2:
        raise ValueError("redis+sentinel:// path is /SERVICE[/DB]")
    db_text = parts[1] if len(parts) == 2 and parts[1] else "0"
    if not db_text.isdigit():
        raise ValueError(f"database must be a number, not {db_text!r}")
    return SentinelTarget(sentinels, unquote(parts[0]), int(db_text), username, password)


def check_store_url(url: str) -> None:
    """ValueError saying what is wrong with a ``store.url``, quoting nothing of its credentials
    (check-config prints the message; redis-py's own would quote a piece of a password that holds
    an unencoded '/', which it then takes for the port)."""
    if is_sentinel_url(url):
        parse_sentinel_url(url)
        return
    if url == "memory://" or url.startswith("unix://"):
        return
    if not url.startswith(("redis://", "rediss://")):
        raise ValueError("must be memory://, redis://HOST:PORT/DB or "
                         "redis+sentinel://HOST:PORT[,HOST:PORT...]/SERVICE[/DB]")
    scheme, _, rest = url.partition("://")
    userinfo, _, server = rest.rpartition("@")
    if any(c in userinfo for c in "/?#"):
        raise ValueError("percent-encode '/', '?' and '#' in the user name and password (before '@')")
    try:
        parts = urlsplit(f"{scheme}://{server}")
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        raise ValueError(f"bad HOST:PORT: {exc}") from None
    if not parts.hostname:
        raise ValueError("needs a HOST")


def redis_client(url: str, timeout_s: float, **options: Any) -> aioredis.Redis[str]:
    """A decoding client for ``url`` with socket and connect timeouts of ``timeout_s``; ``options``
    are passed on to the connections (retry policy, health checks...)."""
    import redis.asyncio as aioredis

    options = {"decode_responses": True, "socket_timeout": timeout_s,
               "socket_connect_timeout": timeout_s, **options}
    if not is_sentinel_url(url):
        client: aioredis.Redis[str] = aioredis.Redis.from_url(url, **options)
        return client
    return _sentinel_master(parse_sentinel_url(url), timeout_s, options)


def _sentinel_master(
    target: SentinelTarget, timeout_s: float, options: dict[str, Any]
) -> aioredis.Redis[str]:
    import redis.asyncio as aioredis
    from redis.asyncio.sentinel import Sentinel

    class SentinelMaster(aioredis.Redis):  # type: ignore[type-arg]
        """The master's client; closing it closes the connections to the sentinels too."""

        async def aclose(self, close_connection_pool: bool | None = None) -> None:
            await super().aclose(close_connection_pool)  # type: ignore[misc,unused-ignore]
            if close_connection_pool is not False and self.auto_close_connection_pool:
                await sentinel.aclose()  # type: ignore[attr-defined,unused-ignore]  # redis 5+

    sentinel_options = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_options)
    master: aioredis.Redis[str] = sentinel.master_for(
        target.service, redis_class=SentinelMaster, db=target.db, username=target.username,
        password=target.password, **options)
    return master
