"""ReBRAC: the actor's and the critic's BC penalties by hand, the online BC schedule, and whole updates (offline,
then online) against a straightforward per-member version of the rule."""

from __future__ import annotations

import pytest
import torch
from test_cql import check_learns_and_round_trips
from test_rlpd import assert_members_equal, member_mlps
from torch import nn

import algorithms
from algorithms.base import Batch
from algorithms.rebrac import bc_penalty

OBS, ACT, B = 5, 3, 16
SMALL = {"actor_hidden": (16, 16), "critic_hidden": (16, 16)}


def random_batch(g: torch.Generator) -> Batch:
    next_act = torch.rand(B, ACT, generator=g) * 2.0 - 1.0
    next_act[:2] = float("nan")  # rows whose episode does not go on in the buffer
    return Batch(torch.randn(B, OBS, generator=g), torch.rand(B, ACT, generator=g) * 2.0 - 1.0,
                 torch.randn(B, generator=g), torch.randn(B, OBS, generator=g),
                 (torch.rand(B, generator=g) < 0.2).float(),
                 extras={"next_act": next_act})


def test_bc_penalty_by_hand():
    pred = torch.tensor([[0.5, -0.5], [0.0, 1.0], [0.3, 0.3]])
    data = torch.tensor([[0.0, 0.5], [0.0, 0.0], [float("nan"), float("nan")]])
    # (0.5)^2 + (-1)^2 = 1.25 (summed over the action, not averaged); 0 + 1 = 1; a missing data action: 0
    torch.testing.assert_close(bc_penalty(pred, data), torch.tensor([1.25, 1.0, 0.0]))


class Const(nn.Module):
    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out = out

    def forward(self, *args):
        return self.out


class QuadCritic(nn.Module):
    """Q_k(s, a) = c_k - ||a||^2, as a [K, B] ensemble."""

    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, obs, act):
        return torch.stack([ck - act.square().sum(-1) for ck in self.c])


def test_actor_loss_by_hand():
    algo = algorithms.make("rebrac", OBS, 2, overrides=SMALL)
    algo.actor = Const(torch.tensor([[0.5, -0.5], [0.0, 1.0]]))
    algo.critic = QuadCritic([1.0, 2.0])
    obs, act = torch.zeros(2, OBS), torch.tensor([[0.0, 0.5], [0.0, 0.0]])
    # BC penalty [1.25, 1]; ||pi||^2 = [0.5, 1] so Q_1 = [0.5, 0], Q_2 = [1.5, 1], min = [0.5, 0];
    # lambda = 1 / mean|min Q| = 1 / 0.25 = 4; L = mean(0.1 [1.25, 1] - 4 [0.5, 0]) = (-1.875 + 0.1) / 2 = -0.8875
    loss, _ = algo.actor_loss(obs, act, actor_bc=0.1)
    assert loss.item() == pytest.approx(-0.8875)
    # without the Q normalisation: (0.125 - 0.5 + 0.1) / 2 = -0.1375
    algo.cfg.normalize_q = False
    assert algo.actor_loss(obs, act, actor_bc=0.1)[0].item() == pytest.approx(-0.1375)


def test_critic_loss_by_hand():
    algo = algorithms.make("rebrac", OBS, 2, overrides=SMALL)
    algo.actor_target = Const(torch.tensor([[-0.8, 0.0]]))
    algo.critic_target = Const(torch.tensor([[3.0], [2.0]]))  # Q'_1 = 3, Q'_2 = 2 at (s', a')
    algo.critic = Const(torch.tensor([[2.0], [3.0]]))          # Q_1 = 2, Q_2 = 3 at (s, a)
    obs, act = torch.zeros(1, OBS), torch.zeros(1, 2)
    rew, done, next_act_data = torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([[0.5, 0.0]])
    eps = torch.tensor([[10.0, -1.0]])
    # noise = clip(0.2 eps, -0.5, 0.5) = [0.5, -0.2]; a' = clip(pi'(s') + noise, -1, 1) = [-0.3, -0.2]
    # (without the noise clip a' would be [1.0, -0.2]); critic BC penalty ||a' - a'_data||^2 = 0.64 + 0.04 = 0.68
    # y = 1 + 0.99 (min(3, 2) - 0.5 * 0.68) = 2.6434; L = (2 - 2.6434)^2 + (3 - 2.6434)^2 = 0.5411271
    loss, stats = algo.critic_loss(obs, act, rew, obs, done, next_act_data, 0.5, eps)
    assert loss.item() == pytest.approx(0.5411271, rel=1e-6)
    assert stats["critic_bc_penalty"].item() == pytest.approx(0.68)
    # a terminal: y = 1, L = 1 + 4 = 5
    assert algo.critic_loss(obs, act, rew, obs, torch.ones(1), next_act_data, 0.5, eps)[0].item() == pytest.approx(5)


def test_online_bc_schedule():
    algo = algorithms.make("rebrac", OBS, ACT, overrides={**SMALL, "actor_bc_coef": 0.2, "critic_bc_coef": 0.3,
                                                          "bc_decay_updates": 10})
    assert algo.bc_coefs() == (0.2, 0.3)
    algo.on_phase_switch(None)
    for k, want in ((0, 0.2), (2, 0.16), (4, 0.12), (6, 0.1), (9, 0.1)):
        algo.online_updates = k  # CORL: max(min_decay_coef, 1 - k / num_online_updates); the critic's is 0 online
        assert algo.bc_coefs() == (pytest.approx(want), 0.0), k


def test_update_learns_and_round_trips(tmp_path):
    check_learns_and_round_trips("rebrac", SMALL, random_batch, tmp_path)


def test_missing_next_action_is_named():
    algo = algorithms.make("rebrac", OBS, ACT, overrides=SMALL)
    with pytest.raises(RuntimeError, match="next_act"):
        algo.update(random_batch(torch.Generator().manual_seed(0))._replace(extras={}))


def test_declarations_and_presets():
    algo = algorithms.make("rebrac", OBS, ACT)
    assert algo.batch_extras == ("next_act",) and algo.online_mix() == 0.5 and algo.online_rhythm() == (1, 1)
    assert algo.pretrains and algo.log_likelihood(torch.zeros(1, OBS), torch.zeros(1, ACT)) is None
    assert (algo.cfg.batch_size, algo.cfg.actor_lr, algo.cfg.critic_hidden) == (1024, 1e-3, (256, 256, 256))
    hand = algorithms.resolve_config("rebrac", "hand")
    assert (hand.batch_size, hand.actor_lr, hand.actor_bc_coef, hand.critic_bc_coef) == (256, 3e-4, 0.05, 0.5)


def test_updates_match_the_straightforward_rule():
    """Two offline updates, the switch, three online ones (BC decay over 4 online updates)."""
    torch.manual_seed(0)
    algo = algorithms.make("rebrac", OBS, ACT, overrides={**SMALL, "actor_bc_coef": 0.3, "critic_bc_coef": 0.2,
                                                          "bc_decay_updates": 4})
    c = algo.cfg
    actor, actor_t = member_mlps(algo.actor.net), member_mlps(algo.actor_target.net)
    critics, targets = member_mlps(algo.critic.net), member_mlps(algo.critic_target.net)
    a_opt = torch.optim.Adam(actor.parameters(), lr=c.actor_lr)
    q_opt = torch.optim.Adam(critics.parameters(), lr=c.critic_lr)

    def polyak(target, source):
        with torch.no_grad():
            for t, s in zip(target.parameters(), source.parameters(), strict=True):
                t.mul_(1 - c.tau).add_(s, alpha=c.tau)

    for step in range(5):
        if step == 2:
            algo.on_phase_switch(None)
        online_k = step - 2
        actor_bc = 0.3 if online_k < 0 else 0.3 * max(0.5, 1 - online_k / 4)
        critic_bc = 0.2 if online_k < 0 else 0.0
        b = random_batch(torch.Generator().manual_seed(step))
        torch.manual_seed(100 + step)
        m = algo.update(b)
        torch.manual_seed(100 + step)
        eps = torch.randn(B, ACT)
        with torch.no_grad():
            a_next = (torch.tanh(actor_t[0](b.next_obs)) + (c.policy_noise * eps).clamp(-0.5, 0.5)).clamp(-1, 1)
            data = b.extras["next_act"]
            pen = torch.nan_to_num((a_next - data) ** 2).sum(-1)  # NaN rows: no penalty
            x_next = torch.cat([b.next_obs, a_next], -1)
            q_next = torch.minimum(targets[0](x_next), targets[1](x_next)).squeeze(-1)
            y = b.rew + c.gamma * (1 - b.done) * (q_next - critic_bc * pen)
        x = torch.cat([b.obs, b.act], -1)
        q_loss = sum(((q(x).squeeze(-1) - y) ** 2).mean() for q in critics)
        q_opt.zero_grad()
        q_loss.backward()
        q_opt.step()
        assert m["critic_loss"] == pytest.approx(q_loss.item(), rel=1e-5), step
        if step % 2 == 0:
            pi = torch.tanh(actor[0](b.obs))
            x_pi = torch.cat([b.obs, pi], -1)
            q_pi = torch.minimum(critics[0](x_pi), critics[1](x_pi)).squeeze(-1)
            pi_loss = (actor_bc * ((pi - b.act) ** 2).sum(-1) - q_pi / q_pi.detach().abs().mean()).mean()
            a_opt.zero_grad()
            for p, gr in zip(actor.parameters(), torch.autograd.grad(pi_loss, list(actor.parameters())),
                             strict=True):
                p.grad = gr
            polyak(actor_t, actor)  # the target moves toward the actor the step started from
            a_opt.step()
            polyak(targets, critics)
            assert m["actor_loss"] == pytest.approx(pi_loss.item(), rel=1e-5), step
        assert m["actor_bc_coef"] == pytest.approx(actor_bc), step
        for net, members in ((algo.actor.net, actor), (algo.actor_target.net, actor_t), (algo.critic.net, critics),
                             (algo.critic_target.net, targets)):
            assert_members_equal(net, members)
