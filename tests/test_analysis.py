"""Tests of the analysis package: metric known answers, statistics, loading/validation, figures, tables.

The synthetic results set is written here, file by file, following the harness contract, so the tests
also document that contract. It deliberately has ragged data: a missing seed, an algorithm absent from a
task, an unfinished run with only offline rows, a run with a different evaluation interval, and tasks
scored by normalized score, success rate and raw return.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import SchemaError, load_results
from analysis.grid import curves_on_grid, locf
from analysis.metrics import (
    normalized_auc,
    offline_final,
    online_final,
    recovery_steps,
    run_metrics,
    steps_to_threshold,
    transition_drop,
    transition_window,
)
from analysis.report import make_report
from analysis.stats import iqm, iqm_ci, mean_ci, poi_point, probability_of_improvement
from analysis.style import algo_palette, format_steps
from analysis.tables import offline_online_cells, offline_online_latex
from benchmarks.run.results import EVAL_COLUMNS, TRAIN_COLUMNS  # noqa: E402 - the harness's contract, written once

OFFLINE_STEPS, ONLINE_STEPS, EVAL_EVERY = 10_000, 20_000, 2_000

# ---------------------------------------------------------------------------------------------------------
# Synthetic results (the harness contract)

# Shape of each algorithm's score curve (0-100): offline level, dip right after the switch, final level.
PROFILES = {
    "awac": (60.0, 3.0, 90.0),
    "sacfd": (35.0, 25.0, 75.0),
    "bear": (55.0, 40.0, 45.0),
    "bc": (45.0, 5.0, 45.0),
}
LOGLIK = {"awac": (-6.0, -7.0), "sacfd": (-40.0, -45.0), "bear": (-8.0, -300.0), "bc": (-3.0, -3.0)}


def score_curve(algo: str, seed: int, offline_frac: np.ndarray, env_frac: np.ndarray) -> tuple:
    """Offline scores at fractions of the offline budget, online scores at fractions of the online one."""
    rng = np.random.default_rng(zlib.crc32(f"{algo}-{seed}".encode()))
    start, dip, final = PROFILES[algo]
    start += 3 * seed
    offline = 5 + (start - 5) * np.sqrt(offline_frac) + rng.normal(0, 1.5, offline_frac.size)
    offline[-1] = start
    recover = np.clip(env_frac / 0.4, 0, 1)
    online = (
        start - dip * np.exp(-env_frac / 0.1) + (final - start) * recover + rng.normal(0, 2, env_frac.size)
    )
    return np.clip(offline, 0, 100), np.clip(online, 0, 100)


def write_run(root: Path, run_id: str, config: dict, evals: pd.DataFrame, train: pd.DataFrame, done: bool):
    run_dir = root / "runs" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "meta.json").write_text(json.dumps({"git": "abc123", "host": "test"}))
    evals.to_csv(run_dir / "evals.csv", index=False)
    train.to_csv(run_dir / "train.csv", index=False)
    if done:
        (run_dir / "DONE").write_text("")


def make_run(
    root: Path, algo: str, task: str, seed: int, *, kind: str, eval_every: int = EVAL_EVERY,
    offline_only: bool = False,
) -> None:  # fmt: skip
    """One run; ``kind`` says which score columns the task defines: normalized, success or return."""
    run_id = f"{algo}-{task}-s{seed}"
    grads = np.arange(0, OFFLINE_STEPS + 1, eval_every)
    envs = np.arange(eval_every, ONLINE_STEPS + 1, eval_every)
    if offline_only:
        envs = envs[:0]
    off, on = score_curve(algo, seed, grads / OFFLINE_STEPS, envs / ONLINE_STEPS)
    score = np.concatenate([off, on])
    n_off = len(grads)
    evals = pd.DataFrame(
        {
            "run_id": run_id, "algo": algo, "task": task, "seed": seed,
            "phase": ["offline"] * n_off + ["online"] * len(envs),
            "grad_step": np.concatenate([grads, OFFLINE_STEPS + envs]),
            "env_step": np.concatenate([np.zeros(n_off, dtype=int), envs]),
            "return_mean": 30 * score - 500, "return_std": 10.0,
            "normalized_score": score if kind == "normalized" else np.nan,
            "success_rate": score / 100 if kind == "success" else np.nan,
            "success_final": score / 100 if kind == "success" else np.nan,
            "wall_s": np.linspace(0, 60, len(score)),
        },
        columns=list(EVAL_COLUMNS),
    )  # fmt: skip
    ll_off, ll_on = LOGLIK[algo]
    has_q = algo != "bc"
    q_growth = 3.0 if algo == "sacfd" else 0.2  # SACfD's bootstrap error: Q drifts away from the MC return
    rows = []
    for i, (phase, g) in enumerate(zip(evals["phase"], evals["grad_step"], strict=True)):
        frac = g / (OFFLINE_STEPS + ONLINE_STEPS)
        ll = ll_off if phase == "offline" else ll_off + (ll_on - ll_off) * min(1, (g - OFFLINE_STEPS) / 8000)
        q = 40 * (1 + q_growth * frac) ** (3 if algo == "sacfd" else 1) if has_q else np.nan
        rows += [
            (run_id, g, phase, "offline_loglik", ll + 0.3 * seed),
            (run_id, g, phase, "q_estimate", q),
            (run_id, g, phase, "mc_return", 40.0 + seed if has_q else np.nan),
            (run_id, g, phase, "actor_loss", 1.0 / (1 + i)),
        ]
    train = pd.DataFrame(rows, columns=list(TRAIN_COLUMNS))
    config = {
        "algo": algo, "task": task, "seed": seed, "offline_steps": OFFLINE_STEPS,
        "online_steps": ONLINE_STEPS, "eval_every": eval_every, "batch_size": 256,
    }  # fmt: skip
    write_run(root, run_id, config, evals, train, done=not offline_only)


def write_synthetic_results(root: Path) -> Path:
    """~30 runs over three tasks with the ragged cases listed in the module docstring."""
    tasks = {"door-human": "normalized", "pen-binary": "success", "cheetah-raw": "return"}
    for task, kind in tasks.items():
        for algo in PROFILES:
            if algo == "bear" and task == "pen-binary":
                continue  # algorithm absent from one task
            for seed in range(3):
                if algo == "awac" and task == "door-human" and seed == 2:
                    continue  # missing seed
                if algo == "sacfd" and task == "door-human" and seed == 1:
                    make_run(root, algo, task, seed, kind=kind, eval_every=2_500)  # other evaluation grid
                    continue
                offline_only = algo == "bc" and task == "pen-binary" and seed == 2  # unfinished run
                make_run(root, algo, task, seed, kind=kind, offline_only=offline_only)
    return root


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    return write_synthetic_results(tmp_path_factory.mktemp("sweep"))


# ---------------------------------------------------------------------------------------------------------
# Metrics: hand-computed known answers
#   offline: grad steps [0, 500, 1000], scores [10, 30, 50], budget 1000
#   online:  env steps [100, 200, 300, 400], scores [35, 45, 55, 70]

GRADS, OFF = [0, 500, 1000], [10.0, 30.0, 50.0]
ENVS, ON = [100, 200, 300, 400], [35.0, 45.0, 55.0, 70.0]


def test_offline_and_online_final_are_last_not_best():
    assert offline_final(GRADS, OFF, offline_steps=1000) == 50.0  # last offline row, at the budget
    assert offline_final([1000, 0, 500], [50.0, 10.0, 30.0]) == 50.0  # order of rows does not matter
    assert math.isnan(offline_final([0, 500], [10.0, 30.0], offline_steps=1000))  # switch never reached
    assert online_final(ENVS, ON) == 70.0
    assert online_final([100, 200], [90.0, 20.0]) == 20.0  # the last evaluation, not the best (90)
    assert math.isnan(online_final([], []))


def test_transition_drop_absolute_and_relative():
    drop = transition_drop(50.0, ENVS, ON, window=200)
    # min over env_step <= 200 is min(35, 45) = 35; 50 - 35 = 15; 15 / 50 = 0.3
    assert drop.absolute == pytest.approx(15.0)
    assert drop.relative == pytest.approx(0.3)
    # improvement right away: min over window 100 is 60; 50 - 60 = -10, relative -10/50 = -0.2
    up = transition_drop(50.0, [100, 200], [60.0, 65.0], window=100)
    assert (up.absolute, up.relative) == (pytest.approx(-10.0), pytest.approx(-0.2))
    assert math.isnan(transition_drop(50.0, [], [], window=200).absolute)  # no online rows
    assert math.isnan(transition_drop(0.0, ENVS, ON, window=200).relative)  # relative to 0 is undefined
    assert transition_window(online_steps=20_000, eval_every=2_000) == 4000.0  # 0.2 * 20000 = 4000 >= 2000
    assert transition_window(online_steps=5_000, eval_every=2_000) == 2000.0  # 0.2 * 5000 = 1000 -> 2000


def test_recovery_steps():
    rec = recovery_steps(50.0, ENVS, ON)
    # first below 50: env 100 (35); first at or above 50 after it: env 300 (55)
    assert (rec.steps, rec.recovered, rec.dropped) == (300.0, True, True)
    # never below 50 -> 0 steps, no drop
    assert recovery_steps(50.0, [100, 200], [50.0, 60.0]).steps == 0.0
    never = recovery_steps(50.0, [100, 200], [20.0, 49.0])  # dips and stays below within the budget
    assert math.isinf(never.steps) and not never.recovered and never.dropped
    # dip after a good first evaluation: 55 at 100, 40 at 200 (dip), 60 at 300 -> 300
    assert recovery_steps(50.0, [100, 200, 300], [55.0, 40.0, 60.0]).steps == 300.0
    assert math.isnan(recovery_steps(50.0, [], []).steps)  # only offline rows
    assert math.isnan(recovery_steps(float("nan"), ENVS, ON).steps)


def test_normalized_auc():
    # trapezoids through (0, 50), (100, 35), (200, 45), (300, 55), (400, 70):
    # (50+35)/2*100 + (35+45)/2*100 + (45+55)/2*100 + (55+70)/2*100 = 4250 + 4000 + 5000 + 6250 = 19500
    # 19500 / 400 = 48.75
    assert normalized_auc(ENVS, ON, budget=400, start_score=50.0) == pytest.approx(48.75)
    # budget 300 uses the first three segments: (4250 + 4000 + 5000) / 300 = 44.1667
    assert normalized_auc(ENVS, ON, budget=300, start_score=50.0) == pytest.approx(13250 / 300)
    # budget 250 lies between evaluations: the score at 250 is interpolated, (45 + 55) / 2 = 50;
    # 4250 + 4000 + (45 + 50) / 2 * 50 = 10625; 10625 / 250 = 42.5
    assert normalized_auc(ENVS, ON, budget=250, start_score=50.0) == pytest.approx(42.5)
    # without a start score: from env 100 to 400, (4000 + 5000 + 6250) / 300 = 50.8333
    assert normalized_auc(ENVS, ON, budget=400) == pytest.approx(15250 / 300)
    assert math.isnan(normalized_auc(ENVS, ON, budget=800, start_score=50.0))  # run ended before the budget
    assert normalized_auc([100, 200], [80.0, 80.0], budget=200, start_score=80.0) == pytest.approx(80.0)


def test_steps_to_threshold():
    assert steps_to_threshold(ENVS, ON, 60.0, start_score=50.0) == 400.0  # 35, 45, 55 < 60 <= 70
    assert steps_to_threshold(ENVS, ON, 55.0) == 300.0  # ">=": 55 counts at 300
    assert steps_to_threshold(ENVS, ON, 50.0, start_score=50.0) == 0.0  # already there at the switch
    assert math.isinf(steps_to_threshold(ENVS, ON, 80.0, start_score=50.0))  # never
    assert math.isnan(steps_to_threshold(ENVS, ON, float("nan")))


# ---------------------------------------------------------------------------------------------------------
# Grid and statistics


def test_locf_onto_union_grid():
    # carried forward between evaluations, NaN before the first and after the last (no extrapolation)
    out = locf([0, 10], [1.0, 2.0], [-5, 0, 5, 10, 15])
    np.testing.assert_array_equal(out, [np.nan, 1.0, 1.0, 2.0, np.nan])
    df = pd.DataFrame(
        {"run_id": ["a", "a", "a", "b", "b"], "t": [0, 2, 4, 0, 3], "v": [1.0, 2.0, 3.0, 10.0, 20.0]}
    )
    wide = curves_on_grid(df, "v")
    assert list(wide.columns) == [0.0, 2.0, 3.0, 4.0]  # union of {0, 2, 4} and {0, 3}
    np.testing.assert_array_equal(wide.loc["a"], [1.0, 2.0, 2.0, 3.0])  # a at t=3 carries t=2's value
    np.testing.assert_array_equal(wide.loc["b"], [10.0, 10.0, 20.0, np.nan])  # b ended at t=3


def test_iqm_known_answers():
    # sorted 1..7, 100: trim int(0.25 * 8) = 2 from each end -> mean(3, 4, 5, 6) = 4.5
    assert iqm([1, 2, 3, 4, 100, 5, 6, 7]) == pytest.approx(4.5)
    # n = 4: trim 1 each end -> mean(2, 3) = 2.5
    assert iqm([4, 1, 3, 2]) == pytest.approx(2.5)
    # pooled over tasks {a: 1..4, b: 10}: sorted 1, 2, 3, 4, 10, trim 1 each end -> mean(2, 3, 4) = 3
    est = iqm_ci({"a": [1, 2, 3, 4], "b": [10]})
    assert est.point == pytest.approx(3.0) and est.n == 5
    assert est.low <= est.point <= est.high
    # every resample of {1, 2, 3, 4} plus the fixed 10 gives an IQM between 1 (all 1s) and 4 (all 4s)
    assert 1.0 <= est.low and est.high <= 4.0
    assert iqm_ci({"a": [1, 2, 3, 4], "b": [10]}) == est  # fixed seed: reproducible


def test_mean_ci_single_seed_has_no_interval():
    single = mean_ci([5.0])
    assert single.point == 5.0 and math.isnan(single.low) and math.isnan(single.high)
    est = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert est.point == 2.5 and 1.0 <= est.low < 2.5 < est.high <= 4.0


def test_probability_of_improvement():
    # pairs of x=[1, 3] vs y=[2, 2]: 1>2 no (x2), 3>2 yes (x2) -> 2/4 = 0.5; ties count one half
    assert poi_point([1, 3], [2, 2]) == 0.5
    assert poi_point([2], [2]) == 0.5
    # task a: 0.5 (above); task b: x=[5, 6] always beats y=[1, 2] -> 1.0; mean over tasks = 0.75
    est = probability_of_improvement({"a": [1, 3], "b": [5, 6]}, {"a": [2, 2], "b": [1, 2], "c": [0]})
    assert est.point == pytest.approx(0.75) and est.n == 2  # task c is not shared
    assert 0.0 <= est.low <= 0.75 <= est.high <= 1.0


# ---------------------------------------------------------------------------------------------------------
# Loading


def test_load_results_tidy_and_ragged(results_dir):
    res = load_results(results_dir)
    assert len(res.runs) == 3 * 4 * 3 - 3 - 1  # 3 tasks x 4 algos x 3 seeds, minus bear on pen, one awac seed
    assert res.score_sources == {
        "cheetah-raw": "return_mean", "door-human": "normalized_score", "pen-binary": "success_rate"
    }  # fmt: skip
    pen = res.evals[res.evals["task"] == "pen-binary"]
    np.testing.assert_allclose(pen["score"], pen["success_rate"] * 100)
    unfinished = res.runs.set_index("run_id").loc["bc-pen-binary-s2"]
    assert not unfinished["complete"] and unfinished["n_online_evals"] == 0
    assert not res.evals.loc[res.evals["run_id"] == "bc-pen-binary-s2", "complete"].any()
    # the signed time axis: switch at 0, offline negative, online = env steps
    awac = res.evals[res.evals["run_id"] == "awac-door-human-s0"]
    assert awac["t"].min() == -OFFLINE_STEPS and awac["t"].max() == ONLINE_STEPS
    assert (awac.loc[awac["phase"] == "offline", "t"] <= 0).all()
    # online training rows are mapped to env steps through the evaluations
    train = res.train[(res.train["run_id"] == "awac-door-human-s0") & (res.train["metric"] == "q_estimate")]
    assert train["t"].max() == ONLINE_STEPS


def test_run_metrics_on_ragged_results(results_dir):
    res = load_results(results_dir)
    m = run_metrics(res.evals, res.runs).set_index("run_id")
    unfinished = m.loc["bc-pen-binary-s2"]
    assert not np.isnan(unfinished["offline_final"]) and np.isnan(unfinished["online_final"])
    assert np.isnan(unfinished["auc"]) and np.isnan(unfinished["recovery_steps"])
    ragged = m.loc["sacfd-door-human-s1"]  # evaluated every 2500 env steps: 20000 is still the last point
    assert np.isfinite(ragged["online_final"]) and np.isfinite(ragged["auc"])


# ---------------------------------------------------------------------------------------------------------
# Schema validation: clear one-line errors naming the file and column


def _copy_run(results_dir: Path, tmp_path: Path, run_id: str = "awac-door-human-s0") -> Path:
    import shutil

    target = tmp_path / "sweep"
    shutil.copytree(results_dir / "runs" / run_id, target / "runs" / run_id)
    return target / "runs" / run_id


def test_missing_column_is_named(results_dir, tmp_path):
    run = _copy_run(results_dir, tmp_path)
    evals = pd.read_csv(run / "evals.csv").drop(columns=["env_step"])
    evals.to_csv(run / "evals.csv", index=False)
    with pytest.raises(SchemaError, match=r"evals\.csv: missing column 'env_step'") as err:
        load_results(tmp_path / "sweep")
    assert "\n" not in str(err.value) and isinstance(err.value, ValueError)


def test_missing_file_is_named(results_dir, tmp_path):
    run = _copy_run(results_dir, tmp_path)
    (run / "train.csv").unlink()
    with pytest.raises(SchemaError, match=r"awac-door-human-s0/train\.csv: missing file"):
        load_results(tmp_path / "sweep")


def test_missing_config_key_and_runs_dir(results_dir, tmp_path):
    run = _copy_run(results_dir, tmp_path)
    config = json.loads((run / "config.json").read_text())
    del config["offline_steps"]
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(SchemaError, match=r"config\.json: missing key 'offline_steps'"):
        load_results(tmp_path / "sweep")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SchemaError, match=r"empty/runs: missing directory"):
        load_results(tmp_path / "empty")  # a results directory without runs/
    with pytest.raises(SchemaError, match=r"nowhere: results directory does not exist"):
        load_results(tmp_path / "nowhere")


def test_bad_value_names_column_and_line(results_dir, tmp_path):
    run = _copy_run(results_dir, tmp_path)
    evals = pd.read_csv(run / "evals.csv", dtype=str)
    evals.loc[3, "return_mean"] = "oops"
    evals.to_csv(run / "evals.csv", index=False)
    with pytest.raises(
        SchemaError, match=r"evals\.csv: column 'return_mean' is not numeric \(line 5: 'oops'\)"
    ):
        load_results(tmp_path / "sweep")


def test_incomplete_run_may_lack_files(results_dir, tmp_path):
    run = _copy_run(results_dir, tmp_path)
    (run / "DONE").unlink()
    (run / "train.csv").unlink()
    with pytest.warns(UserWarning, match="incomplete run"):
        res = load_results(tmp_path / "sweep")
    assert not res.runs["complete"].any() and res.train.empty and len(res.evals) > 0


# ---------------------------------------------------------------------------------------------------------
# Tables, style and the report


def test_offline_online_cells():
    metrics = pd.DataFrame(
        {
            "task": ["t1", "t1", "t1", "t2"], "algo": ["awac", "awac", "bc", "awac"],
            "offline_final": [40.0, 50.0, 30.0, 20.0], "online_final": [80.0, 90.0, 35.0, np.nan],
            "complete": [True, True, True, False],
        }
    )  # fmt: skip
    cells = offline_online_cells(metrics)
    # awac on t1: mean(40, 50) = 45, std = sqrt(((40-45)^2 + (50-45)^2) / 1) = 7.07; mean(80, 90) = 85 +- 7.07
    assert cells.loc["t1", "awac"] == "45.0 ± 7.1 → **85.0 ± 7.1**"
    assert cells.loc["t1", "bc"] == "30.0 → 35.0 (n=1)"  # one seed: no std, fewer seeds than awac
    assert cells.loc["t2", "awac"] == "20.0 → — (n=1) †"  # only offline rows, unfinished
    assert cells.loc["t2", "bc"] == "—"  # bc did not run on t2
    latex = offline_online_latex(metrics, {"t1": "normalized_score", "t2": "success_rate"})
    assert r"45.0 $\pm$ 7.1 $\rightarrow$ \textbf{85.0 $\pm$ 7.1}" in latex and r"\toprule" in latex


def test_style_helpers():
    assert [format_steps(v) for v in (0, 1500, 20_000, 2_500_000, -5000)] == [
        "0",
        "1.5K",
        "20K",
        "2.5M",
        "-5K",
    ]
    assert algo_palette(["awac", "bc"])["bc"] == algo_palette(["bc", "bear", "awac", "zzz"])["bc"]


def test_make_report_writes_everything(results_dir, capsys):
    # Default output location (the results directory), as `awac-bench plots DIR` uses it. The synthetic set
    # has a missing seed, an algorithm absent from a task and an unfinished run with only offline rows.
    report = make_report(results_dir)
    assert report == results_dir / "report.md" and report.is_file()
    text = report.read_text()
    for name in ("learning_curves", "transition", "aggregate", "policy_analysis"):
        for ext in ("png", "pdf"):
            path = results_dir / "figures" / f"{name}.{ext}"
            assert path.is_file() and path.stat().st_size > 1000, path
        assert f"figures/{name}.png" in text
    for name in ("offline_online.md", "offline_online.tex", "metrics_per_run.csv"):
        assert (results_dir / "tables" / name).is_file()
    assert "→" in text and "last observation carried forward" in text and "bootstrap" in text
    assert "success rate" in text and "BEAR on `pen-binary`" in text and "`bc-pen-binary-s2`" in text
    assert "## Success: two readings" in text and "| pen-binary |" in text.split("two readings")[1]
    fidelity_section = text.split("## Fidelity")[1].split("## Figures")[0]
    assert "shorter than the declared experiment" in fidelity_section  # these runs are not the standard preset
    assert f"({ONLINE_STEPS:,} online steps) the report shows" in fidelity_section  # no episodes recorded: no noise
    assert all(f"({c})" in fidelity_section for c in "abcde")
    assert str(report) in capsys.readouterr().out


def test_success_section_known_answer():
    """rule / final in percent, mean over seeds of each run's last evaluation per phase."""
    from types import SimpleNamespace

    from analysis.report import _success_section

    rows = []
    for seed, (off, on, fin) in enumerate([(0.4, 0.6, 0.2), (0.6, 1.0, 0.6)]):
        rid = f"awac-pen-{seed}"
        rows += [dict(run_id=rid, task="pen", algo="awac", phase="offline", env_step=0, grad_step=5,
                      success_rate=0.0, success_final=0.0),
                 dict(run_id=rid, task="pen", algo="awac", phase="offline", env_step=0, grad_step=10,
                      success_rate=off, success_final=off / 2),
                 dict(run_id=rid, task="pen", algo="awac", phase="online", env_step=100, grad_step=110,
                      success_rate=on, success_final=fin)]
    rows.append(dict(run_id="x", task="cheetah", algo="awac", phase="online", env_step=100, grad_step=1,
                     success_rate=np.nan, success_final=np.nan))
    lines = _success_section(SimpleNamespace(evals=pd.DataFrame(rows)))
    assert "| pen | 50 / 25 → 80 / 40 |" in "\n".join(lines) and "cheetah" not in "\n".join(lines)
    assert _success_section(SimpleNamespace(evals=pd.DataFrame(rows[-1:]))) == []


def test_budget_lines_group_runs_and_name_the_short_ones():
    """One line per distinct budget with its run count; a finished run whose online evaluations stop before its
    own budget is named; unfinished and offline-only runs are not; an unrecorded ratio says so."""
    from analysis.report import _budget_lines

    def row(rid, off, on, utd, complete=True, reached=True):
        return dict(run_id=rid, offline_steps=off, online_steps=on, utd=utd, eval_every=5000, eval_episodes=20,
                    complete=complete, reached_budget=reached)

    runs = pd.DataFrame([row("a", 25000, 80000, 1.0), row("b", 25000, 80000, 1.0), row("c", 50000, 80000, 1.0),
                         row("d", 50000, 80000, 1.0, reached=False), row("e", 50000, 80000, 1.0, complete=False,
                                                                          reached=False),
                         row("f", 100, 0, 0.5, reached=False), row("g", 100, 100, None)])
    lines = _budget_lines(runs)
    assert lines[1:4] == [
        "  - 100 offline gradient steps, then 0 online environment steps at 0.5 updates per step; "
        "20 evaluation episodes every 5,000 steps: 1 run",
        "  - 100 offline gradient steps, then 100 online environment steps (ratio unrecorded); "
        "20 evaluation episodes every 5,000 steps: 1 run",
        "  - 25,000 offline gradient steps, then 80,000 online environment steps at 1 update per step; "
        "20 evaluation episodes every 5,000 steps: 2 runs",
    ]
    assert lines[4].endswith(": 3 runs") and lines[5] == "- **Finished short of their online budget**: `d`."


def test_short_budget_text_states_its_own_budget_and_noise():
    from analysis.report import _short_budget_text

    runs = pd.DataFrame({"online_steps": [4000, 4000], "eval_episodes": [5, 10]})
    assert _short_budget_text(runs).startswith(
        "At this budget (4,000 online steps, 5 evaluation episodes per point: one episode moves a success rate by "
        "20 points) the report shows")


def test_make_report_out_dir_and_offline_only_runs(tmp_path, monkeypatch):
    # Figures are covered above; here they are stubbed out to keep the test fast.
    from analysis import plots

    for name in ("plot_learning_curves", "plot_transition", "plot_aggregate", "plot_policy_analysis"):
        monkeypatch.setattr(plots, name, lambda *args, **kwargs: [])
    root = tmp_path / "tiny"
    make_run(root, "awac", "door-human", 0, kind="normalized", offline_only=True)
    make_run(root, "bc", "door-human", 0, kind="normalized", offline_only=True)
    report = make_report(root, out_dir=tmp_path / "elsewhere")
    assert report == tmp_path / "elsewhere" / "report.md" and not (root / "report.md").exists()
    assert "2 unfinished" in report.read_text()


def test_offline_tick_labels_stay_clear_of_the_switch():
    """The standard preset's axis (25k offline gradient steps, 100k online env steps) once printed "15K" right
    against the bold "switch" label; offline ticks closer to the switch than 15% of the axis are dropped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.plots import _style_step_axis, step_axis

    axis = step_axis(pd.DataFrame({"offline_steps": [25_000], "online_steps": [100_000]}))
    fig, ax = plt.subplots()
    _style_step_axis(ax, axis)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    ticks = list(ax.get_xticks())
    plt.close(fig)
    assert "switch" in labels and "15K" not in labels
    span = ax.get_xlim()[1] - ax.get_xlim()[0]
    for x in ticks[:labels.index("switch")]:
        assert -x >= 0.15 * span * 0.98


def _symlog_ticks(values: np.ndarray) -> tuple[str, np.ndarray, np.ndarray]:
    """Plot ``values`` on an axis scaled by ``_log_if_wide``: its scale, the ticks shown and their positions
    as fractions of the axis height."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.plots import WIDE_LOGLIK, _log_if_wide

    fig, ax = plt.subplots()
    ax.plot(np.arange(values.size), values)
    _log_if_wide(ax, values, WIDE_LOGLIK)
    fig.canvas.draw()
    low, high = ax.get_ylim()
    shown = np.array([t for t in ax.get_yticks() if low <= t <= high])
    scale = ax.yaxis.get_transform()
    lo, hi = scale.transform(np.array([low, high]))
    pos = np.sort((scale.transform(shown) - lo) / (hi - lo))
    plt.close(fig)
    return ax.get_yscale(), shown, pos


def test_a_symlog_axis_over_many_decades_keeps_few_labels():
    """BEAR's log-likelihood of pen-binary's data reaches ~-1e16 while the others sit near +50: the symmetric log
    axis labelled every decade (19 labels); it keeps at most 8."""
    yscale, shown, _ = _symlog_ticks(np.array([60.0, 55.0, 20.0, -3e15, -1.2e16]))
    assert yscale == "symlog"
    assert 3 <= len(shown) <= 8, shown


def test_symlog_labels_do_not_collide_where_both_signs_meet():
    """door-binary's log-likelihoods: AWAC near +10, SACfD near -1e4, BEAR near -1e21. The decades of the positive
    side and the linear part around 0 were squeezed into the top few percent of the axis and their labels printed
    on top of each other; no two shown ticks are now closer than 7% of the axis."""
    yscale, shown, pos = _symlog_ticks(np.array([12.0, 10.0, 8.0, -0.5, -2e3, -1e4, -1e9, -1.5e21]))
    assert yscale == "symlog"
    assert len(shown) >= 3, shown
    assert np.diff(pos).min() >= 0.07 - 1e-9, (shown, pos)


def test_facets_leave_as_few_empty_panels_as_they_can():
    """A 4-task grid is 2 x 2 (it was 3 + 1 with two empty panels); every layout keeps at most 3 columns."""
    from analysis.plots import MAX_COLS, _facets, facet_columns

    assert {n: facet_columns(n) for n in range(1, 10)} == {1: 1, 2: 2, 3: 3, 4: 2, 5: 3, 6: 3, 7: 2, 8: 2, 9: 3}
    assert all(facet_columns(n) <= MAX_COLS for n in range(1, 30))
    fig, axes = _facets(4)
    assert axes.shape == (2, 2)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_aggregates_pool_only_the_tasks_every_algorithm_ran():
    """A grid still running: AWAC has door and pen, SACfD pen alone. The aggregate pools pen only (AWAC's door zeros
    would otherwise pull its IQM to half of its pen score), and the report says so."""
    from analysis.plots import aggregate_curves, shared_tasks

    rows = []
    for algo, task, score in [("awac", "door", 0.0), ("awac", "pen", 90.0), ("sacfd", "pen", 10.0),
                              ("awac", "hc", 50.0)]:
        for seed in range(3):
            for t in (0, 100):
                rows.append({"algo": algo, "task": task, "run_id": f"{algo}-{task}-{seed}", "t": t, "score": score,
                             "score_source": "return_mean" if task == "hc" else "success_rate"})
    evals = pd.DataFrame(rows)
    assert shared_tasks(evals, ["awac", "sacfd"]) == ["pen"]  # hc has no 0-100 score: never pooled
    assert shared_tasks(evals, ["awac"]) == ["door", "pen"]
    assert shared_tasks(evals, []) == []
    curves = aggregate_curves(evals, ["awac", "sacfd"])
    assert curves["awac"]["point"].tolist() == [90.0, 90.0] and curves["sacfd"]["point"].tolist() == [10.0, 10.0]


def test_a_success_panel_shows_0_to_100_even_when_every_curve_is_at_0(tmp_path, monkeypatch):
    """door-binary's AWAC and SACfD stay at 0%: the axis was scaled to +-0.05 around the flat line; a 0-100 score
    now always shows at least [-5, 105] and an all-zero drop panel at least +-5 points."""
    from analysis.plots import SCORE_MARGIN, plot_learning_curves, plot_transition

    evals = pd.DataFrame({"algo": "awac", "task": "door", "run_id": [f"r{s}" for s in range(2) for _ in range(3)],
                          "seed": [s for s in range(2) for _ in range(3)], "t": [-10, 0, 100] * 2, "score": 0.0,
                          "score_source": "normalized_score"})
    runs = pd.DataFrame({"run_id": ["r0", "r1"], "algo": "awac", "task": "door", "offline_steps": 10,
                         "online_steps": 100})
    captured = {}
    import analysis.plots as plots_mod

    real_save = plots_mod.save

    def keep(fig, out_dir, name):
        captured[name] = [ax.get_ylim() for ax in fig.axes if ax.get_visible()]
        return real_save(fig, out_dir, name)

    monkeypatch.setattr(plots_mod, "save", keep)
    plot_learning_curves(evals, runs, {"awac": (0, 0, 1)}, tmp_path)
    metrics = pd.DataFrame({"algo": "awac", "task": "door", "drop_abs": [0.0, 0.0], "recovery_steps": [0.0, 0.0],
                            "window": 20})
    plot_transition(metrics, runs, {"awac": (0, 0, 1)}, tmp_path)
    (low, high), = captured["learning_curves"]
    assert low <= -SCORE_MARGIN and high >= 100 + SCORE_MARGIN
    drop_low, drop_high = captured["transition"][0]
    assert drop_low <= -SCORE_MARGIN and drop_high >= SCORE_MARGIN
