"""Known-answer tests of AWAC's update (rlkit AWACTrainer semantics)."""

import math

import numpy as np
import pytest
import torch

import algorithms
from algorithms.awac import AWAC
from algorithms.base import Batch
from algorithms.networks import GaussianPolicy, diag_gaussian_log_prob


def test_weights_are_batch_softmax_times_batch_size():
    # beta = 1, A = [0, ln 3]: softmax = [1, 3] / 4 -> times B = 2 -> [0.5, 1.5]
    w = AWAC.advantage_weights(torch.tensor([0.0, math.log(3.0)]), beta=1.0)
    torch.testing.assert_close(w, torch.tensor([0.5, 1.5]))
    # beta = 2, A = [0, 2 ln 3, 0, 0]: exp(A/2) = [1, 3, 1, 1], sum 6 -> * 4 / 6 = [2/3, 2, 2/3, 2/3]
    w = AWAC.advantage_weights(torch.tensor([0.0, 2 * math.log(3.0), 0.0, 0.0]), beta=2.0)
    torch.testing.assert_close(w, torch.tensor([2 / 3, 2.0, 2 / 3, 2 / 3]))
    assert w.sum().item() == pytest.approx(4.0)  # weights always average to one


def test_advantage_clip_of_the_hand_variant():
    # beta = 0.5, clip 0.5, A = [0, 3] -> [0, 0.5] -> exp(A / 0.5) = [1, e] -> * 2 / (1 + e)
    w = AWAC.advantage_weights(torch.tensor([0.0, 3.0]), beta=0.5, adv_clip=0.5)
    e = math.e
    torch.testing.assert_close(w, torch.tensor([2 / (1 + e), 2 * e / (1 + e)]))


def test_gaussian_policy_log_std_squashing_and_density():
    pol = GaussianPolicy(2, 2, (8,), min_log_std=-6.0, max_log_std=0.0)
    # logits 0 -> sigmoid 0.5 -> log_std = -6 + 0.5 * 6 = -3 (rlkit's initial std = e^-3)
    _, log_std = pol(torch.zeros(1, 2))
    torch.testing.assert_close(log_std, torch.full((2,), -3.0))
    # N(0; 0, 1) in 2-D: 2 * (-0.5 * ln(2 pi)) = -1.837877
    lp = diag_gaussian_log_prob(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(2))
    assert lp.item() == pytest.approx(-math.log(2 * math.pi), abs=1e-6)


def test_hand_preset_matches_rlkit_hand_script():
    cfg = algorithms.resolve_config("awac", "hand")
    assert (cfg.beta, cfg.adv_clip, cfg.v_from_mean, cfg.q_max, cfg.actor_hidden) == (0.5, 0.5, True, 0.0, (256, 256))
    cfg = algorithms.resolve_config("awac")
    assert (cfg.beta, cfg.batch_size, cfg.tau, cfg.gamma, cfg.actor_weight_decay) == (2.0, 1024, 5e-3, 0.99, 1e-4)
    assert algorithms.resolve_config("awac", "paper").beta == 1.0
    # the paper's text: lambda = 0.3 for manipulation, a 4 x 256 policy; railrl reference/hand/awac1.py: clip_score 2
    cfg = algorithms.resolve_config("awac", "hand-paper")
    assert (cfg.beta, cfg.adv_clip, cfg.v_from_mean, cfg.q_max, cfg.actor_hidden, cfg.critic_hidden) == (
        0.3, 2.0, True, 0.0, (256, 256, 256, 256), (256, 256))


@pytest.mark.parametrize("preset", ["mujoco", "hand", "paper", "hand-paper"])
def test_presets_pretrain_on_rlkit_bc_batch_size(preset):
    # rlkit AWACTrainer.pretrain_q_with_bc_data samples bc_batch_size = 128; online training uses 1024
    algo = algorithms.make("awac", 4, 2, preset=preset)
    assert (algo.batch_size("offline"), algo.batch_size("online")) == (128, 1024)
    assert algorithms.make("awac", 4, 2).batch_size("offline") == 1024  # no preset: batch_size throughout


def test_paper_preset_offline_steps_per_task_family():
    # rlkit q_num_pretrain2_steps: 25000 in examples/awac/hand/awac1.py, 50000 in examples/awac/mujoco/awac1.py
    from benchmarks.sweeps.presets import grid

    specs = grid("paper", algos=["awac"], tasks=["pen-binary-human", "halfcheetah-sac-replay"], seeds=[0])
    assert {s.task: s.offline_steps for s in specs} == {"pen-binary-human": 25_000, "halfcheetah-sac-replay": 50_000}
    assert {s.online_steps for s in specs} == {500_000}
    quick = grid("quick", algos=["awac"], tasks=["pen-binary-human", "halfcheetah-sac-replay"], seeds=[0])
    assert {s.offline_steps for s in quick} == {4_000}  # only the paper preset varies by family


def _batch(n=8, obs=4, act=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, obs, generator=g), torch.rand(n, act, generator=g) * 2 - 1,
                 -torch.rand(n, generator=g), torch.randn(n, obs, generator=g), torch.zeros(n))


def test_actor_loss_is_the_weighted_negative_log_likelihood():
    """Recompute one update's actor loss by hand from the pre-update networks and the same noise."""
    torch.manual_seed(0)
    algo = algorithms.make("awac", 4, 2, overrides={"actor_hidden": (16,), "critic_hidden": (16,), "beta": 2.0})
    b = _batch()
    with torch.no_grad():
        mean, log_std = algo.actor(b.obs)
        q1, q2 = algo.critic(b.obs, b.act)
    torch.manual_seed(1)
    algo.actor.sample(b.next_obs)  # the critic target's draw comes first in update()
    noise = torch.randn_like(mean)
    with torch.no_grad():
        v = algo.critic.min_q(b.obs, mean + log_std.exp() * noise)
        adv = torch.minimum(q1, q2) - v
        w = torch.exp(adv / 2.0) / torch.exp(adv / 2.0).sum() * len(adv)
        expected = -(w * diag_gaussian_log_prob(b.act, mean, log_std)).mean().item()
    torch.manual_seed(1)
    m = algo.update(b)
    assert m["actor_loss"] == pytest.approx(expected, rel=1e-5)


def test_critic_target_uses_min_of_target_twins_and_ignores_terminals_in_hand_variant():
    torch.manual_seed(0)
    algo = algorithms.make("awac", 4, 2, "hand", overrides={"actor_hidden": (16,), "critic_hidden": (16,)})
    b = _batch()
    b = b._replace(done=torch.ones(8))
    with torch.no_grad():
        q1, q2 = algo.critic(b.obs, b.act)
        torch.manual_seed(1)
        a2 = algo.actor.sample(b.next_obs)
        y = b.rew + 0.99 * algo.critic_target.min_q(b.next_obs, a2)  # done ignored: (1 - 0)
        expected = ((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean()
    torch.manual_seed(1)
    m = algo.update(b)
    assert m["critic_loss"] == pytest.approx(expected.item(), rel=1e-5)
    # Q is clamped at <= 0 for binary rewards
    q = algo.critic.min_q(torch.randn(64, 4) * 100, torch.rand(64, 2))
    assert (q <= 0).all()


def test_awac_learns_to_prefer_the_better_action():
    """A one-state bandit: action +0.5 pays 0, action -0.5 pays -1. AWAC's mean must move towards +0.5."""
    torch.manual_seed(0)
    algo = algorithms.make("awac", 1, 1, overrides={"actor_hidden": (32,), "critic_hidden": (32,),
                                                     "beta": 0.3, "gamma": 0.0})
    n = 256
    act = torch.where(torch.arange(n) % 2 == 0, 0.5, -0.5).reshape(n, 1)
    # the state is 1, not 0: with rlkit's zero hidden biases a zero input would leave every hidden unit at 0
    b = Batch(torch.ones(n, 1), act, torch.where(act[:, 0] > 0, 0.0, -1.0), torch.ones(n, 1),
              torch.ones(n))
    for _ in range(400):
        algo.update(b)
    a = algo.act(np.ones((1, 1), np.float32), deterministic=True)[0, 0]
    assert a > 0.3, a
