"""The Redis store: state that survives restarts and is shared by API replicas and controllers.

Layout (``P`` is the key prefix, ``topfib:`` by default; switch names are ``[A-Za-z0-9_.-]+``):

- ``P req:switches`` set of switch names that ever had a request;
- ``P req:exp:{switch}`` sorted set, member ``["ap", "ip"]`` (JSON), score = expiry;
- ``P req:at:{switch}`` hash, same member → requested-at time;
- ``P req:ap:{switch}:{ap}`` sorted set of the AP's IPs by expiry, for the per-AP cap.
- ``P req:seq:{switch}`` the switch's change counter; ``P req:log:{switch}`` sorted set, member
  as above, score = the counter at its last write or removal (trimmed to ``CHANGE_LOG_MAX``
  members, the newest trimmed score in ``P req:trim:{switch}``); ``P req:gen:{switch}`` a random
  generation, set by any write that finds none, so a reader notices a Redis that lost its data;
  ``P req:mark:{switch}`` sorted set, member = a random token of each write, score = the counter
  after it (trimmed like the log), so a reader notices a Redis that went back and was written again.
- ``P pins`` hash prefix → JSON; ``P config:{switch}`` hash key → JSON number, with the names in
  ``P config:switches``; ``P snapshot:{switch}:{kind}`` strings.

Writing requests and checking the per-AP cap happen in one Lua script, so replicas cannot race
past the cap. Expired entries are purged by the writes (and skipped by the reads).

When Redis cannot be reached, reads answer from the last value each one saw (requests still
expire against ``now``) and writes raise :class:`~topfib.controller.state.store.StoreUnavailable`. The client
reconnects by itself when Redis is back. Single Redis or Sentinel only: the scripts touch keys of
one switch and AP but not under one cluster hash slot.

With Sentinel, replication is asynchronous: a master that dies right after acknowledging a write
may take it along, and the promoted replica never had it. So every write is one pipeline on one
connection, and with ``replica_acks`` it ends in ``WAIT replica_acks`` (WAIT counts the writes of
its own connection): success only when enough replicas have the write; otherwise the write raises
StoreUnavailable (the API answers 503 and the client retries; requests are idempotent).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar, cast

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from topfib.collector.common.metrics import REGISTRY
from topfib.collector.common.prefixes import PrefixError, canonical_prefix
from topfib.controller.state.redis_connect import is_sentinel_url, redis_client
from topfib.controller.state.redis_scripts import ADD_KEYS, ADD_SCRIPT, ADD_SHA, CONFIG_SCRIPT, REMOVE_SCRIPT
from topfib.controller.state.store import (
    CHANGE_LOG_MAX,
    OFFLOAD_ENTRIES,
    FirstTimes,
    Pin,
    RequestChanges,
    RequestCursor,
    RequestEntry,
    SettingValue,
    SnapshotKind,
    StoreUnavailable,
    change_log_slack,
    needs_full_read,
    request_order,
)

T = TypeVar("T")
log = logging.getLogger(__name__)
_MALFORMED = REGISTRY.counter(
    "topfib_store_malformed_total",
    "Entries read from Redis that topfib did not write that way (skipped), by kind, counted per read",
    ("kind",),
)
_warned = FirstTimes()
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)

def _member(ap: str, ip: str) -> str:
    return json.dumps([ap, ip], separators=(",", ":"))


def _score(value: float) -> str:
    return repr(float(value))


class RedisStore:
    """A :class:`~topfib.controller.state.store.Store` over one Redis database. The constructor does no
    I/O."""

    def __init__(
        self, client: aioredis.Redis[str], prefix: str = "topfib:", replica_acks: int = 0,
        ack_timeout_s: float = 1.0, change_log_max: int = CHANGE_LOG_MAX,
    ) -> None:
        self._redis = client
        self._p = prefix
        self._log_limits = [str(change_log_max), str(change_log_slack(change_log_max))]
        self._add = client.register_script(ADD_SCRIPT)
        self._remove = client.register_script(REMOVE_SCRIPT)
        self._config = client.register_script(CONFIG_SCRIPT)
        self._cache: dict[tuple[str, ...], object] = {}
        self._replica_acks = replica_acks
        self._ack_timeout_ms = max(1, round(ack_timeout_s * 1000))

    @classmethod
    def from_url(
        cls, url: str, timeout_s: float = 1.0, prefix: str = "topfib:", replica_acks: int = 0,
        change_log_max: int = CHANGE_LOG_MAX,
    ) -> RedisStore:
        """A store for ``store.url`` (see :mod:`topfib.controller.state.redis_connect`). One immediate retry
        re-dials a connection Redis dropped (e.g. after its restart or a failover); beyond that an
        outage fails fast rather than stalling requests. ``replica_acks`` applies to Sentinel only
        (a lone server has no replica to wait for)."""
        client = redis_client(url, timeout_s, retry=Retry(NoBackoff(), 1), retry_on_timeout=False,
                              health_check_interval=0)
        acks = replica_acks if is_sentinel_url(url) else 0
        # WAIT gives up after half the socket timeout, so it answers before the socket times out
        return cls(client, prefix, replica_acks=acks, ack_timeout_s=timeout_s / 2,
                   change_log_max=change_log_max)

    # -- failure handling -------------------------------------------------------------------------

    async def _read(self, key: tuple[str, ...], fetch: Callable[[], Awaitable[T]]) -> T:
        try:
            value = await fetch()
        except _UNREACHABLE as exc:
            if key in self._cache:
                return cast(T, self._cache[key])
            raise StoreUnavailable(f"redis unreachable and nothing cached for {key[0]}: {exc}") from exc
        self._cache[key] = value
        return value

    async def _write(self, queue: Callable[[Pipeline[str]], Awaitable[object]]) -> list[Any]:
        """Run the commands ``queue`` adds to a pipeline (one connection, not a transaction); their
        results. With replica acks, success only once enough replicas have them."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                await queue(pipe)
                if self._replica_acks:
                    pipe.wait(self._replica_acks, self._ack_timeout_ms)
                results: list[Any] = await pipe.execute()
        except (*_UNREACHABLE, ReadOnlyError) as exc:
            raise StoreUnavailable(f"redis unreachable: {exc}") from exc
        if self._replica_acks:
            acked = int(results.pop())
            if acked < self._replica_acks:
                raise StoreUnavailable(
                    f"only {acked} of {self._replica_acks} redis replicas acknowledged the write in time")
        return results

    # -- requests ---------------------------------------------------------------------------------

    def _req_keys(self, switch: str, ap: str) -> list[str]:
        return [f"{self._p}req:exp:{switch}", f"{self._p}req:at:{switch}", f"{self._p}req:ap:{switch}:{ap}"]

    def _log_keys(self, switch: str) -> list[str]:
        """seq, log, trim, gen and mark of ``switch``'s change log."""
        return [f"{self._p}req:{kind}:{switch}" for kind in ("seq", "log", "trim", "gen", "mark")]

    async def add_requests(
        self, entries: Sequence[RequestEntry], max_per_ap: Mapping[str, int], now: float
    ) -> list[bool]:
        groups: dict[tuple[str, str], list[int]] = {}
        for index, entry in enumerate(entries):
            groups.setdefault((entry.switch, entry.ap), []).append(index)

        batches = list(groups.values())
        calls: list[list[str]] = []
        for (switch, ap), indexes in groups.items():
            # a fresh generation each time, kept only by a switch without one: a Redis that lost
            # its data gets a new one even from this same client
            args: list[str] = [_score(now), str(max_per_ap[switch]), switch, secrets.token_hex(8),
                               *self._log_limits]
            for i in indexes:
                e = entries[i]
                args += [e.ip, _member(e.ap, e.ip), _score(e.requested_at), _score(e.expires_at)]
            keys = [*self._req_keys(switch, ap), f"{self._p}req:switches", *self._log_keys(switch)]
            calls.append([*keys, *args])

        async def queue(pipe: Pipeline[str]) -> None:
            # One round trip per POST however many switches: the EVALSHAs go in one pipeline, without
            # redis-py's script registration (it would add a SCRIPT EXISTS round trip every time).
            for call in calls:
                pipe.evalsha(ADD_SHA, ADD_KEYS, *call)

        async def queue_loading(pipe: Pipeline[str]) -> None:
            for call in calls:  # the Script loads itself first
                await self._add(keys=call[:ADD_KEYS], args=call[ADD_KEYS:], client=pipe)

        try:
            flags_per_group = await self._write(queue)
        except NoScriptError:  # Redis restarted or never saw the script: no call ran
            flags_per_group = await self._write(queue_loading)
        accepted = [False] * len(entries)
        for indexes, flags in zip(batches, flags_per_group, strict=True):
            for i, flag in zip(indexes, flags, strict=True):
                accepted[i] = bool(int(flag))
        return accepted

    async def remove_requests(self, ap: str, ip: str, now: float) -> int:
        try:
            switches = await self._redis.smembers(f"{self._p}req:switches")
        except _UNREACHABLE as exc:
            raise StoreUnavailable(f"redis unreachable: {exc}") from exc

        async def queue(pipe: Pipeline[str]) -> None:
            for switch in switches:
                args = [_score(now), ip, _member(ap, ip), *self._log_limits, secrets.token_hex(8)]
                seq_key, log_key, trim_key, _, mark_key = self._log_keys(switch)
                keys = [*self._req_keys(switch, ap), seq_key, log_key, trim_key, mark_key]
                await self._remove(keys=keys, args=args, client=pipe)

        return sum(int(flag) for flag in await self._write(queue))

    async def _fetch_requests(self, switch: str | None, now: float) -> list[RequestEntry]:
        if switch is None:
            switches = sorted(await self._redis.smembers(f"{self._p}req:switches"))
        else:
            switches = [switch]
        found: list[RequestEntry] = []
        for name in switches:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrangebyscore(f"{self._p}req:exp:{name}", f"({_score(now)}", "+inf", withscores=True)
                pipe.hgetall(f"{self._p}req:at:{name}")
                members, requested = await pipe.execute()
            found += _request_entries(name, members, requested)
        return found

    async def active_requests(self, switch: str | None, now: float) -> list[RequestEntry]:
        entries = await self._read(("requests", switch or ""), lambda: self._fetch_requests(switch, now))
        # Entries served from the cache during an outage still expire on time.
        return sorted((e for e in entries if e.expires_at > now), key=request_order)

    async def request_changes(self, switch: str, since: RequestCursor | None, now: float) -> RequestChanges:
        seq_key, log_key, trim_key, gen_key, mark_key = self._log_keys(switch)
        since_sequence = since.sequence if since else 0
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(gen_key)
                pipe.get(seq_key)
                pipe.get(trim_key)
                pipe.zrangebyscore(log_key, f"({since_sequence}", "+inf")
                pipe.zrangebyscore(mark_key, since_sequence, since_sequence)
                pipe.zrevrange(mark_key, 0, 0, withscores=True)
                generation, sequence, trimmed, members, marks_at_since, newest = await pipe.execute()
            cursor = _cursor(generation, sequence, newest)
            mark_at_since = marks_at_since[0] if marks_at_since else ""
            if since is None or needs_full_read(since, cursor, int(trimmed or 0), mark_at_since):
                return await self._all_requests(switch, now)
            if not members:
                return RequestChanges(cursor, False, [])
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zmscore(f"{self._p}req:exp:{switch}", members)
                pipe.hmget(f"{self._p}req:at:{switch}", members)
                expiries, requested = await pipe.execute()
        except _UNREACHABLE as exc:
            raise StoreUnavailable(f"redis unreachable: {exc}") from exc
        # a member written again since the first read shows its newer state: the next read
        # (past ``cursor``) reads it again, which changes nothing
        active, ended = [], []
        for member, expires_at, requested_at in zip(members, expiries, requested, strict=True):
            try:
                ap, ip = _request_member(member)
            except (ValueError, TypeError) as exc:
                _skip_malformed("request", member, exc)
                continue
            if expires_at is None or float(expires_at) <= now:
                ended.append((ap, ip))
            else:
                active.append(RequestEntry(switch, ip, ap, float(requested_at or 0.0), float(expires_at)))
        return RequestChanges(cursor, False, active, ended)

    async def _all_requests(self, switch: str, now: float) -> RequestChanges:
        """Every active entry of ``switch`` with the cursor of that moment (one transaction)."""
        seq_key, _, _, gen_key, mark_key = self._log_keys(switch)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(gen_key)
            pipe.get(seq_key)
            pipe.zrevrange(mark_key, 0, 0, withscores=True)
            pipe.zrangebyscore(f"{self._p}req:exp:{switch}", f"({_score(now)}", "+inf", withscores=True)
            pipe.hgetall(f"{self._p}req:at:{switch}")
            generation, sequence, newest, members, requested = await pipe.execute()

        # 100k entries are a second of Python: in a thread, the event loop runs in between
        if len(members) > OFFLOAD_ENTRIES:
            active = await asyncio.to_thread(_request_entries, switch, members, requested)
        else:
            active = _request_entries(switch, members, requested)
        return RequestChanges(_cursor(generation, sequence, newest), True, active)

    # -- pins -------------------------------------------------------------------------------------

    async def set_pin(self, pin: Pin) -> None:
        value = json.dumps({"by": pin.by, "since": pin.since, "note": pin.note})
        async def queue(pipe: Pipeline[str]) -> None:
            pipe.hset(f"{self._p}pins", pin.prefix, value)

        await self._write(queue)

    async def remove_pin(self, prefix: str) -> bool:
        async def queue(pipe: Pipeline[str]) -> None:
            pipe.hdel(f"{self._p}pins", prefix)

        [removed] = await self._write(queue)
        return bool(removed)

    async def pins(self) -> list[Pin]:
        raw: dict[str, str] = await self._read(("pins",), lambda: self._redis.hgetall(f"{self._p}pins"))
        pins = []
        for prefix in sorted(raw):
            try:
                pins.append(_pin(prefix, raw[prefix]))
            except (ValueError, TypeError, KeyError) as exc:
                _skip_malformed("pin", prefix, exc)
        return pins

    # -- config overrides -------------------------------------------------------------------------

    async def _fetch_overrides(self) -> dict[str, dict[str, SettingValue]]:
        switches = sorted(await self._redis.smembers(f"{self._p}config:switches"))
        async with self._redis.pipeline(transaction=True) as pipe:
            for switch in switches:
                pipe.hgetall(f"{self._p}config:{switch}")
            raw = await pipe.execute()
        result = {}
        for switch, values in zip(switches, raw, strict=True):
            settings = {}
            for key, text in values.items():
                try:
                    settings[key] = _setting(text)
                except ValueError as exc:
                    _skip_malformed("setting", f"{switch}.{key}", exc)
            if settings:
                result[switch] = settings
        return result

    async def config_overrides(self) -> dict[str, dict[str, SettingValue]]:
        return await self._read(("config",), self._fetch_overrides)

    async def update_config_overrides(
        self, switch: str, set_values: Mapping[str, SettingValue], clear_keys: Collection[str]
    ) -> dict[str, SettingValue]:
        keys = [f"{self._p}config:{switch}", f"{self._p}config:switches"]
        args: list[str] = [switch, str(len(clear_keys)), *clear_keys]
        for name, value in set_values.items():
            args += [name, json.dumps(value)]

        async def queue(pipe: Pipeline[str]) -> None:
            await self._config(keys=keys, args=args, client=pipe)

        [flat] = await self._write(queue)
        pairs = ((flat[i], flat[i + 1]) for i in range(0, len(flat), 2))
        return {k: v for k, v in map(_setting_or_none, pairs) if v is not None}

    # -- snapshots --------------------------------------------------------------------------------

    async def put_snapshot(self, switch: str, kind: SnapshotKind, payload: str) -> None:
        async def queue(pipe: Pipeline[str]) -> None:
            pipe.set(f"{self._p}snapshot:{switch}:{kind}", payload)

        await self._write(queue)

    async def snapshot(self, switch: str, kind: SnapshotKind) -> str | None:
        key = f"{self._p}snapshot:{switch}:{kind}"
        value: str | None = await self._read(("snapshot", switch, kind), lambda: self._redis.get(key))
        return value

    # -- lifecycle --------------------------------------------------------------------------------

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except _UNREACHABLE:
            return False

    async def aclose(self) -> None:
        # aclose() is missing from the types-redis stubs (written for redis 4); redis 5+ has it.
        await self._redis.aclose()  # type: ignore[attr-defined,unused-ignore]


# Whatever another Redis client wrote must not stop the controller's loop or turn the API's
# answers into 500s: an entry topfib would not have written is skipped, counted and logged once.


def _skip_malformed(kind: str, key: str, exc: Exception) -> None:
    _MALFORMED.inc(kind=kind)
    if not _warned.first((kind, key)):
        return
    log.warning("redis: skipping a malformed %s entry %r: %s", kind, key[:200], str(exc)[:200])


def _cursor(
    generation: str | None, sequence: str | None, newest_mark: Sequence[tuple[str, float]]
) -> RequestCursor:
    """The cursor of a read: the newest mark belongs to it when it marks the counter's value."""
    seq = int(sequence or 0)
    mark = newest_mark[0][0] if newest_mark and int(newest_mark[0][1]) == seq else ""
    return RequestCursor(generation or "", seq, mark)


def _request_entries(
    switch: str, members: Sequence[tuple[str, Any]], requested: Mapping[str, Any]
) -> list[RequestEntry]:
    """The entries of ``switch`` from its (member, expiry) pairs and requested-at hash; a
    malformed member is skipped and counted."""
    entries = []
    for member, expires_at in members:
        try:
            ap, ip = _request_member(member)
            requested_at = float(requested.get(member, 0.0))
        except (ValueError, TypeError) as exc:
            _skip_malformed("request", member, exc)
            continue
        entries.append(RequestEntry(switch, ip, ap, requested_at, float(expires_at)))
    return entries


def _request_member(member: str) -> tuple[str, str]:
    """(ap, ip) of a request member: a JSON pair of strings, the address canonical and unscoped."""
    ap, ip = orjson.loads(member)
    if not isinstance(ap, str) or not isinstance(ip, str) or "%" in ip or str(ipaddress.ip_address(ip)) != ip:
        raise ValueError("not [\"ap\", \"canonical address\"]")
    return ap, ip


def _pin(prefix: str, text: str) -> Pin:
    if canonical_prefix(prefix) != prefix:
        raise PrefixError(f"{prefix!r} is not canonical")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return Pin(prefix, str(data["by"]), float(data["since"]), str(data.get("note", "")))


def _setting_or_none(item: tuple[str, Any]) -> tuple[str, SettingValue | None]:
    key, text = item
    try:
        return key, _setting(text)
    except ValueError as exc:
        _skip_malformed("setting", key, exc)
        return key, None


def _setting(text: Any) -> SettingValue:
    value = json.loads(text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"stored setting is not a number: {text!r}")
    return value
