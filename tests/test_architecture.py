"""The package's layers import only downward, and no import goes round in a circle.

`LAYERS` is the architecture of docs/architecture.md, bottom first. A module belongs
to the layer of its first component below `geomhess` (`geomhess.metrics._model` is in
`metrics`); the package's own `__init__` and the demo are the top. Every import of a
geomhess module, at module level or inside a function, is read from the source with
`ast` (nothing is imported), and each must go to the same layer or a lower one. Inside
a layer the import graph must still be acyclic, so a submodule that imports its own
package's `__init__` (which imports it back) is caught too.
"""

import ast
import pathlib

import pytest


PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "geomhess"

LAYERS = (
    "_core",  # checks, pytree arithmetic, dense and Krylov solvers, Lanczos
    "charts",
    "fields",
    "metrics",
    "connections",
    "operators",  # covariant Hessian and HVP, invariants, Newton, exp map, curvature
    "manifolds",
    "linalg",  # the estimators (trace, Lanczos, SLQ); re-exports the _core solvers
    "optim",
    "diagnostics",
    "laplace",  # the Laplace evidence (beside diagnostics)
    "_demo",
    "__main__",
    "__init__",  # the top-level re-exports
)


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _is_package(name: str) -> bool:
    return (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists()


def _is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(path: pathlib.Path) -> set[str]:
    """The geomhess modules that the file at `path` imports, as absolute names."""
    name = _module_name(path)
    package = name if _is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "geomhess"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "geomhess":
                continue
            # `from pkg import submodule` depends on the submodule itself.
            subs = {f"{target}.{a.name}" for a in node.names}
            found |= {s for s in subs if _is_module(s)} or {target}
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def layer(name: str) -> int:
    parts = name.split(".")
    key = "__init__" if len(parts) == 1 else parts[1]
    if key not in LAYERS:
        raise KeyError(
            f"{name} is in no layer: add `{key}` to LAYERS here and to "
            "docs/architecture.md"
        )
    return LAYERS.index(key)


def upward_imports(graph) -> list[str]:
    return sorted(
        f"{a} ({LAYERS[layer(a)]}) imports {b} ({LAYERS[layer(b)]})"
        for a, targets in graph.items()
        for b in targets
        if layer(b) > layer(a)
    )


def cycles(graph) -> list[list[str]]:
    """One cycle through each strongly connected part of the graph (iterative DFS)."""
    found, state = [], {}
    for root in graph:
        if state.get(root):
            continue
        stack, path = [(root, iter(sorted(graph[root])))], [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                found.append(path[path.index(child) :] + [child])
            elif child in graph and not state.get(child):
                state[child] = 1
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
    return found


def test_every_module_has_a_layer():
    for name in import_graph():
        layer(name)


def test_imports_go_only_downward():
    assert upward_imports(import_graph()) == []


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_checks_catch_what_they_are_for():
    """An upward import and a cycle in a made-up graph are reported."""
    graph = {
        "geomhess.metrics._concrete": {"geomhess.operators._hessian"},
        "geomhess.operators._hessian": {"geomhess.operators._coerce"},
        "geomhess.operators._coerce": {"geomhess.operators._hessian"},
    }
    assert upward_imports(graph) == [
        "geomhess.metrics._concrete (metrics) imports "
        "geomhess.operators._hessian (operators)"
    ]
    assert len(cycles(graph)) == 1
    assert set(cycles(graph)[0]) == {
        "geomhess.operators._hessian",
        "geomhess.operators._coerce",
    }
    with pytest.raises(KeyError, match="in no layer"):
        layer("geomhess.newthing")


def test_the_real_graph_is_read():
    """The reader sees relative, nested and function-level imports."""
    graph = import_graph()
    assert "geomhess._core.checks" in graph["geomhess.charts._base"]
    assert "geomhess.operators._hessian" in graph["geomhess.linalg._estimators"]
    assert "geomhess.optim._tree" in graph["geomhess.optim._first_order"]
    assert "geomhess.operators" in graph["geomhess"]


def test_the_architecture_page_lists_the_layers_in_order():
    """docs/architecture.md's table names the packages of LAYERS, bottom first."""
    page = PACKAGE.parent / "docs" / "architecture.md"
    rows = [
        line.split("|")[2].strip().strip("`")
        for line in page.read_text().splitlines()
        if line.startswith("| ") and line.split("|")[1].strip().isdigit()
    ]
    packages = [name.split(".", 1)[1] for name in rows]
    assert packages == [name for name in LAYERS if name not in ("__main__", "__init__")]
