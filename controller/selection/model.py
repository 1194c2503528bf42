"""The values selection takes and returns: policy, requests, chosen routes and answers.

Plain frozen dataclasses with ``to_dict`` so the service can persist them and the API can serve
them as JSON without knowing how selection works.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

from topfib.collector.rib.paths import BgpPath

if TYPE_CHECKING:
    from topfib.controller.config import SwitchConfig

Reason = Literal["pinned", "request", "topn", "dependency"]
AnswerStatus = Literal["installed", "no-route", "rejected", "expired"]

# FIB tables a switch fills independently. "ipv4/24" exists only with a separate /24 cap.
TABLE_IPV4 = "ipv4"
TABLE_IPV4_24 = "ipv4/24"
TABLE_IPV6 = "ipv6"

# z of a two-sided 95 % interval: an sFlow estimate from c samples is within ±1.96/√c
DEFAULT_EVIDENCE_Z = 1.96
# ±z/√c is the normal approximation of a Poisson count, sound from about 30 samples. Below that,
# and with tens of thousands of prefixes contesting the last slots every loop, some fewer-sample
# challenger always looks far ahead of some unlucky incumbent by chance alone.
DEFAULT_EVIDENCE_MIN_SAMPLES = 30.0
# see SelectionPolicy.min_swap_gain
DEFAULT_MIN_SWAP_GAIN = 0.03


class RibView(Protocol):
    """What selection needs from the RIB (topfib.collector.rib.rib.Rib fits; tests use small fakes)."""

    def best(self, prefix: str) -> BgpPath | None:
        """The prefix's best live path, or None when it has none (or is not in the RIB)."""
        ...

    def longest_match(self, ip: str) -> str | None:
        """The longest RIB prefix containing ``ip``."""
        ...

    def more_specifics(self, prefix: str) -> list[str]:
        """Every RIB prefix strictly inside ``prefix`` (all depths)."""
        ...


@dataclass(frozen=True, slots=True)
class SelectionPolicy:
    """Caps and stability knobs of one switch.

    ``cap_ipv4_24`` > 0 models an exact-match /24 table (Trident-class host table): IPv4 /24s
    then count against it instead of ``cap_ipv4``. 0 means /24s share the LPM table.
    """

    cap_ipv4: int
    cap_ipv6: int
    cap_ipv4_24: int = 0
    margin: float = 0.2  # a challenger must score above (1 + margin) × an incumbent's score
    min_dwell_s: float = 300.0  # an installed TopN route stays at least this long
    # with evidence: a challenger's score counts at its lower and an incumbent's at its upper
    # confidence bound, score · (1 ∓ evidence_z/√samples)
    evidence_z: float = DEFAULT_EVIDENCE_Z
    # with evidence: a challenger needs this many samples to displace an incumbent (with fewer it
    # only takes room nobody else claims)
    evidence_min_samples: float = DEFAULT_EVIDENCE_MIN_SAMPLES
    # a challenger must also bring this share of the average TopN incumbent's score more than
    # the incumbent it displaces: swaps that move next to no traffic are not worth two updates
    min_swap_gain: float = DEFAULT_MIN_SWAP_GAIN

    def __post_init__(self) -> None:
        if min(self.cap_ipv4, self.cap_ipv6, self.cap_ipv4_24) < 0:
            raise ValueError("caps must be >= 0")
        if min(self.margin, self.min_dwell_s, self.evidence_z, self.evidence_min_samples,
               self.min_swap_gain) < 0:
            raise ValueError(
                "margin, min_dwell_s, evidence_z, evidence_min_samples and min_swap_gain must be >= 0"
            )

    @classmethod
    def from_switch(cls, switch: SwitchConfig) -> SelectionPolicy:
        return cls(
            cap_ipv4=switch.fib_cap_ipv4,
            cap_ipv6=switch.fib_cap_ipv6,
            cap_ipv4_24=switch.fib_cap_ipv4_24,
            margin=switch.margin,
            min_dwell_s=switch.min_dwell_s,
            min_swap_gain=switch.min_swap_gain,
        )

    def caps(self) -> dict[str, int]:
        """Cap per FIB table."""
        caps = {TABLE_IPV4: self.cap_ipv4, TABLE_IPV6: self.cap_ipv6}
        if self.cap_ipv4_24:
            caps[TABLE_IPV4_24] = self.cap_ipv4_24
        return caps

    def table_of(self, prefix: str) -> str:
        """The FIB table ``prefix`` occupies."""
        if ":" in prefix:
            return TABLE_IPV6
        if self.cap_ipv4_24 and prefix.endswith("/24"):
            return TABLE_IPV4_24
        return TABLE_IPV4


class OnDemandRequest(NamedTuple):
    """An access point asking for the route covering ``ip`` until ``expires_at``.

    A named tuple, like :class:`SelectedRoute`: the control loop hashes every active request each
    iteration (:class:`topfib.controller.selection.gate.SelectionInputs`), tens of thousands of
    them, and a tuple hashes in C where a dataclass calls its generated ``__hash__``.
    """

    ip: str
    expires_at: float
    created_at: float = 0.0  # newer requests win when not all fit
    request_id: str = ""


class SelectedRoute(NamedTuple):
    """One route selection wants in the FIB.

    A named tuple rather than a frozen dataclass: selection builds tens of thousands per call, and
    a tuple is built in one C call (:func:`new_routes`) where a dataclass sets field by field.
    """

    prefix: str
    next_hop: str
    reason: Reason
    since: float  # when this prefix was first selected (kept across calls via incumbents)
    score: float  # its own decayed bytes/s (0 when it has no traffic)

    def to_dict(self) -> dict[str, object]:
        return {
            "prefix": self.prefix,
            "next_hop": self.next_hop,
            "reason": self.reason,
            "since": self.since,
            "score": self.score,
        }


_new_tuple = tuple.__new__


def new_route(prefix: str, next_hop: str, reason: Reason, since: float, score: float) -> SelectedRoute:
    """``SelectedRoute(...)`` without the keyword handling of the generated ``__new__``."""
    return _new_tuple(SelectedRoute, (prefix, next_hop, reason, since, score))


def new_routes(
    prefixes: Iterable[str],
    next_hops: Iterable[str],
    reason: Reason,
    sinces: Iterable[float],
    scores: Iterable[float],
) -> Iterator[SelectedRoute]:
    """:func:`new_route` over parallel iterables, all in C."""
    return map(_new_tuple, repeat(SelectedRoute), zip(prefixes, next_hops, repeat(reason), sinces, scores))


class RequestAnswer(NamedTuple):
    """What became of one on-demand request.

    A named tuple, built in C. Unlike a plain tuple of strings it stays tracked by the garbage
    collector (CPython untracks exact tuples only), so selection reuses the previous answer
    where it can (:class:`topfib.controller.selection.answer_memo.AnswerMemo`) rather than
    build tens of thousands afresh each time.
    """

    ip: str
    status: AnswerStatus
    prefix: str | None  # the covering prefix, None when there is no route
    reason: str = ""  # why, for no-route / rejected / expired
    request_id: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "ip": self.ip,
            "status": self.status,
            "prefix": self.prefix,
            "reason": self.reason,
            "request_id": self.request_id,
        }


@dataclass(frozen=True, slots=True)
class PinAnswer:
    """What became of one operator pin."""

    prefix: str
    status: AnswerStatus
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"prefix": self.prefix, "status": self.status, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Selection:
    """The desired FIB of one switch and the answers to its requests and pins."""

    routes: Mapping[str, SelectedRoute]  # in selection order: pins, requests, TopN
    requests: tuple[RequestAnswer, ...] = ()  # in the order the requests were given
    pins: tuple[PinAnswer, ...] = ()
    usage: Mapping[str, int] = field(default_factory=dict)  # routes per table
    caps: Mapping[str, int] = field(default_factory=dict)

    def desired(self) -> dict[str, str]:
        """prefix → next-hop, what :func:`topfib.controller.program.plan.plan` takes."""
        return {prefix: route.next_hop for prefix, route in self.routes.items()}

    def to_dict(self) -> dict[str, object]:
        return {
            "routes": [route.to_dict() for route in self.routes.values()],
            "requests": [answer.to_dict() for answer in self.requests],
            "pins": [answer.to_dict() for answer in self.pins],
            "usage": dict(self.usage),
            "caps": dict(self.caps),
        }


def share_of(
    traffic: Mapping[str, float], prefixes: Iterable[str], total: float | None = None
) -> float | None:
    """Share of ``total`` (else of all ``traffic``) going to ``prefixes``; None without traffic."""
    routed = sum(traffic.values()) if total is None else total
    if routed <= 0:
        return None
    return sum(traffic.get(prefix, 0.0) for prefix in prefixes) / routed
