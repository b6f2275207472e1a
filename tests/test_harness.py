"""The one protocol: a tiny offline->online run, its tables, determinism, and the CLI's bad-input path."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from benchmarks.run.harness import RunSpec, run
from benchmarks.run.results import EVAL_COLUMNS, TRAIN_COLUMNS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(task="pen-binary-human", offline_steps=20, online_steps=30, eval_every=10, eval_every_offline=10,
            eval_episodes=1, log_every=5)


def tiny_run(out, algo="awac", seed=0, **kw):
    spec = RunSpec(algo=algo, seed=seed, overrides={"batch_size": 32}, **{**TINY, **kw})
    return run(spec, str(out), progress=False)


def test_tiny_run_writes_both_phases_with_the_schema(tmp_path):
    run_dir = tiny_run(tmp_path)
    ev = pd.read_csv(os.path.join(run_dir, "evals.csv"))
    assert list(ev.columns) == list(EVAL_COLUMNS)
    off, on = ev[ev.phase == "offline"], ev[ev.phase == "online"]
    assert list(off.grad_step) == [10, 20] and (off.env_step == 0).all()   # the last one is the switch
    assert list(on.env_step) == [10, 20, 30]
    assert list(on.grad_step) == [30, 40, 50]                              # one update per env step
    assert ev.success_rate.between(0, 1).all() and ev.normalized_score.notna().all()
    assert (ev.wall_s.diff().dropna() >= 0).all()
    tr = pd.read_csv(os.path.join(run_dir, "train.csv"))
    assert list(tr.columns) == list(TRAIN_COLUMNS)
    assert {"critic_loss", "actor_loss", "weight_max", "offline_loglik", "q_estimate", "mc_return"} <= set(tr.metric)
    assert set(tr.phase) == {"offline", "online"}
    cfg = json.load(open(os.path.join(run_dir, "config.json")))
    assert cfg["algo_preset_resolved"] == "hand" and cfg["algo_config"]["beta"] == 0.5
    meta = json.load(open(os.path.join(run_dir, "meta.json")))
    assert {"torch", "git_commit", "device", "host", "finished"} <= set(meta)
    assert os.path.isfile(os.path.join(run_dir, "DONE"))


def test_bc_is_a_flat_line_online(tmp_path):
    ev = pd.read_csv(os.path.join(tiny_run(tmp_path, algo="bc"), "evals.csv"))
    assert (ev.grad_step == 20).sum() == 4   # the switch row and every online row: no online updates
    online = ev[ev.phase == "online"]
    assert online.return_mean.nunique() == 1  # same policy, same evaluation seeds -> same score


def test_same_seed_gives_identical_rows(tmp_path):
    a = pd.read_csv(os.path.join(tiny_run(tmp_path / "a", seed=3), "evals.csv")).drop(columns="wall_s")
    b = pd.read_csv(os.path.join(tiny_run(tmp_path / "b", seed=3), "evals.csv")).drop(columns="wall_s")
    pd.testing.assert_frame_equal(a, b)
    ta = pd.read_csv(os.path.join(tmp_path / "a/runs/awac__pen-binary-human__s3/train.csv"))
    tb = pd.read_csv(os.path.join(tmp_path / "b/runs/awac__pen-binary-human__s3/train.csv"))
    pd.testing.assert_frame_equal(ta, tb)


def test_different_seeds_differ(tmp_path):
    ta = pd.read_csv(os.path.join(tiny_run(tmp_path / "a", seed=1), "train.csv"))
    tb = pd.read_csv(os.path.join(tiny_run(tmp_path / "b", seed=2), "train.csv"))
    assert not ta.value.equals(tb.value)


def cli(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.fixture
def bad_files(tiny_d4rl):
    import numpy as np

    nan = np.zeros((50, 45), np.float32)
    nan[3, 3] = np.nan
    return {
        "missing-key": tiny_d4rl("k.hdf5", drop=("terminals",))[0],
        "lengths": tiny_d4rl("l.hdf5", actions=np.zeros((40, 24), np.float32))[0],
        "nan": tiny_d4rl("n.hdf5", observations=nan)[0],
        "obs-size": tiny_d4rl("o.hdf5", obs_dim=40)[0],
        "act-size": tiny_d4rl("a.hdf5", act_dim=4)[0],
    }


@pytest.mark.parametrize("case", ["unknown-algo", "unknown-task", "missing-file", "missing-key", "lengths", "nan",
                                  "obs-size", "act-size", "bad-set"])
def test_bad_input_is_one_line_exit_2_and_no_files(tmp_path, bad_files, case):
    out = tmp_path / "out"
    base = ["run", "--seed", "0", "--offline-steps", "2", "--online-steps", "2", "--out", str(out), "--no-progress"]
    args = {
        "unknown-algo": ["--algo", "nope", "--task", "pen-binary-human"],
        "unknown-task": ["--algo", "awac", "--task", "nope"],
        "missing-file": ["--algo", "awac", "--task", "pen-binary-human", "--dataset", str(tmp_path / "x.hdf5")],
        "bad-set": ["--algo", "awac", "--task", "pen-binary-human", "--set", "betaa=1"],
    }.get(case) or ["--algo", "awac", "--task", "custom", "--env", "AdroitHandPen-v1", "--dataset", bad_files[case]]
    r = cli(*base, *args)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("awac-bench: error:"), r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists() or not any(out.rglob("*.csv")), list(out.rglob("*"))


def test_cli_run_and_smoke_sweep_subset(tmp_path):
    r = cli("sweep", "--preset", "smoke", "--out", str(tmp_path), "--workers", "2", "--algos", "awac,bc",
            "--set", "batch_size=32")
    assert r.returncode == 0, r.stderr
    ev = pd.read_csv(tmp_path / "evals.csv")
    assert set(ev.algo) == {"awac", "bc"} and set(ev.phase) == {"offline", "online"}
    # a second invocation resumes: everything is finished, nothing reruns
    r = cli("sweep", "--preset", "smoke", "--out", str(tmp_path), "--workers", "1", "--algos", "awac,bc",
            "--set", "batch_size=32")
    assert r.returncode == 0 and "2 already finished" in r.stderr


def test_full_smoke_preset_then_plots(tmp_path):
    """The smoke preset runs every registered algorithm; `plots` turns the results into the report."""
    import algorithms

    r = cli("sweep", "--preset", "smoke", "--out", str(tmp_path), "--workers", "2")
    assert r.returncode == 0, r.stderr
    ev = pd.read_csv(tmp_path / "evals.csv")
    assert set(ev.algo) == set(algorithms.names())
    r = cli("plots", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "report.md").is_file() and (tmp_path / "figures" / "learning_curves.png").is_file()


def test_ray_backend_without_ray_is_a_clear_error(tmp_path, monkeypatch):
    from algorithms.base import UserError
    from benchmarks.sweeps.local import run_sweep
    from benchmarks.sweeps.presets import grid

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UserError, match="needs Ray"):
        run_sweep(grid("smoke", algos=["bc"]), str(tmp_path), backend="ray")
