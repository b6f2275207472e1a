"""SAC with automatic entropy tuning (Haarnoja et al. 2018, arXiv 1812.05905) and the SACfD recipe.

SACfD is the AWAC paper's main off-policy baseline (Sec. 5.2): SAC whose replay buffer is seeded with
the offline data and which is pretrained on it with ordinary SAC updates before online fine-tuning.
The data-in-buffer and offline-phase parts are the harness's protocol; this file is SAC's update.
SACfD-pretrain (preset ``prior``; the name in the paper's challenges section) first fits the actor to the
dataset by behaviour cloning, as the paper's appendix ("Baseline Implementation Details") says its SAC baseline
does; then the offline phase runs ordinary SAC updates, as for SACfD. It is not the paper's "SAC+BC" (a BC loss
in the actor update throughout): docs/FIDELITY.md, "Which SAC baselines".

One gradient step on {(s, a, r, s', d)}:

Critic:  a' ~ pi(.|s'),  y = r + gamma (1 - d) [ min_j Q'_j(s', a') - alpha log pi(a'|s') ]
         L_Q = sum_j mean (Q_j(s, a) - y)^2
Actor:   a~ ~ pi(.|s) (reparameterised),  L_pi = mean[ alpha log pi(a~|s) - min_j Q_j(s, a~) ]
Alpha:   L_alpha = -mean[ log_alpha * (log pi(a~|s) + H_target) ],  H_target = -|A|
Targets: Polyak averaging with tau after every step.
BC warm start (first ``bc_init_steps`` steps only): L_pi = -mean log pi(a|s) on dataset actions.

The critic is stepped first and the actor then uses the updated critic (CleanRL's order). The actor and
temperature losses share no parameters (alpha enters the actor loss detached, log pi the alpha loss
detached), so one backward pass of their sum gives each exactly its own gradient.

log pi takes its Gaussian term from the noise eps itself rather than from (u - mu) / sigma, which would
cancel terms of size 1 / sigma in float32 once the policy is nearly deterministic
(``networks.standard_gaussian_log_prob``). The BC warm start is BC's own update (``bc.bc_loss``, ``bc.bc_step``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from algorithms import register
from algorithms.base import Algorithm, Batch, Config, scalars
from algorithms.bc import bc_loss, bc_step
from algorithms.networks import TanhGaussianActing, TanhGaussianPolicy, TwinQ, make_adam, soft_update, target_network


@dataclass
class SACConfig(Config):
    # SAC v2 paper (arXiv 1812.05905) Table 1: 2 hidden layers of 256 units for policy and Q
    actor_hidden: tuple[int, ...] = (256, 256)
    critic_hidden: tuple[int, ...] = (256, 256)
    # Table 1: Adam, learning rate 3e-4 for every network and for alpha
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    # Table 1: discount 0.99, target smoothing coefficient 0.005, minibatch 256
    gamma: float = 0.99
    tau: float = 5e-3
    batch_size: int = 256
    # Table 1 / Sec. 5: target entropy -dim(A); None means -act_dim
    target_entropy: float | None = None
    # initial temperature alpha = 1 (log alpha = 0), as rlkit's SACTrainer and CleanRL start
    init_alpha: float = 1.0
    # SACfD-pretrain (AWAC paper, challenges section and appendix): behaviour-cloning steps that initialise
    # the actor; 0 = plain SACfD
    bc_init_steps: int = 0


@register
class SAC(TanhGaussianActing, Algorithm):
    name = "sacfd"
    Config = SACConfig
    loose_tensors = ("log_alpha",)  # the temperature
    # "prior": SACfD-pretrain; 10k BC steps is our choice (the paper gives no count)
    presets = {"default": {}, "prior": {"bc_init_steps": 10_000}}

    def __init__(self, obs_dim: int, act_dim: int, config: SACConfig, device="cpu"):
        super().__init__(obs_dim, act_dim, config, device)
        c = config
        self.actor = TanhGaussianPolicy(obs_dim, act_dim, c.actor_hidden, rlkit_init=True).to(self.device)
        self.critic = TwinQ(obs_dim, act_dim, c.critic_hidden, rlkit_init=True).to(self.device)
        self.critic_target = target_network(self.critic, TwinQ(obs_dim, act_dim, c.critic_hidden).to(self.device))
        self.log_alpha = torch.tensor([math.log(c.init_alpha)], device=self.device, requires_grad=True)
        self.target_entropy = float(-act_dim if c.target_entropy is None else c.target_entropy)
        self.actor_opt = make_adam(self.actor, c.actor_lr)
        self.critic_opt = make_adam(self.critic, c.critic_lr)
        self.alpha_opt = make_adam([self.log_alpha], c.alpha_lr)


    def update(self, batch: Batch) -> dict[str, float]:
        if self.grad_steps < self.cfg.bc_init_steps:
            return self._bc_update(batch)
        c = self.cfg
        alpha = self.log_alpha.detach().exp()

        next_noise = torch.randn(batch.act.shape, device=batch.act.device)  # a' ~ pi(.|s')
        critic_loss, q_mean = self.critic_loss(batch.obs, batch.act, batch.rew, batch.next_obs, batch.done,
                                               alpha, next_noise)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        self.critic.requires_grad_(False)  # the actor's gradient flows through Q into the action only
        pi_noise = torch.randn(batch.act.shape, device=batch.act.device)  # a~ ~ pi(.|s), reparameterised
        actor_loss, logp = self.actor_loss(batch.obs, alpha, pi_noise)
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        self.alpha_opt.zero_grad(set_to_none=True)
        (actor_loss + alpha_loss).backward()  # disjoint parameters: each gets its own loss's gradient
        self.actor_opt.step()
        self.alpha_opt.step()
        self.critic.requires_grad_(True)

        soft_update(self.critic_target, self.critic, c.tau)
        self.grad_steps += 1
        return scalars({"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(), "alpha": alpha[0],
                        "entropy": -logp.detach().mean(), "q_mean": q_mean})

    @torch.no_grad()
    def soft_target_y(self, rew, next_obs, done, alpha, next_noise) -> torch.Tensor:
        """y = r + gamma (1 - d) [min_j Q'_j(s', a') - alpha log pi(a'|s')],  a' ~ pi(.|s')."""
        next_act, next_logp = self.actor.rsample(next_obs, next_noise)
        next_v = self.critic_target.min_q(next_obs, next_act) - alpha * next_logp
        return rew + self.cfg.gamma * (1.0 - done) * next_v

    def critic_loss(self, obs, act, rew, next_obs, done, alpha, next_noise):
        """Soft clipped double-Q loss and mean Q(s, a); the noise makes it a pure function."""
        y = self.soft_target_y(rew, next_obs, done, alpha, next_noise)
        q1, q2 = self.critic(obs, act)
        loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        return loss, q1.detach().mean()

    def actor_loss(self, obs, alpha, noise):
        """mean[alpha log pi(a~|s) - min_j Q_j(s, a~)] and log pi(a~|s)."""
        pi_act, logp = self.actor.rsample(obs, noise)
        loss = (alpha * logp - self.critic.min_q(obs, pi_act)).mean()
        return loss, logp

    def bc_loss(self, obs, act):
        return bc_loss(self.actor, obs, act)

    def _bc_update(self, batch: Batch) -> dict[str, float]:
        metrics = bc_step(self.bc_loss(batch.obs, batch.act), self.actor_opt)  # BC's update of the actor
        self.grad_steps += 1
        return metrics

    def past_warmup(self) -> None:
        self.grad_steps = max(self.grad_steps, int(self.cfg.bc_init_steps))

    def modules(self):
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                "actor_opt": self.actor_opt, "critic_opt": self.critic_opt, "alpha_opt": self.alpha_opt}

    def q_value(self, obs, act):
        return self.critic.min_q(obs, act)
