"""What the API needs from the running controller, and the shapes it answers with.

The service (``topfib.controller.service.run``) implements :class:`ControllerView` over its live state; tests
and benchmarks use ``topfib.controller.service.static_view.StaticView``. The response models here are what
OpenAPI
documents, so a view returns them directly rather than loose dicts.

Times (``since``) are wall-clock Unix seconds; rates are bits per second.
"""

from __future__ import annotations

import math
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from topfib.collector.rib.paths import BgpPath

RequestStatus = Literal["installed", "pending", "no-route", "rejected"]
RouteReason = Literal["pinned", "request", "topn"]


class FibRoute(BaseModel):
    prefix: str = Field(examples=["198.51.100.0/24"])
    next_hop: str = Field(examples=["192.0.2.1"])
    reason: RouteReason = Field(description="why the route is installed (highest priority wins)")
    since: float = Field(description="when it was installed (Unix seconds)")
    score: float | None = Field(None, description="TopN score (bits/s) when known")


class PathTraffic(BaseModel):
    """One path of a ranked prefix and the traffic attributed to it (``GET /v1/top?per_path=true``).

    A flow sample naming a next hop (NetFlow/IPFIX BGP or IP next hop, sFlow extended gateway or
    router) is attributed to the prefix's path with that next hop, any other to the best path.
    """

    next_hop: str = Field(examples=["192.0.2.1"])
    peer: str | None = Field(description="BGP peer the path comes from; null: no longer in the RIB")
    peer_as: int | None = Field(description="first AS of the AS path (the neighbour's); null: empty AS "
                                "path (iBGP) or no longer in the RIB")
    as_path: list[int]
    best: bool = Field(description="the RIB's best path for the prefix")
    in_rib: bool = Field(description="false: traffic was attributed to this next hop, the path is gone")
    rate_fast_bps: float = Field(description="fast-decayed rate, bits/s")
    rate_slow_bps: float = Field(description="slow-decayed rate, bits/s")
    packets_fast_per_s: float
    packets_slow_per_s: float
    share: float | None = Field(description="share of the prefix's attributed traffic (by score), 0..1; "
                                "null: the prefix has no attributed traffic")


class TopEntry(BaseModel):
    prefix: str
    rate_fast_bps: float = Field(description="fast-decayed rate, bits/s")
    rate_slow_bps: float = Field(description="slow-decayed rate, bits/s")
    score: float = Field(description="max(fast, slow): the ranking key")
    samples: int = Field(ge=0, description="sFlow samples behind the estimate")
    error_pct: float | None = Field(
        description="95 % relative error of the estimate, ±196·√(1/samples) %; null with no samples"
    )
    installed: bool
    paths: list[PathTraffic] | None = Field(
        None, description="with per_path=true: the prefix's paths, best first, then next hops no longer in "
        "the RIB; null otherwise"
    )


class RibPath(BaseModel):
    next_hop: str
    as_path: list[int]
    origin: str
    local_pref: int
    med: int
    communities: list[str]
    large_communities: list[str]
    peer: str
    path_id: int
    best: bool

    @classmethod
    def from_path(cls, path: BgpPath, best: bool) -> RibPath:
        return cls(
            next_hop=path.next_hop, as_path=list(path.as_path), origin=path.origin,
            local_pref=path.local_pref, med=path.med, communities=list(path.communities),
            large_communities=list(path.large_communities), peer=path.peer, path_id=path.path_id,
            best=best,
        )


class RibMatch(BaseModel):
    switch: str
    prefix: str | None = Field(description="longest matching prefix in this switch's RIB; null: none")
    paths: list[RibPath]


class FamilyOccupancy(BaseModel):
    installed: int = Field(ge=0)
    cap: int = Field(ge=0)


class SwitchStatus(BaseModel):
    name: str
    session_state: str = Field(examples=["up", "down", "connecting"])
    session_since: float | None = Field(None, description="last session state change (Unix seconds)")
    session_reason: str | None = Field(
        None, description="why the session is not up, when topfib can tell (e.g. a TCP-MD5 password mismatch)"
    )
    active: bool = Field(description="this controller holds the switch (its lease)")
    occupancy: dict[str, FamilyOccupancy] = Field(description='keys "ipv4", "ipv6" and "ipv4_24"')
    coverage: float | None = Field(
        None, description="bytes to installed prefixes / bytes to prefixes with a peer path, 0..1"
    )
    churn_per_hour: float = Field(0.0, description="announces + withdraws in the last hour")
    requests_active: int = Field(0, ge=0)


class CollectorStatus(BaseModel):
    datagrams_per_s: float = 0.0
    samples_per_s: float = 0.0
    bad_datagrams_per_s: float = 0.0


class StatusReport(BaseModel):
    switches: list[SwitchStatus]
    collector: CollectorStatus


class ControllerView(Protocol):
    """Live controller state, as the API reads it. Every call is cheap and never blocks the loop."""

    async def resolve(self, ip: str) -> list[tuple[str, str | None]]:
        """For each switch: (switch, longest prefix with a live peer path containing ip, or None)."""
        ...

    async def request_status(self, switch: str, ip: str, prefix: str) -> tuple[RequestStatus, str | None]:
        """Where a stored request for ``ip`` (matching ``prefix``) stands: status and reason.

        ``pending`` until the controller's next loop has decided on it; ``rejected`` comes with
        the reason (e.g. the FIB is full of pins and newer requests).
        """
        ...

    async def fib(self, switch: str) -> list[FibRoute]: ...

    async def top(self, switch: str, n: int) -> list[TopEntry]: ...

    async def top_paths(self, switch: str, prefixes: list[str]) -> dict[str, list[PathTraffic]]:
        """Per prefix (of ``prefixes``), its paths with the traffic attributed to each."""
        ...

    async def rib_lookup(self, ip: str) -> list[RibMatch]: ...

    async def status(self) -> StatusReport: ...

    async def ready(self) -> bool:
        """True once the controller can act on requests (RIB loaded, loop running)."""
        ...


def sampling_error_pct(samples: int) -> float | None:
    """95 % relative error of an sFlow estimate from ``samples`` samples, in percent."""
    return 196.0 * math.sqrt(1.0 / samples) if samples > 0 else None
