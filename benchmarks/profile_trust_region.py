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

The problems are the optimizer benchmark's own: `bench_optim.make_tr_problems` at a
full run's sizes (`bench_optim.TR_SIZES`) with its seed 0, from the random starts
(its warm start left out), with its objectives (`bench_optim.objective(...,
hvp_fn=True)`: JAX's value and gradient, the hand-written HVP) and pymanopt's radii
(`bench_optim.pymanopt_radii`); the Rayleigh problem is the one this profile drew
itself before, the Brockett ones are other draws (the benchmark draws its warm start
in between), so a report made before has other Brockett counts. The solve is the benchmark's `gh_tr_hvp_fn` row
(`_solvers.solve_while`: one jitted `lax.while_loop` to the benchmark's tolerance),
and its CG iterations are counted as the benchmark counts them
(`_solvers.count_hvps`).

It also counts the operations XLA:CPU runs for one CG iteration (the optimized HLO of
the `while` body: fusions, dots, other instructions): on XLA:CPU each costs about a
microsecond of dispatch whatever its size, which is what dominates at small `n`.

    python -m benchmarks.profile_trust_region            # prints a markdown report
    python -m benchmarks.profile_trust_region --out benchmarks/profile_trust_region.md
"""

import argparse
import functools as ft
import os
import re
import sys


os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import geomhess as gh  # noqa: E402
from benchmarks import _harness as hz, _solvers  # noqa: E402
from benchmarks.bench_optim import (  # noqa: E402
    MAX_ITERATIONS,
    TOL,
    TR_SIZES,
    make_tr_problems,
    manifold_of,
    objective,
    pymanopt_radii,
)
from geomhess.optim._geometry import as_geometry  # noqa: E402
from geomhess.optim._trust_region import MAX_INNER, truncated_cg  # noqa: E402


jax.config.update("jax_enable_x64", True)


def problems(seed=0):
    """`(title, manifold, objective, x0, radii)` of the optimizer benchmark's
    trust-region problems from a random start, at a full run's sizes; the objective
    is a `_solvers.WithHVP` (JAX's value and gradient, the hand-written HVP)."""
    out = []
    for name, problem in make_tr_problems(*TR_SIZES, seed=seed).items():
        if name.endswith("-warm"):
            continue
        manifold = manifold_of(problem)
        kind = "Rayleigh" if problem["kind"] == "rayleigh" else "Brockett"
        shape = ", ".join(str(size) for size in problem["x0"].shape)
        title = f"{kind} `{type(manifold).__name__}({shape})`"
        f = objective(problem, hvp_fn=True)
        x0 = jnp.asarray(problem["x0"])
        out.append((title, manifold, f, x0, pymanopt_radii(problem)))
    return out


def median_time(fn, *args):
    """Median seconds per blocked call of `fn(*args)` (the harness's timer)."""
    return hz.steady_times({"fn": fn}, args, rounds=7, round_s=0.05)["fn"]


def cg_body_time(manifold, f, x, hess_kind, iterations=200):
    """Seconds per truncated-CG iteration, run for exactly `iterations` (`f` a
    `_solvers.WithHVP`)."""
    geometry = as_geometry("profile", manifold)
    egrad = jax.grad(f.f)(x)
    rgrad = geometry.to_tangent(x, geometry.gradient(x, egrad))
    # An ill-conditioned positive operator (eigenvalues log-spaced over 1..1e8):
    # CG meets neither negative curvature nor the boundary, and does not converge
    # (nor underflow to a zero residual) within `iterations`, so it runs them all.
    scale = jnp.logspace(0, 8, x.size, dtype=x.dtype).reshape(x.shape)
    if hess_kind == "real":
        real = geometry.hessian(f.f, x, egrad, f.hvp, caller="profile")

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
    """The bare products: `products` Euclidean HVPs and `gradients` gradients (`f` a
    `_solvers.WithHVP`)."""
    v = x

    @jax.jit
    def run(x, v):
        def body(_, v):
            return f.hvp(x, v) * jnp.asarray(1e-3, v.dtype) + x

        v = jax.lax.fori_loop(0, products, body, v)
        g = jax.lax.fori_loop(0, gradients, lambda _, g: jax.grad(f.f)(g) * 1e-3 + x, x)
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
        solve = ft.partial(
            _solvers.solve_while, opt, manifold, f, x0, TOL, MAX_ITERATIONS
        )
        _, g, k = solve()
        assert float(g) < TOL, (title, float(g))
        cg_count, outer = _solvers.count_hvps(opt, f, x0, TOL, MAX_ITERATIONS)
        assert outer == int(k), (outer, int(k))
        t_solve = median_time(solve)
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
