"""Every update gives the numbers of the straightforward version of its rule.

The updates run what makes them fast (``networks.ReLUMLP``'s one-node backward, one flat parameter buffer per
network with a single fused optimizer kernel and a single Polyak ``lerp_``, one backward pass where two losses
share no parameters, noise drawn outside the pure loss functions, metrics read in one transfer). Here each is
run side by side with a *straightforward* re-implementation of its update rule (plain modules with autograd
through every layer, default ``torch.optim`` optimizers over the individual parameters, one backward per loss,
a per-parameter Polyak loop) from the same initial weights and the same random numbers, and the losses, the
gradients and the parameters after a few steps must agree to float32 round-off. (IQL's is in test_iql.py.)
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

import algorithms
from algorithms.awac import AWAC
from algorithms.base import Batch
from algorithms.bear import ConditionalVAE, critic_target, lagrange_loss
from algorithms.networks import ReLUMLP, diag_gaussian_log_prob

OBS, ACT, B = 5, 3, 32
TOL = dict(rtol=1e-5, atol=1e-6)


# -- helpers -------------------------------------------------------------------------------------------------
def plain(module: torch.nn.Module) -> torch.nn.Module:
    """An ordinary copy: independent parameter tensors, out-of-place ReLUs, no flat buffer."""
    m = copy.deepcopy(module)
    m.__dict__.pop("_flat_parameters", None)
    for p in m.parameters():
        p.data = p.data.clone()
        p.grad = None
    for sub in m.modules():
        if isinstance(sub, torch.nn.ReLU):
            sub.inplace = False
        if isinstance(sub, ReLUMLP):
            sub.fused_backward = False  # autograd node per layer
    return m


def adam(m, lr, wd=0.0):
    return torch.optim.Adam(m.parameters(), lr=lr, weight_decay=wd)


@torch.no_grad()
def polyak(target, source, tau):
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        t.mul_(1.0 - tau).add_(s, alpha=tau)


def grads(*mods):
    return [p.grad.clone() for m in mods for p in m.parameters()]


def params(*mods):
    return [p.detach().clone() for m in mods for p in m.parameters()]


def close(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, **TOL)


def batch(seed=0, ret=False, n=B, obs=OBS, act=ACT):
    g = torch.Generator().manual_seed(seed)
    done = (torch.rand(n, generator=g) < 0.2).float()
    fields = (torch.randn(n, obs, generator=g), torch.rand(n, act, generator=g) * 1.8 - 0.9,
              torch.randn(n, generator=g), torch.randn(n, obs, generator=g), done)
    extras = {"ret": torch.randn(n, generator=g), "adv": torch.randn(n, generator=g)} if ret else {}
    return Batch(*fields, extras)


# -- AWAC ----------------------------------------------------------------------------------------------------
def awac_reference(r, c, b):
    obs, act, rew, next_obs, done = b.obs, b.act, b.rew, b.next_obs, b.done
    if c.ignore_terminals:
        done = torch.zeros_like(done)
    with torch.no_grad():
        next_act = r.actor.sample(next_obs)
        y = rew + c.gamma * (1.0 - done) * r.critic_target.min_q(next_obs, next_act)
    q1, q2 = r.critic(obs, act)
    critic_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
    mean, log_std = r.actor(obs)
    with torch.no_grad():
        pi_act = mean if c.v_from_mean else mean + torch.exp(log_std) * torch.randn_like(mean)
        adv = torch.minimum(q1, q2) - r.critic.min_q(obs, pi_act)
        w = AWAC.advantage_weights(adv, c.beta, c.adv_clip)
    actor_loss = -(w * diag_gaussian_log_prob(act, mean, log_std)).mean()
    r.critic_opt.zero_grad()
    critic_loss.backward()
    g = grads(r.critic)
    r.critic_opt.step()
    r.actor_opt.zero_grad()
    actor_loss.backward()
    g += grads(r.actor)
    r.actor_opt.step()
    polyak(r.critic_target, r.critic, c.tau)
    return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item()}, g


class Ref:
    pass


@pytest.mark.parametrize("preset", [None, "hand"])
def test_awac_matches_the_straightforward_update(preset):
    torch.manual_seed(0)
    algo = algorithms.make("awac", OBS, ACT, preset, overrides={"actor_hidden": (16, 16), "critic_hidden": (16, 16)})
    c = algo.cfg
    r = Ref()
    r.actor, r.critic, r.critic_target = plain(algo.actor), plain(algo.critic), plain(algo.critic_target)
    r.actor_opt, r.critic_opt = adam(r.actor, c.actor_lr, c.actor_weight_decay), adam(r.critic, c.critic_lr)
    for step in range(4):
        b = batch(step)
        torch.manual_seed(100 + step)
        m = algo.update(b)
        torch.manual_seed(100 + step)
        m_ref, g_ref = awac_reference(r, c, b)
        for k in m_ref:
            assert m[k] == pytest.approx(m_ref[k], rel=1e-5, abs=1e-6), k
        close(grads(algo.critic, algo.actor), g_ref)
    if c.q_max is not None:  # the clamp was active for some rows, so its gradient mask was exercised
        assert (torch.cat(r.critic(b.obs, b.act)) == c.q_max).any()
    close(params(algo.actor, algo.critic, algo.critic_target), params(r.actor, r.critic, r.critic_target))


# -- SAC(fD) -------------------------------------------------------------------------------------------------
def sac_reference(r, c, b, target_entropy):
    obs, act, rew, next_obs, done = b.obs, b.act, b.rew, b.next_obs, b.done
    alpha = r.log_alpha.detach().exp()
    with torch.no_grad():
        next_act, next_logp = r.actor.rsample(next_obs)
        y = rew + c.gamma * (1.0 - done) * (r.critic_target.min_q(next_obs, next_act) - alpha * next_logp)
    q1, q2 = r.critic(obs, act)
    critic_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
    r.critic_opt.zero_grad()
    critic_loss.backward()
    g = grads(r.critic)
    r.critic_opt.step()
    r.critic.requires_grad_(False)
    pi_act, logp = r.actor.rsample(obs)
    actor_loss = (alpha * logp - r.critic.min_q(obs, pi_act)).mean()
    r.actor_opt.zero_grad()
    actor_loss.backward()
    g += grads(r.actor)
    r.actor_opt.step()
    r.critic.requires_grad_(True)
    alpha_loss = -(r.log_alpha * (logp.detach() + target_entropy)).mean()
    r.alpha_opt.zero_grad()
    alpha_loss.backward()
    g.append(r.log_alpha.grad.clone())
    r.alpha_opt.step()
    polyak(r.critic_target, r.critic, c.tau)
    return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item()}, g


def test_sac_matches_the_straightforward_update():
    torch.manual_seed(0)
    algo = algorithms.make("sacfd", OBS, ACT, overrides={"actor_hidden": (16, 16), "critic_hidden": (16, 16),
                                                         "bc_init_steps": 1})
    with torch.no_grad():  # the first log-std starts above its clamp at 2: its gradient must be zero
        algo.actor.net[-1].bias[ACT] = 3.0
    c = algo.cfg
    r = Ref()
    r.actor, r.critic, r.critic_target = plain(algo.actor), plain(algo.critic), plain(algo.critic_target)
    r.log_alpha = algo.log_alpha.detach().clone().requires_grad_(True)
    r.actor_opt, r.critic_opt = adam(r.actor, c.actor_lr), adam(r.critic, c.critic_lr)
    r.alpha_opt = torch.optim.Adam([r.log_alpha], lr=c.alpha_lr)
    for step in range(4):
        b = batch(step)
        torch.manual_seed(100 + step)
        m = algo.update(b)
        torch.manual_seed(100 + step)
        if step == 0:  # the SACfD-prior behaviour-cloning step
            loss = -r.actor.log_prob(b.obs, b.act).mean()
            r.actor_opt.zero_grad()
            loss.backward()
            r.actor_opt.step()
            assert m["bc_loss"] == pytest.approx(loss.item(), rel=1e-5)
            continue
        m_ref, g_ref = sac_reference(r, c, b, algo.target_entropy)
        for k in m_ref:
            assert m[k] == pytest.approx(m_ref[k], rel=1e-5, abs=1e-6), k
        close(grads(algo.critic, algo.actor) + [algo.log_alpha.grad], g_ref)
    assert algo.actor.net[-1].bias[ACT] > 2.0  # the clamp stayed active (its gradient was zero throughout)
    close(params(algo.actor, algo.critic, algo.critic_target), params(r.actor, r.critic, r.critic_target))
    torch.testing.assert_close(algo.log_alpha.detach(), r.log_alpha.detach(), **TOL)


# -- BC ------------------------------------------------------------------------------------------------------
def test_bc_matches_the_straightforward_update():
    torch.manual_seed(0)
    algo = algorithms.make("bc", OBS, ACT, overrides={"actor_hidden": (16, 16)})
    actor = plain(algo.actor)
    opt = adam(actor, algo.cfg.lr, algo.cfg.weight_decay)
    for step in range(4):
        b = batch(step)
        m = algo.update(b)
        loss = -actor.log_prob(b.obs, b.act).mean()
        opt.zero_grad()
        loss.backward()
        close(grads(algo.actor), grads(actor))
        opt.step()
        assert m["bc_loss"] == pytest.approx(loss.item(), rel=1e-5)
    close(params(algo.actor), params(actor))


# -- BEAR ----------------------------------------------------------------------------------------------------
def bear_reference(r, algo, b):
    c = algo.cfg
    obs, act, rew, next_obs, done = b.obs, b.act, b.rew, b.next_obs, b.done
    recon, mu, log_std = r.vae(obs, act)
    vae_loss = ConditionalVAE.loss(recon, act, mu, log_std, c.vae_kl_weight)
    r.vae_opt.zero_grad()
    vae_loss.backward()
    g = grads(r.vae)
    r.vae_opt.step()
    with torch.no_grad():
        t_mean, t_log_std = r.actor_target(next_obs)
        next_act = torch.tanh(algo._sample_raw(t_mean, t_log_std, c.num_target_samples, None))
        rep = next_obs.unsqueeze(1).expand(-1, c.num_target_samples, -1)
        y = critic_target(r.critic_target(rep, next_act), rew, done, c.gamma, c.lmbda)
    q = r.critic(obs, act)
    critic_loss = (q - y).pow(2).mean(dim=1).sum()
    r.critic_opt.zero_grad()
    critic_loss.backward()
    g += grads(r.critic)
    r.critic_opt.step()
    with torch.no_grad():
        raw_beta = r.vae.decode_raw(obs, c.num_mmd_samples)
    mean, log_std_pi = r.actor(obs)
    raw_pi = algo._sample_raw(mean, log_std_pi, c.num_mmd_samples, c.actor_noise_clip)
    mmd = algo._mmd(raw_beta, raw_pi, c.mmd_sigma)
    alpha = r.log_alpha.detach().exp()
    if r.steps < c.warmup_steps:
        actor_loss = (alpha * mmd).mean()
    else:
        r.critic.requires_grad_(False)
        q_all = r.critic(obs.unsqueeze(1).expand(-1, c.num_mmd_samples, -1), torch.tanh(raw_pi))
        actor_loss = (-q_all.mean(dim=2).amin(dim=0) + alpha * mmd).mean()
    r.actor_opt.zero_grad()
    actor_loss.backward()
    g += grads(r.actor)
    r.actor_opt.step()
    r.critic.requires_grad_(True)
    loss = lagrange_loss(r.log_alpha, mmd.detach(), c.mmd_eps)
    r.alpha_opt.zero_grad()
    loss.backward()
    r.alpha_opt.step()
    with torch.no_grad():
        r.log_alpha.clamp_(c.log_alpha_min, c.log_alpha_max)
    polyak(r.critic_target, r.critic, c.tau)
    polyak(r.actor_target, r.actor, c.tau)
    r.steps += 1
    return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item(), "vae_loss": vae_loss.item(),
            "mmd": mmd.mean().item()}, g


def test_bear_matches_the_straightforward_update():
    torch.manual_seed(0)
    algo = algorithms.make("bear", OBS, ACT, overrides={
        "actor_hidden": (16, 16), "critic_hidden": (16, 16), "vae_hidden": (24, 24), "warmup_steps": 2,
        "num_target_samples": 4, "num_mmd_samples": 3, "log_alpha_init": 0.5})
    c = algo.cfg
    r = Ref()
    for k in ("vae", "actor", "actor_target", "critic", "critic_target"):
        setattr(r, k, plain(getattr(algo, k)))
    r.log_alpha = algo.log_alpha.detach().clone().requires_grad_(True)
    r.vae_opt, r.actor_opt = adam(r.vae, c.vae_lr), adam(r.actor, c.actor_lr)
    r.critic_opt, r.alpha_opt = adam(r.critic, c.critic_lr), torch.optim.Adam([r.log_alpha], lr=c.alpha_lr)
    r.steps = 0
    for step in range(5):  # two warm-up steps, then Q enters the actor loss
        b = batch(step)
        torch.manual_seed(100 + step)
        m = algo.update(b)
        torch.manual_seed(100 + step)
        m_ref, g_ref = bear_reference(r, algo, b)
        for k in m_ref:
            assert m[k] == pytest.approx(m_ref[k], rel=1e-5, abs=1e-6), (step, k)
        if step in (0, 3):
            close(grads(algo.vae, algo.critic, algo.actor), g_ref)
    close(params(algo.vae, algo.actor, algo.actor_target, algo.critic, algo.critic_target),
          params(r.vae, r.actor, r.actor_target, r.critic, r.critic_target))
    torch.testing.assert_close(algo.log_alpha.detach(), r.log_alpha.detach(), **TOL)


# -- AWR -----------------------------------------------------------------------------------------------------
def test_awr_steps_match_the_straightforward_ones():
    torch.manual_seed(0)
    algo = algorithms.make("awr", OBS, ACT, overrides={"actor_hidden": (16, 8), "critic_hidden": (16, 8)})
    with torch.no_grad():  # push some means outside [-1, 1] so the action-bound term has a gradient
        algo.actor.net[-1].bias.copy_(torch.tensor([1.2, -1.1, 0.0]))
    c = algo.cfg
    actor, critic = plain(algo.actor), plain(algo.critic)
    a_opt = torch.optim.SGD(actor.parameters(), lr=c.actor_lr, momentum=c.actor_momentum)
    v_opt = torch.optim.SGD(critic.parameters(), lr=c.critic_lr, momentum=c.critic_momentum)
    stats = torch.tensor([0.3, 2.0])
    algo._adv_stats = stats.clone()
    for step in range(3):
        b = batch(step, ret=True)
        m = algo._value_step(b)
        v_n = critic(algo.obs_norm(b.obs)).squeeze(-1)
        loss = 0.5 * (b.extras["ret"] / algo.value_scale - v_n).pow(2).mean()
        v_opt.zero_grad()
        loss.backward()
        close(grads(algo.critic), grads(critic))
        v_opt.step()
        assert m["critic_loss"] == pytest.approx(loss.item(), rel=1e-5)
        assert m["v_mean"] == pytest.approx(v_n.mean().item() * algo.value_scale, rel=1e-5, abs=1e-6)

        m = algo._policy_step(b)
        obs_n = algo.obs_norm(b.obs)
        raw_w = torch.exp((b.extras["adv"] - stats[0]) / (stats[1] + c.adv_eps) / c.beta)
        w = raw_w.clamp(max=c.weight_clip)
        mean, log_std = actor(obs_n)
        bound = 0.5 * (mean.abs() - 1.0).clamp(min=0).pow(2).sum(-1).mean()
        assert bound.item() > 0
        loss = -(w * diag_gaussian_log_prob(b.act, mean, log_std)).mean() + c.action_bound_weight * bound
        a_opt.zero_grad()
        loss.backward()
        close(grads(algo.actor), grads(actor))
        a_opt.step()
        assert m["actor_loss"] == pytest.approx(loss.item(), rel=1e-5)
        assert m["bound_loss"] == pytest.approx(bound.item(), rel=1e-5)
        assert m["weight_mean"] == pytest.approx(w.mean().item(), rel=1e-5)
        assert m["clipped_fraction"] == pytest.approx((raw_w > c.weight_clip).float().mean().item())
    close(params(algo.actor, algo.critic), params(actor, critic))
