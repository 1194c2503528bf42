from __future__ import annotations

import pytest

from tests.api_support import FakeClock
from topfib.api.rate_limit import RateLimiter


def test_burst_then_refill_at_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)
    clock.advance(0.5)
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0


def test_clients_have_separate_buckets() -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock=FakeClock())
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0.0


def test_refill_is_capped_at_burst_and_ignores_a_clock_stepping_back() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=10.0, burst=2, clock=clock)
    clock.advance(3600)
    assert [limiter.acquire("a") == 0.0 for _ in range(3)] == [True, True, False]
    clock.advance(-100)
    assert limiter.acquire("a") > 0
