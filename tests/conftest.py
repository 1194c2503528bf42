"""Shared fixtures: the test data the repository carries, the optional full corpus, Redis."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from topfib.controller.demo.table import CORPUS_ENV, corpus_location

pytest_plugins = ["tests.redis_fixture"]

REPO_ROOT = Path(__file__).resolve().parent.parent
# Small captures, dumps and golden outputs, same layout as the full corpus (tests/data/README.md).
TEST_DATA = REPO_ROOT / "tests" / "data"


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The repository's own test data (tests/data): always present, so tests using it never skip."""
    return TEST_DATA


@pytest.fixture(scope="session")
def full_corpus_file() -> Callable[[str], Path]:
    """Locate a file of the optional full corpus (full routing tables, MB-sized dumps kept out of the
    repository); the test skips, saying which file and how to provide it, when it is absent."""

    def locate(relative: str) -> Path:
        path = corpus_location() / relative
        if not path.is_file():
            pytest.skip(f"optional full-table conformance: {relative} is not in the repository; "
                        f"set {CORPUS_ENV} to a corpus directory holding it (looked in {path.parent})")
        return path

    return locate
