"""The regression check's rules (benchmarks/check.py): known answers, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from benchmarks import check
from benchmarks.cli import main


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
    assert check.welch_p(ref, ref[:3], "two-sided") > 0.1


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


def test_stored_reference_is_complete_and_says_why():
    ref = json.loads(check.REFERENCE_PATH.read_text())
    for key in ("why", "date", "commit", "machine", "seeds", "scores", "speed"):
        assert ref[key], key
    import algorithms

    assert set(ref["speed"]) == set(algorithms.names())
    scores = pd.DataFrame(ref["scores"])
    assert set(scores["algo"]) == set(algorithms.names()) and len(set(scores["seed"])) >= 5


def test_update_reference_needs_a_reason(tmp_path, capsys):
    assert main(["check", "--update-reference", "--out", str(tmp_path)]) == 2
    assert "--why" in capsys.readouterr().err
