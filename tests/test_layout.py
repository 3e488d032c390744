"""The package's layering, read from the source with ``ast`` (nothing is imported).

``_core`` (with ``errors``, which imports nothing) is the bottom layer: frontends,
backends and the conformance kit build on it, so it may not import them when it is loaded (a lazy import inside a
function, to build a default frontend, is fine). And no two modules import each
other, directly or around a loop: the import graph is a DAG.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "fastapi_sessions"
ROOT = Path(__file__).resolve().parent.parent / "src" / PACKAGE
UPWARD = ("frontends", "backends", "testing")


def module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def load_time_imports(tree: ast.Module, *, typing_only: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports that run when the module is loaded: not those inside functions.

    ``typing_only``: include the ``if TYPE_CHECKING:`` blocks (they never run, but
    they still say which layer a module leans on).
    """
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        elif isinstance(node, ast.If) and is_type_checking(node) and not typing_only:
            pending.extend(node.orelse)
        else:
            pending.extend(ast.iter_child_nodes(node))


def imported(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The fastapi_sessions modules an import statement in ``module`` loads (absolute names)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                yield alias.name
        return
    if node.level:
        package = module if is_package(module) else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    if base != PACKAGE and not base.startswith(PACKAGE + "."):
        return
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        yield submodule if submodule in MODULES else base


def graph(*, typing_only: bool) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges[name] = {target for node in load_time_imports(tree, typing_only=typing_only)
                       for target in imported(name, node) if target != name}
    return edges


def test_the_layout_is_where_this_test_looks() -> None:
    assert f"{PACKAGE}._core.manager" in MODULES
    assert f"{PACKAGE}.frontends.cookie" in MODULES
    assert f"{PACKAGE}._core.manager" in graph(typing_only=False)[f"{PACKAGE}._core.middleware"]


@pytest.mark.parametrize("module", sorted(name for name in MODULES if name.startswith(f"{PACKAGE}._core")))
def test_core_imports_no_frontend_backend_or_kit_when_loaded(module: str) -> None:
    upward = sorted(target for target in graph(typing_only=True)[module]
                    if target.split(".")[1] in UPWARD)
    assert not upward, f"{module} imports {upward} at module level; import it inside the function that needs it"


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A loop in ``edges`` (as the names along it, first repeated last), or ``None``."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return [*path[path.index(name):], name]
        if name in done:
            return None
        for target in sorted(edges.get(name, ())):
            if (loop := visit(target, [*path, name])) is not None:
                return loop
        done.add(name)
        return None

    for name in sorted(edges):
        if (loop := visit(name, [])) is not None:
            return loop
    return None


def test_the_import_graph_has_no_cycle() -> None:
    loop = find_cycle(graph(typing_only=False))
    assert loop is None, "import cycle: " + " -> ".join(loop or ())


def test_the_subpackages_import_each_other_without_a_cycle() -> None:
    """Coarser than modules: _core, frontends, backends, testing and the 0.3.2 verifier as layers."""
    layers: dict[str, set[str]] = {}
    for module, targets in graph(typing_only=False).items():
        if module == PACKAGE:
            continue  # the top level re-exports every layer; nothing imports it back
        layer = module.split(".")[1]
        layers.setdefault(layer, set()).update(
            target.split(".")[1] for target in targets if target != PACKAGE and target.split(".")[1] != layer)
    loop = find_cycle(layers)
    assert loop is None, "the layers import each other in a loop: " + " -> ".join(loop or ())


def test_the_errors_module_is_a_leaf() -> None:
    assert not graph(typing_only=True)[f"{PACKAGE}.errors"], "errors.py must import nothing from the package"


def test_nothing_inside_imports_the_top_level() -> None:
    """The top level is the public surface over every layer; a module importing it would loop through it."""
    importers = sorted(name for name, targets in graph(typing_only=True).items() if PACKAGE in targets)
    assert not importers, f"{importers} import {PACKAGE} itself; import the module that defines the name"
