"""SAC+BC: the AWAC paper's off-policy baseline with a behaviour-cloning term (Nair et al. 2020, arXiv 2006.09359).

The paper's hand, Gym and robot figures plot "SAC+BC": SAC with a behaviour-cloning loss added to the actor update,
after Nair et al. 2018 (arXiv 1709.10089, DDPG with a BC loss on demonstrations), with SAC in place of DDPG (the
paper's Gym appendix). The authors made it with their AWAC trainer: ``experiments/ashvin/icml2020/hand/baselines/
sac_bc1.py`` in a fork of their research code (Asap7772/railrl_evalsawyer) configures ``rlkit/torch/sac/
awac_trainer.py`` with the advantage-weighted term off (``awr_weight=0``, ``use_awr_update=False``), the
reparameterised SAC term on (``reparam_weight=1``), the temperature fixed at 0 (``use_automatic_entropy_tuning=False,
alpha=0``) and the BC term at weight 1 (``bc_weight=1``; ``run_bc_batch`` computes the negative log-likelihood) on a
separate batch of 128 demonstration rows (``bc_batch_size``, ``demo_train_buffer``: the demonstrations, not the BC
rollouts); 25k joint steps offline (``q_num_pretrain2_steps``) and no BC-only phase (``bc_num_pretrain_steps=0``).
The pairing is our reconstruction: the launcher as stored also passes keys that the stored trainer does not accept
(``bc_loss_type``, ``awr_loss_type``), so it did not run on that exact trainer. This file follows the launcher's
settings on that trainer; docs/FIDELITY.md, "Which SAC baselines", says how it differs from SACfD and
SACfD-pretrain (``sac.py``).

One gradient step on a batch {(s, a, r, s', d)} of size B and a demonstration batch {(s_d, a_d)} of size D
(``Batch.demo``), with pi a Gaussian policy (tanh mean, state-independent std: AWAC's policy):

Critic:  a' ~ pi(.|s'),  y = r + gamma (1 - d) [ min_j Q'_j(s', a') - alpha log pi(a'|s') ]
         L_Q = sum_j mean_B (Q_j(s, a) - y)^2
Actor:   a~ = mu(s) + sigma eps (reparameterised)
         L_pi = mean_B[ alpha log pi(a~|s) - min_j Q_j(s, a~) ] + w_bc mean_D[ -log pi(a_d|s_d) ]
Targets: Polyak averaging with tau after every step. Adam for both; L2 weight decay on the policy.

Both losses come from one forward pass, before either network steps, and the actor's Q term uses the critic as it
was at the start of the step (its parameters are frozen while the term is computed, so the actor loss sends no
gradient into them); one backward pass of the sum then gives each network its own loss's gradient. That is what
rlkit's trainer means to compute: literally it steps the critics before ``policy_loss.backward()`` through graphs
built with their old weights, which PyTorch >= 1.5 refuses and older versions (``p.data`` updates) ran with the new
weights and the old activations. With alpha = 0 (the launcher's) the temperature terms vanish; the policy's std then
moves under the BC term, the reparameterised Q term and the weight decay. For alpha != 0 the target is SAC's; rlkit
would broadcast its [B, 1] Q against the [B] log-probabilities there, a slip that alpha = 0 hides.
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
class SACBCConfig(Config):
    # sac_bc1.py: policy_kwargs.hidden_sizes=[256] * 4 (GaussianPolicy), qf_kwargs.hidden_sizes=[256, 256]
    actor_hidden: tuple[int, ...] = (256, 256, 256, 256)
    critic_hidden: tuple[int, ...] = (256, 256)
    # sac_bc1.py: policy_kwargs min_log_std=-6, max_log_std=0, std_architecture="values"
    min_log_std: float = -6.0
    max_log_std: float = 0.0
    # sac_bc1.py trainer_kwargs: policy_lr=qf_lr=3e-4, policy_weight_decay=1e-4, q_weight_decay=0
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    actor_weight_decay: float = 1e-4
    # sac_bc1.py trainer_kwargs: discount=0.99, soft_target_tau=5e-3, target_update_period=1
    gamma: float = 0.99
    tau: float = 5e-3
    # sac_bc1.py trainer_kwargs: use_automatic_entropy_tuning=False, alpha=0 (a fixed temperature)
    alpha: float = 0.0
    # sac_bc1.py trainer_kwargs: bc_weight=1.0 (search space too), bc_loss_type "mle": the BC term's weight
    bc_weight: float = 1.0
    # AWACTrainer's bc_batch_size=128 (sac_bc1.py does not set it): rows of the demonstration batch
    demo_batch_size: int = 128
    # sac_bc1.py: batch_size=1024 (online training loop)
    batch_size: int = 1024
    # AWACTrainer.pretrain_q_with_bc_data samples bc_batch_size=128 rows per offline step (as AWAC, awac.py)
    offline_batch_size: int | None = 128
    # sac_bc1.py search space: qf_kwargs output_activation=Clamp(max=0) (preset "hand"; None = off)
    q_max: float | None = None
    # sac_bc1.py search space: terminal_transform_kwargs=dict(m=0, b=0), terminals ignored (preset "hand")
    ignore_terminals: bool = False


@register
class SACBC(GaussianActing, Algorithm):
    name = "sac-bc"
    Config = SACBCConfig
    # "hand": the two settings of sac_bc1.py's search space that only suit the binary hand tasks (rewards <= 0, no
    # terminal state). sac_bc1.py is the only SAC+BC launcher found; the default (MuJoCo) keeps its other settings,
    # as AWAC's mujoco launcher differs from its hand launcher (awac.py).
    presets = {"hand": {"q_max": 0.0, "ignore_terminals": True}}

    def __init__(self, obs_dim: int, act_dim: int, config: SACBCConfig, device="cpu"):
        super().__init__(obs_dim, act_dim, config, device)
        c = config
        self.actor = GaussianPolicy(obs_dim, act_dim, c.actor_hidden, c.min_log_std, c.max_log_std,
                                    rlkit_init=True).to(self.device)
        self.critic = TwinQ(obs_dim, act_dim, c.critic_hidden, q_max=c.q_max, rlkit_init=True).to(self.device)
        self.critic_target = target_network(self.critic,
                                            TwinQ(obs_dim, act_dim, c.critic_hidden, q_max=c.q_max).to(self.device))
        self.actor_opt = make_adam(self.actor, c.actor_lr, c.actor_weight_decay)
        self.critic_opt = make_adam(self.critic, c.critic_lr)

    def demo_batch_size(self) -> int:
        return int(self.cfg.demo_batch_size) if self.cfg.bc_weight else 0

    def update(self, batch: Batch) -> dict[str, float]:
        # The noise, drawn in the order of the rule above: a' ~ pi(.|s'), then a~ ~ pi(.|s).
        shape, dev = batch.act.shape, batch.act.device
        next_noise = torch.randn(shape, device=dev)
        pi_noise = torch.randn(shape, device=dev)
        critic_loss, actor_loss, stats = self.losses(batch, next_noise, pi_noise)
        self.critic_opt.zero_grad(set_to_none=True)
        self.actor_opt.zero_grad(set_to_none=True)
        (critic_loss + actor_loss).backward()  # disjoint parameters: each gets its own loss's gradient
        self.critic_opt.step()
        self.actor_opt.step()
        soft_update(self.critic_target, self.critic, self.cfg.tau)
        self.grad_steps += 1
        return scalars(stats)

    def losses(self, batch: Batch, next_noise: torch.Tensor, pi_noise: torch.Tensor):
        """(critic loss, actor loss, metrics) of one batch and its demonstration batch; the noise makes it a pure
        function."""
        c = self.cfg
        y = self.critic_target_y(batch.rew, batch.next_obs, batch.done, next_noise)
        q1, q2 = self.critic(batch.obs, batch.act)
        critic_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)

        mean, log_std = self.actor(batch.obs)
        pi_act = mean + torch.exp(log_std) * pi_noise
        logp = diag_gaussian_log_prob(pi_act, mean, log_std)
        self.critic.requires_grad_(False)  # the Q term's gradient flows into the action only
        q_pi = self.critic.min_q(batch.obs, pi_act)
        self.critic.requires_grad_(True)
        rl_loss = (c.alpha * logp - q_pi).mean()
        bc_loss = self.bc_loss(batch.demo) if c.bc_weight else torch.zeros((), device=q1.device)
        actor_loss = rl_loss + c.bc_weight * bc_loss
        stats = {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
                 "bc_loss": bc_loss.detach(), "q_mean": q1.detach().mean(), "q_pi_mean": q_pi.detach().mean(),
                 "log_std_mean": log_std.detach().mean()}
        return critic_loss, actor_loss, stats

    def bc_loss(self, demo: Batch | None) -> torch.Tensor:
        """mean_D[-log pi(a_d|s_d)] over the demonstration batch (rlkit ``AWACTrainer.run_bc_batch``, "mle")."""
        if demo is None:
            raise RuntimeError("sac-bc's update needs a demonstration batch (Batch.demo); the harness draws it "
                               "(benchmarks.run.columns.minibatch)")
        mean, log_std = self.actor(demo.obs)
        return -diag_gaussian_log_prob(demo.act, mean, log_std).mean()

    @torch.no_grad()
    def critic_target_y(self, rew, next_obs, done, next_noise) -> torch.Tensor:
        """y = r + gamma (1 - d) [min_j Q'_j(s', a') - alpha log pi(a'|s')],  a' = mu(s') + sigma eps'."""
        c = self.cfg
        if c.ignore_terminals:
            done = torch.zeros_like(done)
        next_mean, next_log_std = self.actor(next_obs)
        next_act = next_mean + torch.exp(next_log_std) * next_noise
        next_v = self.critic_target.min_q(next_obs, next_act)
        if c.alpha:
            next_v = next_v - c.alpha * diag_gaussian_log_prob(next_act, next_mean, next_log_std)
        return rew + c.gamma * (1.0 - done) * next_v

    def modules(self):
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                "actor_opt": self.actor_opt, "critic_opt": self.critic_opt}

    def q_value(self, obs, act):
        return self.critic.min_q(obs, act)
