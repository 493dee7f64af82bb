"""Where the time of a small trust-region solve goes (issue 13's profile).

`gh.optim.trust_region` with a hand-written `hvp_fn` on Brockett `Stiefel(n, p)` and
Rayleigh `Sphere(n)` is timed whole, and then taken apart, in one run:

1. **the products** that any solver with the same counts must make: one `2 A V N`
   per truncated-CG iteration and one gradient (`A X`) per outer iteration, alone in
   a jitted `lax.fori_loop` (the floor row of the optimizer benchmark);
2. **one CG iteration without its product**: the same `truncated_cg` body with the
   Riemannian Hessian replaced by an elementwise product (no matmul), run for a
   fixed number of iterations, which leaves the body's vector algebra, the
   projection onto the tangent space, the three inner products and the
   `while_loop` itself;
3. **one CG iteration with its product**: the same with the real Riemannian
   Hessian (Euclidean HVP, projection and Weingarten term);
4. **the outer iterations**: the rest of the solve (value and gradient at the
   proposal, the retraction, the ratio test).

It also counts the operations XLA:CPU runs for one CG iteration (the optimized HLO of
the `while` body: fusions, dots, other instructions): on XLA:CPU each costs about a
microsecond of dispatch whatever its size, which is what dominates at small `n`.

    python -m benchmarks.profile_trust_region            # prints a markdown report
    python -m benchmarks.profile_trust_region --out benchmarks/profile_trust_region.md
"""

import argparse
import math
import os
import re
import sys


os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import geomhess as gh  # noqa: E402
from benchmarks import _harness as hz  # noqa: E402
from geomhess.optim._geometry import as_geometry  # noqa: E402
from geomhess.optim._trust_region import MAX_INNER, truncated_cg  # noqa: E402


jax.config.update("jax_enable_x64", True)
TOL = 1e-8


def goe(rng, n):
    B = rng.standard_normal((n, n))
    return (B + B.T) / (2 * math.sqrt(n))


class Brockett(eqx.Module):
    A: jax.Array
    d: jax.Array

    def __call__(self, X):
        return jnp.sum(X * (self.A @ X) * self.d)

    def hvp(self, X, V):
        return 2 * (self.A @ V) * self.d


class Rayleigh(eqx.Module):
    A: jax.Array

    def __call__(self, x):
        return x @ (self.A @ x)

    def hvp(self, x, v):
        return 2 * (self.A @ v)


def problems(seed=0):
    rng = np.random.default_rng(seed)
    out = []
    A = goe(rng, 1000)
    x0 = rng.standard_normal(1000)
    out.append(
        (
            "Rayleigh `Sphere(1000)`",
            gh.manifolds.Sphere(1000),
            Rayleigh(jnp.asarray(A)),
            jnp.asarray(x0 / np.linalg.norm(x0)),
            (math.pi / 8, math.pi),
        )
    )
    for n, p in ((100, 5), (500, 10)):
        A = goe(rng, n)
        X0, _ = np.linalg.qr(rng.standard_normal((n, p)))
        d = np.arange(p, 0, -1).astype(np.float64)
        out.append(
            (
                f"Brockett `Stiefel({n}, {p})`",
                gh.manifolds.Stiefel(n, p),
                Brockett(jnp.asarray(A), jnp.asarray(d)),
                jnp.asarray(X0),
                (math.sqrt(p) / 8, math.sqrt(p)),
            )
        )
    return out


def median_time(fn, *args):
    """Median seconds per blocked call of `fn(*args)` (the harness's timer)."""
    return hz.steady_times({"fn": fn}, args, rounds=7, round_s=0.05)["fn"]


def make_solve(opt, manifold, f):
    kwargs = {"value_fn": f, "hvp_fn": f.hvp}

    @jax.jit
    def solve(x0):
        def cond(carry):
            _, state, k = carry
            return ((k == 0) | (state.grad_norm >= TOL)) & (k < 200)

        def body(carry):
            x, state, k = carry
            updates, state = opt.update(None, state, x, **kwargs)
            return optax.apply_updates(x, updates), state, k + 1

        x, state, k = jax.lax.while_loop(cond, body, (x0, opt.init(x0), 0))
        return x, state.grad_norm, k

    return solve


def count_cg_iterations(opt, manifold, f, x0):
    """Run the solve eagerly step by step, counting Euclidean HVP calls per step."""
    calls = []

    def counting_hvp(x, v):
        jax.debug.callback(lambda: calls.append(1))
        return f.hvp(x, v)

    step = jax.jit(
        lambda x, state: opt.update(None, state, x, value_fn=f, hvp_fn=counting_hvp)
    )
    x, state, outer = x0, opt.init(x0), 0
    while outer == 0 or float(state.grad_norm) >= TOL:
        updates, state = step(x, state)
        jax.effects_barrier()
        x = optax.apply_updates(x, updates)
        outer += 1
    return len(calls), outer


def cg_body_time(manifold, f, x, hess_kind, iterations=200):
    """Seconds per truncated-CG iteration, run for exactly `iterations`."""
    geometry = as_geometry("profile", manifold)
    egrad = jax.grad(f)(x)
    rgrad = geometry.to_tangent(x, geometry.gradient(x, egrad))
    # An ill-conditioned positive operator (eigenvalues log-spaced over 1..1e8):
    # CG meets neither negative curvature nor the boundary, and does not converge
    # (nor underflow to a zero residual) within `iterations`, so it runs them all.
    scale = jnp.logspace(0, 8, x.size, dtype=x.dtype).reshape(x.shape)
    if hess_kind == "real":
        real = geometry.hessian(f, x, egrad, f.hvp, caller="profile")

        def hess(v):
            # The real Riemannian Hessian is applied (its product and projection
            # run) but weighted down, so the spectrum stays the one above; `scale *
            # v` is fused into it.
            return scale * v + 1e-12 * real(v)

    else:

        def hess(v):
            return geometry.to_tangent(x, scale * v)

    @jax.jit
    def run(x, rgrad):
        # A huge radius, kappa = 0 and min_inner = max_inner: exactly `iterations`.
        return truncated_cg(
            geometry,
            x,
            rgrad,
            hess,
            jnp.asarray(1e30, x.dtype),
            kappa=jnp.asarray(0.0, x.dtype),
            theta=jnp.asarray(1.0, x.dtype),
            min_inner=iterations,
            max_inner=iterations,
        )

    stop = run(x, rgrad)[-1]
    assert int(stop) == MAX_INNER, f"CG stopped early (code {int(stop)})"
    hlo = run.lower(x, rgrad).compile().as_text()
    return median_time(run, x, rgrad) / iterations, hlo_ops(hlo)


def hlo_ops(hlo_text):
    """Instructions of the largest `while` body computation in optimized HLO."""
    bodies = re.findall(r"body=%?([\w.\-]+)", hlo_text)
    best = None
    for name in set(bodies):
        match = re.search(
            r"\n%?" + re.escape(name) + r" [^\n]*\{\n(.*?)\n\}", hlo_text, re.S
        )
        if not match:
            continue
        lines = [
            line.strip()
            for line in match.group(1).splitlines()
            if "=" in line and not line.strip().startswith("ROOT tuple")
        ]
        kinds = {"fusion": 0, "dot": 0, "other": 0}
        for line in lines:
            op = re.search(r"= [^ ]+ ([\w\-]+)\(", line)
            op = op.group(1) if op else ""
            if op in ("parameter", "get-tuple-element", "tuple", "constant", "bitcast"):
                continue
            if op == "fusion":
                kinds["fusion"] += 1
            elif op in ("dot", "custom-call"):
                kinds["dot"] += 1
            else:
                kinds["other"] += 1
        if best is None or sum(kinds.values()) > sum(best.values()):
            best = kinds
    return best or {"fusion": 0, "dot": 0, "other": 0}


def floor_time(f, x, products, gradients):
    """The bare products: `products` Euclidean HVPs and `gradients` gradients."""
    v = x

    @jax.jit
    def run(x, v):
        def body(_, v):
            return f.hvp(x, v) * jnp.asarray(1e-3, v.dtype) + x

        v = jax.lax.fori_loop(0, products, body, v)
        g = jax.lax.fori_loop(0, gradients, lambda _, g: jax.grad(f)(g) * 1e-3 + x, x)
        return v, g

    return median_time(run, x, v)


def us(seconds):
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the markdown report here")
    args = parser.parse_args(argv)
    lines = [
        "# Profile: where a small trust-region solve spends its time",
        "",
        hz.profile_header("profile_trust_region"),
        "",
        "`trust_region` with `hvp_fn`, pymanopt's radii, to a Riemannian gradient "
        "norm below 1e-8. CG iterations are counted (one Euclidean HVP each).",
        "",
        "| problem | outer / CG iterations | solve | floor (products alone) | "
        "solve / floor | one product alone | CG iteration, product included | CG "
        "iteration without its product | outer-iteration rest | ops per CG "
        "iteration (fusions / dots / other) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for title, manifold, f, x0, (r0, rmax) in problems():
        print(f"profiling {title} ...", file=sys.stderr)
        opt = gh.optim.trust_region(manifold, r0, rmax)
        solve = make_solve(opt, manifold, f)
        _, g, k = solve(x0)
        assert float(g) < TOL, (title, float(g))
        cg_count, outer = count_cg_iterations(opt, manifold, f, x0)
        assert outer == int(k), (outer, int(k))
        t_solve = median_time(solve, x0)
        t_floor = floor_time(f, x0, cg_count, outer)
        t_cg, ops = cg_body_time(manifold, f, x0, "real")
        t_cg_bare, _ = cg_body_time(manifold, f, x0, "bare")
        t_rest = (t_solve - cg_count * t_cg) / outer
        lines.append(
            f"| {title} | {outer} / {cg_count} | {us(t_solve)} | {us(t_floor)} | "
            f"{t_solve / t_floor:.2f}x | {us(t_floor / (cg_count + outer))} | {us(t_cg)} | {us(t_cg_bare)} | "
            f"{us(t_rest)} | {ops['fusion']} / {ops['dot']} / {ops['other']} |"
        )
    lines += [
        "",
        "Reading: `solve ~ CG iterations x (CG iteration) + outer iterations x "
        "(outer rest)`. The floor only holds the products; the CG iteration "
        "without its product is the fixed price XLA:CPU charges per iteration for "
        "the body's separately dispatched operations (column 'ops'). The rest "
        "per outer iteration is what is left of the solve after its CG "
        "iterations; on a loaded machine it carries their noise (it can come out "
        "negative).",
    ]
    hz.write_report(lines, args.out)


if __name__ == "__main__":
    main()
