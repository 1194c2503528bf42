"""tests/data: every file the repository carries for its tests has its source and licence recorded.

tests/data/README.md lists each file (with the upstream repository and a sha256 prefix, so a
changed or swapped file is noticed) and each upstream repository with its licence; the directory
stays small enough to live in every clone.
"""

from __future__ import annotations

import hashlib
import re

from tests.conftest import TEST_DATA

README = TEST_DATA / "README.md"
MAX_TOTAL_BYTES = 4_000_000  # larger tables belong to the optional corpus (TOPFIB_CORPUS)
FILE_ROW = re.compile(r"^\| `(?P<file>[^`]+)` \| (?P<source>[\w.-]+/[\w.-]+) \| .* \| "
                      r"`(?P<sha>[0-9a-f]{16})` \|$")
SOURCE_ROW = re.compile(r"^\| \[(?P<source>[\w.-]+/[\w.-]+)\]\(https://github\.com/(?P=source)\) \| "
                        r"`(?P<commit>[0-9a-f]{40})` \| (?P<licence>[^|]*\S) \|$")


def carried_files() -> dict[str, bytes]:
    return {str(p.relative_to(TEST_DATA)): p.read_bytes()
            for p in sorted(TEST_DATA.rglob("*")) if p.is_file() and p != README}


def readme_rows(pattern: re.Pattern[str]) -> list[re.Match[str]]:
    return [m for line in README.read_text().splitlines() if (m := pattern.match(line))]


def test_every_file_is_listed_with_its_source_and_digest() -> None:
    listed = {m["file"]: m for m in readme_rows(FILE_ROW)}
    files = carried_files()
    assert sorted(files) == sorted(listed), "tests/data and its README disagree"
    licensed = {m["source"] for m in readme_rows(SOURCE_ROW)}
    for name, data in files.items():
        assert listed[name]["source"] in licensed, f"{name}: source without a licence row"
        assert hashlib.sha256(data).hexdigest()[:16] == listed[name]["sha"], f"{name}: not the listed file"


def test_every_source_has_a_licence_and_is_used() -> None:
    sources = readme_rows(SOURCE_ROW)
    assert sources
    used = {m["source"] for m in readme_rows(FILE_ROW)}
    assert {m["source"] for m in sources} == used
    assert all(m["licence"] for m in sources)


def test_the_directory_stays_small() -> None:
    assert sum(len(data) for data in carried_files().values()) <= MAX_TOTAL_BYTES
