"""CQL: Conservative Q-Learning (Kumar, Zhou, Tucker, Levine 2020, arXiv 2006.04779), in its SAC form.

Faithful to the JAX implementation Cal-QL builds on, nakamotoo/Cal-QL ``JaxCQL/conservative_sac.py``
(``ConservativeSAC.get_default_config``, ``_train_step``), ``JaxCQL/model.py`` (``TanhGaussianPolicy``,
``FullyConnectedNetwork``) and its launcher ``JaxCQL/conservative_sac_main.py`` (``FLAGS_DEF``, ``main``). The
PyTorch original, young-geng/CQL ``SimpleSAC/conservative_sac.py`` (``ConservativeSAC.train``), has the same
conservative term with other defaults (policy_lr 3e-4, no max backup); JaxCQL's win because Cal-QL, the reason
this file exists, was run with them. Cal-QL (``algorithms/calql.py``) is this update with the policy actions'
Q-values bounded from below (``calibrate``).

One gradient step on a batch {(s, a, r, s', d)} of size B, N = ``cql_n_actions``. Every loss is computed from the
parameters before the step and each optimizer gets only its own loss's gradient (``_train_step``: one
``value_and_multi_grad`` over the losses, then every ``apply_gradients``); the targets move last.

Rewards (main: ``get_hand_dataset_with_mc_calculation`` and ``TrajSampler`` scale them as they are stored; here in
the update, ``reward_transform``):
    r~ = reward_scale * r + reward_bias
The goal as a terminal (``end_at_goal``, the "hand" preset; main's ``use_goal``): d = 1 on every step at the goal,
in the prior data (cut after each trajectory's last step at the goal; a trajectory that never reaches it is
dropped) and online (an episode ends at its first step there). The harness does it (``Algorithm.ends_at_goal``).
Temperature (``use_automatic_entropy_tuning``; ``_train_step`` "alpha_loss"), a~ ~ pi(.|s) reparameterised:
    L_alpha = -log_alpha * mean_B( log pi(a~|s) + H_target )     H_target = -|A| (main: target_entropy >= 0 -> -|A|)
    alpha   = alpha_multiplier * exp(log_alpha)                 (alpha_multiplier itself without tuning)
Actor (``_train_step`` "Policy loss"):
    L_pi = mean_B( alpha log pi(a~|s) - min_j Q_j(s, a~) )
Critic target (``cql_max_target_backup``), a'_1..a'_N ~ pi(.|s'):
    k = argmax_i min_j Q'_j(s', a'_i)
    y = r~ + gamma (1 - d) [ min_j Q'_j(s', a'_k) - alpha log pi(a'_k|s') * 1(backup_entropy) ]
    (without the max backup: a single a' ~ pi(.|s'))
Critic j = 1, 2 (``_train_step`` "Q function loss" and "CQL"), with N actions per state of three kinds, all fed
to Q_j at s and carrying no gradient to the policy:
    a^u_i ~ U[-1, 1]^|A|,   a^c_i ~ pi(.|s) with log pi(a^c_i|s),   a^n_i ~ pi(.|s') with log pi(a^n_i|s')
    Cal-QL only: Q_j(s, a^c_i), Q_j(s, a^n_i) <- max(., mc_return)  (``calibrate``; the random actions are not bound)
    CQL_j(s) = T logsumexp over the 3N values / T of (``cql_importance_sample``, T = ``cql_temp``)
               Q_j(s, a^u_i) - log 0.5^|A|,   Q_j(s, a^n_i) - log pi(a^n_i|s'),   Q_j(s, a^c_i) - log pi(a^c_i|s)
               (without importance sampling: the raw 3N values and Q_j(s, a), 3N + 1 in all)
    gap_j = mean_B clip( CQL_j(s) - Q_j(s, a), cql_clip_diff_min, cql_clip_diff_max )
    L_Qj  = mean_B (Q_j(s, a) - y)^2 + w * gap_j                 w = cql_min_q_weight (the paper's alpha)
    (online, w = cql_min_q_weight_online if set: main's "changing cql alpha")
Lagrange (``cql_lagrange``, off by default): alpha' = clip(exp(log alpha'), 0, 1e6), log alpha' starting at 1.0,
    L_Qj  = mean_B (Q_j(s, a) - y)^2 + alpha' w (gap_j - cql_target_action_gap)
    L_alpha' = -(alpha' w (gap_1 - tau_gap) + alpha' w (gap_2 - tau_gap)) / 2     (its own Adam, lr = critic_lr)
Targets: Q' <- (1 - tau) Q' + tau Q after every step (``update_target_network``).

Since every loss reads the pre-step parameters, one backward pass of their sum gives each optimizer exactly its
own loss's gradient: the critic is frozen while the actor loss is formed (its gradient reaches Q only through
a~), the policy samples of the critic loss carry no gradient, alpha enters the actor and critic losses detached
and log pi the temperature loss detached (the same for alpha' and the gaps).

Departures from the code:
* Noise comes from torch's generator (drawn in ``update``, passed in), not from split JAX keys.
* Initialisation: ``model.py`` with ``orthogonal_init=True`` (main's default): hidden kernels orthogonal(sqrt 2),
  the last orthogonal(1e-2), zero biases; PyTorch's orthogonal_ on the (out, in) weight, the same distribution.
* What is the harness's in the code (main): dataset actions clipped to +-0.99999 (here ``clip_action`` in the
  update, the same numbers), Adroit-binary trajectories cut at their last success with done at every success step,
  the epoch rhythm (one whole trajectory, then len(trajectory) updates: here one update per step), the offline
  length (run_adroit.sh: 20 epochs of 1000 steps = 20k) and ``online_use_cql`` (always on here, main's default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from algorithms import register
from algorithms.base import Algorithm, Batch, Config, Rhythm, scalars
from algorithms.networks import (
    TanhGaussianActing,
    TanhGaussianPolicy,
    TwinQ,
    f32,
    make_adam,
    soft_update,
    target_network,
)


def cql_logsumexp(q_data: torch.Tensor, q_rand: torch.Tensor, q_cur: torch.Tensor, q_next: torch.Tensor,
                  cur_logp: torch.Tensor, next_logp: torch.Tensor, act_dim: int, temp: float,
                  importance_sample: bool) -> torch.Tensor:
    """CQL_j(s) = T logsumexp(values / T) over the sampled actions of each state, shape [B].

    q_data [B]: Q_j(s, a); q_rand, q_cur, q_next [B, N]: Q_j at s of the uniform, pi(.|s) and pi(.|s') actions;
    cur_logp, next_logp [B, N]: the policy actions' log-densities. With importance sampling each value is divided
    by its proposal's density (the uniform's is 0.5^|A| on [-1, 1]^|A|), as ``_train_step`` builds ``cql_cat_q1``;
    without, the raw values and Q_j(s, a) itself."""
    if importance_sample:
        log_uniform = act_dim * math.log(0.5)  # np.log(0.5 ** action_dim)
        values = torch.cat([q_rand - log_uniform, q_next - next_logp, q_cur - cur_logp], dim=1)
    else:
        values = torch.cat([q_rand, q_data.unsqueeze(1), q_next, q_cur], dim=1)
    return temp * torch.logsumexp(values / temp, dim=1)


class CQLNoise(NamedTuple):
    """The random numbers of one update, drawn in ``update`` (shapes for B rows, N = cql_n_actions, |A|)."""

    pi: torch.Tensor          # [B, |A|]: a~ ~ pi(.|s) of the actor and temperature losses
    next_pi: torch.Tensor     # [B, N, |A|] (max backup) or [B, |A|]: a' ~ pi(.|s') of the target
    random_act: torch.Tensor  # [B, N, |A|]: the uniform actions a^u, U[-1, 1]
    cur: torch.Tensor         # [B, N, |A|]: a^c ~ pi(.|s)
    nxt: torch.Tensor         # [B, N, |A|]: a^n ~ pi(.|s')


class ScaledTanhGaussianPolicy(TanhGaussianPolicy):
    """JaxCQL's ``TanhGaussianPolicy``: log sigma = clip(m * raw + o, -20, 2) with m and o trainable scalars
    (``Scalar(log_std_multiplier)``, ``Scalar(log_std_offset)``, parameters of the policy like its weights)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden, log_std_multiplier: float, log_std_offset: float):
        super().__init__(obs_dim, act_dim, hidden)
        self.log_std_multiplier = nn.Parameter(torch.tensor(float(log_std_multiplier)))
        self.log_std_offset = nn.Parameter(torch.tensor(float(log_std_offset)))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, raw = f32(self.net(obs)).chunk(2, dim=-1)
        log_std = self.log_std_multiplier * raw + self.log_std_offset
        return mean, log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)


@torch.no_grad()
def orthogonal_init_(linears) -> None:
    """``model.py`` ``FullyConnectedNetwork(orthogonal_init=True)``: hidden kernels orthogonal(sqrt 2), the output
    kernel orthogonal(1e-2), every bias zero."""
    for i, layer in enumerate(linears):
        nn.init.orthogonal_(layer.weight, gain=1e-2 if i == len(linears) - 1 else math.sqrt(2.0))
        layer.bias.zero_()


@dataclass
class CQLConfig(Config):
    # conservative_sac_main.py FLAGS_DEF: policy_arch='256-256', qf_arch='256-256' (ReLU MLPs, orthogonal_init=True)
    actor_hidden: tuple[int, ...] = (256, 256)
    critic_hidden: tuple[int, ...] = (256, 256)
    # FLAGS_DEF: policy_log_std_multiplier=1.0, policy_log_std_offset=-1.0 (model.py: trainable, clip [-20, 2])
    log_std_multiplier: float = 1.0
    log_std_offset: float = -1.0
    # conservative_sac.py get_default_config: policy_lr=1e-4 (the temperature's Adam uses it too), qf_lr=3e-4
    actor_lr: float = 1e-4
    critic_lr: float = 3e-4
    # get_default_config: discount=0.99, soft_target_update_rate=5e-3; FLAGS_DEF: batch_size=256
    gamma: float = 0.99
    tau: float = 5e-3
    batch_size: int = 256
    # get_default_config: use_automatic_entropy_tuning=True, alpha_multiplier=1.0 (log alpha starts at 0),
    # target_entropy=0.0, which main replaces by -prod(action shape) when >= 0 (None here means -|A|)
    use_automatic_entropy_tuning: bool = True
    alpha_multiplier: float = 1.0
    target_entropy: float | None = None
    # get_default_config: backup_entropy=False, cql_max_target_backup=True
    backup_entropy: bool = False
    cql_max_target_backup: bool = True
    # get_default_config: cql_n_actions=10, cql_importance_sample=True, cql_temp=1.0
    cql_n_actions: int = 10
    cql_importance_sample: bool = True
    cql_temp: float = 1.0
    # get_default_config: cql_clip_diff_min=-inf, cql_clip_diff_max=inf (None: no clip)
    cql_clip_diff_min: float | None = None
    cql_clip_diff_max: float | None = None
    # FLAGS_DEF: cql_min_q_weight=5.0 (the paper's alpha); cql_min_q_weight_online=-1.0 (< 0: unchanged; None here)
    cql_min_q_weight: float = 5.0
    cql_min_q_weight_online: float | None = None
    # get_default_config: cql_lagrange=False, cql_target_action_gap=1.0 (log alpha' starts at 1.0: Scalar(1.0))
    cql_lagrange: bool = False
    cql_target_action_gap: float = 1.0
    # FLAGS_DEF: reward_scale=1.0, reward_bias=0.0 (applied to stored rewards; here in the update), clip_action=0.99999
    reward_scale: float = 1.0
    reward_bias: float = 0.0
    clip_action: float = 0.99999
    # FLAGS_DEF: mixing_ratio=-1.0, i.e. offline share = N_offline / (N_offline + online steps): proportional, the
    # same as uniform over one buffer (None), which CORL's algorithms/finetune/cql.py also does (one buffer)
    mixing_ratio: float | None = None
    # the goal as a terminal state, on the binary Adroit tasks (conservative_sac_main.py sets use_goal=True and loads
    # get_hand_dataset_with_mc_calculation for them): in the prior data every step at the goal is terminal
    # (replay_buffer.py ``truncate_traj``: dones = rewards == reward_pos), each trajectory is cut after its last
    # step at the goal and one that never reaches it is dropped; online, sampler.py ``TrajSampler`` ends an episode
    # at its first step at the goal (done=True). False (FLAGS_DEF's tasks, D4RL locomotion): neither.
    end_at_goal: bool = False


@register
class CQL(TanhGaussianActing, Algorithm):
    name = "cql"
    Config = CQLConfig
    presets = {
        # conservative_sac_main.py FLAGS_DEF (Cal-QL has no locomotion launcher; these are its defaults)
        "mujoco": {},
        # scripts/run_adroit.sh (the binary Adroit tasks; the same launcher with enable_calql=False is CQL):
        # cql_min_q_weight=1.0, policy_arch=512-512, qf_arch=512-512-512, reward_scale=10, reward_bias=5. Its
        # mixing_ratio=0.5 is not taken: CQL's own fine-tuning (CORL finetune/cql.py) samples one buffer uniformly.
        "hand": {"cql_min_q_weight": 1.0, "actor_hidden": (512, 512), "critic_hidden": (512, 512, 512),
                 "reward_scale": 10.0, "reward_bias": 5.0, "end_at_goal": True},
    }
    # What the harness provides (see ``online_mix``, ``online_rhythm``; Cal-QL adds ``mc_return``)
    batch_extras: ClassVar[tuple[str, ...]] = ()
    pretrains: ClassVar[bool] = True
    loose_tensors = ("log_alpha", "log_alpha_prime")  # the temperature and the Lagrangian CQL weight

    def __init__(self, obs_dim: int, act_dim: int, config: CQLConfig, device="cpu"):
        super().__init__(obs_dim, act_dim, config, device)
        c = config
        self.actor = ScaledTanhGaussianPolicy(obs_dim, act_dim, c.actor_hidden, c.log_std_multiplier,
                                              c.log_std_offset)
        self.critic = TwinQ(obs_dim, act_dim, c.critic_hidden)
        for net in (self.actor.net, self.critic.q1, self.critic.q2):
            orthogonal_init_(net.linears)
        self.actor.to(self.device)
        self.critic.to(self.device)
        self.critic_target = target_network(self.critic, TwinQ(obs_dim, act_dim, c.critic_hidden).to(self.device))
        self.log_alpha = torch.zeros(1, device=self.device, requires_grad=True)  # Scalar(0.0)
        self.log_alpha_prime = torch.ones(1, device=self.device, requires_grad=True)  # Scalar(1.0)
        self.target_entropy = float(-act_dim if c.target_entropy is None else c.target_entropy)
        self.actor_opt = make_adam(self.actor, c.actor_lr)
        self.critic_opt = make_adam(self.critic, c.critic_lr)
        self.alpha_opt = make_adam([self.log_alpha], c.actor_lr)  # TrainState(tx=optimizer_class(policy_lr))
        self.alpha_prime_opt = make_adam([self.log_alpha_prime], c.critic_lr)  # tx=optimizer_class(qf_lr)
        self.online = False  # set at the phase switch: the online CQL weight

    # -- what the harness reads ------------------------------------------------------------------
    def online_mix(self) -> float | None:
        """Share of each online batch drawn from the offline (prior) rows; None: uniform over the whole buffer."""
        return self.cfg.mixing_ratio

    def online_rhythm(self) -> Rhythm:
        """One update per environment step (main: online_utd_ratio=1, run per collected trajectory)."""
        return Rhythm(1, 1)

    def on_phase_switch(self, buffer) -> None:
        self.online = True

    def reward_transform(self, rew: torch.Tensor) -> torch.Tensor:
        """r~ = reward_scale r + reward_bias, the rewards the critic learns (and Cal-QL's mc_return is made of)."""
        return rew * self.cfg.reward_scale + self.cfg.reward_bias

    # -- Cal-QL's two hooks (CQL: no bound) ---------------------------------------------------------
    def policy_q_lower_bound(self, batch: Batch) -> torch.Tensor:
        """The per-row lower bound of the policy actions' Q-values in the conservative term; empty: none."""
        return torch.empty(0, device=batch.obs.device)

    def calibrate(self, q: torch.Tensor, lower_bound: torch.Tensor) -> torch.Tensor:
        """Q-values [B, N] of policy actions as the conservative term sees them (CQL: unchanged)."""
        return q

    # -- the update -------------------------------------------------------------------------------
    def alpha(self) -> torch.Tensor:
        """alpha_multiplier * exp(log alpha) (detached), or alpha_multiplier without tuning."""
        c = self.cfg
        if not c.use_automatic_entropy_tuning:
            return torch.full((1,), c.alpha_multiplier, device=self.device)
        return self.log_alpha.detach().exp() * c.alpha_multiplier

    def cql_weight(self) -> float:
        c = self.cfg
        return c.cql_min_q_weight_online if self.online and c.cql_min_q_weight_online is not None \
            else c.cql_min_q_weight

    def draw_noise(self, batch_size: int) -> CQLNoise:
        n, a, dev = self.cfg.cql_n_actions, self.act_dim, self.device
        next_shape = (batch_size, n, a) if self.cfg.cql_max_target_backup else (batch_size, a)
        return CQLNoise(pi=torch.randn(batch_size, a, device=dev), next_pi=torch.randn(next_shape, device=dev),
                        random_act=torch.rand(batch_size, n, a, device=dev) * 2.0 - 1.0,
                        cur=torch.randn(batch_size, n, a, device=dev), nxt=torch.randn(batch_size, n, a, device=dev))

    def update(self, batch: Batch) -> dict[str, float]:
        c = self.cfg
        act = batch.act.clamp(-c.clip_action, c.clip_action)
        rew = self.reward_transform(batch.rew)
        lower_bound = self.policy_q_lower_bound(batch)
        noise = self.draw_noise(act.shape[0])
        alpha = self.alpha()

        self.critic.requires_grad_(False)  # the actor's gradient reaches Q only through its action
        actor_loss, alpha_loss, logp = self.actor_losses(batch.obs, alpha, noise.pi)
        self.critic.requires_grad_(True)
        critic_loss, alpha_prime_loss, stats = self.critic_losses(batch.obs, act, rew, batch.next_obs, batch.done,
                                                                  lower_bound, alpha, self.cql_weight(), noise)
        opts = [self.actor_opt, self.critic_opt]
        loss = actor_loss + critic_loss
        if c.use_automatic_entropy_tuning:
            opts.append(self.alpha_opt)
            loss = loss + alpha_loss
        if c.cql_lagrange:
            opts.append(self.alpha_prime_opt)
            loss = loss + alpha_prime_loss
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        loss.backward()  # every loss from the pre-step parameters, disjoint gradients (module docstring)
        for opt in opts:
            opt.step()
        soft_update(self.critic_target, self.critic, c.tau)
        self.grad_steps += 1
        return scalars({"actor_loss": actor_loss.detach(), "alpha": alpha[0], "entropy": -logp.detach().mean(),
                        **stats})

    def actor_losses(self, obs, alpha, noise):
        """(L_pi, L_alpha, log pi(a~|s)) for a~ = tanh(mu + sigma noise)."""
        pi_act, logp = self.actor.rsample(obs, noise)
        actor_loss = (alpha * logp - self.critic.min_q(obs, pi_act)).mean()
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        return actor_loss, alpha_loss, logp

    @torch.no_grad()
    def target_y(self, rew, next_obs, done, alpha, next_noise) -> torch.Tensor:
        """y = r~ + gamma (1 - d) [min_j Q'_j(s', a') (- alpha log pi(a'|s'))], a' the best of N (max backup)."""
        c = self.cfg
        if c.cql_max_target_backup:
            next_obs = next_obs.unsqueeze(1).expand(-1, c.cql_n_actions, -1)
        next_act, next_logp = self.actor.rsample(next_obs, next_noise)
        next_q = self.critic_target.min_q(next_obs, next_act)
        if c.cql_max_target_backup:  # [B, N] -> [B]: the sample with the largest min_j Q'
            next_q, best = next_q.max(dim=1)
            next_logp = next_logp.gather(1, best.unsqueeze(1)).squeeze(1)
        if c.backup_entropy:
            next_q = next_q - alpha * next_logp
        return rew + c.gamma * (1.0 - done) * next_q

    def critic_losses(self, obs, act, rew, next_obs, done, lower_bound, alpha, weight: float, noise: CQLNoise):
        """(sum_j L_Qj, L_alpha', metrics); ``lower_bound`` [B] or empty (see ``calibrate``)."""
        c = self.cfg
        y = self.target_y(rew, next_obs, done, alpha, noise.next_pi)
        q1, q2 = self.critic(obs, act)
        obs_n = obs.unsqueeze(1).expand(-1, c.cql_n_actions, -1)
        with torch.no_grad():
            cur_act, cur_logp = self.actor.rsample(obs_n, noise.cur)
            nxt_act, nxt_logp = self.actor.rsample(next_obs.unsqueeze(1).expand_as(obs_n), noise.nxt)
        q_rand, q_cur, q_nxt = self.critic(obs_n, noise.random_act), self.critic(obs_n, cur_act), \
            self.critic(obs_n, nxt_act)
        bellman, gaps, below = [], [], []
        for j, q in enumerate((q1, q2)):
            if lower_bound.numel():  # how often the bound binds (``bound_rate_cql_q*``), before it is applied
                below += [(q_cur[j] < lower_bound.unsqueeze(1)).float().mean(),
                          (q_nxt[j] < lower_bound.unsqueeze(1)).float().mean()]
            lse = cql_logsumexp(q, q_rand[j], self.calibrate(q_cur[j], lower_bound),
                                self.calibrate(q_nxt[j], lower_bound), cur_logp, nxt_logp, self.act_dim, c.cql_temp,
                                c.cql_importance_sample)
            bellman.append(F.mse_loss(q, y))
            diff = lse - q
            if c.cql_clip_diff_min is not None or c.cql_clip_diff_max is not None:
                diff = diff.clamp(c.cql_clip_diff_min, c.cql_clip_diff_max)
            gaps.append(diff.mean())
        alpha_prime_loss = torch.zeros((), device=obs.device)
        if c.cql_lagrange:
            alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6)
            cql_terms = [alpha_prime.detach()[0] * weight * (g - c.cql_target_action_gap) for g in gaps]
            alpha_prime_loss = -0.5 * sum(alpha_prime[0] * weight * (g.detach() - c.cql_target_action_gap)
                                          for g in gaps)
        else:
            cql_terms = [weight * g for g in gaps]
        critic_loss = bellman[0] + cql_terms[0] + bellman[1] + cql_terms[1]
        stats = {"critic_loss": critic_loss.detach(), "bellman_loss": (bellman[0] + bellman[1]).detach(),
                 "cql_gap": (gaps[0] + gaps[1]).detach() / 2, "q_mean": q1.detach().mean(),
                 "target_mean": y.mean()}
        if below:
            stats["bound_rate"] = torch.stack(below).mean()
        if c.cql_lagrange:
            stats["alpha_prime"] = self.log_alpha_prime.detach().exp().clamp(0.0, 1e6)[0]
        return critic_loss, alpha_prime_loss, stats

    # -- acting, state, diagnostics ---------------------------------------------------------------
    def modules(self):
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                "actor_opt": self.actor_opt, "critic_opt": self.critic_opt, "alpha_opt": self.alpha_opt,
                "alpha_prime_opt": self.alpha_prime_opt}

    def extra_state(self):
        return {"online": self.online}

    def load_extra_state(self, state):
        self.online = bool(state["online"])

    def q_value(self, obs, act):
        return self.critic.min_q(obs, act)
