"""The structure docs/architecture.md describes, derived from the code: which unit imports which (no cycle, and
exactly the table's edges), wfdb behind one module, no reference to documents outside the repository."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO

PACKAGES = ("ecgjepa", "data_prep", "bench", "scripts")
ARCHITECTURE = REPO / "docs" / "architecture.md"


def source_files() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((REPO / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    """The unit a module belongs to: a sub-package or top-level module of ``ecgjepa`` (``ecgjepa`` itself for its
    ``__init__``), ``data_prep`` and ``scripts`` as wholes, each script of ``bench``."""
    parts = module.split(".")
    if parts[0] == "ecgjepa":
        return ".".join(parts[:2])
    if parts[0] == "bench":
        return ".".join(parts[:2])
    return parts[0]


def imported_modules(path: Path) -> Iterator[str]:
    """Every module of this repository that ``path`` imports (at any depth of the file, relative imports
    resolved; ``bench`` scripts import each other by bare name)."""
    module = module_name(path)
    bench_scripts = {p.stem for p in (REPO / "bench").glob("*.py")}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -node.level] if path.name != "__init__.py" else module.split(".")
                package = package if path.name != "__init__.py" else package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if path.parent.name == "bench" and top in bench_scripts:
                yield f"bench.{name}"
            elif top in PACKAGES:
                yield name


def known_module(name: str) -> str | None:
    """``name`` as a module of this repository (a ``from package import symbol`` names the package)."""
    while name:
        file = REPO / name.replace(".", "/")
        if file.with_suffix(".py").is_file() or (file / "__init__.py").is_file():
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """unit -> the units it imports."""
    graph: dict[str, set[str]] = {}
    for path in source_files():
        unit = unit_of(module_name(path))
        graph.setdefault(unit, set())
        for name in imported_modules(path):
            target = known_module(name)
            if target is not None and unit_of(target) != unit:
                graph[unit].add(unit_of(target))
    return graph


def module_graph() -> dict[str, set[str]]:
    """module -> the modules it imports."""
    graph: dict[str, set[str]] = {}
    for path in source_files():
        targets = {known_module(name) for name in imported_modules(path)}
        graph[module_name(path)] = {t for t in targets if t is not None and t != module_name(path)}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def documented_graph() -> dict[str, set[str]]:
    """The table of docs/architecture.md: unit (first column) -> the units of its last column."""
    graph: dict[str, set[str]] = {}
    for line in ARCHITECTURE.read_text().splitlines():
        match = re.match(r"\|\s*`([\w.]+)`\s*\|.*\|([^|]*)\|\s*$", line)
        if match:
            graph[match.group(1)] = set(re.findall(r"`([\w.]+)`", match.group(2)))
    return graph


def test_units_import_one_way() -> None:
    assert find_cycle(import_graph()) is None, f"import cycle between units: {' -> '.join(find_cycle(import_graph()))}"


def test_no_two_modules_import_each_other() -> None:
    cycle = find_cycle(module_graph())
    assert cycle is None, f"import cycle between modules: {' -> '.join(cycle)}"


def test_a_cycle_is_found() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_architecture_table_lists_exactly_the_imports() -> None:
    code, docs = import_graph(), documented_graph()
    wrong = {
        unit: sorted(code.get(unit, set()))
        for unit in sorted(set(code) | set(docs))
        if code.get(unit) != docs.get(unit)
    }
    expected = "\n".join(
        f"| `{u}` | ... | {', '.join(f'`{i}`' for i in imports) or '–'} |" for u, imports in wrong.items()
    )
    assert not wrong, f"docs/architecture.md does not match the code; the imports column should read:\n{expected}"


def test_wfdb_is_called_from_one_module() -> None:
    users = [
        path.relative_to(REPO).as_posix()
        for path in source_files()
        if any(name.split(".")[0] == "wfdb" for name in _all_imports(path))
    ]
    assert users == ["ecgjepa/core/records.py"]


def _all_imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module


def tracked_text_files() -> Iterator[Path]:
    skip = {".venv", ".git", "data", "outputs", "multirun", "tests"}
    for path in REPO.rglob("*"):
        relative = path.relative_to(REPO)
        if relative.parts[0] in skip or relative.parts[0].startswith(".ci") or not path.is_file():
            continue
        if path.suffix in {".py", ".md", ".yaml", ".toml", ".txt", ".cfg"} or path.name == "Makefile":
            yield path


@pytest.mark.parametrize("pattern", ["spec \u00a7", "../shared"])
def test_no_reference_to_documents_outside_the_repository(pattern: str) -> None:
    found = [p.relative_to(REPO).as_posix() for p in tracked_text_files() if pattern in p.read_text(errors="ignore")]
    found += [
        p.relative_to(REPO).as_posix()
        for p in (REPO / "tests").rglob("*.py")
        if pattern == "spec \u00a7" and pattern in p.read_text()
    ]
    assert found == []
