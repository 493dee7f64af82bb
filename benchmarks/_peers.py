"""Peers in their own environments, driven from the benchmark's process.

A peer library (pymanopt, geoopt, geomstats) lives in a venv of its own, made by a
`setup_*.sh` script, and never imports geomhess. `worker` starts a peer's worker
script there as a small server: one JSON command per line on its stdin, one JSON
answer per line on its stdout, so that the peer takes its turns in the same timing
rounds as geomhess (`Contender(turn=...)`). Where the venv is missing, or the
worker cannot even start, the benchmark gets the reason instead, for its rows to
read "not run: reason" (`missing`); a worker that fails later stops the run.
"""

import contextlib
import json
import pathlib
import subprocess
import sys

import numpy as np

from benchmarks import _harness as hz


def missing(python, setup):
    """The reason a peer's rows do not run: its venv's `python` is not there."""
    where = python.relative_to(hz.ROOT) if python.is_relative_to(hz.ROOT) else python
    return f"{where} not found (run `bash benchmarks/{setup}`)"


def save_problems(path, groups, keys):
    """One `.npz` file for the peer: `{group}_names` (sorted) for each group of
    problems (`{group: {name: problem}}`), and `{name}/{key}` for each of `keys`
    a problem has."""
    arrays = {f"{group}_names": np.array(sorted(p)) for group, p in groups.items()}
    for problems in groups.values():
        for name, problem in problems.items():
            for key in keys:
                if key in problem:
                    arrays[f"{name}/{key}"] = np.asarray(problem[key])
    np.savez(path, **arrays)


class Worker:
    """A worker script in a peer's venv: `call(op=..., ...)` sends one command and
    returns its answer; an answer with an `error`, or a dead process, raises
    `SystemExit`. `script` is a path, or the arguments after `python` (e.g.
    `["-m", "benchmarks.bench_checks", "--worker"]`, run from the repository root)."""

    def __init__(self, python, script, log, env, first):
        script = [str(script)] if isinstance(script, str | pathlib.Path) else script
        self.process = subprocess.Popen(
            [str(python), *script],
            cwd=hz.ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
        try:
            self.call(**first)
        except SystemExit:
            self.process.kill()
            self.process.wait()
            raise

    def call(self, **command):
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(
                f"the peer process died on {command['op']}; see its log (stderr)."
            )
        answer = json.loads(line)
        if "error" in answer:
            raise SystemExit(f"peer {command['op']} failed: {answer['error']}")
        return answer

    def close(self):
        try:
            self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass
        self.process.wait(timeout=30)


@contextlib.contextmanager
def worker(python, script, *, setup, directory, env, first):
    """`(Worker, None)` for the body of a `with`, or `(None, reason)` where the venv
    is missing or the worker fails on its `first` command (e.g. a half-installed
    venv that cannot load the problems). The worker's stderr goes to a log in
    `directory`, printed if the body raises; it is sent `quit` at the end."""
    log_path = pathlib.Path(directory) / "peers.log"
    with open(log_path, "w") as log:
        peer, why_not = None, missing(python, setup)
        if python.exists():
            try:
                peer = Worker(python, script, log, env, first)
            except SystemExit:
                log.flush()
                tail = log_path.read_text().strip().splitlines()[-1:]
                why_not = "the peer process failed to start: " + " ".join(tail)
        try:
            yield peer, (why_not if peer is None else None)
        except BaseException:
            if peer is not None:
                peer.process.kill()
                print(log_path.read_text(), file=sys.stderr)
            raise
        if peer is not None:
            peer.close()
