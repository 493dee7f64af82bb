"""The main demo: the invariance of the shape operator and of covariant Newton, in numbers.

Run with `python -m geomhess` (or the `geomhess-demo` script). For each example loss
and reparametrization `psi = phi(theta)` it prints

1. the calculus Hessian's eigenvalues, trace and determinant in both charts (they
   differ), and the shape operator's (they agree to ~1e-12 in float64);
2. the first Newton iterates taken in both charts and mapped back to `theta`: with the
   covariant step and the exponential map they coincide; the plain step does not.

It exits with status 1 if an invariant quantity disagrees across charts.
"""

import builtins
import dataclasses
import functools as ft
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import charts, connections, metrics
from .fields import ScalarField
from .operators import exp_map, hessian_invariants, newton_step


@dataclasses.dataclass
class Example:
    name: str
    loss: ScalarField
    chart: charts.AbstractChart
    chart_name: str
    point: jax.Array
    newton_start: jax.Array
    note: str = ""


def _quadratic_plus_sine(theta):
    A = jnp.array([[2.0, 0.6], [0.6, 1.0]], theta.dtype)
    b = jnp.array([1.0, -0.5], theta.dtype)
    return 0.5 * theta @ A @ theta + jnp.sin(2 * theta[0]) + b @ theta


class _ReluNetLoss(eqx.Module):
    """Squared error of a 2-layer ReLU network `x -> W2 relu(W1 x)`, params flattened."""

    inputs: jax.Array
    targets: jax.Array
    hidden: int = eqx.field(static=True)

    def __call__(self, params):
        d_in = self.inputs.shape[1]
        W1 = params[: self.hidden * d_in].reshape(self.hidden, d_in)
        W2 = params[self.hidden * d_in :].reshape(1, self.hidden)
        predictions = jax.nn.relu(self.inputs @ W1.T) @ W2.T
        return 0.5 * jnp.mean((predictions[:, 0] - self.targets) ** 2)


def _relu_example(dtype) -> Example:
    key_x, key_w, key_p = jax.random.split(jax.random.key(0), 3)
    inputs = jax.random.normal(key_x, (32, 2), dtype)
    teacher = jax.random.normal(key_w, (2,), dtype)
    targets = jnp.tanh(inputs @ teacher)
    hidden = 3
    loss = ScalarField(_ReluNetLoss(inputs, targets, hidden))
    # The point: a short run of gradient descent from a random start, so that the
    # network is near (not at) a minimum, where "flatness" is usually read off.
    params = 0.5 * jax.random.normal(key_p, (hidden * 2 + hidden,), dtype)
    step = jax.jit(lambda p: p - 0.3 * jax.grad(loss)(p))
    for _ in range(300):
        params = step(params)
    alpha = 4.0
    scale = jnp.concatenate(
        [jnp.full(hidden * 2, alpha, dtype), jnp.full(hidden, 1 / alpha, dtype)]
    )
    return Example(
        "2-layer ReLU net (9 params)",
        loss,
        charts.Scale(scale),
        "Dinh: (4 W1, W2 / 4)",
        params,
        params,
        note=(
            "The rescaling is linear, and Newton's method is affine-invariant, so here "
            "plain Newton agrees too;\nonly the spectra read off the calculus Hessian "
            '("sharpness") move.'
        ),
    )


def examples(dtype=jnp.float64) -> list[Example]:
    """The demo's embedded examples."""
    loss = ScalarField(_quadratic_plus_sine)
    A = jnp.array([[0.8, 0.3], [-0.2, 0.6]], dtype)
    b = jnp.array([0.1, -0.2], dtype)
    return [
        Example(
            "quadratic + sin (2-D)",
            loss,
            charts.Polar(),
            "polar (r, alpha)",
            jnp.array([-1.3, 0.6], dtype),
            jnp.array([-0.5, 0.8], dtype),
        ),
        Example(
            "quadratic + sin (2-D)",
            loss,
            charts.Affine(A, b) >> charts.Elementwise.exp(),
            "psi = exp(A theta + b)",
            jnp.array([-1.3, 0.6], dtype),
            jnp.array([-0.5, 0.8], dtype),
        ),
        _relu_example(dtype),
    ]


@eqx.filter_jit
def _spectra(loss, chart, theta):
    """Calculus and shape-operator spectra in theta and in psi = chart(theta)."""
    d = theta.shape[0]
    euclidean = metrics.Euclidean(d)
    loss_psi, metric_psi = loss.reparametrize(chart), euclidean.reparametrize(chart)
    psi = chart(theta)
    return dict(
        naive_theta=jnp.linalg.eigvalsh(jax.hessian(loss)(theta)),
        naive_psi=jnp.linalg.eigvalsh(jax.hessian(loss_psi)(psi)),
        shape_theta=hessian_invariants(loss, euclidean, theta).eigenvalues,
        shape_psi=hessian_invariants(loss_psi, metric_psi, psi).eigenvalues,
        gradient_norm=jnp.linalg.norm(jax.grad(loss)(theta)),
    )


@eqx.filter_jit
def _newton_iterate(loss, chart, theta):
    """One Newton iterate from theta, taken three ways, each mapped back to theta."""
    flat = connections.Flat()
    flat_psi = flat.reparametrize(chart)
    loss_psi, psi = loss.reparametrize(chart), chart(theta)
    # Cartesian: the flat connection, so the covariant step is the plain one.
    in_theta = theta + newton_step(loss, flat, theta)
    # psi, covariant: the carried connection and its exponential map.
    covariant = chart.inverse(
        exp_map(flat_psi, psi, newton_step(loss_psi, flat_psi, psi))
    )
    # psi, plain: calculus Hessian and a straight step (may leave the chart's domain,
    # so it is mapped back without the domain check).
    plain_step = -jnp.linalg.solve(jax.hessian(loss_psi)(psi), jax.grad(loss_psi)(psi))
    return in_theta, covariant, psi + plain_step


def _format(values, width=34):
    values = np.asarray(values)
    if values.size > 3:
        text = f"{values.min():.4g} .. {values.max():.4g} ({values.size} values)"
    else:
        text = "[" + ", ".join(f"{v:.6g}" for v in values) + "]"
    return text.ljust(width)


def run(dtype=jnp.float64, newton_steps: int = 3, out=sys.stdout) -> float:
    """Print the demo's tables; returns the largest cross-chart discrepancy of the
    invariant quantities (relative)."""
    worst = 0.0
    print = ft.partial(builtins.print, file=out)  # noqa: A001 - all output to `out`
    print("geomhess demo: the calculus Hessian vs the shape operator G^-1 nabla^2 f")
    print(f"dtype {jnp.dtype(dtype).name}, jax {jax.__version__}\n")
    for ex in examples(dtype):
        t0 = time.perf_counter()
        s = jax.tree_util.tree_map(np.asarray, _spectra(ex.loss, ex.chart, ex.point))
        header = f"{ex.name}  |  chart: {ex.chart_name}  |  |grad| = {s['gradient_norm']:.3g}"
        print(header)
        print("-" * len(header))
        print(f"{'':26}{'eigenvalues':36}{'trace':>14}{'det':>14}")
        for label, key in [
            ("calculus Hessian, theta", "naive_theta"),
            ("calculus Hessian, psi", "naive_psi"),
            ("shape operator, theta", "shape_theta"),
            ("shape operator, psi", "shape_psi"),
        ]:
            e = s[key]
            print(f"{label:26}{_format(e)}  {e.sum():>12.6g}  {np.prod(e):>12.6g}")
        naive_gap = _relative_gap(s["naive_psi"], s["naive_theta"])
        shape_gap = _relative_gap(s["shape_psi"], s["shape_theta"])
        worst = max(worst, shape_gap)
        print(
            f"cross-chart difference: calculus {naive_gap:.2e} (not invariant), "
            f"shape operator {shape_gap:.2e} (invariant)"
        )
        print(
            "\nNewton iterates, each chain mapped back to theta; the columns give the"
        )
        print("distance to plain Newton in theta (the same point in every chart):")
        print(
            f"{'step':>4}  {'|theta_k|':>10}  {'covariant psi -> theta':>24}  "
            f"{'plain psi -> theta':>20}"
        )
        # Three independent chains, each mapped back to theta: plain Newton in theta,
        # covariant Newton in psi, plain Newton in psi.
        theta = covariant = plain = ex.newton_start
        plain_text = ""
        for k in range(1, newton_steps + 1):
            theta = _newton_iterate(ex.loss, ex.chart, theta)[0]
            covariant = _newton_iterate(ex.loss, ex.chart, covariant)[1]
            if plain_text not in ("left the chart", "-"):
                try:
                    plain_psi = _newton_iterate(ex.loss, ex.chart, plain)[2]
                    plain = ex.chart.inverse(plain_psi)
                    plain_text = f"{_relative_gap(plain, theta):.2e}"
                except Exception:  # noqa: BLE001 - a domain error ends the plain chain
                    plain_text = "left the chart"
            elif plain_text == "left the chart":
                plain_text = "-"
            gap = _relative_gap(covariant, theta)
            worst = max(worst, gap / 1e4)  # the ODE is accurate to ~1e-8, not 1e-12
            print(
                f"{k:>4}  {np.linalg.norm(theta):>10.6f}  {gap:>24.2e}  {plain_text:>20}"
            )
        if ex.note:
            print(ex.note)
        print(f"({time.perf_counter() - t0:.1f} s)\n")
    return worst


def _relative_gap(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def main() -> int:
    """Entry point of `python -m geomhess`."""
    jax.config.update("jax_enable_x64", True)
    worst = run(jnp.float64)
    ok = worst < 1e-9
    print(
        "OK: the invariant quantities agree across charts."
        if ok
        else f"FAILED: invariant quantities differ across charts (worst {worst:.2e})."
    )
    return 0 if ok else 1
