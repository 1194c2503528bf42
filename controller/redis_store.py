"""The Redis store: state that survives restarts and is shared by API replicas and controllers.

Layout (``P`` is the key prefix, ``topfib:`` by default; switch names are ``[A-Za-z0-9_.-]+``):

- ``P req:switches`` set of switch names that ever had a request;
- ``P req:exp:{switch}`` sorted set, member ``["ap", "ip"]`` (JSON), score = expiry;
- ``P req:at:{switch}`` hash, same member → requested-at time;
- ``P req:ap:{switch}:{ap}`` sorted set of the AP's IPs by expiry, for the per-AP cap.
- ``P req:seq:{switch}`` the switch's change counter; ``P req:log:{switch}`` sorted set, member
  as above, score = the counter at its last write or removal (trimmed to ``CHANGE_LOG_MAX``
  members, the newest trimmed score in ``P req:trim:{switch}``); ``P req:gen:{switch}`` a random
  generation, set by any write that finds none, so a reader notices a Redis that lost its data.
- ``P pins`` hash prefix → JSON; ``P config:{switch}`` hash key → JSON number, with the names in
  ``P config:switches``; ``P snapshot:{switch}:{kind}`` strings.

Writing requests and checking the per-AP cap happen in one Lua script, so replicas cannot race
past the cap. Expired entries are purged by the writes (and skipped by the reads).

When Redis cannot be reached, reads answer from the last value each one saw (requests still
expire against ``now``) and writes raise :class:`~controller.store.StoreUnavailable`. The client
reconnects by itself when Redis is back. Single Redis or Sentinel only: the scripts touch keys of
one switch and AP but not under one cluster hash slot.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar, cast

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from controller.store import (
    CHANGE_LOG_MAX,
    OFFLOAD_ENTRIES,
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
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)

# Appended to each script that changes requests: log ``member`` as the switch's latest change;
# trim it back to ``keep`` members when it grew ``slack`` past them.
_LOG_CHANGE = """
local function log_change(seq_key, log_key, trim_key, member, keep, slack)
  local seq = redis.call('INCR', seq_key)
  redis.call('ZADD', log_key, seq, member)
  local size = redis.call('ZCARD', log_key)
  if size > keep + slack then
    local last = redis.call('ZRANGE', log_key, size - keep - 1, size - keep - 1, 'WITHSCORES')
    redis.call('ZREMRANGEBYRANK', log_key, 0, size - keep - 1)
    redis.call('SET', trim_key, last[2])
  end
end
"""

# KEYS: exp, at, ap-set, switches, seq, log, trim, gen. ARGV: now, limit, switch, generation,
# log max, log slack, then (ip, member, requested_at, expires_at) per entry.
_ADD_SCRIPT = _LOG_CHANGE + """
redis.call('SADD', KEYS[4], ARGV[3])
redis.call('SET', KEYS[8], ARGV[4], 'NX')
local keep, slack = tonumber(ARGV[5]), tonumber(ARGV[6])
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, member in ipairs(expired) do redis.call('HDEL', KEYS[2], member) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local count = redis.call('ZCARD', KEYS[3])
local accepted = {}
for i = 7, #ARGV, 4 do
  local ip, member = ARGV[i], ARGV[i + 1]
  local held = redis.call('ZSCORE', KEYS[3], ip)
  if held or count < limit then
    if not held then count = count + 1 end
    redis.call('ZADD', KEYS[3], ARGV[i + 3], ip)
    redis.call('ZADD', KEYS[1], ARGV[i + 3], member)
    redis.call('HSET', KEYS[2], member, ARGV[i + 2])
    log_change(KEYS[5], KEYS[6], KEYS[7], member, keep, slack)
    accepted[#accepted + 1] = 1
  else
    accepted[#accepted + 1] = 0
  end
end
return accepted
"""
_ADD_SHA = hashlib.sha1(_ADD_SCRIPT.encode()).hexdigest()  # what EVALSHA names it by
_ADD_KEYS = 8

# KEYS: exp, at, ap-set, seq, log, trim. ARGV: now, ip, member, log max, log slack. Returns 1
# when an unexpired entry was removed.
_REMOVE_SCRIPT = _LOG_CHANGE + """
local score = redis.call('ZSCORE', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[1], ARGV[3])
redis.call('HDEL', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[2])
if not score then return 0 end
log_change(KEYS[4], KEYS[5], KEYS[6], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]))
if tonumber(score) > tonumber(ARGV[1]) then return 1 end
return 0
"""


def _member(ap: str, ip: str) -> str:
    return json.dumps([ap, ip], separators=(",", ":"))


def _score(value: float) -> str:
    return repr(float(value))


class RedisStore:
    """A :class:`~controller.store.Store` over one Redis database. The constructor does no I/O."""

    def __init__(self, client: aioredis.Redis[str], prefix: str = "topfib:",
                 change_log_max: int = CHANGE_LOG_MAX) -> None:
        self._redis = client
        self._p = prefix
        self._log_limits = [str(change_log_max), str(change_log_slack(change_log_max))]
        self._add = client.register_script(_ADD_SCRIPT)
        self._remove = client.register_script(_REMOVE_SCRIPT)
        self._cache: dict[tuple[str, ...], object] = {}

    @classmethod
    def from_url(cls, url: str, timeout_s: float = 1.0, prefix: str = "topfib:",
                 change_log_max: int = CHANGE_LOG_MAX) -> RedisStore:
        """A store for ``redis://…``. One immediate retry re-dials a connection Redis dropped
        (e.g. after its restart); beyond that an outage fails fast rather than stalling requests."""
        client = aioredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1), retry_on_timeout=False, health_check_interval=0,
        )
        return cls(client, prefix, change_log_max)

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

    async def _write(self, action: Callable[[], Awaitable[T]]) -> T:
        try:
            return await action()
        except (*_UNREACHABLE, ReadOnlyError) as exc:
            raise StoreUnavailable(f"redis unreachable: {exc}") from exc

    # -- requests ---------------------------------------------------------------------------------

    def _req_keys(self, switch: str, ap: str) -> list[str]:
        return [f"{self._p}req:exp:{switch}", f"{self._p}req:at:{switch}", f"{self._p}req:ap:{switch}:{ap}"]

    def _log_keys(self, switch: str) -> list[str]:
        """seq, log, trim and gen of ``switch``'s change log."""
        return [f"{self._p}req:{kind}:{switch}" for kind in ("seq", "log", "trim", "gen")]

    async def add_requests(
        self, entries: Sequence[RequestEntry], max_per_ap: Mapping[str, int], now: float
    ) -> list[bool]:
        groups: dict[tuple[str, str], list[int]] = {}
        for index, entry in enumerate(entries):
            groups.setdefault((entry.switch, entry.ap), []).append(index)

        batches = list(groups.items())
        calls: list[list[str]] = []
        for (switch, ap), indexes in batches:
            # a fresh generation each time, kept only by a switch without one: a Redis that lost
            # its data gets a new one even from this same client
            args: list[str] = [_score(now), str(max_per_ap[switch]), switch, secrets.token_hex(8),
                               *self._log_limits]
            for i in indexes:
                e = entries[i]
                args += [e.ip, _member(e.ap, e.ip), _score(e.requested_at), _score(e.expires_at)]
            keys = [*self._req_keys(switch, ap), f"{self._p}req:switches", *self._log_keys(switch)]
            calls.append([*keys, *args])

        async def evaluate() -> list[Any]:
            # One round trip per POST however many switches: the EVALSHAs go in one pipeline, without
            # redis-py's script registration (it would add a SCRIPT EXISTS round trip every time).
            async with self._redis.pipeline(transaction=False) as pipe:
                for call in calls:
                    pipe.evalsha(_ADD_SHA, _ADD_KEYS, *call)
                return cast(list[Any], await pipe.execute())

        async def run() -> list[bool]:
            accepted = [False] * len(entries)
            try:
                replies = await evaluate()
            except NoScriptError:  # Redis restarted or never saw the script: no call ran; the Script
                replies = [await self._add(keys=call[:_ADD_KEYS], args=call[_ADD_KEYS:])  # loads it
                           for call in calls]
            for (_, indexes), flags in zip(batches, replies, strict=True):
                for i, flag in zip(indexes, flags, strict=True):
                    accepted[i] = bool(int(flag))
            return accepted

        return await self._write(run)

    async def remove_requests(self, ap: str, ip: str, now: float) -> int:
        async def run() -> int:
            removed = 0
            for switch in await self._redis.smembers(f"{self._p}req:switches"):
                args = [_score(now), ip, _member(ap, ip), *self._log_limits]
                keys = [*self._req_keys(switch, ap), *self._log_keys(switch)[:3]]
                removed += int(await self._remove(keys=keys, args=args))
            return removed

        return await self._write(run)

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
            for member, expires_at in members:
                ap, ip = orjson.loads(member)
                found.append(RequestEntry(name, ip, ap, float(requested.get(member, 0.0)), float(expires_at)))
        return found

    async def active_requests(self, switch: str | None, now: float) -> list[RequestEntry]:
        entries = await self._read(("requests", switch or ""), lambda: self._fetch_requests(switch, now))
        # Entries served from the cache during an outage still expire on time.
        return sorted((e for e in entries if e.expires_at > now), key=request_order)

    async def request_changes(self, switch: str, since: RequestCursor | None, now: float) -> RequestChanges:
        seq_key, log_key, trim_key, gen_key = self._log_keys(switch)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(gen_key)
                pipe.get(seq_key)
                pipe.get(trim_key)
                pipe.zrangebyscore(log_key, f"({since.sequence if since else 0}", "+inf")
                generation, sequence, trimmed, members = await pipe.execute()
            cursor = RequestCursor(generation or "", int(sequence or 0))
            if since is None or needs_full_read(since, cursor, int(trimmed or 0)):
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
            ap, ip = orjson.loads(member)
            if expires_at is None or float(expires_at) <= now:
                ended.append((ap, ip))
            else:
                active.append(RequestEntry(switch, ip, ap, float(requested_at or 0.0), float(expires_at)))
        return RequestChanges(cursor, False, active, ended)

    async def _all_requests(self, switch: str, now: float) -> RequestChanges:
        """Every active entry of ``switch`` with the cursor of that moment (one transaction)."""
        seq_key, _, _, gen_key = self._log_keys(switch)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(gen_key)
            pipe.get(seq_key)
            pipe.zrangebyscore(f"{self._p}req:exp:{switch}", f"({_score(now)}", "+inf", withscores=True)
            pipe.hgetall(f"{self._p}req:at:{switch}")
            generation, sequence, members, requested = await pipe.execute()

        def parse() -> list[RequestEntry]:
            active = []
            for member, expires_at in members:
                ap, ip = orjson.loads(member)
                requested_at = float(requested.get(member, 0.0))
                active.append(RequestEntry(switch, ip, ap, requested_at, float(expires_at)))
            return active

        # 100k entries are a second of Python: in a thread, the event loop runs in between
        active = await asyncio.to_thread(parse) if len(members) > OFFLOAD_ENTRIES else parse()
        return RequestChanges(RequestCursor(generation or "", int(sequence or 0)), True, active)

    # -- pins -------------------------------------------------------------------------------------

    async def set_pin(self, pin: Pin) -> None:
        value = json.dumps({"by": pin.by, "since": pin.since, "note": pin.note})
        await self._write(lambda: self._redis.hset(f"{self._p}pins", pin.prefix, value))

    async def remove_pin(self, prefix: str) -> bool:
        removed = await self._write(lambda: self._redis.hdel(f"{self._p}pins", prefix))
        return bool(removed)

    async def pins(self) -> list[Pin]:
        raw: dict[str, str] = await self._read(("pins",), lambda: self._redis.hgetall(f"{self._p}pins"))
        pins = []
        for prefix in sorted(raw):
            data = json.loads(raw[prefix])
            pins.append(Pin(prefix, str(data["by"]), float(data["since"]), str(data.get("note", ""))))
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
            if values:
                result[switch] = {key: _setting(text) for key, text in values.items()}
        return result

    async def config_overrides(self) -> dict[str, dict[str, SettingValue]]:
        return await self._read(("config",), self._fetch_overrides)

    async def update_config_overrides(
        self, switch: str, set_values: Mapping[str, SettingValue], clear_keys: Collection[str]
    ) -> dict[str, SettingValue]:
        key = f"{self._p}config:{switch}"

        async def run() -> dict[str, SettingValue]:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.sadd(f"{self._p}config:switches", switch)
                if clear_keys:
                    pipe.hdel(key, *clear_keys)
                if set_values:
                    pipe.hset(key, mapping={k: json.dumps(v) for k, v in set_values.items()})
                pipe.hgetall(key)
                results = await pipe.execute()
            return {k: _setting(v) for k, v in results[-1].items()}

        return await self._write(run)

    # -- snapshots --------------------------------------------------------------------------------

    async def put_snapshot(self, switch: str, kind: SnapshotKind, payload: str) -> None:
        await self._write(lambda: self._redis.set(f"{self._p}snapshot:{switch}:{kind}", payload))

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


def _setting(text: Any) -> SettingValue:
    value = json.loads(text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"stored setting is not a number: {text!r}")
    return value
