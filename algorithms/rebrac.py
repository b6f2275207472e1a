"""ReBRAC: Revisited Behavior-Regularized Actor-Critic (Tarasov, Kurenkov, Nikulin, Kolesnikov 2023, arXiv 2305.09836).

TD3+BC with a behaviour-cloning penalty in the actor and in the critic's target, layer-normalised critics and
large batches. Faithful to the official offline code, tinkoff-ai/ReBRAC ``src/algorithms/rebrac.py``
(``update_critic``, ``update_actor``, ``update_td3``, ``Config``), ``src/networks.py`` (``DetActor``, ``Critic``,
``EnsembleCritic``) and per-dataset ``configs/rebrac/*/*.yaml``, and to its offline-to-online version, CORL
``algorithms/finetune/rebrac.py`` (``train``: the mixing of offline and online batches and the BC coefficients
online), whose ``configs/finetune/rebrac/{pen,door,relocate}/cloned_v1.yaml`` repeat the offline Adroit values.

One gradient step t on a batch {(s, a, r, s', d, a'_data)} (a'_data: the data's action at s'):

Critic (``update_critic``), with the target actor pi' and target critics Q'_1, Q'_2:
    eps ~ N(0, 1),  a' = clip( pi'(s') + clip(policy_noise * eps, -noise_clip, noise_clip), -1, 1 )
    y   = r + gamma (1 - d) [ min_j Q'_j(s', a') - beta_Q * ||a' - a'_data||^2 ]       (the critic's BC penalty)
    L_Q = sum_j mean_B (Q_j(s, a) - y)^2
Actor, every ``policy_freq``-th step (t % 2 == 0; ``update_actor``), with the critic just updated:
    Q~  = min_j Q_j(s, pi(s)),   lambda = 1 / mean_B |Q~|   (no gradient; ``normalize_q``)
    L_pi = mean_B( beta_pi * ||pi(s) - a||^2 - lambda * Q~ )                          (the actor's BC penalty)
Targets, on actor steps only: pi' <- (1 - tau) pi' + tau pi with pi *before* its step (``optax.incremental_update(
actor.params, ...)`` reads the actor the step started from), Q' <- (1 - tau) Q' + tau Q with the stepped critic.

Online (CORL ``finetune/rebrac.py`` ``train``, from the switch on, k = online updates so far):
    beta_pi <- beta_pi * max(min_decay_coef, 1 - k / bc_decay_updates),   beta_Q <- 0
and each online batch is half offline rows, half online rows (``mixing_ratio``: separate buffers, concatenated).

Networks (``src/networks.py``): ReLU MLPs of 3 hidden layers of 256, LayerNorm after each ReLU in the critics
(``critic_ln=True``) and none in the actor (``actor_ln=False``); tanh actor output; initialisation "as in the EDAC
paper" (``ensembles.edac_init_``). Two critics (``EnsembleCritic(num_critics=2)`` in ``train``).

What the harness provides (``batch_extras``): ``batch.extras["next_act"]``, [B, |A|] float32: the action the data
took at s', i.e. the next row's action when the row's episode goes on in the buffer (``qlearning_dataset``:
``new_action = dataset['actions'][i + 1]``); NaN where there is none (a terminal, a time-limit cut, the newest
row). The critic's penalty is 0 on such rows (the code drops time-limit rows from the offline data; a terminal
row's target has no next-state term anyway). Online the critic's coefficient is 0, so online rows' values are
never read (CORL stores the actor's action at s' for them).

Departures: ``use_calibration`` (CORL: max(y, mc_return)) is off in every config and not implemented;
``reset_opts`` (off) neither. The BC decay's horizon ``bc_decay_updates`` is CORL's ``num_online_updates``, its
1M-update online budget: a shorter run follows CORL's schedule for its first k updates (beta_pi at 0.92 of its
offline value after 80k), not a schedule compressed into its own budget (``--set bc_decay_updates=N`` for that).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from algorithms import register
from algorithms.base import Algorithm, Batch, Config, Rhythm, scalars
from algorithms.ensembles import EnsembleMLP, EnsembleQ, edac_init_
from algorithms.networks import make_adam, soft_update, target_network


def bc_penalty(pred: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """||pred - data||^2 summed over the action dimensions, [B]; 0 on rows whose data action is NaN (missing)."""
    present = torch.isfinite(data).all(dim=-1)
    sq = (pred - torch.where(present.unsqueeze(-1), data, pred)).square().sum(dim=-1)
    return torch.where(present, sq, torch.zeros_like(sq))


class DeterministicActor(nn.Module):
    """``DetActor``: a(s) = tanh(MLP(s)), ReLU hidden layers with an optional LayerNorm after each ReLU."""

    def __init__(self, obs_dim: int, act_dim: int, hidden, layer_norm: bool):
        super().__init__()
        self.net = EnsembleMLP(obs_dim, hidden, act_dim, num=1, layer_norm="after_relu" if layer_norm else None)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs)[0])


@dataclass
class ReBRACConfig(Config):
    # src/algorithms/rebrac.py Config: hidden_dim=256, actor_n_hiddens=3, critic_n_hiddens=3
    actor_hidden: tuple[int, ...] = (256, 256, 256)
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    # Config: actor_ln=False, critic_ln=True (src/networks.py: Dense, ReLU, LayerNorm)
    actor_layer_norm: bool = False
    critic_layer_norm: bool = True
    # CORL finetune/rebrac.py train: EnsembleCritic(num_critics=2)
    num_critics: int = 2
    # Config: actor_learning_rate=critic_learning_rate=1e-3, batch_size=1024 (every locomotion config; Adroit:
    # 3e-4 and 256, preset "hand")
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    batch_size: int = 1024
    # Config: gamma=0.99, tau=5e-3, policy_noise=0.2, noise_clip=0.5, policy_freq=2, normalize_q=True
    gamma: float = 0.99
    tau: float = 5e-3
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    policy_freq: int = 2
    normalize_q: bool = True
    # Config's actor_bc_coef=critic_bc_coef=1.0 is used by no dataset; every config sets both per dataset. (0.01,
    # 0.01) is the most frequent pair of the 18 locomotion configs (5 of them, e.g. hopper/hopper_medium.yaml);
    # the AWAC locomotion data has no D4RL twin, so no single config wins
    actor_bc_coef: float = 0.01
    critic_bc_coef: float = 0.01
    # CORL finetune/rebrac.py Config: mixing_ratio=0.5, min_decay_coef=0.5, expl_noise=0.0 (every finetune
    # config), num_online_updates=1_000_000 (the actor BC decay's horizon)
    mixing_ratio: float = 0.5
    min_decay_coef: float = 0.5
    bc_decay_updates: int = 1_000_000
    expl_noise: float = 0.0


_ADROIT = {"actor_lr": 3e-4, "critic_lr": 3e-4, "batch_size": 256}  # configs/rebrac/{pen,door,relocate}/*.yaml


@register
class ReBRAC(Algorithm):
    name = "rebrac"
    Config = ReBRACConfig
    presets = {
        # the locomotion settings (src/algorithms/rebrac.py Config) and the locomotion configs' modal BC pair
        "mujoco": {},
        # configs/rebrac/pen/pen_cloned.yaml (= CORL configs/finetune/rebrac/pen/cloned_v1.yaml): D4RL's "cloned"
        # data (human demonstrations + BC rollouts) is the AWAC hand data's recipe; pen is the family's default
        # (a task picks its environment's preset where one exists: harness.task_preset)
        "hand": {**_ADROIT, "actor_bc_coef": 0.05, "critic_bc_coef": 0.5},
        "pen": {**_ADROIT, "actor_bc_coef": 0.05, "critic_bc_coef": 0.5},
        # configs/rebrac/door/door_cloned.yaml, configs/rebrac/relocate/relocate_cloned.yaml
        "door": {**_ADROIT, "actor_bc_coef": 0.01, "critic_bc_coef": 0.1},
        "relocate": {**_ADROIT, "actor_bc_coef": 0.1, "critic_bc_coef": 0.01},
    }
    batch_extras: ClassVar[tuple[str, ...]] = ("next_act",)
    pretrains: ClassVar[bool] = True

    def __init__(self, obs_dim: int, act_dim: int, config: ReBRACConfig, device="cpu"):
        super().__init__(obs_dim, act_dim, config, device)
        c = config
        self.actor = DeterministicActor(obs_dim, act_dim, c.actor_hidden, c.actor_layer_norm)
        self.critic = EnsembleQ(obs_dim, act_dim, c.critic_hidden, c.num_critics,
                                "after_relu" if c.critic_layer_norm else None)
        edac_init_(self.actor.net, last_bound=1e-3)   # src/networks.py DetActor: uniform_init(1e-3)
        edac_init_(self.critic.net, last_bound=3e-3)  # Critic: uniform_init(3e-3)
        self.actor.to(self.device)
        self.critic.to(self.device)
        self.actor_target = target_network(self.actor, copy.deepcopy(self.actor))
        self.critic_target = target_network(self.critic, copy.deepcopy(self.critic))
        self.actor_opt = make_adam(self.actor, c.actor_lr)
        self.critic_opt = make_adam(self.critic, c.critic_lr)
        self.online_updates = -1  # -1 offline; from the switch on, the online updates so far
        self._actor_stats: dict[str, torch.Tensor] = {}

    # -- what the harness reads ------------------------------------------------------------------
    def online_mix(self) -> float | None:
        """Share of each online batch from the offline rows (CORL: offline and online buffers, mixing_ratio)."""
        return self.cfg.mixing_ratio

    def online_rhythm(self) -> Rhythm:
        return Rhythm(1, 1)  # CORL finetune/rebrac.py: one environment step, one update

    def on_phase_switch(self, buffer) -> None:
        self.online_updates = 0

    def bc_coefs(self) -> tuple[float, float]:
        """(beta_pi, beta_Q) now: the configured pair offline; online the actor's decays, the critic's is 0."""
        c = self.cfg
        if self.online_updates < 0:
            return c.actor_bc_coef, c.critic_bc_coef
        return c.actor_bc_coef * max(c.min_decay_coef, 1.0 - self.online_updates / c.bc_decay_updates), 0.0

    # -- the update -------------------------------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, float]:
        c = self.cfg
        if "next_act" not in batch.extras:
            raise RuntimeError("rebrac needs batch.extras['next_act'] (declared in batch_extras); this batch has "
                               f"{sorted(batch.extras) or 'no extras'}")
        actor_bc, critic_bc = self.bc_coefs()
        eps = torch.randn(batch.act.shape, device=batch.act.device)  # the target policy's smoothing noise
        critic_loss, stats = self.critic_loss(batch.obs, batch.act, batch.rew, batch.next_obs, batch.done,
                                              batch.extras["next_act"], critic_bc, eps)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        if self.grad_steps % c.policy_freq == 0:  # CORL/ReBRAC: i % policy_freq == 0 -> update_td3
            self.critic.requires_grad_(False)  # the actor's gradient reaches Q only through pi(s)
            actor_loss, self._actor_stats = self.actor_loss(batch.obs, batch.act, actor_bc)
            self.critic.requires_grad_(True)
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            soft_update(self.actor_target, self.actor, c.tau)  # before the step: the code's pre-step actor
            self.actor_opt.step()
            soft_update(self.critic_target, self.critic, c.tau)
        self.grad_steps += 1
        if self.online_updates >= 0:
            self.online_updates += 1
        # actor metrics: those of the latest actor step (the update of the first call is one)
        return scalars({**stats, **self._actor_stats, "actor_bc_coef": torch.tensor(actor_bc, device=self.device)})

    def critic_loss(self, obs, act, rew, next_obs, done, next_act_data, critic_bc: float, eps):
        """(L_Q, metrics); ``eps`` is the standard normal draw of the target policy's noise."""
        c = self.cfg
        with torch.no_grad():
            noise = (eps * c.policy_noise).clamp(-c.noise_clip, c.noise_clip)
            next_act = (self.actor_target(next_obs) + noise).clamp(-1.0, 1.0)
            penalty = bc_penalty(next_act, next_act_data)
            next_q = self.critic_target(next_obs, next_act).min(dim=0).values - critic_bc * penalty
            y = rew + c.gamma * (1.0 - done) * next_q
        q = self.critic(obs, act)  # [K, B]
        loss = (q - y).square().mean(dim=1).sum()
        return loss, {"critic_loss": loss.detach(), "q_mean": q.detach().min(dim=0).values.mean(),
                      "critic_bc_penalty": penalty.mean()}

    def actor_loss(self, obs, act, actor_bc: float):
        """(L_pi, metrics) with the current critic."""
        pi = self.actor(obs)
        penalty = bc_penalty(pi, act)
        q = self.critic(obs, pi).min(dim=0).values
        lam = 1.0 / q.detach().abs().mean() if self.cfg.normalize_q else 1.0
        loss = (actor_bc * penalty - lam * q).mean()
        return loss, {"actor_loss": loss.detach(), "actor_bc_penalty": penalty.detach().mean()}

    # -- acting, state, diagnostics ---------------------------------------------------------------
    @torch.inference_mode()
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        a = self.actor(self._obs_tensor(obs))
        if not deterministic and self.cfg.expl_noise > 0:  # CORL: a + N(0, expl_noise), clipped (0 in its configs)
            a = (a + self.cfg.expl_noise * torch.randn_like(a)).clamp(-1.0, 1.0)
        return a.cpu().numpy()

    def modules(self):
        return {"actor": self.actor, "critic": self.critic, "actor_target": self.actor_target,
                "critic_target": self.critic_target, "actor_opt": self.actor_opt, "critic_opt": self.critic_opt}

    def extra_state(self):
        return {"online_updates": self.online_updates}

    def load_extra_state(self, state):
        self.online_updates = int(state["online_updates"])

    def q_value(self, obs, act):
        return self.critic(obs, act).min(dim=0).values
