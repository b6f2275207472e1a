"""RLPD: the layer-normalised ensemble critic and the random-subset target by hand, the temperature loss, the
actor's once-per-block rhythm, and whole updates against a straightforward per-member version of the rule."""

from __future__ import annotations

import math

import pytest
import torch
from test_cql import check_learns_and_round_trips, plain
from torch import nn
from torch.nn import functional as F

import algorithms
from algorithms.base import Batch
from algorithms.ensembles import EnsembleMLP, EnsembleQ
from algorithms.rlpd import expected_subset_min

OBS, ACT, B = 5, 3, 16
SMALL = {"hidden_dims": (16, 16), "num_qs": 4}


def random_batch(g: torch.Generator) -> Batch:
    return Batch(torch.randn(B, OBS, generator=g), torch.rand(B, ACT, generator=g) * 2.0 - 1.0,
                 torch.randn(B, generator=g), torch.randn(B, OBS, generator=g),
                 (torch.rand(B, generator=g) < 0.2).float())


@torch.no_grad()
def hand_set_q(layer_norm: str | None, scale=(1.0, 1.0), shift=(0.0, 0.0)) -> EnsembleQ:
    """One member, |S| = |A| = 1, one hidden layer of 2: W1 = I, b1 = 0, W2 = [3, 5], b2 = 0.5."""
    q = EnsembleQ(1, 1, (2,), num=1, layer_norm=layer_norm)
    q.net.weights[0].copy_(torch.eye(2).unsqueeze(0))
    q.net.biases[0].zero_()
    q.net.weights[1].copy_(torch.tensor([[[3.0], [5.0]]]))
    q.net.biases[1].fill_(0.5)
    if layer_norm:
        q.net.norm_scales[0].copy_(torch.tensor([[scale]]))
        q.net.norm_biases[0].copy_(torch.tensor([[shift]]))
    return q


def test_layer_norm_critic_forward_by_hand():
    obs, act = torch.tensor([[1.0], [1.0]]), torch.tensor([[2.0], [-2.0]])  # inputs [1, 2] and [1, -2]
    # flax LayerNorm's eps = 1e-6: a normalised +-1 is 1 / sqrt(1 + 1e-6 / var) for a pair of variance var
    ka, kb = 1.0 / math.sqrt(1.0 + 1e-6 / 0.25), 1.0 / math.sqrt(1.0 + 1e-6 / 2.25)
    # RLPD order, LayerNorm then ReLU. Row 0: [1, 2] -> mean 1.5, var 0.25 -> [-1, 1] -> ReLU [0, 1] -> 5 + 0.5.
    # Row 1: [1, -2] -> mean -0.5, var 2.25 -> [1, -1] -> ReLU [1, 0] -> 3 + 0.5
    q = hand_set_q("before_relu")(obs, act)[0]
    torch.testing.assert_close(q, torch.tensor([5.0 * ka + 0.5, 3.0 * kb + 0.5]), rtol=1e-6, atol=1e-6)
    # ReBRAC order, ReLU then LayerNorm. Row 0: ReLU [1, 2] -> [-1, 1] -> -3 + 5 + 0.5 = 2.5.
    # Row 1: ReLU [1, 0] -> mean 0.5, var 0.25 -> [1, -1] -> 3 - 5 + 0.5 = -1.5
    q = hand_set_q("after_relu")(obs, act)[0]
    torch.testing.assert_close(q, torch.tensor([2.0 * ka + 0.5, -2.0 * ka + 0.5]), rtol=1e-6, atol=1e-6)
    # no LayerNorm: ReLU [1, 2] -> 3 + 10 + 0.5 = 13.5; ReLU [1, 0] -> 3.5
    torch.testing.assert_close(hand_set_q(None)(obs, act)[0], torch.tensor([13.5, 3.5]))
    # learned scale [2, 1] and bias [0, 0.5], before the ReLU. Row 0: [-2, 1.5] -> [0, 1.5] -> 7.5 + 0.5 = 8.
    # Row 1: [2, -0.5] -> [2, 0] -> 6 + 0.5 = 6.5
    q = hand_set_q("before_relu", scale=(2.0, 1.0), shift=(0.0, 0.5))(obs, act)[0]
    torch.testing.assert_close(q, torch.tensor([5.0 * (ka + 0.5) + 0.5, 6.0 * kb + 0.5]), rtol=1e-6, atol=1e-6)


def constant_ensemble(q: EnsembleQ, values) -> None:
    """Member k outputs values[k] whatever its input: a zero last kernel and the value as its bias."""
    with torch.no_grad():
        q.net.weights[-1].zero_()
        q.net.biases[-1].copy_(torch.tensor(values).reshape(-1, 1, 1))


def test_random_subset_target_by_hand():
    algo = algorithms.make("rlpd", OBS, ACT, overrides={**SMALL, "backup_entropy": False})
    constant_ensemble(algo.critic_target, [4.0, 1.0, 3.0, 2.0])
    constant_ensemble(algo.critic, [0.0, 0.0, 0.0, 0.0])
    b = random_batch(torch.Generator().manual_seed(0))._replace(rew=torch.full((B,), 0.5), done=torch.zeros(B))
    alpha, noise = torch.ones(1), torch.randn(B, ACT)
    # members {0, 2}: min(4, 3) = 3, y = 0.5 + 0.99 * 3 = 3.47, loss = mean (0 - 3.47)^2 = 12.0409
    loss, _ = algo.critic_loss(b.obs, b.act, b.rew, b.next_obs, b.done, alpha, noise, torch.tensor([0, 2]))
    assert loss.item() == pytest.approx(12.0409, rel=1e-5)
    # members {1, 3}: min(1, 2) = 1, y = 1.49, loss = 2.2201 (a min over all four would also give 1; {0, 2} not)
    loss, _ = algo.critic_loss(b.obs, b.act, b.rew, b.next_obs, b.done, alpha, noise, torch.tensor([1, 3]))
    assert loss.item() == pytest.approx(2.2201, rel=1e-5)
    # a terminal row does not bootstrap: y = 0.5, loss 0.25
    loss, _ = algo.critic_loss(b.obs, b.act, b.rew, b.next_obs, torch.ones(B), alpha, noise, torch.tensor([0, 2]))
    assert loss.item() == pytest.approx(0.25, rel=1e-5)


def test_expected_subset_min_by_hand():
    qs = torch.tensor([[4.0], [1.0], [3.0], [2.0]])
    # the six pairs' minima: (4,1) 1, (4,3) 3, (4,2) 2, (1,3) 1, (1,2) 1, (3,2) 2 -> 10 / 6
    assert expected_subset_min(qs, 2).item() == pytest.approx(10 / 6)
    assert expected_subset_min(qs, 1).item() == pytest.approx(2.5)  # one member: the mean
    assert expected_subset_min(qs, 4).item() == pytest.approx(1.0)  # all of them: the min


def test_temperature_loss_by_hand():
    algo = algorithms.make("rlpd", OBS, ACT, overrides={**SMALL, "init_temperature": 2.0})
    # alpha = 2, H_target = -|A| / 2 = -1.5: L = 2 (1 - (-1.5)) = 5, and dL/dlog alpha = alpha (H - H_target) = 5
    loss = algo.temperature_loss(torch.tensor(1.0))
    assert loss.item() == pytest.approx(5.0)
    loss.backward()
    assert algo.log_alpha.grad.item() == pytest.approx(5.0)


def test_actor_and_temperature_step_once_per_block():
    algo = algorithms.make("rlpd", OBS, ACT, overrides={**SMALL, "utd": 3})
    assert algo.online_rhythm() == (1, 3)
    actor0 = [p.detach().clone() for p in algo.actor.parameters()]
    for step in range(3):
        algo.update(random_batch(torch.Generator().manual_seed(step)))
        moved = any(not torch.equal(p, q) for p, q in zip(algo.actor.parameters(), actor0, strict=True))
        assert moved == (step == 2), step  # only the third critic step of the block is followed by the actor's
    assert algo.log_alpha.item() != 0.0


def test_update_learns_and_round_trips(tmp_path):
    check_learns_and_round_trips("rlpd", {**SMALL, "utd": 1}, random_batch, tmp_path)


def test_declarations():
    algo = algorithms.make("rlpd", OBS, ACT)
    assert not algo.pretrains and algo.online_mix() == 0.5 and algo.online_rhythm() == (1, 20)
    assert algo.batch_extras == () and algo.target_entropy == -1.5 and algo.cfg.num_min_qs == 2
    assert algorithms.resolve_config("rlpd", "hand").backup_entropy is False
    # xavier-uniform heads: the last layer is two |A|-wide heads, bounded by sqrt(6 / (256 + |A|))
    assert algo.actor.net.linears[-1].weight.abs().max() <= math.sqrt(6 / (256 + ACT))


# -- the whole update against a straightforward version of the rule ---------------------------------------------
class ManualLayerNorm(nn.Module):
    def __init__(self, scale: torch.Tensor, shift: torch.Tensor):
        super().__init__()
        self.scale, self.shift = nn.Parameter(scale.clone()), nn.Parameter(shift.clone())

    def forward(self, h):
        mean = h.mean(-1, keepdim=True)
        var = ((h - mean) ** 2).mean(-1, keepdim=True)
        return (h - mean) / torch.sqrt(var + 1e-6) * self.scale + self.shift


def member_mlps(net: EnsembleMLP) -> nn.ModuleList:
    """The ensemble as K separate Linear / LayerNorm / ReLU stacks holding copies of its weights."""
    members = nn.ModuleList()
    last = len(net.weights) - 1
    for k in range(net.num):
        layers: list[nn.Module] = []
        for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
            lin = nn.Linear(w.shape[1], w.shape[2])
            lin.weight.data, lin.bias.data = w[k].detach().t().clone(), b[k, 0].detach().clone()
            layers.append(lin)
            if i < last:
                norm = ManualLayerNorm(net.norm_scales[i][k, 0].detach(), net.norm_biases[i][k, 0].detach()) \
                    if net.layer_norm else None
                layers += [norm, nn.ReLU()] if net.layer_norm == "before_relu" else [nn.ReLU()]
                if net.layer_norm == "after_relu":
                    layers.append(norm)
        members.append(nn.Sequential(*layers))
    return members


def assert_members_equal(net: EnsembleMLP, members: nn.ModuleList) -> None:
    for k, member in enumerate(members):
        lins = [m for m in member if isinstance(m, nn.Linear)]
        norms = [m for m in member if isinstance(m, ManualLayerNorm)]
        for i, lin in enumerate(lins):
            torch.testing.assert_close(net.weights[i][k].t(), lin.weight, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(net.biases[i][k, 0], lin.bias, rtol=1e-5, atol=1e-6)
        for i, norm in enumerate(norms):
            torch.testing.assert_close(net.norm_scales[i][k, 0], norm.scale, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(net.norm_biases[i][k, 0], norm.shift, rtol=1e-5, atol=1e-6)


def sac_sample(actor, obs, eps):
    mean, log_std = actor.net(obs).chunk(2, dim=-1)
    log_std = log_std.clamp(-20.0, 2.0)
    u = mean + log_std.exp() * eps
    logp = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(-1)
    return torch.tanh(u), logp - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)


def test_updates_match_the_straightforward_rule():
    torch.manual_seed(0)
    algo = algorithms.make("rlpd", OBS, ACT, overrides={**SMALL, "utd": 2})
    c = algo.cfg
    actor, critics, targets = plain(algo.actor), member_mlps(algo.critic.net), member_mlps(algo.critic_target.net)
    log_alpha = algo.log_alpha.detach().clone().requires_grad_(True)
    a_opt = torch.optim.Adam(actor.parameters(), lr=c.actor_lr)
    q_opt = torch.optim.Adam(critics.parameters(), lr=c.critic_lr)
    t_opt = torch.optim.Adam([log_alpha], lr=c.temp_lr)
    for step in range(4):
        b = random_batch(torch.Generator().manual_seed(step))
        torch.manual_seed(100 + step)
        m = algo.update(b)
        torch.manual_seed(100 + step)  # the update's draws, in its order: target subset, a' noise, a~ noise
        subset, next_eps = torch.randperm(c.num_qs)[:c.num_min_qs], torch.randn(B, ACT)
        alpha = log_alpha.detach().exp()
        with torch.no_grad():
            a_next, logp_next = sac_sample(actor, b.next_obs, next_eps)
            x_next = torch.cat([b.next_obs, a_next], -1)
            q_next = torch.stack([targets[int(i)](x_next).squeeze(-1) for i in subset]).min(0).values
            y = b.rew + c.gamma * (1 - b.done) * (q_next - alpha * logp_next)
        qs = torch.stack([q(torch.cat([b.obs, b.act], -1)).squeeze(-1) for q in critics])
        q_loss = ((qs - y) ** 2).mean()
        q_opt.zero_grad()
        q_loss.backward()
        q_opt.step()
        with torch.no_grad():
            for t, s in zip(targets.parameters(), critics.parameters(), strict=True):
                t.mul_(1 - c.tau).add_(s, alpha=c.tau)
        assert m["critic_loss"] == pytest.approx(q_loss.item(), rel=1e-5), step
        if step % 2 == 1:  # the second update of each block of utd = 2
            a_pi, logp = sac_sample(actor, b.obs, torch.randn(B, ACT))
            x = torch.cat([b.obs, a_pi], -1)
            pi_loss = (alpha * logp - torch.stack([q(x).squeeze(-1) for q in critics]).mean(0)).mean()
            a_opt.zero_grad()
            for p, gr in zip(actor.parameters(), torch.autograd.grad(pi_loss, list(actor.parameters())),
                             strict=True):
                p.grad = gr
            a_opt.step()
            t_loss = log_alpha.exp() * (-logp.detach().mean() + ACT / 2)
            t_opt.zero_grad()
            t_loss.backward()
            t_opt.step()
            assert m["actor_loss"] == pytest.approx(pi_loss.item(), rel=1e-5), step
        for p, r in zip(algo.actor.parameters(), actor.parameters(), strict=True):
            torch.testing.assert_close(p, r, rtol=1e-5, atol=1e-6)
        assert_members_equal(algo.critic.net, critics)
        assert_members_equal(algo.critic_target.net, targets)
        torch.testing.assert_close(algo.log_alpha.detach(), log_alpha.detach(), rtol=1e-6, atol=1e-7)
