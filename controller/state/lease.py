"""One active controller per switch: a Redis lease with expiry.

Every controller of a switch calls :meth:`RedisLease.hold` once per loop and acts only while it
returns True. The holder renews the lease (compare-and-renew, so it never extends someone else's);
a standby's ``SET NX PX`` succeeds only once the holder has stopped renewing for ``ttl_s``, e.g.
because its process died. Choose ``ttl_s`` of several loop periods so one slow loop does not hand
the switch over.

Clock safety: a holder counts its lease as valid until ``ttl_s`` after it *sent* the successful
command (on its own monotonic clock), which is never later than Redis expires the key. When Redis
cannot be reached, :meth:`hold` answers from that local validity: the holder keeps acting until its
lease would have run out, then stops, so two controllers never act at once as long as process
pauses stay shorter than the TTL (there is no fencing token on the BGP side).

Lost writes: a Redis that restarts empty, or a Sentinel failover to a replica that had not yet
received the last renewals (replication is asynchronous), forgets the lease or moves its expiry
earlier, while the old holder still counts it valid. Without a claim period a standby may take
it at once and the old holder learns so at its next :meth:`hold` (its renew finds another
holder): an overlap of at most one loop period. With ``claim_s`` (the TTL; the service sets it
for Sentinel) a *new* holder acts only ``claim_s`` after its claim succeeded: by then every validity
the old holder counted from a write before the claim has run out, and any renew the old holder
tries after the claim finds the new holder and stops it. A holder that still counts its lease
valid and finds the key gone takes it again without the wait (it was acting all along; nobody
else can act before the end of its validity). Network partitions that leave the old master
taking writes are outside this: configure ``min-replicas-to-write`` on the Redis side for those.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

# Whatever keeps a renewal from succeeding: Redis unreachable, or refusing this client's commands
# (ACL rights revoked, OOM, MISCONF, READONLY). Either way the holder acts only until its last
# renewal runs out, as a standby able to write may take the lease after that.
_NOT_RENEWED = (RedisError, ConnectionError, TimeoutError)

# KEYS: lease. ARGV: holder, ttl in ms. 1 when renewed.
_RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease. ARGV: holder. 1 when released.
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLease:
    """The lease ``name`` as seen by ``holder`` (unique per process, e.g. host:pid:random)."""

    def __init__(
        self,
        client: aioredis.Redis[str],
        name: str,
        holder: str,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        prefix: str = "topfib:lease:",
        claim_s: float = 0.0,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._redis = client
        self.key = prefix + name
        self.holder = holder
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._ttl_s = ttl_s
        self._clock = clock
        self._valid_until = float("-inf")
        self._claim_s = claim_s
        self._acting_from = float("-inf")
        self._renew = client.register_script(_RENEW_SCRIPT)
        self._release = client.register_script(_RELEASE_SCRIPT)

    def held(self) -> bool:
        """True while the last successful acquire or renew is less than ``ttl_s`` old."""
        return self._clock() < self._valid_until

    def acting(self) -> bool:
        """Held, and past the claim period of a newly taken lease: whether this holder may act."""
        return self.held() and self._clock() >= self._acting_from

    async def acquire(self, continuing: bool = False) -> bool:
        """Take the lease if nobody holds it (SET NX PX). Unless ``continuing`` (this holder's own
        lease, still valid, was lost by Redis), acting waits for the claim period."""
        sent_at = self._clock()
        taken = await self._redis.set(self.key, self.holder, nx=True, px=self._ttl_ms)
        if taken:
            self._valid_until = sent_at + self._ttl_s
            if not continuing:
                self._acting_from = sent_at + self._claim_s
        return bool(taken)

    async def renew(self) -> bool:
        """Extend the lease if this holder has it; False (and not held) otherwise."""
        sent_at = self._clock()
        renewed = int(await self._renew(keys=[self.key], args=[self.holder, self._ttl_ms]))
        if renewed:
            self._valid_until = sent_at + self._ttl_s
        else:
            self._valid_until = float("-inf")
        return bool(renewed)

    async def hold(self) -> bool:
        """Renew or acquire; whether this holder may act now. Never raises for an unreachable Redis
        or one that refuses the commands: the holder acts until its last renewal runs out."""
        continuing = self.held()
        try:
            if not await self.renew():
                await self.acquire(continuing)
        except _NOT_RENEWED:
            pass
        return self.acting()

    async def release(self) -> bool:
        """Give the lease up (on clean shutdown) so a standby need not wait for the TTL."""
        self._valid_until = float("-inf")
        return bool(int(await self._release(keys=[self.key], args=[self.holder])))

    async def current_holder(self) -> str | None:
        value: str | None = await self._redis.get(self.key)
        return value
