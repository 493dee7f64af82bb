"""pymanopt and geoopt side of `bench_optim.py`, run in `.venv-optim-peers`.

pymanopt 2.2.1 and geoopt 0.5.1 (with torch) live in their own environment (made by
`setup_optim_peers.sh`), so this script never imports JAX or geomhess. It is a small
server: `bench_optim.py` starts it once, then sends one JSON command per line on
stdin and reads one JSON answer per line on stdout. That lets the geomhess solves in
the parent process and the peer solves here take turns round by round, so that load
from other jobs on the machine falls on both alike.

Commands (`{"op": ..., ...}`):

- `load`: read the problems from an `.npz` file written by `bench_optim.py` (the
  same matrices, starting points and gradients that geomhess gets);
- `tr`: run pymanopt's `TrustRegions` on a problem `loops` times from its starting
  point, with the problem's derivatives from `backend` (see below); answers the mean
  wall time of `optimizer.run`, the iteration count, the final cost and gradient
  norm, and writes the final point to an `.npz` file for the parent to check;
- `geoopt`: time `loops` steps of geoopt's `RiemannianAdam` (or `torch.optim.Adam`
  on an unconstrained tensor of the same shape), each with the same fixed gradient;
  answers the mean time per step, with `torch.set_num_threads(threads)`;
- `geoopt_check`: a few `RiemannianAdam` steps from the problem's starting point,
  with the final point written to an `.npz` file (compared with geomhess's `radam`);
- `versions`, `quit`.

Each trust-region problem comes in two pymanopt backends:

- `"numpy"`: hand-written Euclidean gradients and Hessians, no autodiff overhead at
  all: the fastest way to run pymanopt (and the same information a hand-tuned user
  would give it);
- `"pytorch"`: the cost alone, written in torch; pymanopt's PyTorch backend derives
  the gradient and the Hessian-vector products by autodiff (reverse over reverse,
  re-evaluating the cost's graph for each product). That is what a user who writes
  only the cost gets, as with geomhess's default. torch runs on one thread here (its
  faster setting for these sizes; see `bench_optim.py`).
"""

import importlib.metadata
import json
import sys
import time

import geoopt
import numpy as np
import pymanopt
import torch
from pymanopt.optimizers import TrustRegions


PROBLEMS = {}


# The number of Euclidean Hessian-vector products evaluated, per problem: the
# truncated CG iterations (geomhess runs the same algorithm, so the same number).
HESSIAN_CALLS = {}


def rayleigh_problem(name, A, n, backend):
    """`f(x) = x^T A x` on the sphere, with `egrad = 2 A x`, `ehess[u] = 2 A u`."""
    manifold = pymanopt.manifolds.Sphere(n)
    if backend == "pytorch":
        At = torch.from_numpy(A)

        @pymanopt.function.pytorch(manifold)
        def cost(x):
            return x @ (At @ x)

        return pymanopt.Problem(manifold, counted_hessian(name, cost))

    @pymanopt.function.numpy(manifold)
    def cost(x):
        return x @ (A @ x)

    @pymanopt.function.numpy(manifold)
    def euclidean_gradient(x):
        return 2 * (A @ x)

    @pymanopt.function.numpy(manifold)
    def euclidean_hessian(x, u):
        HESSIAN_CALLS[name] += 1
        return 2 * (A @ u)

    return pymanopt.Problem(
        manifold,
        cost,
        euclidean_gradient=euclidean_gradient,
        euclidean_hessian=euclidean_hessian,
    )


def brockett_problem(name, A, N, n, p, backend):
    """`f(X) = tr(X^T A X N)` on Stiefel(n, p) (polar retraction, as geomhess's),
    with `egrad = 2 A X N`, `ehess[U] = 2 A U N` (`A` symmetric, `N` diagonal)."""
    manifold = pymanopt.manifolds.Stiefel(n, p, retraction="polar")
    d = np.diag(N)
    if backend == "pytorch":
        At, dt = torch.from_numpy(A), torch.from_numpy(np.ascontiguousarray(d))

        @pymanopt.function.pytorch(manifold)
        def cost(X):
            return torch.sum((X * (At @ X)) * dt)

        return pymanopt.Problem(manifold, counted_hessian(name, cost))

    @pymanopt.function.numpy(manifold)
    def cost(X):
        return float(np.sum((X * (A @ X)) * d))

    @pymanopt.function.numpy(manifold)
    def euclidean_gradient(X):
        return 2 * (A @ X) * d

    @pymanopt.function.numpy(manifold)
    def euclidean_hessian(X, U):
        HESSIAN_CALLS[name] += 1
        return 2 * (A @ U) * d

    return pymanopt.Problem(
        manifold,
        cost,
        euclidean_gradient=euclidean_gradient,
        euclidean_hessian=euclidean_hessian,
    )


def counted_hessian(name, cost):
    """`cost`, with pymanopt's autodiff Hessian-vector product counted in
    `HESSIAN_CALLS[name]` (pymanopt builds it from `cost` when the problem is made)."""
    make_hessian = cost.get_hessian_operator

    def get_hessian_operator():
        hessian = make_hessian()

        def counted(*args):
            HESSIAN_CALLS[name] += 1
            return hessian(*args)

        return counted

    cost.get_hessian_operator = get_hessian_operator
    return cost


def load(path):
    data = np.load(path)
    PROBLEMS.clear()
    for name in data["tr_names"]:
        name = str(name)
        kind = str(data[f"{name}/kind"])
        A = data[f"{name}/A"]
        x0 = data[f"{name}/x0"]
        for backend in ("numpy", "pytorch"):
            if kind == "rayleigh":
                problem = rayleigh_problem(name, A, x0.shape[0], backend)
            else:
                problem = brockett_problem(
                    name, A, data[f"{name}/N"], *x0.shape, backend
                )
            PROBLEMS[name, backend] = {"problem": problem, "x0": x0}
    for name in data["adam_names"]:
        name = str(name)
        PROBLEMS[name] = {
            "kind": str(data[f"{name}/kind"]),
            "x0": data[f"{name}/x0"],
            "g": data[f"{name}/g"],
        }
    return {"loaded": sorted(map(str, PROBLEMS))}


def tr(name, loops, tol, out, backend="numpy"):
    torch.set_num_threads(1)
    entry = PROBLEMS[name, backend]
    optimizer = TrustRegions(min_gradient_norm=tol, verbosity=0, max_iterations=10000)
    times = []
    for _ in range(loops):
        HESSIAN_CALLS[name] = 0
        start = time.perf_counter()
        result = optimizer.run(entry["problem"], initial_point=entry["x0"])
        times.append(time.perf_counter() - start)
    np.savez(out, x=result.point)
    return {
        "wall_s": float(np.mean(times)),
        "iterations": int(result.iterations),
        "hessian_calls": HESSIAN_CALLS[name],
        "cost": float(result.cost),
        "gradient_norm": float(result.gradient_norm),
        "stopping": result.stopping_criterion,
    }


def make_geoopt(name, which, lr, dtype=None):
    """A parameter and its optimizer; the parameter's `.grad` is the fixed gradient."""
    entry = PROBLEMS[name]
    x0 = torch.from_numpy(np.array(entry["x0"], dtype=dtype))
    if which == "torch_adam":
        param = torch.nn.Parameter(x0)
        optimizer = torch.optim.Adam([param], lr=lr)
    else:
        manifold = (
            geoopt.Sphere() if entry["kind"] == "sphere" else geoopt.EuclideanStiefel()
        )
        param = geoopt.ManifoldParameter(x0, manifold=manifold)
        optimizer = geoopt.optim.RiemannianAdam([param], lr=lr)
    param.grad = torch.from_numpy(np.array(entry["g"], dtype=dtype))
    return param, optimizer


def geoopt_time(name, which, loops, lr, threads):
    torch.set_num_threads(threads)
    key = (name, which)
    if key not in PROBLEMS:
        PROBLEMS[key] = make_geoopt(name, which, lr)
        PROBLEMS[key][1].step()  # state allocation happens on the first step
    _, optimizer = PROBLEMS[key]
    start = time.perf_counter()
    for _ in range(loops):
        optimizer.step()
    return {"step_s": (time.perf_counter() - start) / loops}


def geoopt_check(name, steps, lr, out):
    """`steps` RiemannianAdam steps in float64 (the algorithm, without float32
    round-off in sums over a million entries)."""
    param, optimizer = make_geoopt(name, "geoopt", lr, dtype=np.float64)
    for _ in range(steps):
        optimizer.step()
    np.savez(out, x=param.detach().numpy())
    return {"steps": steps}


def versions():
    out = {"python": sys.version.split()[0]}
    for package in ("pymanopt", "geoopt", "torch", "numpy", "scipy"):
        out[package] = importlib.metadata.version(package)
    return out


def main():
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        if op == "quit":
            break
        try:
            if op == "load":
                answer = load(**command)
            elif op == "tr":
                answer = tr(**command)
            elif op == "geoopt":
                answer = geoopt_time(**command)
            elif op == "geoopt_check":
                answer = geoopt_check(**command)
            elif op == "versions":
                answer = versions()
            else:
                raise ValueError(f"unknown command {op!r}")
        except Exception as error:  # reported to the parent, which stops the run
            answer = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
