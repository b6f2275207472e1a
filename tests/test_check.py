"""The regression check's rules (benchmarks/commands/check.py): known answers, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from benchmarks.commands import check
from benchmarks.commands.cli import main


def test_score_rule_fails_only_on_a_clear_and_large_drop():
    ref = np.array([40.0, 42, 44, 46, 48, 50])
    assert check.verdict("score", ref, np.array([10.0, 11, 12]))[0] == "fail"  # far below, 33 points
    assert check.verdict("score", ref, np.array([42.0, 45, 49]))[0] == "ok"
    assert check.verdict("score", ref, np.array([20.0, 35, 50]))[0] == "ok"  # lower, but not beyond noise
    # clearly below but by less than MIN_EFFECT points: not a regression worth failing CI for
    assert check.verdict("score", ref, np.array([40.5, 40.6, 40.7]))[0] == "ok"
    assert check.verdict("score", ref, np.array([80.0, 81, 82]))[0] == "moved up"
    assert check.verdict("score", ref, np.array([]))[0] == "fail"  # nothing finished is not a pass
    assert check.verdict("score", np.zeros(6), np.zeros(3))[0] == "ok"  # no spread anywhere, equal


def test_q_rule_is_two_sided_and_relative():
    ref = np.array([-10.0, -10.5, -11, -9.5, -10.2, -9.8])
    assert check.verdict("Q", ref, np.array([-10.1, -9.9, -10.4]))[0] == "ok"
    assert check.verdict("Q", ref, np.array([-20.0, -21, -19.5]))[0] == "fail"  # overestimates... or under
    assert check.verdict("Q", ref, np.array([-5.0, -5.2, -4.9]))[0] == "fail"
    assert check.verdict("Q", ref, np.array([-9.4, -9.45, -9.5]))[0] == "ok"  # significant but within 10%
    assert check.t_test_p(ref, ref[:3], "two-sided") > 0.1


def test_compare_scores_and_speed_tables():
    ref = pd.DataFrame({"algo": ["a"] * 6 + ["b"] * 6, "task": ["t"] * 12,
                        "run_mean": [50.0, 51, 52, 53, 54, 55] * 2, "q_final": [np.nan] * 6 + [5.0] * 6})
    now = pd.DataFrame({"algo": ["a"] * 3 + ["b"] * 3 + ["new"], "task": ["t"] * 7,
                        "run_mean": [1.0, 2, 3, 50, 52, 54, 0], "q_final": [np.nan] * 3 + [5.0] * 3 + [1.0]})
    table = check.compare_scores(ref, now)
    assert list(zip(table["algo"], table["metric"], table["verdict"], strict=True)) == [
        ("a", "run_mean", "fail"), ("b", "run_mean", "ok"), ("b", "q_final", "ok"), ("new", "-", "no reference")]
    speed = check.compare_speed({"a": 0.5, "b": 0.5}, {"a": 0.44, "b": 0.4, "c": 0.3})
    assert list(speed["verdict"]) == ["ok", "fail", "no reference"]  # 0.44 >= 0.85 x 0.5; 0.4 is not


def test_speed_is_remeasured_below_the_tolerance_and_the_best_counts(monkeypatch):
    """A burst of load passes once a re-measurement is back above 85% of the reference; a real slowdown is
    measured 1 + SPEED_RETRIES times and still fails; an algorithm at its reference is measured once."""
    import benchmarks.commands.speed

    series = {"burst": [0.28, 0.28, 0.37], "slow": [0.2] * 10, "fine": [0.34]}
    calls: dict[str, list[float]] = {}

    def fake_measure(algo, seconds, **_):
        calls.setdefault(algo, []).append(seconds)
        return {"updates_per_s": 1.0, "efficiency": series[algo][len(calls[algo]) - 1]}

    monkeypatch.setattr(benchmarks.commands.speed, "measure", fake_measure)
    ref = {"burst": 0.34, "slow": 0.34, "fine": 0.34}
    got = check.speed_fractions(["burst", "slow", "fine"], seconds=1.0, reference=ref)
    assert got == {"burst": 0.37, "slow": 0.2, "fine": 0.34}
    assert calls["burst"] == [1.0, 2.0, 2.0] and calls["fine"] == [1.0]
    assert calls["slow"] == [1.0] + [2.0] * check.SPEED_RETRIES
    verdicts = check.compare_speed(ref, got).set_index("algo")["verdict"].to_dict()
    assert verdicts == {"burst": "ok", "slow": "fail", "fine": "ok"}


def test_stored_reference_is_complete_and_says_why():
    ref = json.loads(check.REFERENCE_PATH.read_text())
    for key in ("why", "date", "commit", "machine", "seeds", "scores", "speed"):
        assert ref[key], key
    import algorithms

    assert set(ref["speed"]) == set(algorithms.names())
    scores = pd.DataFrame(ref["scores"])
    assert set(scores["algo"]) == set(algorithms.names()) and len(set(scores["seed"])) >= 5
    diag = [c for c in scores.columns if c.startswith(check.DIAG_PREFIX)]
    for algo, g in scores.groupby("algo"):  # every algorithm has diagnostics of both phases
        logged = [c for c in diag if g[c].notna().any()]
        assert any(":offline:" in c for c in logged) and any(":online:" in c for c in logged), algo


def test_update_reference_needs_a_reason(tmp_path, capsys):
    assert main(["check", "--update-reference", "--out", str(tmp_path)]) == 2
    assert "--why" in capsys.readouterr().err


def test_diagnostics_are_phase_means_of_every_logged_metric():
    train = pd.DataFrame({"run_id": ["r1"] * 5 + ["r2"] * 2,
                          "phase": ["offline", "offline", "online", "online", "online", "offline", "offline"],
                          "metric": ["alpha", "alpha", "alpha", "q_estimate", "alpha", "bc_loss", "bc_loss"],
                          "value": [1.0, 3.0, 10.0, -5.0, 20.0, 0.5, 1.5]})
    d = check.diagnostics(train)
    assert list(d.columns) == ["diag:offline:alpha", "diag:offline:bc_loss", "diag:online:alpha"]  # no Q estimate
    assert d.loc["r1"].tolist()[0] == 2.0 and d.loc["r1"].tolist()[2] == 15.0 and np.isnan(d.loc["r1"].tolist()[1])
    assert d.loc["r2", "diag:offline:bc_loss"] == 1.0 and np.isnan(d.loc["r2", "diag:online:alpha"])


def test_a_moved_diagnostic_fails_and_noise_or_a_small_shift_does_not():
    ref = np.array([1.00, 1.02, 0.98, 1.01, 0.99, 1.00])
    assert check.verdict("diagnostic", ref, np.array([1.5, 1.52, 1.49]))[0] == "fail"   # +50%, far outside noise
    assert check.verdict("diagnostic", ref, np.array([-1.0, -1.02, -0.99]))[0] == "fail"  # a sign flip
    assert check.verdict("diagnostic", ref, np.array([1.05, 1.06, 1.05]))[0] == "ok"    # significant, but +5%
    assert check.verdict("diagnostic", ref, np.array([0.5, 1.6, 0.9]))[0] == "ok"       # -> noise, not significant
    assert check.verdict("diagnostic", ref, np.array([]))[0] == "fail"                   # a metric no longer logged
    # 3 seeds: Welch's test has ~2 degrees of freedom and misses a clear shift; the pooled test does not
    now = np.array([1.30, 1.33, 1.27])
    assert check.t_test_p(ref, now, "two-sided") > 1e-4 > check.t_test_p(ref, now, "two-sided", pooled=True)
    assert check.verdict("diagnostic", ref, now)[0] == "fail"
    # a loss, positive everywhere, tested on the log scale: a 10x drop with a noisy reference still fails
    loss_ref = np.array([1.2, 2.5, 1.0, 2.9, 1.4, 1.7])
    assert check.verdict("diagnostic", loss_ref, np.array([0.15, 0.14, 0.15]))[0] == "fail"
    assert check.t_test_p(loss_ref, np.array([0.15, 0.14, 0.15]), "two-sided", pooled=True) > 1e-4  # raw scale
    # and in the table: one column per diagnostic, skipped where an algorithm never logs it
    base = {"algo": ["a"] * 6 + ["b"] * 6, "task": ["t"] * 12, "run_mean": [50.0] * 12, "q_final": [1.0] * 12}
    reference = pd.DataFrame({**base, "diag:online:alpha": list(ref) + [np.nan] * 6})
    now = pd.DataFrame({k: v[:3] + v[6:9] for k, v in base.items()}
                       | {"diag:online:alpha": [1.5, 1.52, 1.49] + [np.nan] * 3})
    table = check.compare_scores(reference, now)
    diag = table[table["test"] == "diagnostic"]
    assert list(zip(diag["algo"], diag["verdict"], strict=True)) == [("a", "fail")]


def test_the_exit_code_counts_failed_tests_not_the_summary_text():
    ok = pd.DataFrame({"verdict": ["ok", "moved up"]})
    passed = check.Verdict(ok, pd.DataFrame({"verdict": ["ok"]}), (True, ""))
    assert (passed.failures, passed.exit_code) == (0, 0)
    failed = check.Verdict(pd.DataFrame({"verdict": ["fail", "ok"]}), pd.DataFrame({"verdict": ["fail"]}), (False, ""))
    assert (failed.failures, failed.exit_code) == (3, 1)


def test_redo_replaces_only_the_named_algorithms_entries_and_records_why(tmp_path):
    import json
    from pathlib import Path

    import pandas as pd
    import pytest

    from algorithms.base import UserError
    from benchmarks.commands.check import add_to_reference

    path = Path(tmp_path, "ref.json")
    rows = [{"algo": a, "task": "t", "seed": s, "run_mean": v}
            for a, v in (("cql", 1.0), ("awac", 2.0)) for s in (0, 1)]
    path.write_text(json.dumps({"seeds": [0, 1], "scores": rows, "speed": {"cql": 0.5, "awac": 0.7}}))
    new = pd.DataFrame([{"algo": "cql", "task": "t", "seed": s, "run_mean": 9.0} for s in (0, 1)])
    with pytest.raises(UserError, match="already in the reference"):
        add_to_reference(path, new, {"cql": 0.6}, "why", [0, 1])
    add_to_reference(path, new, {"cql": 0.6}, "the goal protocol", [0, 1], replace=True)
    ref = json.loads(path.read_text())
    assert sorted((r["algo"], r["run_mean"]) for r in ref["scores"]) == [("awac", 2.0)] * 2 + [("cql", 9.0)] * 2
    assert ref["speed"] == {"cql": 0.6, "awac": 0.7}
    assert ref["additions"][-1]["algos"] == ["cql"] and ref["additions"][-1]["replaced"] is True
    with pytest.raises(UserError, match="not in the reference"):
        add_to_reference(path, new.assign(algo="bc"), {"bc": 0.6}, "why", [0, 1], replace=True)
