"""geomhess.diagnostics: Taylor-remainder slope checks."""

import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import geomhess.diagnostics as gd
from geomhess.manifolds import SPD, Sphere, Stiefel


F64 = jnp.float64


def _rayleigh_problem(getkey, n=6):
    A = jr.normal(getkey(), (n, n), F64)
    A = 0.5 * (A + A.T)
    sphere = Sphere(n)
    return sphere, (lambda x: x @ A @ x), A, sphere.random_point(getkey(), dtype=F64)


def test_check_gradient(getkey):
    sphere, f, _, x = _rayleigh_problem(getkey)
    result = gd.check_gradient(f, sphere, x, key=getkey())
    assert result.ok and abs(result.slope - 2) < 0.05, result.slope
    assert result.details["tangent_error"] < 1e-12
    assert result.steps.shape == result.errors.shape == (51,)


def test_check_gradient_detects_a_wrong_gradient(getkey):
    sphere, f, _, x = _rayleigh_problem(getkey)
    wrong = lambda x: 2 * sphere.egrad_to_rgrad(x, jax.grad(f)(x))
    result = gd.check_gradient(f, sphere, x, key=getkey(), grad=wrong)
    assert not result.ok and abs(result.slope - 1) < 0.05, result.slope


def test_check_hessian(getkey):
    sphere, f, A, x = _rayleigh_problem(getkey)
    result = gd.check_hessian(f, sphere, x, key=getkey())
    assert result.ok and abs(result.slope - 3) < 0.05, result.slope
    assert result.details["symmetry_error"] < 1e-12
    assert result.details["tangent_error"] < 1e-12
    # Without the Weingarten term the "Hessian" is only right to first order.
    wrong = lambda x, v: sphere.to_tangent(x, 2 * A @ v)
    result = gd.check_hessian(f, sphere, x, key=getkey(), hvp=wrong)
    assert not result.ok and abs(result.slope - 2) < 0.05, result.slope


def test_check_on_spd(getkey):
    spd = SPD(3)
    X = spd.random_point(getkey(), dtype=F64)
    f = lambda X: jnp.trace(X @ X) + jnp.linalg.slogdet(X)[1]
    assert gd.check_gradient(f, spd, X, key=getkey()).ok
    assert gd.check_hessian(f, spd, X, key=getkey()).ok
    assert gd.check_retraction(spd, X, key=getkey(), order=2).ok


def test_check_retraction(getkey):
    sphere, _, _, x = _rayleigh_problem(getkey)
    result = gd.check_retraction(sphere, x, key=getkey(), order=2)
    assert result.ok and abs(result.slope - 3) < 0.05, result.slope
    # A first-order retraction: a quadratic term along a fixed tangent vector.
    t = sphere.random_tangent(getkey(), x)
    first = lambda x, v: sphere.to_manifold(x + v + jnp.dot(v, v) * t)
    result = gd.check_retraction(sphere, x, key=getkey(), retraction=first, order=2)
    assert not result.ok and abs(result.slope - 2) < 0.05, result.slope
    assert gd.check_retraction(sphere, x, key=getkey(), retraction=first).ok


def test_check_retraction_without_closed_form_distance(getkey):
    stiefel = Stiefel(5, 2)
    X = stiefel.random_point(getkey(), dtype=F64)
    result = gd.check_retraction(stiefel, X, key=getkey(), order=2)
    assert result.ok and result.details["distance"] == "chordal"


def test_plot_returns_a_figure(getkey):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    sphere, f, _, x = _rayleigh_problem(getkey)
    result = gd.check_hessian(f, sphere, x, key=getkey(), plot=True)
    assert isinstance(result.figure, Figure)
    assert gd.check_gradient(f, sphere, x, key=getkey()).figure is None


def test_errors(getkey):
    sphere, f, _, x = _rayleigh_problem(getkey)
    with pytest.raises(TypeError, match="expected a manifold"):
        gd.check_gradient(f, "sphere", x, key=getkey())
    with pytest.raises(ValueError, match="retraction"):
        gd.check_gradient(f, sphere, x, key=getkey(), retraction="qr")
    key = getkey()
    with pytest.raises(ValueError, match="independent `key`"):
        gd.check_gradient(f, sphere, sphere.random_point(key, dtype=F64), key=key)
