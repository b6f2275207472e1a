"""CQL: the conservative term by hand, an update that learns and round-trips, and whole updates against a
straightforward version of the rule (reused by tests/test_calql.py with the Cal-QL bound)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.nn import functional as F

import algorithms
from algorithms.base import Batch
from algorithms.cql import CQLNoise, cql_logsumexp
from algorithms.networks import ReLUMLP

OBS, ACT, B, N = 5, 3, 16, 4
SMALL = {"actor_hidden": (16, 16), "critic_hidden": (16, 16), "cql_n_actions": N}


def test_cql_logsumexp_by_hand():
    q_data, q_rand, q_next, q_cur = torch.tensor([3.0]), torch.tensor([[1.0]]), torch.tensor([[2.0]]), torch.tensor(
        [[0.0]])
    next_logp, cur_logp = torch.tensor([[-1.0]]), torch.tensor([[0.5]])
    # |A| = 2, importance sampling: the uniform's log-density is 2 log 0.5 = -1.386294, so the values are
    # [1 + 1.386294, 2 - (-1), 0 - 0.5] = [2.386294, 3, -0.5]; log(e^2.386294 + e^3 + e^-0.5) = 3.452055
    lse = cql_logsumexp(q_data, q_rand, q_cur, q_next, cur_logp, next_logp, act_dim=2, temp=1.0,
                        importance_sample=True)
    assert lse.item() == pytest.approx(3.452055, abs=1e-5)
    # |A| = 1: the uniform term is 1 + 0.693147: log(e^1.693147 + e^3 + e^-0.5) = 3.263032
    assert cql_logsumexp(q_data, q_rand, q_cur, q_next, cur_logp, next_logp, 1, 1.0, True).item() == pytest.approx(
        3.263032, abs=1e-5)
    # temperature T = 2: 2 log(e^(2.386294/2) + e^(3/2) + e^(-0.5/2)) = 4.293717
    assert cql_logsumexp(q_data, q_rand, q_cur, q_next, cur_logp, next_logp, 2, 2.0, True).item() == pytest.approx(
        4.293717, abs=1e-5)
    # no importance sampling: the raw values and Q(s, a) itself: log(e^1 + e^3 + e^2 + e^0) = 3.440190
    assert cql_logsumexp(q_data, q_rand, q_cur, q_next, cur_logp, next_logp, 2, 1.0, False).item() == pytest.approx(
        3.440190, abs=1e-5)


def random_batch(g: torch.Generator, extras: dict | None = None) -> Batch:
    return Batch(torch.randn(B, OBS, generator=g), torch.rand(B, ACT, generator=g) * 2.0 - 1.0,
                 torch.randn(B, generator=g), torch.randn(B, OBS, generator=g),
                 (torch.rand(B, generator=g) < 0.2).float(), extras or {})


def params(algo) -> dict[str, torch.Tensor]:
    return {f"{k}.{n}": p.detach().clone() for k, m in algo.modules().items() if isinstance(m, torch.nn.Module)
            for n, p in m.named_parameters()}


def check_learns_and_round_trips(name: str, overrides: dict, make_batch, tmp_path) -> None:
    """Three updates change parameters with finite metrics; a saved and loaded copy acts and updates identically."""
    torch.manual_seed(0)
    algo = algorithms.make(name, OBS, ACT, overrides=overrides)
    before = params(algo)
    for step in range(3):
        metrics = algo.update(make_batch(torch.Generator().manual_seed(step)))
        assert metrics and all(isinstance(v, float) and math.isfinite(v) for v in metrics.values()), metrics
    after = params(algo)
    for module in ("actor.", "critic."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(module)), module
    path = tmp_path / "state.pt"
    algo.save(str(path))
    torch.manual_seed(1)
    other = algorithms.make(name, OBS, ACT, overrides=overrides)
    other.load(str(path))
    assert other.grad_steps == algo.grad_steps
    obs = torch.randn(4, OBS).numpy()
    sampled = []
    for a in (algo, other):
        torch.manual_seed(7)
        sampled.append(a.act(obs, deterministic=False))
    assert (sampled[0] == sampled[1]).all()
    assert (algo.act(obs, True) == other.act(obs, True)).all()
    b = make_batch(torch.Generator().manual_seed(99))
    for a in (algo, other):
        torch.manual_seed(9)
        a.update(b)
    p1, p2 = params(algo), params(other)
    assert all(torch.equal(p1[k], p2[k]) for k in p1)


def test_update_learns_and_round_trips(tmp_path):
    check_learns_and_round_trips("cql", SMALL, random_batch, tmp_path)


def test_declarations():
    algo = algorithms.make("cql", OBS, ACT, overrides=SMALL)
    assert algo.pretrains and algo.batch_extras == () and algo.online_rhythm() == (1, 1)
    assert algo.online_mix() is None  # uniform over one buffer (CORL finetune/cql.py; JaxCQL mixing_ratio=-1)
    assert algo.discount == 0.99
    assert algo.log_likelihood(torch.randn(2, OBS), torch.rand(2, ACT) - 0.5).shape == (2,)


def test_online_weight_replaces_the_offline_one_after_the_switch():
    algo = algorithms.make("cql", OBS, ACT, overrides={**SMALL, "cql_min_q_weight_online": 0.5})
    assert algo.cql_weight() == 5.0
    algo.on_phase_switch(None)
    assert algo.cql_weight() == 0.5
    state = algo.state_dict()
    fresh = algorithms.make("cql", OBS, ACT, overrides={**SMALL, "cql_min_q_weight_online": 0.5})
    fresh.load_state_dict(state)
    assert fresh.cql_weight() == 0.5  # the phase survives a checkpoint


# -- the whole update against a straightforward version of the rule ---------------------------------------------
def plain(module):
    m = copy.deepcopy(module)
    m.__dict__.pop("_flat_parameters", None)
    for p in m.parameters():
        p.data = p.data.clone()
    for sub in m.modules():
        if isinstance(sub, ReLUMLP):
            sub.fused_backward = False
    return m


def tanh_gaussian(actor, obs, eps):
    """a = tanh(u), u = mu + sigma eps, and log pi(a|s) with torch.distributions' Normal and the tanh Jacobian."""
    mean, raw = actor.net(obs).chunk(2, dim=-1)
    log_std = (actor.log_std_multiplier * raw + actor.log_std_offset).clamp(-20.0, 2.0)
    u = mean + log_std.exp() * eps
    logp = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(-1)
    return torch.tanh(u), logp - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)


def check_against_straightforward_rule(name: str, overrides: dict, steps: int = 3) -> None:
    """``steps`` updates of ``name`` (cql or calql) against the rule written out plainly: each loss's gradient
    taken for its own parameters only, default torch.optim.Adam, a per-parameter Polyak loop."""
    torch.manual_seed(0)
    algo = algorithms.make(name, OBS, ACT, overrides={**SMALL, **overrides})
    c = algo.cfg
    actor, critic, target = plain(algo.actor), plain(algo.critic), plain(algo.critic_target)
    log_alpha = algo.log_alpha.detach().clone().requires_grad_(True)
    a_opt = torch.optim.Adam(actor.parameters(), lr=c.actor_lr)
    q_opt = torch.optim.Adam(critic.parameters(), lr=c.critic_lr)
    al_opt = torch.optim.Adam([log_alpha], lr=c.actor_lr)
    bound = name == "calql"
    for step in range(steps):
        g = torch.Generator().manual_seed(step)
        mc = torch.randn(B, generator=g) * 3.0
        b = random_batch(g, {"mc_return": mc})
        noise = CQLNoise(torch.randn(B, ACT, generator=g), torch.randn(B, N, ACT, generator=g),
                         torch.rand(B, N, ACT, generator=g) * 2.0 - 1.0, torch.randn(B, N, ACT, generator=g),
                         torch.randn(B, N, ACT, generator=g))
        algo.draw_noise = lambda batch_size, noise=noise: noise
        m = algo.update(b)

        rew = b.rew * c.reward_scale + c.reward_bias
        act = b.act.clamp(-c.clip_action, c.clip_action)
        alpha = log_alpha.detach().exp() * c.alpha_multiplier
        # actor and temperature
        a_new, logp = tanh_gaussian(actor, b.obs, noise.pi)
        policy_loss = (alpha * logp - torch.minimum(*critic(b.obs, a_new))).mean()
        alpha_loss = -(log_alpha * (logp.detach() - ACT)).mean()
        # critic: max backup over N next actions, no entropy backup
        with torch.no_grad():
            nobs = b.next_obs.unsqueeze(1).repeat(1, N, 1)
            a_next, _ = tanh_gaussian(actor, nobs, noise.next_pi)
            y = rew + c.gamma * (1 - b.done) * torch.minimum(*target(nobs, a_next)).max(dim=1).values
            obs_n = b.obs.unsqueeze(1).repeat(1, N, 1)
            a_cur, lp_cur = tanh_gaussian(actor, obs_n, noise.cur)
            a_nxt, lp_nxt = tanh_gaussian(actor, nobs, noise.nxt)
        q_loss = 0.0
        for j, q in enumerate(critic(b.obs, act)):
            q_cur, q_nxt = critic(obs_n, a_cur)[j], critic(obs_n, a_nxt)[j]
            if bound:
                q_cur, q_nxt = torch.maximum(q_cur, mc[:, None]), torch.maximum(q_nxt, mc[:, None])
            cat = torch.cat([critic(obs_n, noise.random_act)[j] - ACT * math.log(0.5), q_nxt - lp_nxt,
                             q_cur - lp_cur], 1)
            q_loss = q_loss + ((q - y) ** 2).mean() + c.cql_min_q_weight * (torch.logsumexp(cat, 1) - q).mean()
        grads = [torch.autograd.grad(policy_loss, list(actor.parameters()), retain_graph=True),
                 torch.autograd.grad(q_loss, list(critic.parameters())),
                 torch.autograd.grad(alpha_loss, [log_alpha])]
        for opt, gs in zip((a_opt, q_opt, al_opt), grads, strict=True):
            for p, gr in zip(opt.param_groups[0]["params"], gs, strict=True):
                p.grad = gr
            opt.step()
        with torch.no_grad():
            for t, s in zip(target.parameters(), critic.parameters(), strict=True):
                t.mul_(1 - c.tau).add_(s, alpha=c.tau)

        assert m["actor_loss"] == pytest.approx(policy_loss.item(), rel=1e-5, abs=1e-5), step
        assert m["critic_loss"] == pytest.approx(q_loss.item(), rel=1e-5, abs=1e-5), step
        for mine, ref in ((algo.actor, actor), (algo.critic, critic), (algo.critic_target, target)):
            for p, r in zip(mine.parameters(), ref.parameters(), strict=True):
                torch.testing.assert_close(p, r, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(algo.log_alpha.detach(), log_alpha.detach(), rtol=1e-6, atol=1e-7)


def test_updates_match_the_straightforward_rule():
    check_against_straightforward_rule("cql", {"reward_scale": 2.0, "reward_bias": -1.0})
