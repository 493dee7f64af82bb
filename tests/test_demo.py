"""The main demo runs, prints its tables and finds the invariants equal across charts."""

import io

import jax.numpy as jnp

from geomhess import _demo


def test_demo_prints_the_tables_and_invariants_agree():
    out = io.StringIO()
    worst = _demo.run(jnp.float64, newton_steps=2, out=out)
    text = out.getvalue()
    assert worst < 1e-9
    for expected in ("calculus Hessian, psi", "shape operator, psi", "polar", "Dinh"):
        assert expected in text
    # Each example reports a large calculus discrepancy and a tiny invariant one.
    lines = [line for line in text.splitlines() if line.startswith("cross-chart")]
    assert len(lines) == 3
    for line in lines:
        calculus = float(line.split("calculus ")[1].split(" ")[0])
        shape = float(line.split("shape operator ")[1].split(" ")[0])
        assert calculus > 1e-2 and shape < 1e-12
