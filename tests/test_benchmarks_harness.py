"""The benchmark harness itself: the check before timing, the timer, the tables and
the goal lines, on toy contenders (a few seconds)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import _harness as hz


def _problem():
    x = jnp.arange(1.0, 101.0)
    return hz.Problem("toy", (x,), size=100.0)


def _contenders():
    # `slow` sorts 1000 copies of `x` first (the same sum, far more work), so its
    # median must come out larger.
    fast = jax.jit(lambda x: jnp.sum(x**2))
    slow = jax.jit(lambda x: jnp.sum(jnp.sort(jnp.tile(x, 1000)) ** 2) / 1000)
    return [
        hz.Contender("fast", fast, reference=True),
        hz.Contender("slow", slow),
        hz.Contender("peer", None, unavailable="no .venv-peer"),
    ]


def test_timer_checks_then_times_and_renders():
    problem = _problem()
    results = {"toy": hz.run_problem(problem, _contenders(), rounds=5, round_s=0.005)}
    fast, slow = results["toy"]["fast"], results["toy"]["slow"]
    assert results["toy"]["peer"] == {"not_run": "no .venv-peer"}
    for t in (fast, slow):
        assert t["q25_s"] <= t["steady_s"] <= t["q75_s"]
        assert t["n"] >= 3 and t["first_s"] > 0
    # sum of squares of 1..100 = 338350; both agree to round-off.
    assert slow["diff"] <= 1e-10 * 338350
    assert slow["steady_s"] > fast["steady_s"]
    table = hz.render_table(results, _contenders(), "fast")
    assert "| toy | `fast` |" in table and "| 1.00x |" in table
    assert "not run: no .venv-peer" in table
    met, worst, line = hz.evaluate_goal(hz.Goal("fast", "slow", 1.0), results)
    assert met is True and worst < 1.0 and "met" in line
    met, _, line = hz.evaluate_goal(hz.Goal("slow", "fast", 1.0), results)
    assert met is False and "NOT met" in line
    met, _, line = hz.evaluate_goal(hz.Goal("peer", "fast", 1.0), results)
    assert met is None and "not measured" in line


def test_median_of_known_samples():
    # The median and quartiles come from `np.percentile` of the round samples; a
    # contender that sleeps a fixed time must read about that time.
    import time

    def sleepy(x):
        time.sleep(0.002)
        return x

    problem = hz.Problem("sleep", (np.ones(3),))
    t = hz.run_problem(
        problem, [hz.Contender("s", sleepy, reference=True)], rounds=5, round_s=0.004
    )["s"]
    assert 0.002 <= t["steady_s"] < 0.02


def test_check_refuses_a_wrong_contender():
    wrong = jax.jit(lambda x: jnp.sum(x**2) * (1 + 1e-6))
    contenders = [*_contenders()[:1], hz.Contender("wrong", wrong)]
    with pytest.raises(hz.CheckError, match="toy, wrong: max abs difference"):
        hz.run_problem(_problem(), contenders, rounds=3, round_s=0.001)


def test_check_needs_one_reference():
    c = hz.Contender("a", jax.jit(lambda x: x))
    with pytest.raises(ValueError, match="exactly one available reference"):
        hz.run_problem(_problem(), [c], rounds=3)


def test_json_round_trip_and_plot(tmp_path):
    pytest.importorskip("matplotlib")  # in the `bench` extra, not the core
    payload = {"toy": {"fast": {"steady_s": 1e-5}}}
    hz.save_json("toy", payload, tmp_path)
    assert hz.load_json("toy", tmp_path) == payload
    png = hz.plot_cost(
        tmp_path / "cost.png",
        {"a": [(10, 1e-5), (100, 1e-4)], "b": [(10, None)]},
        xlabel="d",
        title="toy",
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
