"""SAC+BC (the AWAC paper's baseline, ``algorithms/sacbc.py``) and the demonstration batch the harness draws for it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_updates_match_rules import ACT, OBS, Ref, adam, batch, close, grads, params, plain, polyak
from torch.nn import functional as F

import algorithms
from algorithms.base import Batch, UserError
from benchmarks.data.dataset import Dataset, from_arrays, load_d4rl_hdf5, write_d4rl_hdf5
from benchmarks.run.columns import minibatch, prior_buffer

SMALL = {"actor_hidden": (16, 16), "critic_hidden": (16, 16)}


def sacbc_reference(r, c, b):
    """The rule as rlkit's AWACTrainer runs it with sac_bc1.py's weights, one loss and one backward at a time: both
    losses from the critic as it was at the start of the step, then the critic's and the actor's steps."""
    obs, act, rew, next_obs, done = b.obs, b.act, b.rew, b.next_obs, b.done
    if c.ignore_terminals:
        done = torch.zeros_like(done)
    with torch.no_grad():
        next_mean, next_log_std = r.actor(next_obs)
        next_act = next_mean + torch.exp(next_log_std) * torch.randn_like(next_mean)
        next_logp = torch.distributions.Normal(next_mean, torch.exp(next_log_std)).log_prob(next_act).sum(-1)
        y = rew + c.gamma * (1.0 - done) * (r.critic_target.min_q(next_obs, next_act) - c.alpha * next_logp)
    q1, q2 = r.critic(obs, act)
    critic_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
    mean, log_std = r.actor(obs)
    pi_act = mean + torch.exp(log_std) * torch.randn_like(mean)
    logp = torch.distributions.Normal(mean, torch.exp(log_std)).log_prob(pi_act).sum(-1)
    r.critic.requires_grad_(False)
    q_pi = r.critic.min_q(obs, pi_act)
    r.critic.requires_grad_(True)
    d_mean, d_log_std = r.actor(b.demo.obs)
    bc = -torch.distributions.Normal(d_mean, torch.exp(d_log_std)).log_prob(b.demo.act).sum(-1).mean()
    actor_loss = (c.alpha * logp - q_pi).mean() + c.bc_weight * bc
    r.critic_opt.zero_grad()
    critic_loss.backward()
    g = grads(r.critic)
    r.actor_opt.zero_grad()
    actor_loss.backward()
    g += grads(r.actor)
    r.critic_opt.step()
    r.actor_opt.step()
    polyak(r.critic_target, r.critic, c.tau)
    return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item(), "bc_loss": bc.item()}, g


def with_demo(b: Batch, seed: int, n: int = 8) -> Batch:
    g = torch.Generator().manual_seed(1000 + seed)
    return b._replace(demo=Batch(torch.randn(n, OBS, generator=g), torch.rand(n, ACT, generator=g) * 1.8 - 0.9,
                                 torch.zeros(n), torch.zeros(n, OBS), torch.zeros(n)))


@pytest.mark.parametrize("preset, alpha", [(None, 0.0), ("hand", 0.0), (None, 0.2)])
def test_sacbc_matches_the_straightforward_update(preset, alpha):
    torch.manual_seed(0)
    algo = algorithms.make("sac-bc", OBS, ACT, preset, overrides={**SMALL, "alpha": alpha})
    c = algo.cfg
    r = Ref()
    r.actor, r.critic, r.critic_target = plain(algo.actor), plain(algo.critic), plain(algo.critic_target)
    r.actor_opt, r.critic_opt = adam(r.actor, c.actor_lr, c.actor_weight_decay), adam(r.critic, c.critic_lr)
    for step in range(4):
        b = with_demo(batch(step), step)
        torch.manual_seed(100 + step)
        m = algo.update(b)
        torch.manual_seed(100 + step)
        m_ref, g_ref = sacbc_reference(r, c, b)
        for k in m_ref:
            assert m[k] == pytest.approx(m_ref[k], rel=1e-5, abs=1e-6), k
        close(grads(algo.critic, algo.actor), g_ref)
    close(params(algo.actor, algo.critic, algo.critic_target), params(r.actor, r.critic, r.critic_target))
    if c.q_max is not None:
        assert (torch.cat(r.critic(b.obs, b.act)) <= c.q_max).all()


def test_bc_term_by_hand():
    """A policy with mean 0 and log-std -3 (the sigmoid map's midpoint of [-6, 0] at its initial logits 0):
    -log N(a; 0, e^-3) summed over 3 dimensions for a = (0.1, 0, -0.1) is
    2 * 0.5 * 0.01 * e^6 + 3 * (-3) + 3 * 0.5 * log(2 pi) = 4.0342879 - 9 + 2.7568156 = -2.2088965."""
    algo = algorithms.make("sac-bc", OBS, ACT, overrides=SMALL)
    with torch.no_grad():
        algo.actor.net[-1].weight.zero_()
        algo.actor.net[-1].bias.zero_()
    demo = Batch(torch.randn(4, OBS), torch.tensor([[0.1, 0.0, -0.1]] * 4), torch.zeros(4), torch.zeros(4, OBS),
                 torch.zeros(4))
    assert algo.bc_loss(demo).item() == pytest.approx(-2.2088965, abs=1e-5)
    assert 0.01 * math.exp(6) + -9 + 1.5 * math.log(2 * math.pi) == pytest.approx(-2.2088965, abs=1e-6)


def test_the_q_term_moves_the_actor_but_not_the_critic():
    """With the BC weight at 0 the actor's gradient is the Q term's alone; the critic's gradient is the TD loss's
    alone (the Q term is computed with the critic frozen)."""
    torch.manual_seed(0)
    algo = algorithms.make("sac-bc", OBS, ACT, overrides={**SMALL, "bc_weight": 0.0})
    assert algo.demo_batch_size() == 0  # no demonstration batch is drawn when it has no weight
    b = batch(0)
    torch.manual_seed(1)
    next_noise, pi_noise = torch.randn(B := b.act.shape[0], ACT), torch.randn(B, ACT)
    critic_loss, actor_loss, _ = algo.losses(b, next_noise, pi_noise)
    g_critic = torch.autograd.grad(critic_loss, list(algo.critic.parameters()))
    g_actor_into_critic = torch.autograd.grad(actor_loss, list(algo.critic.parameters()), allow_unused=True)
    assert all(g is None for g in g_actor_into_critic)
    assert any(g.abs().sum() > 0 for g in g_critic)
    g_actor = torch.autograd.grad(actor_loss, list(algo.actor.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in g_actor)


def test_update_without_a_demonstration_batch_says_what_is_missing():
    algo = algorithms.make("sac-bc", OBS, ACT, overrides=SMALL)
    with pytest.raises(RuntimeError, match="demonstration batch"):
        algo.update(batch(0))


# -- the demonstration rows ------------------------------------------------------------------------------------
def _dataset(n=40, demo=None):
    rng = np.random.default_rng(0)
    f32 = np.float32
    act = np.repeat(np.arange(n, dtype=f32)[:, None] / n, ACT, axis=1)  # the row number, readable from the action
    return Dataset(rng.standard_normal((n, OBS)).astype(f32), act, np.zeros(n, f32),
                   rng.standard_normal((n, OBS)).astype(f32), np.zeros(n, f32), np.arange(n) % 10 == 9, demo=demo)


def test_the_demonstration_batch_comes_from_the_marked_rows_only():
    algo = algorithms.make("sac-bc", OBS, ACT, overrides={**SMALL, "demo_batch_size": 64})
    demo = np.zeros(40, bool)
    demo[[3, 4, 17]] = True
    buf = prior_buffer(algo, _dataset(demo=demo), 100)
    b = minibatch(buf, algo, 32, "offline")
    assert b.demo is not None and b.demo.act.shape == (64, ACT)
    rows = set(torch.round(b.demo.act[:, 0] * 40).int().tolist())
    assert rows == {3, 4, 17}  # every marked row, and nothing else, in 64 draws
    assert b.obs.shape == (32, OBS)


def test_a_dataset_that_marks_no_row_lends_every_row_and_one_that_marks_none_is_an_error():
    algo = algorithms.make("sac-bc", OBS, ACT, overrides=SMALL)
    buf = prior_buffer(algo, _dataset(demo=None), 100)
    assert buf.demo_rows.tolist() == list(range(40))
    with pytest.raises(UserError, match="marks none of its 40 rows"):
        prior_buffer(algo, _dataset(demo=np.zeros(40, bool)), 100)
    other = algorithms.make("bc", OBS, ACT)  # an algorithm without a demonstration batch never gets one
    assert prior_buffer(other, _dataset(), 100).demo_rows is None
    assert minibatch(prior_buffer(other, _dataset(), 100), other, 8, "offline").demo is None


def test_the_source_column_marks_demonstrations_through_every_view(tmp_path):
    """A generated file's ``source`` column (0 = demonstration) gives ``Dataset.demo``, kept row for row by the
    D4RL ``qlearning_dataset`` derivation and by the goal-terminal view."""
    obs = np.arange(8, dtype=np.float32).reshape(8, 1)
    raw = {"observations": obs, "actions": np.zeros((8, 1), np.float32), "rewards": np.zeros(8, np.float32),
           "terminals": np.zeros(8, bool), "timeouts": np.array([0, 0, 1, 0, 0, 0, 0, 0], bool),
           "source": np.array([0, 0, 0, 1, 1, 0, 1, 1], np.uint8)}
    ds = from_arrays(raw, "mem")  # rows 2 (a timeout) and 7 (the last) are dropped
    np.testing.assert_array_equal(ds.obs[:, 0], [0, 1, 3, 4, 5, 6])
    np.testing.assert_array_equal(ds.demo, [1, 1, 0, 0, 1, 0])
    view = ds.goal_terminal_view(np.array([0, 1, 0, 0, 1, 0], bool))  # episode 1 cut after row 1, 2 after row 5
    np.testing.assert_array_equal(view.obs[:, 0], [0, 1, 3, 4, 5])
    np.testing.assert_array_equal(view.demo, [1, 1, 0, 0, 1])
    path = str(tmp_path / "d.hdf5")
    write_d4rl_hdf5(path, ds, extra={"source": np.where(ds.demo, 0, 1).astype(np.uint8)})
    np.testing.assert_array_equal(load_d4rl_hdf5(path).demo, ds.demo)
    raw["source"] = np.zeros(3, np.uint8)  # a file's own "source" of another length is not the suite's column
    assert from_arrays(raw, "mem").demo is None
    del raw["source"]
    assert from_arrays(raw, "mem").demo is None


def test_a_harness_run_records_its_demonstration_rows(tmp_path):
    """Short runs on Pendulum with a D4RL file: config.json gives the number of demonstration rows (the file's
    source-0 rows, or every row and a warning where the file has no source column), the BC loss is logged and
    finite, and the same seed gives the same rows."""
    import json
    from pathlib import Path

    import pandas as pd

    from benchmarks.run.harness import RunSpec, run

    n = 60
    rng = np.random.default_rng(0)
    f32 = np.float32
    ds = Dataset(rng.standard_normal((n, 3)).astype(f32), rng.uniform(-2, 2, (n, 1)).astype(f32),
                 rng.standard_normal(n).astype(f32), rng.standard_normal((n, 3)).astype(f32), np.zeros(n, f32),
                 np.arange(n) % 20 == 19)
    source = (np.arange(n) >= 20).astype(np.uint8)  # the first episode is the demonstration
    write_d4rl_hdf5(str(tmp_path / "marked.hdf5"), ds, extra={"source": source})
    write_d4rl_hdf5(str(tmp_path / "plain.hdf5"), ds)

    def go(name, out):
        spec = RunSpec(algo="sac-bc", task="custom", dataset=str(tmp_path / name), env="Pendulum-v1",
                       offline_steps=20, online_steps=10, eval_every=10, eval_episodes=1, log_every=5,
                       overrides={**SMALL, "batch_size": 16, "offline_batch_size": 16, "demo_batch_size": 8})
        run_dir = Path(run(spec, str(tmp_path / out), progress=False))
        return json.loads((run_dir / "config.json").read_text()), pd.read_csv(run_dir / "train.csv")

    config, train = go("marked.hdf5", "a")
    assert config["demo_rows"] == 20 and not config["warnings"]
    bc = train.loc[train.metric == "bc_loss", "value"]
    assert len(bc) and np.isfinite(bc).all()
    _, again = go("marked.hdf5", "b")
    pd.testing.assert_frame_equal(train, again)
    config, _ = go("plain.hdf5", "c")
    assert config["demo_rows"] == n and "marks no demonstration rows" in config["warnings"][0]


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_the_policy_learns_the_demonstrations_not_the_other_rows(sign):
    """Prior data whose demonstration rows take action +0.8 * sign and whose other rows (90%) take -0.8 * sign, with
    zero rewards: 300 updates of the BC term on the demonstration batch (the Q term has nothing to prefer) bring the
    policy's mean to the demonstrations' side, though most of every ordinary batch is on the other side."""
    n = 200
    rng = np.random.default_rng(0)
    f32 = np.float32
    demo = np.arange(n) < 20
    act = np.where(demo, 0.8 * sign, -0.8 * sign)[:, None].repeat(ACT, 1).astype(f32)
    ds = Dataset(rng.standard_normal((n, OBS)).astype(f32), act, np.zeros(n, f32),
                 rng.standard_normal((n, OBS)).astype(f32), np.zeros(n, f32), np.arange(n) % 20 == 19, demo=demo)
    torch.manual_seed(0)
    algo = algorithms.make("sac-bc", OBS, ACT, overrides={**SMALL, "actor_lr": 1e-3, "demo_batch_size": 32})
    buf = prior_buffer(algo, ds, n, seed=0)
    for _ in range(300):
        algo.update(minibatch(buf, algo, 32, "offline"))
    mean = algo.act(ds.obs, deterministic=True).mean()
    assert mean * sign > 0.5, mean


def test_the_shipped_human_data_is_demonstrations_throughout():
    """pen-binary-human and door-binary-human are the human demonstrations alone: every row is a demonstration
    row (no warning); a generated task's rows are marked by its file, and MuJoCo's tasks claim nothing."""
    from benchmarks.tasks.registry import get_task

    for name in ("pen-binary-human", "door-binary-human"):
        task = get_task(name)
        assert task.demonstrations_only
        ds = task.load_dataset(None, None)
        assert ds.demo is not None and ds.demo.all() and len(ds.demo) == len(ds)
    assert not any(get_task(n).demonstrations_only for n in ("pen-binary", "door-binary", "halfcheetah-awac"))
    assert not get_task("pen-binary-human", dataset="other.hdf5").demonstrations_only  # another file: unknown
    assert get_task("pen-binary-human", env_id="AdroitHandPen-v1").demonstrations_only
