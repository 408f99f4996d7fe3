"""The house rules of spkid's layout (docs/ARCHITECTURE.md), checked on the source with ``ast``.

Every ``spkid`` import is collected from every module: ``import x`` and ``from x import y`` at module level,
inside functions and methods and under ``if TYPE_CHECKING:`` alike (a type-only import is still a
dependency, so it is held to the same rules), relative imports resolved, and ``importlib.import_module``
/ ``__import__`` calls with a literal ``"spkid..."`` name. ``from package import name`` counts as an import
of the sub-module ``package.name`` when that module exists, else of the package's face (``__init__``).
Imports by computed names are not seen: the lazy faces (``spkid.features`` loads its own modules on first
use of a name; ``test_faces_export_what_they_list`` checks those names) and the ``"module:Class"`` section
classes a caller may give ``spkid.config``.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

SPKID_DIR = Path(__file__).resolve().parent.parent / "spkid"

#: The layers, bottom first. A module may import modules of its own package and of packages in lower layers
#: only; packages of one layer do not import each other. "spkid" stands for the top-level modules
#: (errors, blas, atomic, audio, config, config_checks, progress), which import each other without cycles.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("spkid",),
    ("features", "gmm"),
    ("ubm",),
    ("score",),
    ("metrics", "store"),
    ("corpora",),
    ("recognizer",),
    ("recipes",),
    ("serve",),
    ("cli",),
)
MAX_TOP_LEVEL_FILES = 8
MAX_MODULE_LINES = 350


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the spkid module it imports
    line: int


def _module_name(path: Path) -> str:
    parts = path.relative_to(SPKID_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module under spkid/ by dotted name (a package by its own name, for its ``__init__``)."""
    return {_module_name(path): path for path in sorted(SPKID_DIR.rglob("*.py"))}


def package_of(module: str) -> str:
    """The package of a module: ``spkid.features.vad`` -> ``features``; ``spkid.errors`` -> ``spkid``."""
    parts = module.split(".")
    if len(parts) > 1 and (SPKID_DIR / parts[1] / "__init__.py").is_file():
        return parts[1]
    return "spkid"


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = modules()[module].name == "__init__.py"
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _dynamic_target(node: ast.Call) -> str | None:
    """The literal module name of ``importlib.import_module("spkid...")`` or ``__import__("spkid...")``."""
    function = node.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


@cache
def imports() -> tuple[Import, ...]:
    found = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(module, node)
                for alias in node.names:
                    candidate = f"{source}.{alias.name}"
                    targets.append(candidate if candidate in modules() else source)
            elif isinstance(node, ast.Call):
                targets = [target] if (target := _dynamic_target(node)) else []
            found += [
                Import(module, target, node.lineno)
                for target in targets
                if target == "spkid" or target.startswith("spkid.")
            ]
    return tuple(found)


def _rank(package: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if package in layer:
            return rank
    raise AssertionError(f"package spkid.{package} is in no layer of LAYERS: add it to the table")


def test_every_package_has_a_layer():
    for module in modules():
        _rank(package_of(module))


def test_imports_name_existing_modules():
    stale = [
        f"{item.module}:{item.line} imports {item.target}"
        for item in imports()
        if item.target not in modules()
    ]
    assert not stale, "imports of modules that do not exist: " + "; ".join(stale)


def test_imports_point_down():
    upward = []
    for item in imports():
        source, target = package_of(item.module), package_of(item.target)
        if source != target and _rank(target) >= _rank(source):
            upward.append(f"{item.module}:{item.line} imports {item.target} ({source} may not use {target})")
    assert not upward, "imports that do not point down the layers: " + "; ".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or of one module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_no_import_cycles():
    graph: dict[str, set[str]] = {module: set() for module in modules()}
    for item in imports():
        if item.target in graph:
            graph[item.module].add(item.target)
    cycles = _cycles(graph)
    assert not cycles, "import cycles (function-level imports included): " + "; ".join(
        " <-> ".join(component) for component in cycles
    )


def test_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"], ["d"]]


def test_top_level_holds_few_modules():
    files = sorted(path.name for path in SPKID_DIR.glob("*.py"))
    assert len(files) <= MAX_TOP_LEVEL_FILES, (
        f"{len(files)} .py files directly in spkid/ (at most {MAX_TOP_LEVEL_FILES}): {', '.join(files)}"
    )


@pytest.mark.parametrize("module", sorted(modules()))
def test_modules_stay_short(module: str):
    n_lines = len(modules()[module].read_text(encoding="utf-8").splitlines())
    assert n_lines <= MAX_MODULE_LINES, f"{module} has {n_lines} lines (at most {MAX_MODULE_LINES}): split it"


@pytest.mark.parametrize("package", sorted(m for m, path in modules().items() if path.name == "__init__.py"))
def test_faces_export_what_they_list(package: str):
    face = importlib.import_module(package)
    missing = [name for name in getattr(face, "__all__", []) if not hasattr(face, name)]
    assert not missing, f"{package}.__all__ lists names it does not export: {', '.join(missing)}"
