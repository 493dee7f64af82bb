"""The docs cover the public API and the tutorials.

Every public name (re-exported by `geomhess/__init__.py` or by a public subpackage's
`__init__`) must be rendered by a `::: ` directive on some `docs/api/*.md` page, under
the top-level or the subpackage path; every notebook must be in the `mkdocs.yml` nav.
The list of public subpackages is read from `geomhess` itself, so a new one (say
`geomhess.operators`) is checked as soon as it is exported.
"""

import ast
import inspect
import json
import pathlib
import re
import subprocess
import sys
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


# ---------------------------------------------------------------------------------
# The code on the pages runs, and returns what the pages say
# ---------------------------------------------------------------------------------

FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
CODE_PAGES = [
    str(page.relative_to(ROOT))
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    if FENCE.search(page.read_text())
]

# What the prose around each page's code claims, one check per ```python block, run
# right after that block in the page's namespace (the blocks in order, as a reader
# pastes them).
CLAIMS = {
    "README.md": [
        """
eig_theta = gh.hessian_invariants(loss, gh.metrics.Euclidean(2), theta).eigenvalues
eig_psi = gh.hessian_invariants(loss_psi, metric_psi, polar(theta)).eigenvalues
np.testing.assert_allclose(eig_psi, eig_theta, rtol=1e-12)
naive = jnp.linalg.eigvalsh(jax.hessian(loss_psi)(polar(theta)))
assert np.max(np.abs(naive - eig_theta)) > 0.1
""",
        """
# The invariant trace in psi estimates the exact trace of the Hessian in theta
# (Euclidean there); the Euclidean trace in psi is off by far more.
flat, unravel = jax.flatten_util.ravel_pytree(params)
exact = np.trace(jax.hessian(lambda u: loss(unravel(u)))(flat))
est = gh.linalg.shape_operator_trace(loss_psi, metric_psi, psi, key=key)
assert abs(est.estimate - exact) <= 4 * est.std_error + 1e-6 * abs(exact), (est, exact)
naive = gh.linalg.hessian_trace(loss_psi, psi, key=key).estimate
assert abs(naive - exact) > 10 * abs(exact), (naive, exact)
hv = gh.covariant_hvp(loss_psi, metric_psi, psi, v)
assert jax.tree.structure(hv) == jax.tree.structure(params)
""",
    ],
    "docs/getting-started.md": [
        """
eig = gh.hessian_invariants(loss_psi, metric_psi, polar(theta)).eigenvalues
np.testing.assert_allclose(eig, [0.15852904, 1.0], rtol=1e-5)
naive = jnp.linalg.eigvalsh(jax.hessian(loss_psi)(polar(theta)))
np.testing.assert_allclose(naive, [-0.767, 0.343], atol=5e-4)
""",
        """
cartesian = theta - jnp.linalg.solve(jax.hessian(loss)(theta), jax.grad(loss)(theta))
newton = polar.inverse(gh.exp_map(connection, psi, eta))
np.testing.assert_allclose(newton, cartesian, rtol=1e-4, atol=1e-4)
assert gh.classify_critical_point(loss, theta).kind == "not-critical"
""",
    ],
}


def _page_script(page):
    blocks = FENCE.findall((ROOT / page).read_text())
    claims = CLAIMS[page]
    assert len(claims) == len(blocks), (
        f"{page} has {len(blocks)} ```python blocks and {len(claims)} checks in CLAIMS"
    )
    return "\n".join(b + c for b, c in zip(blocks, claims, strict=True))


def test_every_page_with_code_has_its_claims_checked():
    assert "README.md" in CODE_PAGES
    assert set(CODE_PAGES) == set(CLAIMS), (
        "a page with ```python blocks needs an entry in CLAIMS (what its prose "
        "says the code returns)",
        CODE_PAGES,
    )


@pytest.mark.parametrize("page", CODE_PAGES)
def test_page_code_runs_and_returns_what_the_page_says(page):
    # In a fresh interpreter: a reader's session, without this suite's x64 and
    # strict-promotion settings (the page sets what it needs).
    script = "import jax.flatten_util\nimport numpy as np\n" + _page_script(page)
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, f"{page}:\n{result.stderr[-3000:]}"


# ---------------------------------------------------------------------------------
# No stale names in the prose
# ---------------------------------------------------------------------------------

GH_NAME = re.compile(r"\bgh\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")


def _reader_texts():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    texts = {str(p.relative_to(ROOT)): p.read_text() for p in pages}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        texts[str(nb.relative_to(ROOT))] = "\n".join(
            "".join(c["source"]) for c in cells
        )
    return texts


def _stale(dotted):
    """The first part of `gh.<dotted>` that geomhess does not have, or None. Past a
    class or function the rest is an attribute of an instance, not checked here."""
    obj = gh
    for part in dotted.split("."):
        if not hasattr(obj, part):
            return part
        obj = getattr(obj, part)
        if not isinstance(obj, types.ModuleType):
            return None
    return None


def test_every_gh_name_a_reader_sees_exists():
    texts = _reader_texts()
    found = {(page, m) for page, text in texts.items() for m in GH_NAME.findall(text)}
    # Guards against a vacuous pass: the scan sees the pages, and sees a stale name.
    assert len(found) >= 50, len(found)
    assert _stale("charts.NotAChart") == "NotAChart"
    assert _stale("charts.Polar.inverse") is None
    stale = sorted((page, m) for page, m in found if _stale(m) is not None)
    assert not stale, f"names that geomhess does not have: {stale}"
