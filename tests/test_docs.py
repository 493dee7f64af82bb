"""The docs cover the public API and the tutorials.

Every public name (re-exported by `geomhess/__init__.py` or by a public subpackage's
`__init__`) must be rendered by a `::: ` directive on some `docs/api/*.md` page, under
the top-level or the subpackage path; every notebook must be in the `mkdocs.yml` nav.
The list of public subpackages is read from `geomhess` itself, so a new one (say
`geomhess.operators`) is checked as soon as it is exported.
"""

import ast
import inspect
import pathlib
import re
import types

import pytest

import geomhess as gh


ROOT = pathlib.Path(__file__).resolve().parent.parent
API_PAGES = sorted((ROOT / "docs" / "api").glob("*.md"))
DIRECTIVE = re.compile(r"^\s*:::\s*([\w.]+)", re.MULTILINE)


def _documented():
    return {m for page in API_PAGES for m in DIRECTIVE.findall(page.read_text())}


def _public_subpackages():
    return sorted(
        name
        for name, value in vars(gh).items()
        if isinstance(value, types.ModuleType)
        and not name.startswith("_")
        and value.__name__ == f"geomhess.{name}"
    )


def _public_names(module):
    """The names `module` exports: `__all__`; else the `from .x import n as n`
    re-exports of a package's `__init__`; else what a plain module defines itself."""
    if hasattr(module, "__all__"):
        return sorted(module.__all__)
    source = pathlib.Path(inspect.getfile(module))
    if source.name == "__init__.py":
        tree = ast.parse(source.read_text())
        names = {
            alias.asname
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level > 0
            for alias in node.names
            if alias.asname is not None and alias.asname == alias.name
        }
        return sorted(
            n
            for n in names
            if not n.startswith("_")
            and not isinstance(getattr(module, n), types.ModuleType)
        )
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", None) == module.__name__
    )


def _all_public():
    pairs = [("geomhess", n) for n in _public_names(gh)]
    for sub in _public_subpackages():
        pairs += [(f"geomhess.{sub}", n) for n in _public_names(getattr(gh, sub))]
    return pairs


def test_the_checks_see_the_api():
    # A guard against a vacuous pass: the readers find the known subpackages and names.
    subs = _public_subpackages()
    for sub in ["charts", "metrics", "connections", "manifolds", "optim", "linalg"]:
        assert sub in subs
    names = dict.fromkeys(_all_public())
    assert ("geomhess", "covariant_hessian") in names
    assert ("geomhess.charts", "Polar") in names
    assert ("geomhess.diagnostics", "check_gradient") in names
    assert ("geomhess", "charts") not in names
    assert len(API_PAGES) >= 5


@pytest.mark.parametrize("module, name", _all_public())
def test_public_name_is_documented(module, name):
    documented = _documented()
    obj = getattr(__import__(module, fromlist=[name]), name)
    # The same object under the top-level path or any subpackage path counts.
    aliases = {f"{module}.{name}"}
    for path in ["geomhess", *(f"geomhess.{s}" for s in _public_subpackages())]:
        holder = __import__(path, fromlist=[name])
        if getattr(holder, name, None) is obj:
            aliases.add(f"{path}.{name}")
    assert aliases & documented, (
        f"{module}.{name} is public but no docs/api/*.md page has a "
        f"`::: {module}.{name}` directive; add one to the page for its module."
    )


def _nav():
    # mkdocs.yml holds `!ENV` tags that a safe loader refuses; only `nav` is needed.
    text = (ROOT / "mkdocs.yml").read_text()
    nav = re.search(r"^nav:\n(.*?)(?=^\S)", text, re.M | re.S)
    assert nav, "mkdocs.yml has no top-level `nav:` block"
    return set(re.findall(r"(\S+\.(?:md|ipynb))\s*$", nav.group(1), re.M))


NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_is_in_the_nav(notebook):
    assert f"notebooks/{notebook}" in _nav(), (
        f"notebooks/{notebook} is not in mkdocs.yml's nav; add it under Tutorials."
    )


def test_nav_pages_exist():
    for entry in _nav():
        assert (ROOT / "docs" / entry).exists(), f"mkdocs.yml nav names missing {entry}"
