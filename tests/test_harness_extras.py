"""What the later baselines need from the harness, usable by any algorithm: mixed offline/online batches, named
per-row columns the harness computes (Monte-Carlo returns, the data's next action), an algorithm's own updates per
step and a run without offline gradient steps."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

import algorithms
from algorithms.base import Algorithm, returns_to_go
from benchmarks.data.buffer import ReplayBuffer
from benchmarks.data.dataset import Dataset
from benchmarks.run import columns
from benchmarks.run.harness import RunSpec, run


class Stub(Algorithm):
    """Declares both harness columns; discount 0.5 so that returns are easy to compute by hand."""

    batch_extras = ("mc_return", "next_act")

    def __init__(self):
        super().__init__(2, 1, SimpleNamespace(gamma=0.5))


def dataset(rew, ends_at, act=None) -> Dataset:
    n = len(rew)
    obs = np.arange(n, dtype=np.float32)[:, None].repeat(2, 1)
    next_obs = obs + 1
    for e in ends_at:  # an episode boundary: the next row does not start where this one went
        next_obs[e] = -1
    act = np.arange(n, dtype=np.float32)[:, None] if act is None else act
    return Dataset(obs, act, np.asarray(rew, np.float32), next_obs, np.zeros(n, np.float32), np.zeros(n, bool))


def test_returns_to_go_by_hand():
    # gamma 0.5, episodes [1, 1, 1] and [2, 2]: 1 + .5 (1 + .5 * 1) = 1.75, 1.5, 1; 2 + .5 * 2 = 3, 2
    got = returns_to_go(np.array([1, 1, 1, 2, 2.0]), np.array([0, 0, 1, 0, 1], bool), 0.5)
    np.testing.assert_allclose(got, [1.75, 1.5, 1.0, 3.0, 2.0])


def test_prior_columns_mc_return_and_next_action():
    ds = dataset([1, 1, 1, 2, 2], ends_at=[2])
    buf = columns.prior_buffer(Stub(), ds, capacity=8)
    np.testing.assert_allclose(buf.extras["mc_return"][:5].numpy(), [1.75, 1.5, 1.0, 3.0, 2.0])
    nxt = buf.extras["next_act"][:5, 0].numpy()  # the next row's action inside an episode, NaN at its end
    np.testing.assert_array_equal(nxt[[0, 1, 3]], [1.0, 2.0, 4.0])
    assert np.isnan(nxt[2]) and np.isnan(nxt[4])
    b = buf.sample(16)
    assert b.extras["mc_return"].shape == (16,) and b.extras["next_act"].shape == (16, 1)


def test_online_columns_when_an_episode_ends_and_minus_inf_before():
    algo = Stub()
    buf = columns.prior_buffer(algo, dataset([0, 0], ends_at=[]), capacity=20)
    buf.protect()
    for r in (1.0, 1.0, 1.0, 4.0, 4.0):  # an episode of 3 rows that ended, then 2 rows of one still running
        buf.add(np.zeros(2), np.array([r]), r, np.zeros(2), False, False)
    columns.fill_online(buf, algo, ended_lengths=[3], current_steps=2)
    np.testing.assert_allclose(buf.extras["mc_return"][2:5].numpy(), [1.75, 1.5, 1.0])
    assert torch.isinf(buf.extras["mc_return"][5:7]).all() and (buf.extras["mc_return"][5:7] < 0).all()
    nxt = buf.extras["next_act"][2:7, 0].numpy()
    np.testing.assert_array_equal(nxt[[0, 1, 3]], [1.0, 1.0, 4.0])
    assert np.isnan(nxt[2]) and np.isnan(nxt[4])  # the ended episode's last row; the newest row
    # the running episode ends one step later: its three rows get their returns (4 + .5 (4 + .5 * 2) = 6.5, 5, 2)
    buf.add(np.zeros(2), np.array([2.0]), 2.0, np.zeros(2), True, False)
    columns.fill_online(buf, algo, ended_lengths=[3], current_steps=0)
    np.testing.assert_allclose(buf.extras["mc_return"][5:8].numpy(), [6.5, 5.0, 2.0])


def test_positions_follow_the_online_ring():
    buf = ReplayBuffer(1, 1, capacity=8)
    buf.add_many(*(np.zeros((3, 1)),) * 2, np.zeros(3), np.zeros((3, 1)), np.zeros(3), np.zeros(3, bool))
    buf.protect()
    # rows 3.. cycle through slots 3..7: the 9th row ever added (k = 8) lands in slot 3 again
    assert buf.positions(0, 10).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 3, 4]


def test_mixed_batches_take_the_declared_share_from_the_prior_rows():
    buf = ReplayBuffer(1, 1, capacity=30, seed=0)
    n = 10
    buf.add_many(np.zeros((n, 1)), np.zeros((n, 1)), np.arange(n, dtype=np.float32), np.zeros((n, 1)), np.zeros(n),
                 np.zeros(n, bool))
    buf.protect()
    for r in range(100, 105):
        buf.add(np.zeros(1), np.zeros(1), float(r), np.zeros(1), False, False)
    for frac, k in ((0.5, 4), (0.25, 2), (0.0, 0), (1.0, 8)):
        rew = buf.sample_mixed(8, frac).rew
        assert (rew[:k] < n).all() and (rew[k:] >= 100).all(), (frac, rew)
    with pytest.raises(RuntimeError, match="online row"):
        fresh = ReplayBuffer(1, 1, capacity=30)
        fresh.add_many(np.zeros((n, 1)), np.zeros((n, 1)), np.zeros(n), np.zeros((n, 1)), np.zeros(n),
                       np.zeros(n, bool))
        fresh.protect()
        fresh.sample_mixed(8, 0.5)


def test_calql_mc_return_scales_rewards_and_prices_failure_forever():
    algo = algorithms.make("calql", 3, 2, overrides={"actor_hidden": (8,), "critic_hidden": (8,)})
    # binary rewards, scale 10, bias 5: a failed episode [-1, -1, -1] is -5 per step forever: -5 / (1 - .99) = -500
    np.testing.assert_allclose(algo.mc_returns(np.array([-1.0, -1, -1]), np.array([0, 0, 1], bool)), [-500.0] * 3)
    # a success at the last step: [-5, 5] -> -5 + .99 * 5 = -0.05, 5 (the ordinary discounted return)
    np.testing.assert_allclose(algo.mc_returns(np.array([-1.0, 0]), np.array([0, 1], bool)), [-0.05, 5.0])
    dense = algorithms.make("calql", 3, 2, preset="mujoco", overrides={"actor_hidden": (8,), "critic_hidden": (8,)})
    np.testing.assert_allclose(dense.mc_returns(np.array([-1.0, -1]), np.array([0, 1], bool)), [-1.99, -1.0])


SMALL = {"calql": {"actor_hidden": (16, 16), "critic_hidden": (16, 16), "cql_n_actions": 2, "batch_size": 32},
         "rlpd": {"hidden_dims": (16, 16), "num_qs": 4, "utd": 3, "batch_size": 32, "random_steps": 0},
         "rebrac": {"actor_hidden": (16, 16), "critic_hidden": (16, 16), "batch_size": 32}}


def small_run(algo: str, tmp_path, **kw) -> pd.DataFrame:
    spec = RunSpec(algo=algo, task="pen-binary-human", offline_steps=20, online_steps=10, eval_every=10,
                   eval_episodes=1, log_every=1, overrides=SMALL[algo], **kw)
    run_dir = run(spec, str(tmp_path), progress=False)
    return pd.read_csv(f"{run_dir}/evals.csv"), pd.read_csv(f"{run_dir}/train.csv")


def test_a_run_without_pretraining_takes_no_offline_step_and_its_own_updates_per_step(tmp_path):
    evals, train = small_run("rlpd", tmp_path)
    switch = evals[evals["phase"] == "offline"]
    assert switch["grad_step"].tolist() == [0]  # evaluated at the switch, untrained
    assert not (train["phase"] == "offline").any() or set(train[train["phase"] == "offline"]["metric"]) <= {
        "offline_loglik", "q_estimate", "mc_return"}  # only the switch's diagnostics, no update metrics
    assert evals["grad_step"].iloc[-1] == 10 * 3  # 10 online steps, rlpd's rhythm (1 step, utd 3 updates)


@pytest.mark.parametrize("algo", ["calql", "rebrac"])
def test_algorithms_with_harness_columns_run_through_the_harness(tmp_path, algo):
    evals, train = small_run(algo, tmp_path)
    assert evals["grad_step"].iloc[-1] == 30  # 20 offline + 10 online updates
    losses = train[train["metric"].str.contains("loss")]
    assert len(losses) and all(math.isfinite(v) for v in losses["value"])


# -- the goal as a terminal state (Cal-QL's and CQL's hand protocol: Algorithm.ends_at_goal) -------------------

def test_goal_terminal_view_cuts_after_the_last_goal_step_and_drops_episodes_that_never_reach_it():
    # three episodes (ends after rows 4, 7, 10): [-1 -1 0 0 -1], [-1 -1 -1], [0 -1 0]
    rew = [-1, -1, 0, 0, -1, -1, -1, -1, 0, -1, 0]
    ds = dataset(rew, ends_at=[4, 7])
    v = ds.goal_terminal_view(np.asarray(rew) == 0)
    assert v.obs[:, 0].tolist() == [0, 1, 2, 3, 8, 9, 10]     # row 4 cut, rows 5-7 (never at the goal) dropped
    assert v.done.tolist() == [0, 0, 1, 1, 1, 0, 1]           # every step at the goal is terminal
    assert v.episode_ends().tolist() == [False, False, True, True, True, False, True]
    assert v.view == {"kind": "goal_terminal", "source_rows": 11, "source_episodes": 3,
                      "source_sha256": ds.checksum(), "rows": 7, "episodes": 2}
    # Cal-QL's column on the view (hand: r~ = 10 r + 5, gamma 0.99): no bootstrap past a step at the goal,
    # by hand: row 1: -5 + .99 * 5 = -0.05; row 0: -5 + .99 * -0.05 = -5.0495
    calql = algorithms.get("calql")(2, 1, algorithms.resolve_config("calql", "hand", {"actor_hidden": (4,),
                                                                                        "critic_hidden": (4,)}))
    mc = calql.mc_returns(v.rew, v.episode_ends())
    assert mc.tolist() == pytest.approx([-5.0495, -0.05, 5, 5, 5, -0.05, 5])


def test_end_at_goal_ends_an_online_episode_at_its_first_step_at_the_goal():
    import gymnasium as gym

    from benchmarks.tasks.task import EndAtGoal

    class Walk(gym.Env):  # at the goal on steps 3 and 4
        observation_space = gym.spaces.Box(-1, 1, (1,))
        action_space = gym.spaces.Box(-1, 1, (1,))

        def reset(self, seed=None, options=None):
            self.t = 0
            return np.zeros(1, np.float32), {}

        def step(self, action):
            self.t += 1
            return np.zeros(1, np.float32), 0.0, False, self.t >= 10, {"success": self.t in (3, 4)}

    env = EndAtGoal(Walk())
    env.reset()
    terms = [env.step(np.zeros(1))[2] for _ in range(3)]
    assert terms == [False, False, True]


def test_end_at_goal_is_the_hand_protocol_of_cql_and_calql_only():
    assert algorithms.resolve_config("calql", "hand", {}).end_at_goal is True
    assert algorithms.resolve_config("calql", "mujoco", {}).end_at_goal is False
    assert algorithms.resolve_config("cql", "hand", {}).end_at_goal is True
    assert algorithms.resolve_config("cql", "mujoco", {}).end_at_goal is False
    assert not hasattr(algorithms.resolve_config("awac", "hand", {}), "end_at_goal")


def test_end_at_goal_on_a_task_without_a_goal_is_a_user_error():
    from algorithms.base import UserError
    from benchmarks.tasks.registry import get_task

    with pytest.raises(UserError, match="no goal"):
        get_task("halfcheetah-awac").goal_rows(dataset([0.0, 1.0], ends_at=[]))


def test_a_run_that_ends_at_the_goal_records_the_stored_data_and_the_view(tmp_path):
    spec = RunSpec(algo="cql", task="pen-binary-human", offline_steps=4, online_steps=300, eval_every=300,
                   eval_episodes=1, log_every=2,
                   overrides={"batch_size": 16, "actor_hidden": (8,), "critic_hidden": (8,), "cql_n_actions": 2})
    run_dir = run(spec, str(tmp_path), progress=False)
    import json
    import os

    cfg = json.load(open(os.path.join(run_dir, "config.json")))
    assert cfg["algo_config"]["end_at_goal"] is True            # the hand preset
    view = cfg["dataset_view"]
    assert cfg["dataset_sha256"] == view["source_sha256"] and cfg["dataset_rows"] == view["source_rows"]
    assert 0 < view["rows"] < view["source_rows"] and 0 < view["episodes"] < view["source_episodes"]


def test_a_training_episode_that_ends_at_the_goal_succeeds_by_reaching_it():
    from benchmarks.run.loop import RunLoop

    def success(ends_at_goal, goal_steps, min_steps=20):
        me = SimpleNamespace(task=SimpleNamespace(success_min_steps=min_steps),
                             algo=SimpleNamespace(ends_at_goal=ends_at_goal))
        return RunLoop._training_success(me, goal_steps)

    assert [success(True, g) for g in (0, 1)] == [0.0, 1.0]            # Cal-QL: goal_achieved at any step
    assert [success(False, g) for g in (1, 20, 21)] == [0.0, 0.0, 1.0]  # the task's rule: > 20 steps at the goal
    assert success(True, 1, min_steps=None) is None                     # no success notion (MuJoCo)
