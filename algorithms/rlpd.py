"""RLPD: Reinforcement Learning with Prior Data (Ball, Smith, Kostrikov, Levine 2023, arXiv 2302.02948).

SAC run online from scratch with the prior data in every batch: symmetric sampling (half offline, half online),
layer-normalised critics, a large critic ensemble with a random-subset target (REDQ's) and a high update-to-data
ratio. No offline pretraining. Faithful to ikostrikov/rlpd ``rlpd/agents/sac/sac_learner.py`` (``SACLearner``:
``create``, ``update_critic``, ``update_actor``, ``update_temperature``, ``update``), ``rlpd/networks/``
(``ensemble.py`` ``Ensemble``, ``subsample_ensemble``; ``mlp.py`` ``MLP``; ``state_action_value.py``),
``rlpd/distributions/tanh_normal.py``, ``rlpd/agents/sac/temperature.py``, the configs
``configs/{td,sac,rlpd}_config.py`` and ``train_finetuning.py`` with the README's commands.

One call of ``update`` is one critic step on a batch {(s, a, r, s', d)} of B = 256 rows; every ``utd``-th call
(the last of each environment step's block) also steps the actor and the temperature, as ``SACLearner.update``
runs ``utd_ratio`` critic steps on consecutive slices of one big batch, then one actor and one temperature step
on the last slice.

Critic (``update_critic``), with the current actor, the current temperature alpha and K = ``num_qs`` critics:
    a' ~ pi(.|s'),   I = a random subset of ``num_min_qs`` = 2 of the K target critics (one per step, no repeats)
    y  = r + gamma (1 - d) [ min_{j in I} Q'_j(s', a') - alpha log pi(a'|s') * 1(backup_entropy) ]
    L_Q = mean_{K, B} (Q_k(s, a) - y)^2
    Q' <- (1 - tau) Q' + tau Q after every critic step
Actor (``update_actor``), with the critics just stepped, a~ ~ pi(.|s) reparameterised:
    L_pi = mean_B( alpha log pi(a~|s) - mean_k Q_k(s, a~) )      (the mean over all K critics, not a min)
Temperature (``update_temperature``), with H = -mean_B log pi(a~|s) of the actor step (before it), alpha =
exp(log alpha) and H_target = -|A| / 2:
    L_alpha = alpha * (H - H_target)                             (alpha itself, not log alpha, multiplies)
The actor and temperature losses share no parameters (alpha enters the actor loss detached, H the temperature
loss detached), so one backward pass of their sum gives each its own gradient.

Networks: critics are ReLU MLPs with a LayerNorm before each ReLU (``MLP(use_layer_norm=True,
activate_final=True)``) and a linear output; the actor is a ReLU MLP with two linear heads, mean and log-std
(clipped to [-20, 2]), and a tanh squash. Kernels xavier-uniform, biases zero (``default_init``).

What the harness provides: no offline gradient steps (``pretrains = False``; the prior data still goes in the
buffer), half of every online batch from the prior rows (``online_mix``), ``utd`` updates per environment step
(``online_rhythm``), and ``random_steps`` = 5000: the README's ``--start_training 5000``, the first 5000 online
environment steps with uniformly random actions and no update. Not here: AntMaze's reward shift (-1; no AntMaze
task in the suite).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from algorithms import register
from algorithms.base import Algorithm, Batch, Config, Rhythm, scalars
from algorithms.ensembles import EnsembleQ, xavier_init_
from algorithms.networks import TanhGaussianActing, TanhGaussianPolicy, make_adam, soft_update, target_network


def expected_subset_min(qs: torch.Tensor, m: int) -> torch.Tensor:
    """E over a uniformly random m-subset of the K members of min_{j in subset} Q_j: [K, B] -> [B].

    With the values sorted ascending, the i-th smallest (i = 0..K-1) is the subset's minimum in C(K-1-i, m-1) of
    the C(K, m) subsets. This is the value the target bootstraps from, in expectation (``q_value``)."""
    k = qs.shape[0]
    w = torch.tensor([math.comb(k - 1 - i, m - 1) / math.comb(k, m) for i in range(k)], dtype=qs.dtype,
                     device=qs.device)
    return (qs.sort(dim=0).values * w.unsqueeze(1)).sum(dim=0)


@torch.no_grad()
def xavier_policy_init_(policy: TanhGaussianPolicy, act_dim: int) -> None:
    """flax xavier_uniform kernels, zero biases (``tanh_normal.py`` ``Normal``: MLP, then the Dense heads
    "OutputDenseMean" and "OutputDenseLogStd", each |A| wide; here one layer of 2 |A| rows, bounded per head)."""
    linears = policy.net.linears
    for i, layer in enumerate(linears):
        fan_out, fan_in = layer.weight.shape
        bound = math.sqrt(6.0 / (fan_in + (act_dim if i == len(linears) - 1 else fan_out)))
        layer.weight.uniform_(-bound, bound)
        layer.bias.zero_()


@dataclass
class RLPDConfig(Config):
    # configs/td_config.py: hidden_dims=(256, 256), the actor's and every critic's (SACLearner.create)
    hidden_dims: tuple[int, ...] = (256, 256)
    # td_config.py: actor_lr=critic_lr=3e-4; sac_config.py: temp_lr=3e-4
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temp_lr: float = 3e-4
    # td_config.py: discount=0.99, tau=0.005
    gamma: float = 0.99
    tau: float = 5e-3
    # rlpd_config.py: num_qs=10, num_min_qs=2, critic_layer_norm=True
    num_qs: int = 10
    num_min_qs: int = 2
    critic_layer_norm: bool = True
    # sac_config.py: init_temperature=1.0, target_entropy=None -> SACLearner.create: -|A| / 2 (None here too)
    init_temperature: float = 1.0
    target_entropy: float | None = None
    # sac_config.py: backup_entropy=True (the README's Adroit and AntMaze commands set False: preset "hand")
    backup_entropy: bool = True
    # train_finetuning.py flags: batch_size=256, offline_ratio=0.5; README (every D4RL command): --utd_ratio=20
    batch_size: int = 256
    offline_ratio: float = 0.5
    utd: int = 20
    # README (every command): --start_training 5000; train_finetuning.py: env.action_space.sample() while
    # i < start_training, and no update before it (the flag's own default is 1e4)
    random_steps: int = 5000


@register
class RLPD(TanhGaussianActing, Algorithm):
    name = "rlpd"
    Config = RLPDConfig
    presets = {
        # README "D4RL Locomotion": configs/rlpd_config.py, --utd_ratio=20
        "mujoco": {},
        # README "Adroit Binary": --config.backup_entropy=False --config.hidden_dims="(256, 256, 256)"
        "hand": {"backup_entropy": False, "hidden_dims": (256, 256, 256)},
    }
    batch_extras: ClassVar[tuple[str, ...]] = ()
    pretrains: ClassVar[bool] = False  # train_finetuning.py: pretrain_steps=0
    loose_tensors = ("log_alpha",)  # the temperature

    def __init__(self, obs_dim: int, act_dim: int, config: RLPDConfig, device="cpu"):
        super().__init__(obs_dim, act_dim, config, device)
        c = config
        self.actor = TanhGaussianPolicy(obs_dim, act_dim, c.hidden_dims)
        xavier_policy_init_(self.actor, act_dim)
        self.critic = EnsembleQ(obs_dim, act_dim, c.hidden_dims, c.num_qs,
                                "before_relu" if c.critic_layer_norm else None)
        xavier_init_(self.critic.net)
        self.actor.to(self.device)
        self.critic.to(self.device)
        # sac_learner.py create: target params = critic params
        self.critic_target = target_network(self.critic, EnsembleQ(
            obs_dim, act_dim, c.hidden_dims, c.num_qs, "before_relu" if c.critic_layer_norm else None).to(self.device))
        self.log_alpha = torch.full((1,), math.log(c.init_temperature), device=self.device, requires_grad=True)
        self.target_entropy = float(-act_dim / 2 if c.target_entropy is None else c.target_entropy)
        self.actor_opt = make_adam(self.actor, c.actor_lr)
        self.critic_opt = make_adam(self.critic, c.critic_lr)
        self.alpha_opt = make_adam([self.log_alpha], c.temp_lr)
        zero = torch.zeros((), device=self.device)
        self._actor_stats = {"actor_loss": zero, "entropy": zero, "alpha_loss": zero}  # until the first actor step

    # -- what the harness reads ------------------------------------------------------------------
    def online_mix(self) -> float | None:
        """Share of each online batch from the prior rows: train_finetuning.py offline_ratio (symmetric sampling)."""
        return self.cfg.offline_ratio

    def online_rhythm(self) -> Rhythm:
        """One environment step, then ``utd`` updates (train_finetuning.py: agent.update(batch, utd_ratio))."""
        return Rhythm(1, self.cfg.utd)

    # -- the update -------------------------------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, float]:
        c = self.cfg
        alpha = self.log_alpha.detach().exp()
        members = torch.randperm(c.num_qs, device=self.device)[:c.num_min_qs]  # subsample_ensemble
        next_noise = torch.randn(batch.act.shape, device=batch.act.device)
        critic_loss, stats = self.critic_loss(batch.obs, batch.act, batch.rew, batch.next_obs, batch.done, alpha,
                                              next_noise, members)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        soft_update(self.critic_target, self.critic, c.tau)

        if (self.grad_steps + 1) % c.utd == 0:  # the last critic step of the block: then actor and temperature
            self.critic.requires_grad_(False)  # the actor's gradient reaches Q only through its action
            actor_loss, logp = self.actor_loss(batch.obs, alpha, torch.randn(batch.act.shape, device=batch.act.device))
            self.critic.requires_grad_(True)
            alpha_loss = self.temperature_loss(-logp.detach().mean())
            self.actor_opt.zero_grad(set_to_none=True)
            self.alpha_opt.zero_grad(set_to_none=True)
            (actor_loss + alpha_loss).backward()  # disjoint parameters: each gets its own loss's gradient
            self.actor_opt.step()
            self.alpha_opt.step()
            self._actor_stats = {"actor_loss": actor_loss.detach(), "entropy": -logp.detach().mean(),
                                 "alpha_loss": alpha_loss.detach()}
        self.grad_steps += 1
        # actor metrics: those of the latest actor step (zeros before the first)
        return scalars({**stats, **self._actor_stats, "alpha": alpha[0]})

    def critic_loss(self, obs, act, rew, next_obs, done, alpha, next_noise, members):
        """(L_Q, metrics) with the target over the target critics ``members`` (indices)."""
        c = self.cfg
        with torch.no_grad():
            next_act, next_logp = self.actor.rsample(next_obs, next_noise)
            next_q = self.critic_target(next_obs, next_act, members).min(dim=0).values
            if c.backup_entropy:
                next_q = next_q - alpha * next_logp
            y = rew + c.gamma * (1.0 - done) * next_q
        qs = self.critic(obs, act)  # [K, B]
        loss = (qs - y).square().mean()
        return loss, {"critic_loss": loss.detach(), "q_mean": qs.detach().mean()}

    def actor_loss(self, obs, alpha, noise):
        """(L_pi, log pi(a~|s)): the mean over all critics, not a min."""
        pi_act, logp = self.actor.rsample(obs, noise)
        return (alpha * logp - self.critic(obs, pi_act).mean(dim=0)).mean(), logp

    def temperature_loss(self, entropy: torch.Tensor) -> torch.Tensor:
        """alpha (H - H_target) with alpha = exp(log alpha): ``update_temperature``."""
        return (self.log_alpha.exp() * (entropy - self.target_entropy)).sum()

    # -- acting, state, diagnostics ---------------------------------------------------------------
    def modules(self):
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                "actor_opt": self.actor_opt, "critic_opt": self.critic_opt, "alpha_opt": self.alpha_opt}

    def q_value(self, obs, act):
        """The expected target value: E over random pairs of min_{j in pair} Q_j(s, a) (``expected_subset_min``)."""
        return expected_subset_min(self.critic(obs, act), self.cfg.num_min_qs)
