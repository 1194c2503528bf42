"""Build topfib's wheel the way a user would (``pip wheel --no-deps``), from the repository's files only.

The source is copied first (the files git tracks or would track, nothing it ignores), so a stale
``build/``, an in-place ``.so`` or an untracked scratch file in the checkout cannot make a wheel
look complete that a fresh clone would not produce; setuptools also writes its ``build/`` into the
copy, not into the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "collector", "controller", "exabgp")  # the folders shipped as topfib.<folder>
BUILD_TIMEOUT_S = 240.0


def repository_files() -> list[str]:
    """Paths (relative, posix) git tracks or would track: what a fresh clone would hold."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        capture_output=True, check=True, timeout=30,
    ).stdout.decode()
    return sorted(p for p in listed.split("\0") if p and ((REPO / p).is_file() or (REPO / p).is_symlink()))


def build_wheel(work: Path) -> Path:
    """Copy the repository's files under ``work/src`` and build the wheel into ``work/dist``."""
    source, dist = work / "src", work / "dist"
    for relative in repository_files():
        target = source / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, target, follow_symlinks=False)  # topfib/ holds links
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(source)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False, cwd=work,
    )
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}\n{result.stderr}"
    (wheel,) = dist.glob("topfib-*.whl")
    return wheel
