"""docs/design.md is the design reference: it exists, README points at it, nothing cites another.

Files that are not in the repository (a design note or corpus beside the checkout) must not be
cited: a clone would find nothing there. The optional corpus is found through ``TOPFIB_CORPUS``
by one helper, the only place allowed to know the development machines' directory layout.
The layering docs/design.md describes is checked by tests/unit/test_layout.py.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design.md"

# what may not appear in any file of the repository, and the files allowed to hold it (with why)
FORBIDDEN: dict[str, tuple[re.Pattern[bytes], dict[str, str]]] = {
    "a DESIGN.md outside the repository": (re.compile(rb"DESIGN\.md"), {}),
    "a path above the checkout": (re.compile(rb"\.\./shared"), {}),
    "the corpus's directory": (re.compile(rb"""shared["']?\s*/\s*["']?corpus"""), {}),
}
THIS_FILE = "tests/unit/test_design_doc.py"  # names the patterns it forbids
SKIP_DIRS = {".git", ".venv", "build", "dist", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache",
             ".hypothesis"}


def repository_files() -> list[str]:
    """The tracked files (``git ls-files``), or every file of the tree outside build and cache
    directories when this is not a git checkout (an unpacked archive)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True,
                                timeout=30)
    except (OSError, subprocess.SubprocessError):
        return sorted(
            path.relative_to(ROOT).as_posix() for path in ROOT.rglob("*")
            if path.is_file() and not SKIP_DIRS.intersection(path.relative_to(ROOT).parts)
            and not path.name.endswith((".so", ".egg-info"))
        )
    return sorted(name for name in listed.stdout.decode().split("\0") if name)


def test_design_doc_has_the_parts_a_newcomer_needs() -> None:
    text = DESIGN.read_text()
    headings = re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)
    for wanted in ("The data flow", "The store, leases and standby", "The API",
                   "Selection rules and their reasons", "Safety invariants",
                   "Layering: which package imports which", "For whoever carries this on"):
        assert wanted in headings, f"docs/design.md lacks the section {wanted!r}"
    # every repository path it names exists (a renamed module must not leave the map stale)
    named_paths = re.findall(r"`((?:api|bench|collector|controller|docs|exabgp|tests)/[\w./]+)`", text)
    for named in sorted(set(named_paths)):
        assert (ROOT / named).exists(), f"docs/design.md names {named}, which does not exist"


def test_readme_points_at_the_design_doc() -> None:
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Architecture\n(.*?)(?=^## )", readme, flags=re.MULTILINE | re.DOTALL)
    assert section is not None, "README.md has no Architecture section"
    assert "docs/design.md" in section.group(1)


@pytest.mark.parametrize("what", sorted(FORBIDDEN))
def test_no_file_cites_what_is_not_in_the_repository(what: str) -> None:
    pattern, allowed = FORBIDDEN[what]
    files = repository_files()
    assert "README.md" in files and "controller/selection/select.py" in files  # the listing found the tree
    citing = []
    for name in files:
        path = ROOT / name
        if name == THIS_FILE or name in allowed or not path.is_file():
            continue
        for number, line in enumerate(path.read_bytes().splitlines(), start=1):
            if pattern.search(line):
                citing.append(f"{name}:{number}: {line.decode(errors='replace').strip()}")
    where = "point at docs/design.md, tests/data or TOPFIB_CORPUS"
    assert not citing, f"{what} cited ({where}):\n" + "\n".join(citing)
