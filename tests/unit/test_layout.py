"""The layout rules of docs/design.md ("Layering"), checked against the code's own imports.

- One import name: everything is imported as ``topfib.…``; the top-level folders are never
  imported by their own names (that works in a checkout and fails in the installed wheel).
- ``collector`` imports neither ``controller`` nor ``api``; ``api`` takes from ``controller`` only
  the config models, the settings in force and the store; only ``controller.service`` and
  ``controller.cli`` import ``api``; ``controller.sim`` and ``controller.demo`` are imported only
  from ``controller.cli`` (and from each other).
- No cycles between subpackages (a package's own modules may assemble its subpackages).
- Ceilings: no product module over MAX_MODULE_LINES lines, no folder over MAX_FOLDER_MODULES modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("collector", "controller", "api", "exabgp")
OLD_NAMES = ("collector", "controller", "api")
MAX_MODULE_LINES = 500
MAX_FOLDER_MODULES = 15  # .py files besides __init__.py


def _python_files(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return "topfib." + ".".join(parts)


def _imports(path: Path) -> Iterator[str]:
    """Absolute module names ``path`` imports, wherever the import stands (functions included)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            # `from topfib.x import y`: y may be a module of package x
            for alias in node.names:
                yield f"{node.module}.{alias.name}"


def _known_modules() -> set[str]:
    modules = {_module_name(path) for path in _python_files(*PRODUCT)}
    packages = {name.rsplit(".", 1)[0] for name in modules}
    return {name for name in modules | packages if name.count(".") >= 1}  # not topfib itself


def _unit(module: str) -> str:
    """The subpackage a module belongs to: ``collector.rib`` for topfib.collector.rib.lpm, the
    top-level package (``controller``) for its own modules such as topfib.controller.config."""
    parts = module.split(".")[1:]
    if len(parts) >= 2 and (ROOT / parts[0] / parts[1]).is_dir():
        return ".".join(parts[:2])
    return parts[0]


def _edges() -> dict[tuple[str, str], set[str]]:
    """(importing unit, imported unit) → the importing files, between different units."""
    known = _known_modules()
    edges: dict[tuple[str, str], set[str]] = {}
    for path in _python_files(*PRODUCT):
        source = _unit(_module_name(path))
        for name in _imports(path):
            if name in known:
                target = _unit(name)
                if target != source:
                    edges.setdefault((source, target), set()).add(str(path.relative_to(ROOT)))
    return edges


def test_the_walk_sees_the_product() -> None:
    edges = _edges()
    assert ("controller.switch", "controller.selection") in edges
    assert ("collector.accounting", "collector.rib") in edges


def test_nothing_imports_the_top_level_folders_by_their_own_names() -> None:
    wrong = []
    for path in _python_files(*PRODUCT, "tests", "bench", "scripts"):
        for name in _imports(path):
            if name.split(".")[0] in OLD_NAMES:
                wrong.append(f"{path.relative_to(ROOT)}: {name}")
    assert not wrong, "import these as topfib.<folder>.…:\n" + "\n".join(sorted(set(wrong)))


def test_collector_imports_neither_controller_nor_api() -> None:
    wrong = {f"{a} -> {b}: {sorted(files)}" for (a, b), files in _edges().items()
             if a.startswith("collector") and not b.startswith("collector")}
    assert not wrong, sorted(wrong)


def test_api_takes_from_controller_only_config_settings_and_store() -> None:
    allowed = {"topfib.controller.config", "topfib.controller.state.settings",
               "topfib.controller.state.store"}
    known = _known_modules()
    wrong = {f"{path.relative_to(ROOT)}: {name}" for path in _python_files("api") for name in _imports(path)
             if name in known and name.startswith("topfib.controller") and name not in allowed}
    assert not wrong, sorted(wrong)


def test_only_service_and_cli_import_api() -> None:
    wrong = {f"{a} -> {b}: {sorted(files)}" for (a, b), files in _edges().items()
             if b.startswith("api") and not a.startswith("api")
             and a not in ("controller.service", "controller.cli")}
    assert not wrong, sorted(wrong)


@pytest.mark.parametrize("helper", ["controller.sim", "controller.demo"])
def test_sim_and_demo_are_reached_only_from_the_cli(helper: str) -> None:
    others = {"controller.sim", "controller.demo", "controller.cli"}
    wrong = {f"{a} -> {b}: {sorted(files)}" for (a, b), files in _edges().items()
             if b == helper and a not in others}
    assert not wrong, sorted(wrong)


def _parent_assembles_child(source: str, target: str) -> bool:
    return "." not in source and target.startswith(source + ".")


def test_no_cycles_between_subpackages() -> None:
    graph: dict[str, set[str]] = {}
    for (source, target) in _edges():
        if not _parent_assembles_child(source, target):
            graph.setdefault(source, set()).add(target)
    cycles = []
    state: dict[str, int] = {}  # 1: on the walk's path, 2: done

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif nxt not in state:
                walk(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node, [node])
    assert not cycles, cycles


def test_no_product_module_is_over_the_ceiling() -> None:
    long = {f"{path.relative_to(ROOT)}: {lines}" for path in _python_files(*PRODUCT)
            if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split these (over {MAX_MODULE_LINES} lines): {sorted(long)}"


def test_no_folder_holds_more_modules_than_the_ceiling() -> None:
    folders = {path.parent for path in _python_files(*PRODUCT)}
    crowded = {f"{folder.relative_to(ROOT)}: {count}" for folder in folders
               if (count := sum(1 for p in folder.glob("*.py") if p.name != "__init__.py"))
               > MAX_FOLDER_MODULES}
    assert not crowded, f"give these subfolders (over {MAX_FOLDER_MODULES} modules): {sorted(crowded)}"


def test_the_checkout_imports_topfib_through_its_links() -> None:
    for folder in PRODUCT:
        link = ROOT / "topfib" / folder
        assert link.is_symlink() and link.resolve() == (ROOT / folder).resolve(), link
