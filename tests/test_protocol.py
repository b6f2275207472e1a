"""Protocol-level guarantees: prior data is never evicted, budget warnings are flagged end to end, MuJoCo's
compiler deprecation notice is not printed."""

from __future__ import annotations

import ctypes
import json
import os

import numpy as np
import pandas as pd
import pytest

import algorithms
from algorithms.base import UserError
from benchmarks.data.buffer import ReplayBuffer
from benchmarks.run import columns
from benchmarks.run.harness import RunSpec, online_blocks, planned_updates, run
from benchmarks.tasks.registry import get_task

TINY = dict(task="pen-binary-human", eval_episodes=1, log_every=5)
SMALL_BEAR = {"actor_hidden": (16, 16), "critic_hidden": (16, 16), "vae_hidden": (16, 16), "batch_size": 16}


def _capture_buffers(monkeypatch) -> list[ReplayBuffer]:
    made: list[ReplayBuffer] = []

    class Capturing(ReplayBuffer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(columns, "ReplayBuffer", Capturing)  # the run builds its buffer there (prior_buffer)
    return made


def test_awr_keeps_every_prior_row_past_its_online_capacity(tmp_path, monkeypatch):
    # 150 online steps into a 60-row online FIFO (buffer_size): the online rows wrap, the prior rows stay.
    made = _capture_buffers(monkeypatch)
    over = {"buffer_size": 60, "samples_per_iter": 50, "critic_steps": 2, "actor_steps": 2, "batch_size": 16}
    spec = RunSpec(algo="awr", offline_steps=4, online_steps=150, eval_every=150, overrides=over, **TINY)
    run_dir = run(spec, str(tmp_path), progress=False)
    (buf,) = made
    ds = get_task("pen-binary-human").load_dataset(buf.obs.shape[1], buf.act.shape[1])
    p = len(ds)
    assert buf.protected == p and buf.capacity == p + 60 and len(buf) == buf.capacity
    for col, want in ((buf.obs, ds.obs), (buf.act, ds.act), (buf.next_obs, ds.next_obs)):
        np.testing.assert_array_equal(col[:p].numpy(), want)
    np.testing.assert_array_equal(buf.rew[:p].numpy(), ds.rew)
    np.testing.assert_array_equal(buf.done[:p].numpy(), ds.done)
    np.testing.assert_array_equal(buf.timeout[:p].numpy(), ds.timeout)
    # the online region wrapped (150 = 2 * 60 + 30) and order() still lists it as one contiguous episode
    assert buf.ptr == p + 30
    online = buf.order()[p:]
    assert online.tolist() == list(range(p + 30, p + 60)) + list(range(p, p + 30))
    np.testing.assert_array_equal(buf.next_obs[online[:-1]].numpy(), buf.obs[online[1:]].numpy())
    assert not (buf.done[online] > 0).any() and not buf.timeout[online].any()  # pen episodes are 200 steps
    # 4 offline + ceil(150 / 50) = 3 blocks of 2 + 2 updates
    assert json.load(open(os.path.join(run_dir, "meta.json")))["grad_steps"] == 16


def test_planned_updates_follow_the_rhythm():
    spec = RunSpec(algo="awr", task="pen-binary-human", offline_steps=4, online_steps=150, utd=2)
    awr = algorithms.make("awr", 3, 2, overrides={"samples_per_iter": 50, "critic_steps": 2, "actor_steps": 2})
    assert planned_updates(spec, awr) == 4 + 3 * 4 * 2
    assert planned_updates(spec, algorithms.make("awac", 3, 2)) == 4 + 150 * 2
    assert planned_updates(spec, algorithms.make("bc", 3, 2)) == 4  # BC does not learn online


def test_bear_budget_inside_the_warmup_is_flagged(tmp_path, capsys):
    spec = RunSpec(algo="bear", offline_steps=3, online_steps=3, eval_every=3, overrides=SMALL_BEAR, **TINY)
    cfg = json.load(open(os.path.join(run(spec, str(tmp_path / "a"), progress=False), "config.json")))
    (msg,) = cfg["warnings"]
    assert "warm-up" in msg and "warmup_steps=20000" in msg and "6 gradient steps" in msg
    assert f"warning: {spec.run_id}: {msg}" in capsys.readouterr().err
    # a budget past the warm-up: nothing flagged, nothing printed
    spec.overrides = {**SMALL_BEAR, "warmup_steps": 5}
    cfg = json.load(open(os.path.join(run(spec, str(tmp_path / "b"), progress=False), "config.json")))
    assert cfg["warnings"] == [] and "warning:" not in capsys.readouterr().err


def test_presets_give_bear_a_budget_past_its_warmup():
    from benchmarks.sweeps.presets import PRESETS, grid

    for preset in PRESETS:
        if "bear" not in PRESETS[preset].get("algos", ["bear"]):  # a grid without BEAR (pilot)
            continue
        for spec in grid(preset, algos=["bear"], tasks=["pen-binary-human"], seeds=[0]):
            algo = algorithms.make("bear", 3, 2, overrides={**SMALL_BEAR, **spec.overrides})
            assert algo.budget_warnings(planned_updates(spec, algo)) == [], preset
    (quick,) = grid("quick", algos=["bear"], tasks=["pen-binary-human"], seeds=[0])
    assert quick.overrides["warmup_steps"] == 2_000


def test_report_marks_flagged_runs(tmp_path, monkeypatch):
    from test_analysis import make_run

    from analysis import plots, schema
    from analysis.report import make_report

    for name in ("plot_learning_curves", "plot_transition", "plot_aggregate", "plot_policy_analysis"):
        monkeypatch.setattr(plots, name, lambda *args, **kwargs: [])
    root = tmp_path / "res"
    for algo in ("awac", "bear"):
        for seed in (0, 1):
            make_run(root, algo, "door-human", seed, kind="normalized")
    for ev_path in root.glob("runs/*/evals.csv"):  # columns the schema gained since make_run was written
        ev = pd.read_csv(ev_path)
        ev.assign(**{c: np.nan for c in schema.EVALS_COLUMNS if c not in ev}).to_csv(ev_path, index=False)
    cfg_path = root / "runs" / "bear-door-human-s1" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["warnings"] = ["bear: the whole budget ends inside the warm-up"]
    cfg_path.write_text(json.dumps(cfg))
    text = make_report(root).read_text()
    assert "2 (1†)" in text  # the runs-per-cell table: 2 BEAR runs on door-human, 1 flagged
    assert "## Run warnings" in text
    assert "- † `bear-door-human-s1`: bear: the whole budget ends inside the warm-up" in text
    assert "awac-door-human-s0`:" not in text


def _flush_c_stdio() -> None:
    """MuJoCo prints with C stdio, which buffers when stdout is not a terminal: flush it so capfd sees it."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def test_halfcheetah_env_construction_prints_nothing(capfd):
    mujoco = pytest.importorskip("mujoco")
    before = mujoco.get_mju_user_warning()
    task = get_task("halfcheetah-sac-replay")
    capfd.readouterr()
    env = task.make_env()
    env.reset(seed=0)
    env.close()
    _flush_c_stdio()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert mujoco.get_mju_user_warning() is before  # the previous handler is back


def test_only_compiler_deprecations_are_dropped():
    mujoco = pytest.importorskip("mujoco")
    xml = ('<mujoco><compiler settotalmass="3"/><worldbody><body><freejoint/><geom size=".1"/></body>'
           "</worldbody></mujoco>")
    seen: list[str] = []
    prev = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(seen.append)
    try:
        restore = get_task("halfcheetah-sac-replay")._mute_mujoco_compiler_deprecations()
        mujoco.MjModel.from_xml_string(xml)
        assert seen == []                            # dropped while muted
        mujoco.get_mju_user_warning()("something else")
        assert seen == ["something else"]            # any other warning reaches the handler installed before
        restore()
        mujoco.MjModel.from_xml_string(xml)
        assert len(seen) == 2 and "settotalmass" in seen[1]  # restored: reported again
    finally:
        mujoco.set_mju_user_warning(prev)


def test_fractional_utd_lengthens_the_collection_in_whole_blocks():
    assert online_blocks((1, 1), 0.1) == (10, 1)
    assert online_blocks((1, 1), 2) == (1, 2)
    assert online_blocks((2048, 1500), 0.1) == (20480, 1500)  # AWR keeps its value-then-policy cycle whole
    assert online_blocks((2048, 1500), 1.5) == (4096, 4500)
    spec = RunSpec(algo="awac", task="pen-binary-human", offline_steps=4, online_steps=95, utd=0.1)
    assert planned_updates(spec, algorithms.make("awac", 3, 2)) == 4 + 10  # ceil(95 / 10) blocks of 1 update
    with pytest.raises(UserError, match="utd"):
        RunSpec(algo="awac", task="pen-binary-human", utd=0).validate()


def test_random_steps_end_inside_a_block_and_the_policy_blocks_start_there(tmp_path):
    """A rhythm of 10 steps per update (utd 0.1) with 42 random steps: random blocks of 10, 10, 10, 10 and 2, then
    policy blocks of 10 from step 42 (the last of 3): ceil(53 / 10) = 6 updates, as planned."""
    spec = RunSpec(algo="rlpd", task="pen-binary-human", offline_steps=0, online_steps=95, utd=0.1, eval_every=95,
                   eval_episodes=1, overrides={"hidden_dims": [16, 16], "num_qs": 2, "batch_size": 32, "utd": 1,
                                               "random_steps": 42})
    algo = algorithms.make("rlpd", 45, 24, overrides=spec.overrides)
    assert online_blocks(algo.online_rhythm(), spec.utd) == (10, 1)
    assert planned_updates(spec, algo) == 6
    run_dir = run(spec, str(tmp_path), progress=False)
    assert pd.read_csv(f"{run_dir}/evals.csv")["grad_step"].tolist() == [0, 6]


def test_negative_random_steps_are_bad_input():
    with pytest.raises(UserError, match="random_steps"):
        algorithms.make("rlpd", 3, 2, overrides={"random_steps": -1})

