"""`python -m benchmarks`: run every benchmark and rewrite its results page.

Usage:
    python -m benchmarks                  # full runs; each rewrites its results page
    python -m benchmarks --quick          # smoke run of every code path, pages kept
    python -m benchmarks --only optim     # one (dense, network, optim, curvature, checks)
    python -m benchmarks --render         # re-render the pages from the saved JSON

Each benchmark is a module (`bench_dense.py`, `bench_network.py`, `bench_optim.py`,
`bench_curvature.py`, `bench_checks.py`) that declares its problems, contenders and
goals and leaves the timing, the check before timing, the environment record and
the tables to `benchmarks/_harness.py` (and the concerns beside it to
`_baselines.py`, `_memory.py`, `_peers.py` and `_solvers.py`).
Each runs in its own subprocess (its own JAX configuration: x64 on for dense and
optim, off for the float32 network), which saves its payload to
`benchmarks/.results/NAME.json`; this process then renders the page from that JSON,
so `--render` gives the same page from the same numbers. A quick run saves
`NAME-quick.json` and renders to `NAME-quick.md` there, never to the pages. Peers
(geomstats, pymanopt, geoopt) run in their own venvs (`setup_peers.sh`,
`setup_optim_peers.sh`); where one is missing its rows read "not run: reason" and
the run goes on.
"""

import argparse
import importlib
import os
import pathlib
import re
import subprocess
import sys
import time


HERE = pathlib.Path(__file__).resolve().parent
BENCHMARKS = {
    "dense": "benchmarks.bench_dense",
    "network": "benchmarks.bench_network",
    "optim": "benchmarks.bench_optim",
    "curvature": "benchmarks.bench_curvature",
    "checks": "benchmarks.bench_checks",
}
FORMAT = "geomhess-bench/1"  # payloads from before the harness lack it
# The goal verdicts of every results page, gathered into the top-level README and the
# documentation's benchmark page (between these markers) by `write_headlines`.
HEADLINE_MARKERS = ("<!-- benchmark goals:begin -->", "<!-- benchmark goals:end -->")
HEADLINE_PAGES = {"README.md": "benchmarks/", "docs/benchmarks.md": None}


def _json_name(name, quick):
    return f"{name}-quick" if quick else name


def run_one(name, quick):
    """In the child process: run one benchmark and save its payload."""
    from benchmarks import _harness as hz

    module = importlib.import_module(BENCHMARKS[name])
    payload = module.run(quick=quick)
    payload["format"] = FORMAT
    print(f"saved {hz.save_json(_json_name(name, quick), payload)}", flush=True)


def render_one(name, quick):
    """Render one benchmark's page from its saved payload; the page's path."""
    from benchmarks import _harness as hz

    module = importlib.import_module(BENCHMARKS[name])
    json_name = _json_name(name, quick)
    try:
        payload = hz.load_json(json_name)
    except FileNotFoundError:
        raise SystemExit(
            f"{name}: no saved results ({pathlib.Path(hz.RESULTS_DIR) / json_name}.json); "
            "run "
            f"`python -m benchmarks --only {name}` first."
        ) from None
    if payload.get("format") != FORMAT:
        raise SystemExit(
            f"{name}: {json_name}.json was saved before the harness (no format "
            f"{FORMAT!r}); rerun `python -m benchmarks --only {name}`."
        )
    block = module.render(payload)
    if hasattr(module, "plot"):  # its picture goes next to the page that shows it
        module.plot(payload, hz.RESULTS_DIR if quick else HERE)
    if quick:
        path = pathlib.Path(hz.RESULTS_DIR) / f"{json_name}.md"
        return hz.write_page(path, block, header=getattr(module, "HEADER", ""))
    return hz.write_page(
        HERE / module.PAGE,
        block,
        getattr(module, "MARKERS", None),
        getattr(module, "HEADER", ""),
    )


def _short(line, link_prefix):
    """A goal bullet without its per-problem list; its links rebased (or dropped)."""
    # "(worst R, on P; P1 r1, P2 r2)" -> "(worst R, on P)"; problem names hold no ";"
    line = re.sub(
        r" \(worst (\S+), on (.+?); .*?\)(?=(; see \[[^]]*\]\([^)]*\))?\.$)",
        r" (worst \1, on \2)",
        line,
    )
    if link_prefix is None:
        return re.sub(r"\[([^]]+)\]\([^)]+\)", r"`benchmarks/\1`", line)
    return re.sub(r"\]\((?!https?:)([^)]+)\)", rf"]({link_prefix}\1)", line)


def write_headlines():
    """Gather the goal lines of every results page into `HEADLINE_PAGES`."""
    from benchmarks import _harness as hz

    sections = []
    for name, module_name in BENCHMARKS.items():
        page = HERE / importlib.import_module(module_name).PAGE
        lines = hz.goal_lines(page.read_text()) if page.exists() else []
        if lines:
            sections.append((name, page.name, lines))
    written = []
    for target, prefix in HEADLINE_PAGES.items():
        block = ""
        for name, page, lines in sections:
            where = f"benchmarks/{page}"
            link = f"[{where}]({prefix}{page})" if prefix else f"`{where}`"
            block += f"\n**{name}** ({link}):\n\n"
            block += "\n".join(_short(line, prefix) for line in lines) + "\n"
        written.append(hz.write_page(HERE.parent / target, block, HEADLINE_MARKERS))
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few rounds")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append")
    parser.add_argument(
        "--render", action="store_true", help="re-render the pages from saved JSON"
    )
    parser.add_argument("--one", choices=sorted(BENCHMARKS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    if args.one:
        run_one(args.one, args.quick)
        return 0
    if args.render:
        failed = False
        for name in names:
            try:
                print(f"{name}: wrote {render_one(name, args.quick)}")
            except SystemExit as error:  # the others are still rendered
                print(error, file=sys.stderr)
                failed = True
        if not args.quick:
            print("goals gathered into", ", ".join(map(str, write_headlines())))
        return 1 if failed else 0
    command = "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv)
    env = dict(
        os.environ,
        OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"),
        GEOMHESS_BENCH_COMMAND=command.strip(),
    )
    summary = {}
    for name in names:
        child = [sys.executable, "-m", "benchmarks", "--one", name]
        child += ["--quick"] if args.quick else []
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(child, env=env, cwd=HERE.parent)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            summary[name] = f"FAILED: exit {proc.returncode} ({elapsed:.0f} s)"
            continue
        page = render_one(name, args.quick)
        summary[name] = f"ok ({elapsed:.0f} s), wrote {page}"
    if not args.quick:
        summary["goals"] = "ok, gathered into " + ", ".join(map(str, write_headlines()))
    print()
    for name, line in summary.items():
        print(f"{name}: {line}")
    return 0 if all(line.startswith("ok") for line in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
