"""IQL: hand-computed values of its pieces, and whole updates against a straightforward version of the rule."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.nn import functional as F

import algorithms
from algorithms.base import Batch
from algorithms.iql import advantage_weights, expectile_loss
from algorithms.networks import ReLUMLP, diag_gaussian_log_prob

OBS, ACT, B = 5, 3, 32


def test_expectile_loss_by_hand():
    u = torch.tensor([2.0, -1.0])
    # tau = 0.7: weights 0.7 (u > 0) and 0.3 (u < 0): (0.7 * 4 + 0.3 * 1) / 2 = 1.55
    assert expectile_loss(u, 0.7).item() == pytest.approx(1.55)
    # tau = 0.5 is half the squared error: 0.5 * (4 + 1) / 2 = 1.25
    assert expectile_loss(u, 0.5).item() == pytest.approx(1.25)
    # u = 0 costs nothing whichever weight it gets
    assert expectile_loss(torch.zeros(3), 0.9).item() == 0.0


def test_advantage_weights_by_hand():
    w = advantage_weights(torch.tensor([0.0, 1.0, 2.0, -1.0]), beta=3.0)
    # exp(0) = 1, exp(3) = 20.0855, exp(6) = 403.4 -> clipped at 100, exp(-3) = 0.0498
    torch.testing.assert_close(w, torch.tensor([1.0, 20.085537, 100.0, 0.049787]), rtol=1e-5, atol=0)


def test_actor_learning_rate_follows_the_cosine_schedule():
    algo = algorithms.make("iql", OBS, ACT, overrides={"actor_hidden": (8,), "critic_hidden": (8,),
                                                       "value_hidden": (8,), "actor_lr_decay_steps": 100})
    assert algo.actor_lr(0) == pytest.approx(3e-4)
    assert algo.actor_lr(50) == pytest.approx(1.5e-4)  # 0.5 (1 + cos(pi / 2))
    assert algo.actor_lr(100) == pytest.approx(0.0, abs=1e-12)
    assert algo.actor_lr(1000) == pytest.approx(0.0, abs=1e-12)
    assert algorithms.make("iql", OBS, ACT, preset="antmaze").actor_lr(10**6) == pytest.approx(3e-4)


def plain(module):
    m = copy.deepcopy(module)
    m.__dict__.pop("_flat_parameters", None)
    for p in m.parameters():
        p.data = p.data.clone()
    for sub in m.modules():
        if isinstance(sub, ReLUMLP):
            sub.fused_backward = False
    return m


def test_updates_match_the_straightforward_rule():
    torch.manual_seed(0)
    algo = algorithms.make("iql", OBS, ACT, overrides={"actor_hidden": (16, 16), "critic_hidden": (16, 16),
                                                       "value_hidden": (16, 16), "actor_lr_decay_steps": 3})
    c = algo.cfg
    actor, critic, target, value = (plain(m) for m in (algo.actor, algo.critic, algo.critic_target, algo.value))
    a_opt = torch.optim.Adam(actor.parameters(), lr=c.actor_lr)
    q_opt = torch.optim.Adam(critic.parameters(), lr=c.critic_lr)
    v_opt = torch.optim.Adam(value.parameters(), lr=c.value_lr)
    for step in range(4):
        g = torch.Generator().manual_seed(step)
        b = Batch(torch.randn(B, OBS, generator=g), torch.rand(B, ACT, generator=g) * 1.8 - 0.9,
                  torch.randn(B, generator=g), torch.randn(B, OBS, generator=g),
                  (torch.rand(B, generator=g) < 0.2).float())
        m = algo.update(b)
        # the rule, one loss and one optimizer at a time
        with torch.no_grad():
            q = torch.minimum(*target(b.obs, b.act))
        u = q - value(b.obs).squeeze(-1)
        v_loss = (torch.where(u > 0, c.expectile, 1 - c.expectile) * u ** 2).mean()
        v_opt.zero_grad()
        v_loss.backward()
        v_opt.step()
        with torch.no_grad():
            w = torch.exp(c.beta * (q - value(b.obs).squeeze(-1))).clamp(max=100.0)
            y = b.rew + c.gamma * (1 - b.done) * value(b.next_obs).squeeze(-1)
        mean, log_std = actor(b.obs)
        a_loss = -(w * diag_gaussian_log_prob(b.act, mean, log_std)).mean()
        a_opt.zero_grad()
        a_loss.backward()
        for group in a_opt.param_groups:
            group["lr"] = c.actor_lr * 0.5 * (1 + math.cos(math.pi * min(step, 3) / 3))
        a_opt.step()
        q1, q2 = critic(b.obs, b.act)
        q_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        q_opt.zero_grad()
        q_loss.backward()
        q_opt.step()
        with torch.no_grad():
            for t, s in zip(target.parameters(), critic.parameters(), strict=True):
                t.mul_(1 - c.tau).add_(s, alpha=c.tau)
        for k, ref in (("value_loss", v_loss), ("actor_loss", a_loss), ("critic_loss", q_loss)):
            assert m[k] == pytest.approx(ref.item(), rel=1e-5, abs=1e-6), (step, k)
        for mine, ref in ((algo.actor, actor), (algo.critic, critic), (algo.critic_target, target),
                          (algo.value, value)):
            for p, r in zip(mine.parameters(), ref.parameters(), strict=True):
                torch.testing.assert_close(p, r, rtol=1e-5, atol=1e-6)
