"""AWR: Advantage-Weighted Regression (Peng, Kumar, Zhang, Levine 2019, arXiv 1910.00177).

Faithful to the authors' TensorFlow code (github.com/xbpeng/awr, commit 64eca1d):
``learning/awr_agent.py`` (``AWRAgent``), ``learning/rl_agent.py`` (``RLAgent``: normalizers, policy
head, action-bound loss), ``util/replay_buffer.py`` / ``util/rl_path.py`` (paths and their
termination flags), ``util/normalizer.py`` and the per-environment settings in ``awr_configs.py``.
Defaults are the ``AWRAgent.__init__`` defaults, which the code uses for any environment without an
``awr_configs.py`` entry (README: "the algorithm will use the default hyperparameter settings in
learning/awr_agent.py"), e.g. the Adroit hand tasks; the MuJoCo entries are the presets.

One iteration of the code (``AWRAgent._update``), as driven by this benchmark's harness:

1. Collect ``samples_per_iter`` environment steps into a FIFO buffer of ``buffer_size`` transitions
   (here a FIFO of online rows next to the protected offline rows; see the departures below).
2. ``prepare_updates``: recompute TD(lambda) returns over every trajectory in the buffer with the
   current value function (``_compute_batch_vals`` + ``_compute_batch_new_vals``). For one trajectory
   s_0, a_0, r_0, ..., s_T (``_compute_return``):
       R_{T-1} = r_{T-1} + gamma * V_end,    V_end = 0 if s_T is a true terminal ("Fail") else V(s_T)
       R_t     = r_t + gamma * ((1 - lambda) * V(s_{t+1}) + lambda * R_{t+1})
   Here a trajectory ends at a ``done`` row (V_end = 0), at a ``timeout`` row, at the newest row of
   the buffer (an episode still being collected) and wherever ``next_obs[t] != obs[t+1]`` (a
   discontinuity the flags missed); the last three bootstrap from V_end = V(next_obs).
3. ``critic_steps`` value steps, each on a uniform minibatch (``_build_losses``):
       L_V = 0.5 * mean_B (R / c - V_n(s))^2,    V(s) = c * V_n(s),    c = 1 / (1 - gamma)
   (the code's fixed value normalizer ``_build_normalizer_val``: mean 0, std 1 / (1 - gamma)).
4. At the switch to the policy, recompute the returns R and values V(s) with the *updated* critic
   (the code calls ``_compute_batch_vals`` / ``_compute_batch_new_vals`` a second time), then
       A = R - V(s),    A_hat = (A - mean_D A) / (std_D A + 1e-5)      (``_calc_adv``; D = whole buffer)
       w = min(exp(A_hat / beta), weight_clip)                         (``_calc_adv_weights``)
   A is stored per row in the buffer (its ``adv`` column), as the code stores it per path: the critic does
   not change during the policy steps, so V(s) is not evaluated again per minibatch.
5. ``actor_steps`` policy steps on uniform minibatches:
       L_pi = -mean_B( w * log pi(a|s) ) + 10 * 0.5 * mean_B sum_j (viol_j)^2
   where pi(.|s) = N(mu(s), action_std^2 I) with a *fixed* std, and viol_j is how far mu_j(s) lies
   outside the action bounds [-1, 1] (``_action_bound_loss``, weight ``_actor_bound_loss_weight``).

Both networks see observations normalised by a running mean/std (``util/normalizer.py``, std floored
at 0.01) that records states until ``normalizer_samples`` have been seen. Both are optimised with
plain SGD with momentum (``tf.train.MomentumOptimizer``, same update rule as ``torch.optim.SGD``).

Departures forced by the harness (all small; see also the config comments):

* The code stores whole paths and trains on shuffled epochs of the buffer (sampling without
  replacement); here batches are drawn uniformly with replacement by ``ReplayBuffer.sample``.
* The code collects whole episodes per iteration (>= 2048 steps) and scales the step counts by
  ``new_samples / samples_per_iter``; the harness collects exactly ``samples_per_iter`` steps, so an
  episode may straddle iterations (its newest row bootstraps from V, as at a time limit).
* The code's buffer size counts states (a path of n steps takes n + 1 slots); here it counts
  transitions. The code updates the observation normalizer after each iteration's updates; here the
  new rows are recorded at the start of the next ``prepare_updates`` (the same data, one block later
  in the code for all but the first iteration).
* The offline phase has no counterpart in the code: the offline data is simply the buffer's initial
  content, and the harness runs the same value/policy blocks.
* The prior data is never evicted. The code's replay buffer (``rl_agent.py``: ``util/replay_buffer.py``
  of ``replay_buffer_size`` = 50k) holds only the agent's own samples, FIFO. The AWAC paper's protocol
  keeps the prior data in the buffer for every method (Sec. 5), so here the offline rows are a protected
  prefix (``ReplayBuffer.protect``) and only the online rows cycle FIFO through ``buffer_size`` slots:
  capacity = offline rows + min(buffer_size, online steps). Without this, ~45k online steps would push
  the whole 50k-row offline dataset out. ``buffer.order()`` lists the offline rows, then the surviving
  online rows oldest to newest, so the TD(lambda) returns see every episode in time order.

One ``update`` call is one gradient step; an internal counter (reset by ``prepare_updates``) makes
each block of ``critic_steps + actor_steps`` calls run the value steps first, then the policy steps.
The advantage refresh runs at the end of the last value step, so the next sampled batch already
carries the refreshed returns (this relies on the harness sampling each batch after the previous
``update`` returned). If a block is longer (an update-to-data multiplier), the pattern repeats; the
returns stay exact because the critic does not change during policy steps.

``q_value`` returns None: AWR learns a state-value function V(s), not Q(s, a). ``value(obs)`` exposes V.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from algorithms import register
from algorithms.base import Algorithm, Batch, Config, Rhythm, UserError, episode_ends, scalars
from algorithms.networks import ReLUMLP, diag_gaussian_log_prob, f32, gaussian_action, make_sgd, mlp

_CHUNK = 1 << 16  # rows per forward pass when evaluating V over the whole buffer


# -- TD(lambda) returns ---------------------------------------------------------------------------
def td_lambda_returns(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor,
                      dones: torch.Tensor, timeouts: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """TD(lambda) returns of consecutive transitions, as ``AWRAgent._compute_return`` per path.

    All inputs are 1-D tensors of length T in time order; row t is the transition (s_t, a_t, r_t, s'_t).

    * ``values[t]``      = V(s_t), the value of the row's own state.
    * ``next_values[t]`` = V(s'_t), the value of the row's next state. It is read **only** where an
      episode ends at row t without a true terminal (``timeouts[t]`` set, or t = T - 1, the newest row
      of an episode still being collected); everywhere else it is ignored and may hold anything.
    * ``dones[t]`` (true terminal) ends the episode at t with bootstrap value 0 (never V).
      ``timeouts[t]`` ends it with bootstrap value ``next_values[t]``. The last row always ends an
      episode: bootstrap 0 if it is done, else ``next_values[T-1]``.

    Inside an episode s_{t+1} = s'_t, and its value is taken from ``values[t + 1]`` as in the code:
        end at t:   R_t = r_t + gamma * (0 if dones[t] else next_values[t])
        otherwise:  R_t = r_t + gamma * ((1 - lam) * values[t + 1] + lam * R_{t+1})

    ``values[t]`` enters only as V(s_t) for the previous row, so ``values[0]`` is unused.
    Computed in float64 with a log2(T)-step doubling scan (no Python loop over rows); the result
    has the dtype of ``rewards``.
    """
    n = rewards.shape[0]
    if n == 0:
        return rewards.clone()
    f64 = torch.float64
    r = rewards.to(f64)
    v_next_inside = torch.cat([values[1:].to(f64), r.new_zeros(1)])
    done = dones.to(torch.bool)
    ends = done | timeouts.to(torch.bool)
    ends[-1] = True
    boot = torch.where(done, torch.zeros_like(r), next_values.to(f64))
    # Linear recurrence x_t = c_t + g_t * x_{t+1} with x_T = 0; g_t = 0 cuts the episode after row t.
    c = torch.where(ends, r + gamma * boot, r + gamma * (1.0 - lam) * v_next_inside)
    g = torch.where(ends, torch.zeros_like(r), torch.full_like(r, gamma * lam))
    # Doubling: after the step with offset d, c_t sums the terms t .. t+2d-1 and g_t is their product.
    d = 1
    while d < n:
        c[:-d] = c[:-d] + g[:-d] * c[d:]
        g[:-d] = g[:-d] * g[d:]
        d *= 2
    return c.to(rewards.dtype)


def advantage_weights(adv: torch.Tensor, beta: float, weight_clip: float) -> torch.Tensor:
    """w = min(exp(adv / beta), weight_clip) (``AWRAgent._calc_adv_weights``; adv already normalised)."""
    return torch.exp(adv / beta).clamp(max=weight_clip)


# -- networks ----------------------------------------------------------------------------------------
def _xavier_(module: nn.Module) -> None:
    """tf.contrib.layers.xavier_initializer (Glorot uniform) kernels, zero biases (tf.layers.dense)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


class FixedStdGaussianPolicy(nn.Module):
    """``RLAgent._build_action_pd``: linear mean head on a ReLU MLP, fixed (non-trainable) std.

    The mean is unbounded (no tanh); the action-bound loss keeps it inside [-1, 1]. The density is a
    plain diagonal Gaussian (``MultivariateNormalDiag``).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], action_std: float,
                 init_output_scale: float):
        super().__init__()
        layers: list[nn.Module] = []
        last = obs_dim
        for h in hidden:
            layers += [nn.Linear(last, h), nn.ReLU(inplace=True)]
            last = h
        _xavier_(nn.Sequential(*layers))
        mean_head = nn.Linear(last, act_dim)
        nn.init.uniform_(mean_head.weight, -init_output_scale, init_output_scale)
        nn.init.zeros_(mean_head.bias)
        self.net = ReLUMLP(*layers, mean_head)  # (built in this order to keep the draws of the original code)
        self.register_buffer("log_std", torch.full((act_dim,), math.log(action_std)))

    def forward(self, obs_n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log_std) for normalised observations; log_std broadcasts against mean."""
        return f32(self.net(obs_n)), self.log_std  # float32 even under bf16 autocast


class RunningNormalizer(nn.Module):
    """``util/normalizer.py``: x_n = (x - mean) / std over all recorded samples, std >= eps.

    Starts at mean 0, std 1 (the code's initial value for unbounded MuJoCo observation spaces); the
    first ``record`` replaces it with the data's statistics (the code's weight on the old stats is
    count / (count + new) = 0). Statistics are kept in float64 like the code's numpy arrays.
    """

    def __init__(self, size: int, eps: float):
        super().__init__()
        self.eps = eps
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean64", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("mean_sq64", torch.ones(size, dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("std", torch.ones(size))

    @torch.no_grad()
    def record(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, self.mean.shape[0]).to(torch.float64)
        n = x.shape[0]
        if n == 0:
            return
        total = self.count + n
        w_old, w_new = self.count / total, n / total
        self.mean64.copy_(w_old * self.mean64 + w_new * x.mean(0))
        self.mean_sq64.copy_(w_old * self.mean_sq64 + w_new * x.square().mean(0))
        self.count.copy_(total)
        var = (self.mean_sq64 - self.mean64.square()).clamp(min=0.0)
        self.mean.copy_(self.mean64)
        self.std.copy_(var.sqrt().clamp(min=self.eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


# -- config --------------------------------------------------------------------------------------------
# Settings shared by every MuJoCo entry of awr_configs.py (Ant, HalfCheetah, Hopper, Humanoid, Walker2d).
_MUJOCO = {"critic_steps": 200, "normalizer_samples": 300_000}


@dataclass
class AWRConfig(Config):
    # awr_agent.py AWRAgent.__init__ actor_net_layers=[128, 64] (same in every awr_configs.py entry)
    actor_hidden: tuple[int, ...] = (128, 64)
    # awr_agent.py critic_net_layers=[128, 64] (same in every awr_configs.py entry)
    critic_hidden: tuple[int, ...] = (128, 64)
    # awr_agent.py actor_stepsize=0.00005 (awr_configs.py: HalfCheetah/Ant/Humanoid 5e-5, Hopper 1e-4,
    # Walker2d 2.5e-5), actor_momentum=0.9: tf.train.MomentumOptimizer in AWRAgent._build_solvers
    actor_lr: float = 5e-5
    actor_momentum: float = 0.9
    # awr_agent.py critic_stepsize=0.01, critic_momentum=0.9 (every awr_configs.py entry too)
    critic_lr: float = 1e-2
    critic_momentum: float = 0.9
    # awr_agent.py actor_init_output_scale=0.01: mean-head kernel ~ U(-0.01, 0.01) (rl_agent._build_action_pd)
    actor_init_output_scale: float = 0.01
    # awr_agent.py action_std=0.2, a non-trainable log-std (rl_agent._build_action_pd "logstd",
    # trainable=False); awr_configs.py: HalfCheetah/Hopper/Walker2d 0.4, Ant/Humanoid 0.2
    action_std: float = 0.2
    # awr_agent.py self._actor_bound_loss_weight = 10.0 on rl_agent._action_bound_loss (hard-coded)
    action_bound_weight: float = 10.0
    # awr_agent.py actor_batch_size=256 and critic_batch_size=256 (equal, so one size for both steps)
    batch_size: int = 256
    # awr_agent.py critic_steps=500 (every MuJoCo entry of awr_configs.py: 200), actor_steps=1000
    critic_steps: int = 500
    actor_steps: int = 1000
    # rl_agent.py / awr_agent.py samples_per_iter=2048 (environment steps collected per iteration)
    samples_per_iter: int = 2048
    # rl_agent.py / awr_agent.py replay_buffer_size=50000 (the code counts states, here transitions). Here it
    # bounds the ONLINE rows only: the offline rows stay on top of it (see "Departures" above)
    buffer_size: int = 50_000
    # awr_agent.py discount=0.99; also fixes the value normalizer std 1/(1-gamma)
    # (rl_agent._build_normalizer_val)
    gamma: float = 0.99
    # awr_agent.py td_lambda=0.95
    td_lambda: float = 0.95
    # awr_agent.py temp=1.0 (every awr_configs.py entry too), applied to *normalised* advantages
    beta: float = 1.0
    # awr_agent.py weight_clip=20
    weight_clip: float = 20.0
    # awr_agent.py AWRAgent._calc_adv standardises advantages over the buffer before exp(); False gives the
    # paper's Algorithm 1 form exp(A / beta) on raw advantages (then beta is in reward units)
    normalize_adv: bool = True
    # awr_agent.py AWRAgent.ADV_EPS = 1e-5 (added to the advantage std)
    adv_eps: float = 1e-5
    # rl_agent.py / awr_agent.py normalizer_samples=100000 (every MuJoCo entry of awr_configs.py: 300000):
    # observations are recorded into the normalizer while fewer than this many have been seen
    normalizer_samples: int = 100_000
    # util/normalizer.py Normalizer(eps=0.01): floor on the observation std
    normalizer_eps: float = 0.01


@register
class AWR(Algorithm):
    name = "awr"
    Config = AWRConfig
    batch_extras = ("ret", "adv")  # buffer columns it writes (returns, advantages) and reads back per batch
    presets = {
        # awr_configs.py has no Adroit entry, so the code would run awr_agent.py's defaults
        "hand": {},
        # the settings every MuJoCo entry of awr_configs.py shares; a task of one of the environments below
        # picks that environment's preset instead (harness.task_preset)
        "mujoco": dict(_MUJOCO),
        "halfcheetah": {**_MUJOCO, "actor_lr": 5e-5, "action_std": 0.4},   # awr_configs.py "HalfCheetah-v2"
        "hopper": {**_MUJOCO, "actor_lr": 1e-4, "action_std": 0.4},        # awr_configs.py "Hopper-v2"
        "walker2d": {**_MUJOCO, "actor_lr": 2.5e-5, "action_std": 0.4},    # awr_configs.py "Walker2d-v2"
        "ant": {**_MUJOCO, "actor_lr": 5e-5, "action_std": 0.2},           # awr_configs.py "Ant-v2"
        "humanoid": {**_MUJOCO, "actor_lr": 5e-5, "action_std": 0.2},      # awr_configs.py "Humanoid-v2"
    }

    def __init__(self, obs_dim: int, act_dim: int, config: AWRConfig, device="cpu"):
        super().__init__(obs_dim, act_dim, config, device)
        c = config
        if c.critic_steps < 0 or c.actor_steps < 0 or c.critic_steps + c.actor_steps == 0:
            raise ValueError("AWR needs critic_steps >= 0, actor_steps >= 0 and at least one step in all")
        if c.buffer_size < 1:
            raise UserError(f"awr: buffer_size must be >= 1, got {c.buffer_size}")
        self.obs_norm = RunningNormalizer(obs_dim, c.normalizer_eps).to(self.device)
        self.actor = FixedStdGaussianPolicy(obs_dim, act_dim, c.actor_hidden, c.action_std,
                                            c.actor_init_output_scale).to(self.device)
        self.critic = mlp(obs_dim, c.critic_hidden, 1).to(self.device)
        _xavier_(self.critic)
        self.actor_opt = make_sgd(self.actor, c.actor_lr, c.actor_momentum)
        self.critic_opt = make_sgd(self.critic, c.critic_lr, c.critic_momentum)
        self.value_scale = 1.0 / (1.0 - c.gamma)  # the code's fixed value normalizer std

        self._buffer = None          # the buffer seen by the last prepare_updates
        self._block_pos = 0          # position inside the current block of updates
        self._seen: int | None = None  # the buffer's ``added`` at the last prepare_updates
        # buffer-wide advantage mean and std for the policy steps (set at every value -> policy switch)
        self._adv_stats = torch.tensor([0.0, 1.0], device=self.device)

    # -- the protocol's rhythm ------------------------------------------------------------------------
    def online_rhythm(self) -> Rhythm:
        # awr_agent.py: one iteration collects samples_per_iter steps, then critic_steps value steps and
        # actor_steps policy steps (``update`` sequences them within the block)
        return Rhythm(int(self.cfg.samples_per_iter), int(self.cfg.critic_steps + self.cfg.actor_steps))

    def buffer_capacity(self, offline_size: int, online_steps: int) -> int:
        # every offline row (the harness protects them) plus a FIFO of at most buffer_size online rows
        return max(1, offline_size + min(int(self.cfg.buffer_size), online_steps))

    def prepare_updates(self, buffer) -> None:
        if "ret" not in buffer.extras or "adv" not in buffer.extras:
            raise RuntimeError("AWR needs a ReplayBuffer with the extra columns ('ret', 'adv')")
        n_new = self._new_rows(buffer)
        self._buffer = buffer
        if n_new and float(self.obs_norm.count) < self.cfg.normalizer_samples:
            rows = buffer.order()[-n_new:]
            self.obs_norm.record(buffer.obs[rows])
        self._refresh(buffer, with_advantages=self.cfg.critic_steps == 0)
        self._block_pos = 0

    def _new_rows(self, buffer) -> int:
        """Rows appended since the last call, from the buffer's count of every row it ever took (``added``); all
        of them the first time and on another buffer. At most the rows the buffer holds."""
        added = int(buffer.added)
        if self._seen is None or (self._buffer is not None and buffer is not self._buffer):
            n = int(buffer.size)
        else:
            n = added - self._seen
        self._seen = added
        return min(n, int(buffer.size))

    # -- returns and advantages over the whole buffer ---------------------------------------------------
    @torch.no_grad()
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(s) in reward units (the critic's output times 1 / (1 - gamma))."""
        out = [self.critic(self.obs_norm(obs[i:i + _CHUNK])).squeeze(-1)
               for i in range(0, obs.shape[0], _CHUNK)]
        return torch.cat(out) * self.value_scale if out else obs.new_zeros(0)

    @torch.no_grad()
    def _refresh(self, buffer, with_advantages: bool) -> None:
        """Recompute the buffer's ``ret`` column (TD(lambda) with the current V) and optionally ``adv`` and the
        advantage stats."""
        if buffer.size == 0:
            return
        order = buffer.order()
        obs, next_obs = buffer.obs[order], buffer.next_obs[order]
        done = buffer.done[order] > 0.5
        ends = episode_ends(obs, next_obs, done, buffer.timeout[order])  # the newest row ends one too
        values = self.value(obs)
        next_values = torch.zeros_like(values)
        boot = torch.nonzero(ends & ~done).squeeze(-1)  # only these rows bootstrap from V(s')
        next_values[boot] = self.value(next_obs[boot])
        ret = td_lambda_returns(buffer.rew[order], values, next_values, done, ends,
                                self.cfg.gamma, self.cfg.td_lambda)
        buffer.extras["ret"][order] = ret
        if with_advantages:
            adv = ret - values
            buffer.extras["adv"][order] = adv
            self._adv_stats = torch.stack([adv.mean(), adv.std(correction=0)])  # np.mean / np.std (ddof=0)

    # -- one gradient step ----------------------------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, float]:
        c = self.cfg
        if self._buffer is None:  # no returns, advantages or their statistics yet
            raise RuntimeError("AWR.prepare_updates(buffer) must run before update()")
        pos = self._block_pos % (c.critic_steps + c.actor_steps)
        self._block_pos += 1
        self.grad_steps += 1
        if pos < c.critic_steps:
            metrics = self._value_step(batch)
            if pos == c.critic_steps - 1:  # last value step: returns and advantages with the new critic
                self._refresh(self._buffer, with_advantages=True)
            return metrics
        return self._policy_step(batch)


    def _value_step(self, batch: Batch) -> dict[str, float]:
        loss, stats = self.value_loss(batch.obs, batch.extras["ret"])
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        return scalars(stats)

    def value_loss(self, obs: torch.Tensor, ret: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_V and its metrics (loss, mean V, mean return)."""
        v_n = f32(self.critic(self.obs_norm(obs)).squeeze(-1))
        loss = 0.5 * F.mse_loss(v_n, ret / self.value_scale)
        return loss, {"critic_loss": loss.detach(), "v_mean": v_n.detach().mean() * self.value_scale,
                      "ret_mean": ret.mean()}

    def _weights(self, adv: torch.Tensor, adv_stats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(w, exp(A_hat / beta) before clipping) for the stored advantages of a minibatch."""
        c = self.cfg
        z = (adv - adv_stats[0]) / (adv_stats[1] + c.adv_eps) if c.normalize_adv else adv
        raw_w = torch.exp(z / c.beta)
        return raw_w.clamp(max=c.weight_clip), raw_w

    def _policy_step(self, batch: Batch) -> dict[str, float]:
        loss, stats = self.policy_loss(batch.obs, batch.act, batch.extras["adv"], self._adv_stats)
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_opt.step()
        return scalars(stats)

    def policy_loss(self, obs, act, adv, adv_stats) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_pi and its metrics; ``adv`` = the rows' stored R - V(s), ``adv_stats`` = their buffer-wide
        (mean, std)."""
        c = self.cfg
        weights, raw_w = self._weights(adv, adv_stats)
        mean, log_std = self.actor(self.obs_norm(obs))
        logp = diag_gaussian_log_prob(act, mean, log_std)
        # bounds are [-1, 1], so the violation below -1 or above 1 is max(|mu| - 1, 0)
        bound = 0.5 * (mean.abs() - 1.0).clamp(min=0).pow(2).sum(-1).mean()
        loss = -(weights * logp).mean() + c.action_bound_weight * bound
        return loss, self._policy_stats(loss.detach(), bound.detach(), adv, adv_stats, weights, raw_w)

    def _policy_stats(self, loss, bound, adv, adv_stats, weights, raw_w) -> dict[str, torch.Tensor]:
        return {"actor_loss": loss, "bound_loss": bound, "adv_mean": adv.mean(), "adv_std": adv_stats[1],
                "weight_mean": weights.mean(), "weight_max": weights.max(),
                "clipped_fraction": (raw_w > self.cfg.weight_clip).float().mean()}

    # -- acting and diagnostics ---------------------------------------------------------------------------
    @torch.inference_mode()
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        obs_t = self._obs_tensor(obs).reshape(-1, self.obs_dim)
        mean, log_std = self.actor(self.obs_norm(obs_t))
        return gaussian_action(mean, log_std, deterministic)

    def modules(self):
        return {"actor": self.actor, "critic": self.critic, "obs_norm": self.obs_norm,
                "actor_opt": self.actor_opt, "critic_opt": self.critic_opt}

    def log_likelihood(self, obs, act):
        mean, log_std = self.actor(self.obs_norm(obs))
        return diag_gaussian_log_prob(act, mean, log_std)

    def q_value(self, obs, act):
        return None  # AWR has no Q(s, a); see value(obs) for V(s)

    def extra_state(self) -> dict[str, Any]:
        return {"_awr_adv_stats": self._adv_stats.clone(), "_awr_block_pos": self._block_pos,
                "_awr_seen_added": self._seen}

    def on_resume(self, buffer) -> None:
        self._buffer = buffer  # a checkpoint taken inside a block continues that block on this buffer

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "_awr_adv_stats" in state:
            self._adv_stats = state["_awr_adv_stats"].to(self.device)
        self._block_pos = int(state.get("_awr_block_pos", 0))
        seen = state.get("_awr_seen_added")  # a checkpoint from before this key: None (all rows count as new)
        self._seen = None if seen is None else int(seen)
