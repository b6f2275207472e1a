"""AWAC: Advantage-Weighted Actor-Critic (Nair, Gupta, Dalal, Levine 2020, arXiv 2006.09359).

Faithful to the official implementation, rlkit's ``AWACTrainer`` (rail-berkeley/rlkit,
``rlkit/torch/sac/awac_trainer.py``) with the settings of ``examples/awac/mujoco/awac1.py`` (default)
and ``examples/awac/hand/awac1.py`` (preset ``hand``). Preset ``hand-paper`` has the hand settings the paper's
text gives instead (lambda = 0.3, a 4 x 256 policy; docs/FIDELITY.md, "AWAC's hand settings: two sources").

Update rule, one gradient step on a batch {(s, a, r, s', d)} of size B:

Critic (policy evaluation, paper Eq. 3; rlkit samples the next action from the current policy):
    a' ~ pi(.|s')
    y  = r + gamma * (1 - d) * min_j Q'_j(s', a')
    L_Q = sum_j mean_B (Q_j(s, a) - y)^2

Actor (advantage-weighted maximum likelihood, paper Eq. 13 with the batch-normalised weights of the code):
    V(s)  = min_j Q_j(s, a_pi),  a_pi ~ pi(.|s)      (MuJoCo variant: one policy sample)
          = min_j Q_j(s, mean pi(.|s))              (hand variant: ``v_from_mean``)
    A     = min_j Q_j(s, a) - V(s)                  (clipped from above at ``adv_clip`` if set)
    w     = B * softmax_B(A / beta)                 (``weights = F.softmax(score / beta, dim=0)``)
    L_pi  = -mean_B( w * log pi(a|s) )              (w carries no gradient; no entropy term: alpha = 0)

Targets: Polyak averaging with tau after every step. Adam for both; L2 weight decay on the policy.
The critic and actor losses are computed from the same forward pass before either step, as in rlkit.
The two losses share no parameters (y and the weights w carry no gradient), so one backward pass of
their sum gives each network exactly its own loss's gradient (one autograd traversal instead of two).

Temperature: the paper (Appendix, hyperparameters) gives lambda = 1.0; the code that produced its
MuJoCo curves sweeps ``trainer_kwargs.beta: [2]``. The default here is the code's beta = 2 because the
published curves come from it; preset ``paper`` sets beta = 1.
"""

from __future__ import annotations

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
    make_adam,
    soft_update,
    target_network,
)


@dataclass
class AWACConfig(Config):
    # rlkit examples/awac/mujoco/awac1.py: policy_kwargs.hidden_sizes=[256] * 4
    actor_hidden: tuple[int, ...] = (256, 256, 256, 256)
    # rlkit awac1.py (both): qf_kwargs.hidden_sizes=[256, 256]
    critic_hidden: tuple[int, ...] = (256, 256)
    # rlkit awac1.py: policy_kwargs min_log_std=-6, max_log_std=0, std_architecture="values"
    min_log_std: float = -6.0
    max_log_std: float = 0.0
    # rlkit awac1.py trainer_kwargs: policy_lr=qf_lr=3e-4, policy_weight_decay=1e-4, q_weight_decay=0
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    actor_weight_decay: float = 1e-4
    # rlkit awac1.py trainer_kwargs: discount=0.99, soft_target_tau=5e-3, target_update_period=1
    gamma: float = 0.99
    tau: float = 5e-3
    # rlkit mujoco awac1.py search_space trainer_kwargs.beta=[2]; the paper's lambda is 1.0 (preset "paper")
    beta: float = 2.0
    # rlkit hand awac1.py: clip_score=0.5 (advantage clipped from above before the softmax); None = off
    adv_clip: float | None = None
    # rlkit hand awac1.py: awr_use_mle_for_vf=True (V from the policy mean); mujoco: False (one sample)
    v_from_mean: bool = False
    # rlkit hand awac1.py qf_kwargs output_activation=Clamp(max=0) since binary rewards are <= 0
    q_max: float | None = None
    # rlkit hand awac1.py terminal_transform_kwargs=dict(m=0, b=0): terminals are ignored (never bootstrapped off)
    ignore_terminals: bool = False
    # rlkit awac1.py: batch_size=1024 (online training loop)
    batch_size: int = 1024
    # rlkit AWACTrainer.pretrain_q_with_bc_data samples ``bc_batch_size`` (default 128) in the offline
    # phase; None uses ``batch_size`` there too. Set 128 to match rlkit's offline phase exactly.
    offline_batch_size: int | None = None


# rlkit examples/awac/hand/awac1.py
HAND = {"actor_hidden": (256, 256), "beta": 0.5, "adv_clip": 0.5, "v_from_mean": True, "q_max": 0.0,
        "ignore_terminals": True, "offline_batch_size": 128}


@register
class AWAC(GaussianActing, Algorithm):
    name = "awac"
    Config = AWACConfig
    # Every preset pretrains (the offline phase) on batches of 128, as rlkit does: both awac1.py launchers set
    # pretrain_rl=True, so rlkit/launchers/experiments/awac/awac_rl.py calls
    # AWACTrainer.pretrain_q_with_bc_data(), which samples replay_buffer.random_batch(self.bc_batch_size)
    # with AWACTrainer's default bc_batch_size=128 (neither launcher sets it; rlkit/torch/sac/awac_trainer.py).
    # The online phase uses batch_size=1024 (awac1.py batch_size). Offline step counts: benchmarks/sweeps/presets.py.
    presets = {
        # rlkit examples/awac/mujoco/awac1.py (the config defaults)
        "mujoco": {"offline_batch_size": 128},
        # the paper's lambda = 1.0 (Appendix) on the mujoco settings
        "paper": {"beta": 1.0, "offline_batch_size": 128},
        "hand": HAND,
        # the paper's text (Appendix: lambda = 0.3 for manipulation, policy hidden sizes [256] * 4) with the
        # authors' launcher of that setting, Asap7772/railrl_evalsawyer
        # experiments/ashvin/icml2020/reference/hand/awac1.py: beta 0.3, clip_score 2, policy [256] * 4,
        # Q [256, 256] (the paper's table says [256] * 4 for Q; the launcher's is kept), the rest as "hand"
        "hand-paper": {**HAND, "actor_hidden": (256, 256, 256, 256), "beta": 0.3, "adv_clip": 2.0},
    }

    def __init__(self, obs_dim: int, act_dim: int, config: AWACConfig, device="cpu"):
        super().__init__(obs_dim, act_dim, config, device)
        c = config
        self.actor = GaussianPolicy(obs_dim, act_dim, c.actor_hidden, c.min_log_std, c.max_log_std,
                                    rlkit_init=True).to(self.device)
        self.critic = TwinQ(obs_dim, act_dim, c.critic_hidden, q_max=c.q_max, rlkit_init=True).to(self.device)
        self.critic_target = target_network(self.critic,
                                            TwinQ(obs_dim, act_dim, c.critic_hidden, q_max=c.q_max).to(self.device))
        self.actor_opt = make_adam(self.actor, c.actor_lr, c.actor_weight_decay)
        self.critic_opt = make_adam(self.critic, c.critic_lr)

    def update(self, batch: Batch) -> dict[str, float]:
        c = self.cfg
        # The policy samples' noise, drawn here in the order of the rule above: a' ~ pi(.|s'), then a_pi ~ pi(.|s).
        shape, dev = batch.act.shape, batch.act.device
        next_noise = torch.randn(shape, device=dev)
        v_noise = None if c.v_from_mean else torch.randn(shape, device=dev)
        critic_loss, actor_loss, stats = self.losses(batch.obs, batch.act, batch.rew, batch.next_obs, batch.done,
                                                     next_noise, v_noise)
        self.critic_opt.zero_grad(set_to_none=True)
        self.actor_opt.zero_grad(set_to_none=True)
        (critic_loss + actor_loss).backward()  # disjoint parameters: each gets its own loss's gradient
        self.critic_opt.step()
        self.actor_opt.step()
        soft_update(self.critic_target, self.critic, c.tau)
        self.grad_steps += 1
        return scalars(stats)

    def losses(self, obs, act, rew, next_obs, done, next_noise, v_noise):
        """(critic loss, actor loss, metrics) of one batch; the noise makes it a pure function."""
        # Critic target: next action sampled from the current policy, clipped double-Q, no entropy.
        y = self.critic_target_y(rew, next_obs, done, next_noise)
        q1, q2 = self.critic(obs, act)
        critic_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)

        # Actor: advantage-weighted regression onto the batch actions.
        mean, log_std = self.actor(obs)
        adv, weights = self.advantages(obs, q1, q2, mean, log_std, v_noise)
        logp = diag_gaussian_log_prob(act, mean, log_std)
        actor_loss = -(weights * logp).mean()
        return critic_loss, actor_loss, self._stats(critic_loss, actor_loss, q1, adv, weights, log_std)

    @torch.no_grad()
    def critic_target_y(self, rew, next_obs, done, next_noise) -> torch.Tensor:
        """y = r + gamma (1 - d) min_j Q'_j(s', a'),  a' = mu(s') + sigma eps'."""
        c = self.cfg
        if c.ignore_terminals:
            done = torch.zeros_like(done)
        next_mean, next_log_std = self.actor(next_obs)
        next_act = next_mean + torch.exp(next_log_std) * next_noise
        return rew + c.gamma * (1.0 - done) * self.critic_target.min_q(next_obs, next_act)

    @torch.no_grad()
    def advantages(self, obs, q1, q2, mean, log_std, v_noise) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, w): A = min_j Q_j(s, a) - min_j Q_j(s, a_pi), w = B softmax(clip(A) / beta)."""
        pi_act = mean if v_noise is None else mean + torch.exp(log_std) * v_noise
        adv = torch.minimum(q1, q2) - self.critic.min_q(obs, pi_act)
        return adv, self.advantage_weights(adv, self.cfg.beta, self.cfg.adv_clip)

    def _stats(self, critic_loss, actor_loss, q1, adv, weights, log_std) -> dict[str, torch.Tensor]:
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(), "q_mean": q1.detach().mean(),
                "adv_mean": adv.mean(),  # before the clip
                "weight_max": weights.max(), "weight_std": weights.std(), "log_std_mean": log_std.detach().mean()}

    @staticmethod
    def advantage_weights(adv: torch.Tensor, beta: float, adv_clip: float | None = None) -> torch.Tensor:
        """The weights of the actor loss for a batch of advantages (exposed for known-answer tests)."""
        if adv_clip is not None:
            adv = adv.clamp(max=adv_clip)
        return F.softmax(adv / beta, dim=0) * adv.shape[0]

    def modules(self):
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                "actor_opt": self.actor_opt, "critic_opt": self.critic_opt}

    def q_value(self, obs, act):
        return self.critic.min_q(obs, act)
