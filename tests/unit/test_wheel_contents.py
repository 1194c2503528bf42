"""The wheel is the product: every module, subpackage and data file of the packages is in it.

Compared with the repository's own tree, so a new subpackage or data file cannot be left out of
the wheel again (``topfib.api.routes`` once was: the installed ``topfib demo`` died on the import).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.wheel_support import PACKAGES, build_wheel, repository_files

pytestmark = pytest.mark.slow

BUILT_HERE = (".so",)  # compiled when the wheel is built (optional: pure-Python fallbacks without a compiler)


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    wheel = build_wheel(tmp_path_factory.mktemp("wheel"))
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if not name.endswith("/")}


def _package_files() -> set[str]:
    """The wheel's names of the packages' files: collector/x.py ships as topfib/collector/x.py."""
    files = {f"topfib/{path}" for path in repository_files() if Path(path).parts[0] in PACKAGES}
    return files | {path for path in repository_files() if path.startswith("topfib/") and Path(path).suffix}


def test_every_file_of_the_packages_is_in_the_wheel(wheel_files: set[str]) -> None:
    missing = sorted(_package_files() - wheel_files)
    assert not missing, f"in the repository's packages but not in the wheel: {missing}"


def test_the_wheel_holds_nothing_but_the_packages_and_its_metadata(wheel_files: set[str]) -> None:
    extra = sorted(
        name for name in wheel_files - _package_files()
        if not name.startswith("topfib-") and not name.endswith(BUILT_HERE)
    )
    assert not extra, f"in the wheel but not a file of the packages: {extra}"
    assert {name.split("/")[0] for name in wheel_files if not name.startswith("topfib-")} == {"topfib"}


def test_the_exabgp_files_are_package_data_not_a_top_level_exabgp(wheel_files: set[str]) -> None:
    # A top-level exabgp/ would shadow the real ExaBGP package that runs topfib's sessions.
    shipped = {"topfib/exabgp/bridge.py", "topfib/exabgp/topfib.conf.template"}
    assert shipped <= wheel_files
    assert not any(name.startswith("exabgp/") for name in wheel_files)

