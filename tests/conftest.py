"""Shared fixtures: where the corpus lives, and skipping rules for root-only integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.redis_fixture"]

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS = (REPO_ROOT / ".." / "shared" / "corpus").resolve()


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    return CORPUS
