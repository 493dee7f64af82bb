"""The benchmark harness itself: the check before timing, the timer, the tables and
the goal lines, on toy contenders (a few seconds)."""

import string

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


def test_timer_checks_then_times_and_renders(capsys):
    problem = _problem()
    results = {"toy": hz.run_problem(problem, _contenders(), rounds=5, round_s=0.005)}
    # One progress line per problem: every contender, its time or why it did not run.
    progress = capsys.readouterr().out.strip()
    assert progress == hz.progress_line("toy", results["toy"]).strip()
    assert progress.startswith("toy: fast ") and "peer not run" in progress
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
    assert met is False and "not met" in line
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


def test_turns_measured_rows_and_a_custom_check():
    # A turn times itself: one that sleeps 2 ms per call must read about 2 ms, in
    # the same rounds as the `fn` contender; a `measured` row is kept as given; the
    # custom check sees the `fn` outputs and its report is kept under CHECK.
    import time

    def sleepy(loops):
        start = time.perf_counter()
        for _ in range(loops):
            time.sleep(0.002)
        return (time.perf_counter() - start) / loops

    seen = {}

    def check(outputs):
        seen.update(outputs)
        return {"sum": float(outputs["fast"])}

    problem = hz.Problem("toy", _problem().args, check=check)
    rows = hz.run_problem(
        problem,
        [
            hz.Contender("fast", jax.jit(lambda x: jnp.sum(x**2))),
            hz.Contender("sleepy", turn=sleepy),
            hz.Contender("worker", measured={"steady_s": 0.5, "n": 1}),
        ],
        rounds=3,
        round_s=0.004,
    )
    assert set(seen) == {"fast"}  # turns and measured rows are not called for it
    assert rows[hz.CHECK] == {"sum": 338350.0}
    assert 0.002 <= rows["sleepy"]["steady_s"] < 0.02
    assert rows["sleepy"]["first_s"] is None and rows["sleepy"]["rounds"] >= 3
    assert rows["worker"]["steady_s"] == 0.5 and rows["worker"]["measured_apart"]
    assert "diff" not in rows["fast"]  # the default check did not run
    table = hz.render_table({"toy": rows}, {"worker": "w"})
    assert "| toy | w | timed by its worker | 500.00 ms (1 call) |" in table


def test_custom_check_failure_names_the_problem():
    def check(outputs):
        raise hz.CheckError("cov_chart vs closed form: off by 1")

    problem = hz.Problem("hvp", _problem().args, check=check)
    contenders = [hz.Contender("fast", jax.jit(lambda x: x))]
    with pytest.raises(hz.CheckError, match="^hvp, cov_chart vs closed form"):
        hz.run_problem(problem, contenders, rounds=3)


def test_contender_needs_exactly_one_way_to_run():
    both = hz.Contender("both", jax.jit(lambda x: x), turn=lambda loops: 1.0)
    with pytest.raises(ValueError, match="exactly one of `fn` and `turn`"):
        hz.run_problem(_problem(), [both], rounds=3)


def test_compile_apart_keeps_compile_time_and_xla_buffers():
    # `x (1000,) -> outer(x, x)`: the output buffer is 1000 * 1000 float64s.
    x = jnp.arange(1000.0)
    problem = hz.Problem("outer", (x,))
    rows = hz.run_problem(
        problem,
        [hz.Contender("outer", lambda x: jnp.outer(x, x), reference=True)],
        rounds=3,
        round_s=0.002,
        compile_apart=True,
    )
    row = rows["outer"]
    assert row["compile_s"] > 0 and row["first_s"] > 0
    assert row["output_bytes"] == 1000 * 1000 * 8
    assert row["argument_bytes"] == 1000 * 8
    table = hz.render_table(rows and {"outer": rows}, {"outer": "outer"}, "outer")
    assert "| compile |" in table and "XLA temp (MiB)" in table


def _fake(steady):
    return {"first_s": 1.0, "steady_s": steady, "q25_s": steady, "q75_s": steady}


def test_goal_terms_problem_filter_and_link():
    results = {
        "a": {"r": _fake(3.0), "adam": _fake(1.0), "geo": _fake(1.0)},
        "b": {"r": _fake(1.0), "adam": _fake(1.0), "geo": _fake(4.0)},
    }
    # a: 3 / (1 + 1) = 1.5; b: 1 / (1 + 4) = 0.2.
    goal = hz.Goal("r", ("+", "adam", "geo"), 1.2, link="profile.md")
    met, worst, line = hz.evaluate_goal(goal, results)
    assert met is False and worst == pytest.approx(1.5)
    assert "not met" in line and "see [profile.md](profile.md)" in line
    met, worst, _ = hz.evaluate_goal(
        hz.Goal("r", ("+", "adam", "geo"), 1.2, problems=("b",)), results
    )
    assert met is True and worst == pytest.approx(0.2)
    # min over two rows, at least: a: min(1, 1) / 3, b: min(1, 4) / 1.
    met, worst, line = hz.evaluate_goal(
        hz.Goal(("min", "adam", "geo"), "r", 1.0, at_most=False), results
    )
    assert met is False and worst == pytest.approx(1 / 3)
    assert "min(`adam`, `geo`)" in line and "see" not in line
    with pytest.raises(ValueError, match="unknown term"):
        hz.term_time(results["a"], ("max", "adam", "geo"))
    bullets = hz.render_goals([goal], results, extra=["memory: met."])
    assert bullets.splitlines()[0] == hz.GOALS_MARKERS[0]
    assert bullets.splitlines()[2] == "- memory: met."
    page = f"# page\n{bullets}\n\n- not a goal\n"
    assert hz.goal_lines(page) == bullets.splitlines()[1:3]


def test_table_ratios_columns_titles_and_not_run():
    results = {
        "p": {
            "r": _fake(2.0),
            "adam": _fake(1.0),
            "geo": _fake(3.0),
            "peer": {"not_run": "no venv"},
        }
    }
    table = hz.render_table(
        results,
        {"r": "radam", "adam": "adam", "peer": "geoopt"},
        ratios=[("*", ("+", "adam", "geo")), ("peer", "*")],
        columns=[("note", lambda p, n, row: f"<{n}>")],
        titles={"p": "Sphere(10)"},
    )
    lines = table.splitlines()
    assert lines[0].endswith("| this / (`adam` + `geo`) | `peer` / this | note |")
    # r: 2 / (1 + 3) = 0.5; the peer did not run, so its ratio is "-".
    assert lines[2].startswith("| Sphere(10) | radam |")
    assert "| 0.50x | - | <r> |" in lines[2]
    assert "| 0.25x | - | <adam> |" in lines[3]
    assert "not run: no venv" in lines[4] and lines[4].endswith("| <peer> |")
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    # `geo` has no label, so no row of its own: header, rule and three rows.
    assert len(lines) == 5


def test_environment_record_and_page_markers(tmp_path):
    env = hz.finish_environment(hz.environment(quick=True))
    for key in ("cpu", "cores", "memory", "devices", "load_after", "total_s"):
        assert key in env
    assert env["versions"]["jax"] == jax.__version__
    lines = hz.render_environment(env, peers={"pymanopt": "no venv", "geo": {"x": 1}})
    assert "quick smoke run: not for comparison" in lines[0]
    assert "- pymanopt: not run: no venv" in lines and "- geo: x 1." in lines
    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- b -->\nold\n<!-- e -->\nnotes\n")
    hz.write_page(page, "new\n", ("<!-- b -->", "<!-- e -->"))
    assert page.read_text() == "intro\n<!-- b -->\nnew\n<!-- e -->\nnotes\n"
    hz.write_page(page, "body\n", header="# H\n")
    assert page.read_text() == "# H\nbody\n"


def test_render_refuses_missing_or_old_payloads(tmp_path, monkeypatch):
    from benchmarks import __main__ as bench_main

    monkeypatch.setattr(hz, "RESULTS_DIR", tmp_path)
    with pytest.raises(SystemExit, match="no saved results"):
        bench_main.render_one("dense", quick=True)
    hz.save_json("dense-quick", {"results": {}})  # saved before the harness
    with pytest.raises(SystemExit, match="saved before the harness"):
        bench_main.render_one("dense", quick=True)


def test_goal_verdicts_are_gathered_short_with_links_rebased(tmp_path, monkeypatch):
    from benchmarks import __main__ as bench_main

    long = (
        "- HVP: `a` / `b` <= 1.15x: not met (worst 1.39x, on MLP (64, 8), batch 2; "
        "MLP (64, 8), batch 2 1.39x, CNN (4, 8) 1.20x); see [prof.md](prof.md)."
    )
    met = "- grad: `a` / `b` <= 2x: met (worst 1.10x, on P (3); P (3) 1.10x)."
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "docs").mkdir()
    goals = "\n".join([hz.GOALS_MARKERS[0], long, met, hz.GOALS_MARKERS[1]])
    (tmp_path / "benchmarks" / "README.md").write_text(f"# dense\n{goals}\n")
    for target in ("README.md", "docs/benchmarks.md"):
        (tmp_path / target).write_text(
            "top\n{}\n{}\nbottom\n".format(*bench_main.HEADLINE_MARKERS)
        )
    monkeypatch.setattr(bench_main, "HERE", tmp_path / "benchmarks")
    monkeypatch.setattr(bench_main, "BENCHMARKS", {"dense": "benchmarks.bench_dense"})
    bench_main.write_headlines()
    readme = (tmp_path / "README.md").read_text()
    assert "**dense** ([benchmarks/README.md](benchmarks/README.md))" in readme
    assert (
        "- HVP: `a` / `b` <= 1.15x: not met (worst 1.39x, on MLP (64, 8), batch 2); "
        "see [prof.md](benchmarks/prof.md)." in readme
    )
    assert "- grad: `a` / `b` <= 2x: met (worst 1.10x, on P (3))." in readme
    assert readme.startswith("top\n") and readme.endswith("bottom\n")
    docs = (tmp_path / "docs" / "benchmarks.md").read_text()
    assert "see `benchmarks/prof.md`." in docs and "](" not in docs


def test_profile_pages_share_one_header_table_and_writer(tmp_path, capsys):
    header = hz.profile_header("profile_toy")
    assert (
        header.startswith("Measured ")
        and "`python -m benchmarks.profile_toy`" in header
    )
    assert f"jax {jax.__version__}" in header
    rows = hz.timing_table({"base": 2.0, "twice": 4.0, "half": 1.0}, "op", str, "base")
    assert rows[0] == "| op | time | / base |"
    assert rows[2:] == [
        "| base | 2.0 | 1.00x |",
        "| twice | 4.0 | 2.00x |",
        "| half | 1.0 | 0.50x |",
    ]
    out = tmp_path / "p.md"
    hz.write_report(["# t", *rows], out)
    assert out.read_text() == "\n".join(["# t", *rows]) + "\n"
    assert "| twice | 4.0 | 2.00x |" in capsys.readouterr().out


def test_page_templates_fill_every_slot_and_only_those(tmp_path, monkeypatch):
    monkeypatch.setattr(hz, "PAGES", tmp_path)
    (tmp_path / "toy.md").write_text("# ${title}\n\n${table}\n\n${n} rounds.\n")
    page = hz.fill_page("toy", title="T", table=["| a |", "| 1 |"], n=21)
    assert page == "# T\n\n| a |\n| 1 |\n\n21 rounds.\n"
    with pytest.raises(KeyError, match=r"slots without a value \['n'\]"):
        hz.fill_page("toy", title="T", table="")
    with pytest.raises(KeyError, match=r"values without a slot \['extra'\]"):
        hz.fill_page("toy", title="T", table="", n=1, extra=2)


@pytest.mark.parametrize("name", ["dense", "network", "optim", "curvature"])
def test_the_shipped_page_templates_name_only_valid_slots(name):
    # `$` is only ever a slot here: a stray one would raise in the middle of a run.
    template = string.Template((hz.PAGES / f"{name}.md").read_text())
    assert template.is_valid() and len(template.get_identifiers()) > 5
