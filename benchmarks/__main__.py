"""`python -m benchmarks`: run every benchmark, one after the other.

Usage:
    python -m benchmarks                  # full runs; each rewrites its results page
    python -m benchmarks --quick          # smoke run of every code path, pages kept
    python -m benchmarks --only optim     # one benchmark (dense, network, optim)

Each benchmark still runs as its own script (`run.py`, `bench_network.py`,
`bench_optim.py`) in a subprocess; their port onto `benchmarks/_harness.py` is not
done yet (issue 13). A benchmark that cannot run here (for instance a missing peer
venv) is reported as "not run" with its reason, and the others go on.
"""

import argparse
import os
import pathlib
import subprocess
import sys
import time


HERE = pathlib.Path(__file__).resolve().parent

# name -> (script, results page it rewrites on a full run)
BENCHMARKS = {
    "dense": ("run.py", "README.md"),
    "network": ("bench_network.py", "results_network.md"),
    "optim": ("bench_optim.py", "results_optim.md"),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few rounds")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append")
    parser.add_argument(
        "--render",
        action="store_true",
        help="re-render pages from saved JSON (not available until the port)",
    )
    args = parser.parse_args(argv)
    if args.render:
        raise SystemExit(
            "--render: the benchmarks are not yet ported onto benchmarks/_harness.py, "
            "so their pages cannot be re-rendered from JSON; rerun them instead."
        )
    env = dict(
        os.environ, OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1")
    )
    summary = {}
    for name in args.only or list(BENCHMARKS):
        script, page = BENCHMARKS[name]
        command = [sys.executable, str(HERE / script)]
        # A quick run's numbers are not for comparison: it never rewrites a page.
        command += ["--quick"] if args.quick else ["--out", str(HERE / page)]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(command, env=env, cwd=HERE.parent)
        elapsed = time.perf_counter() - start
        summary[name] = (
            f"ok ({elapsed:.0f} s)"
            if proc.returncode == 0
            else f"not run / failed: exit {proc.returncode} ({elapsed:.0f} s)"
        )
    print()
    for name, line in summary.items():
        print(f"{name}: {line}")
    return 0 if all(line.startswith("ok") for line in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
