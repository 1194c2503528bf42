"""Integration fixtures: the namespace lab (root, ip and BIRD 2 required; skipped otherwise)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.lab import Lab, lab_unavailable_reason


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A fresh lab per test: namespaces tf<pid>ctl / tf<pid>sw, BIRD running in sw."""
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab() as built:
        yield built
