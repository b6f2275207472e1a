"""IQL: Implicit Q-Learning (Kostrikov, Nair, Levine 2021, arXiv 2110.06169).

Faithful to the official implementation, ikostrikov/implicit_q_learning (JAX): ``learner.py``
(``_update_jit``, ``Learner``), ``critic.py`` (``update_v``, ``update_q``, ``loss``), ``actor.py``
(``update``), ``policy.py`` (``NormalTanhPolicy``) and the per-domain ``configs/*.py``; online fine-tuning
(``train_finetune.py``) runs the same update on the growing buffer, as the harness does.

One gradient step on a batch {(s, a, r, s', d)} of size B, in the code's order (value, actor, critic, target):

Value (expectile regression, paper Eq. 5; ``update_v``), with the target critic at the dataset action:
    u    = min_j Q'_j(s, a) - V(s)
    L_V  = mean_B( |tau - 1(u < 0)| * u^2 )                 (tau = ``expectile``)
Actor (advantage-weighted policy extraction, paper Eq. 7; ``actor.py``), with the V just updated:
    w    = min( exp(beta * (min_j Q'_j(s, a) - V(s))), 100 ) (beta = the code's ``temperature``; w no gradient)
    L_pi = -mean_B( w * log pi(a|s) )
Critic (Q from V, paper Eq. 6; ``update_q``), with the V just updated:
    y    = r + gamma * (1 - d) * V(s')
    L_Q  = sum_j mean_B (Q_j(s, a) - y)^2
Target: Q' <- (1 - tau_polyak) Q' + tau_polyak Q after every step (``target_update``).
The actor's learning rate follows a cosine decay from ``actor_lr`` to 0 over ``actor_lr_decay_steps`` steps
(``optax.cosine_decay_schedule(-actor_lr, int(1e6))`` in ``Learner``): lr_t = lr 0.5 (1 + cos(pi min(t, T) / T)).

The actor and critic losses share no parameters (w and y carry no gradient), so one backward pass of their sum
gives each its own gradient; the value step comes first because both read the updated V.

Departures, all outside the update rule:
* Initialisation is PyTorch's default (as CORL's ``algorithms/finetune/iql.py``), not jaxrl's orthogonal(sqrt 2).
* ``configs/kitchen_config.py`` (the README's config for Adroit) puts dropout 0.1 on the actor's hidden layers;
  not implemented here (preset ``hand`` runs without it).
* ``train_finetune.py`` rescales locomotion rewards by 1000 / (max - min dataset return) and shifts AntMaze
  rewards by -1; the harness gives every algorithm the task's own rewards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from algorithms import register
from algorithms.base import Algorithm, Batch, Config, scalars
from algorithms.networks import (
    GaussianActing,
    GaussianPolicy,
    TwinQ,
    diag_gaussian_log_prob,
    f32,
    make_adam,
    mlp,
    soft_update,
    target_network,
)


def expectile_loss(u: torch.Tensor, expectile: float) -> torch.Tensor:
    """mean( |tau - 1(u < 0)| u^2 ): ``critic.py`` ``loss`` (weight tau where u > 0, 1 - tau elsewhere)."""
    weight = torch.where(u > 0, expectile, 1.0 - expectile)
    return (weight * u.square()).mean()


def advantage_weights(adv: torch.Tensor, beta: float, max_weight: float = 100.0) -> torch.Tensor:
    """min(exp(beta * adv), 100): ``actor.py`` ``jnp.minimum(jnp.exp((q - v) * temperature), 100.0)``."""
    return torch.exp(adv * beta).clamp(max=max_weight)


@dataclass
class IQLConfig(Config):
    # configs/*.py: hidden_dims = (256, 256) for the actor, both critics and V (every config)
    actor_hidden: tuple[int, ...] = (256, 256)
    critic_hidden: tuple[int, ...] = (256, 256)
    value_hidden: tuple[int, ...] = (256, 256)
    # configs/*.py: actor_lr = value_lr = critic_lr = 3e-4 (Adam, optax defaults otherwise)
    actor_lr: float = 3e-4
    value_lr: float = 3e-4
    critic_lr: float = 3e-4
    # learner.py: opt_decay_schedule="cosine" -> optax.cosine_decay_schedule(-actor_lr, int(1e6)) on the actor;
    # configs/antmaze_finetune_config.py: opt_decay_schedule = None (0 here: constant lr)
    actor_lr_decay_steps: int = 1_000_000
    # configs/*.py: discount = 0.99, tau = 0.005 (soft target update)
    gamma: float = 0.99
    tau: float = 5e-3
    # configs/mujoco_config.py: expectile = 0.7, temperature = 3.0 (the locomotion defaults; presets below)
    expectile: float = 0.7
    beta: float = 3.0
    # actor.py: exp_a = jnp.minimum(exp_a, 100.0)
    max_weight: float = 100.0
    # learner.py: NormalTanhPolicy(log_std_min=-5.0, state_dependent_std=False, tanh_squash_distribution=False);
    # policy.py: LOG_STD_MAX = 2.0, log_stds = clip(param initialised at 0)
    min_log_std: float = -5.0
    max_log_std: float = 2.0
    # train_offline.py / train_finetune.py: --batch_size 256
    batch_size: int = 256


@register
class IQL(GaussianActing, Algorithm):
    name = "iql"
    Config = IQLConfig
    presets = {
        # configs/mujoco_config.py (the README's locomotion config): the defaults
        "mujoco": {},
        # configs/kitchen_config.py, which the README runs for Adroit (pen-human-v0): expectile 0.7,
        # temperature 0.5 (its dropout 0.1 is not implemented, see the module docstring)
        "hand": {"beta": 0.5},
        # configs/antmaze_finetune_config.py: expectile 0.9, temperature 10, no lr decay
        "antmaze": {"expectile": 0.9, "beta": 10.0, "actor_lr_decay_steps": 0},
    }

    def __init__(self, obs_dim: int, act_dim: int, config: IQLConfig, device="cpu"):
        super().__init__(obs_dim, act_dim, config, device)
        c = config
        self.actor = GaussianPolicy(obs_dim, act_dim, c.actor_hidden, c.min_log_std, c.max_log_std,
                                    log_std_map="clip").to(self.device)
        self.critic = TwinQ(obs_dim, act_dim, c.critic_hidden).to(self.device)
        self.critic_target = target_network(self.critic, TwinQ(obs_dim, act_dim, c.critic_hidden).to(self.device))
        self.value = mlp(obs_dim, c.value_hidden, 1).to(self.device)
        self.actor_opt = make_adam(self.actor, c.actor_lr)
        self.critic_opt = make_adam(self.critic, c.critic_lr)
        self.value_opt = make_adam(self.value, c.value_lr)

    def v(self, obs: torch.Tensor) -> torch.Tensor:
        return f32(self.value(obs).squeeze(-1))

    def actor_lr(self, step: int) -> float:
        """The cosine schedule of the actor's learning rate at gradient step ``step`` (0 for the first)."""
        c = self.cfg
        if c.actor_lr_decay_steps <= 0:
            return c.actor_lr
        return c.actor_lr * 0.5 * (1.0 + math.cos(math.pi * min(step, c.actor_lr_decay_steps)
                                                  / c.actor_lr_decay_steps))

    def update(self, batch: Batch) -> dict[str, float]:
        obs, act = batch.obs, batch.act
        with torch.no_grad():
            q_data = self.critic_target.min_q(obs, act)  # min_j Q'_j(s, a): read by the value and actor steps

        value_loss = self.value_loss(obs, q_data)
        self.value_opt.zero_grad(set_to_none=True)
        value_loss.backward()
        self.value_opt.step()

        actor_loss, critic_loss, stats = self.actor_critic_losses(obs, act, batch.rew, batch.next_obs, batch.done,
                                                                  q_data)
        self.actor_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        (actor_loss + critic_loss).backward()  # disjoint parameters: each gets its own loss's gradient
        self.actor_opt.param_groups[0]["lr"] = self.actor_lr(self.grad_steps)
        self.actor_opt.step()
        self.critic_opt.step()
        soft_update(self.critic_target, self.critic, self.cfg.tau)
        self.grad_steps += 1
        return scalars({"value_loss": value_loss.detach(), **stats})

    def value_loss(self, obs, q_data) -> torch.Tensor:
        """L_V: expectile regression of V(s) onto min_j Q'_j(s, a)."""
        return expectile_loss(q_data - self.v(obs), self.cfg.expectile)

    def actor_critic_losses(self, obs, act, rew, next_obs, done, q_data):
        """(L_pi, L_Q, metrics) with the current (just updated) V."""
        c = self.cfg
        with torch.no_grad():
            v = self.v(obs)
            adv = q_data - v
            weights = advantage_weights(adv, c.beta, c.max_weight)
            y = rew + c.gamma * (1.0 - done) * self.v(next_obs)
        mean, log_std = self.actor(obs)
        actor_loss = -(weights * diag_gaussian_log_prob(act, mean, log_std)).mean()
        q1, q2 = self.critic(obs, act)
        critic_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        stats = {"actor_loss": actor_loss.detach(), "critic_loss": critic_loss.detach(), "v_mean": v.mean(),
                 "q_mean": q1.detach().mean(), "adv_mean": adv.mean(), "weight_max": weights.max()}
        return actor_loss, critic_loss, stats

    def modules(self):
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                "value": self.value, "actor_opt": self.actor_opt, "critic_opt": self.critic_opt,
                "value_opt": self.value_opt}

    def q_value(self, obs, act):
        return self.critic.min_q(obs, act)
