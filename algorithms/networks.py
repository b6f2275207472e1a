"""Networks and small pieces shared by every algorithm: MLPs, twin Q, Gaussian policies, Adam.

Two policy families are used in the AWAC paper's comparison:

* ``GaussianPolicy`` (AWAC, BC; AWR keeps its own fixed-std variant): rlkit's ``GaussianPolicy`` with
  ``std_architecture="values"``: mean = tanh(f(s)); a state-independent log-std
  ``min + sigmoid(w) * (max - min)``; the density is a plain diagonal Gaussian (no tanh change of
  variables), so dataset actions have exact likelihoods.
* ``TanhGaussianPolicy`` (SAC, BEAR): SAC's squashed Gaussian, a = tanh(u), u ~ N(mu(s), sigma(s)),
  with the log-det-Jacobian correction (Haarnoja et al. 2018, Appendix C).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

LOG_2PI = math.log(2.0 * math.pi)


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    """Linear-ReLU stack with a linear output layer (PyTorch's default init)."""
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden:
        layers += [nn.Linear(last, h), nn.ReLU()]
        last = h
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


def make_adam(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with PyTorch's coupled L2 weight decay (as rlkit uses it), one fused kernel per step."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):  # fused unsupported for this device/dtype: multi-tensor fallback
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging: target <- (1 - tau) * target + tau * source."""
    t_params = list(target.parameters())
    s_params = list(source.parameters())
    torch._foreach_lerp_(t_params, s_params, tau)


def diag_gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Sum over the last axis of log N(x; mean, exp(log_std)^2)."""
    z = (x - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


class TwinQ(nn.Module):
    """Two independent Q(s, a) MLPs (clipped double Q, Fujimoto et al. 2018).

    ``q_max`` clamps the output from above (rlkit's ``Clamp(max=0)`` for the binary-reward hand tasks,
    where every return is <= 0).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], q_max: float | None = None):
        super().__init__()
        self.q1 = mlp(obs_dim + act_dim, hidden, 1)
        self.q2 = mlp(obs_dim + act_dim, hidden, 1)
        self.q_max = q_max

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, act], dim=-1)
        q1, q2 = self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)
        if self.q_max is not None:
            q1, q2 = q1.clamp(max=self.q_max), q2.clamp(max=self.q_max)
        return q1, q2

    def min_q(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        q1, q2 = self(obs, act)
        return torch.minimum(q1, q2)


class GaussianPolicy(nn.Module):
    """rlkit's AWAC policy: tanh mean, learned state-independent log-std squashed into [min, max]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int],
                 min_log_std: float = -6.0, max_log_std: float = 0.0):
        super().__init__()
        self.net = mlp(obs_dim, hidden, act_dim)
        self.log_std_logits = nn.Parameter(torch.zeros(act_dim))
        self.min_log_std, self.max_log_std = min_log_std, max_log_std

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (mean, log_std); log_std broadcasts against mean."""
        mean = torch.tanh(self.net(obs))
        log_std = self.min_log_std + torch.sigmoid(self.log_std_logits) * (self.max_log_std - self.min_log_std)
        return mean, log_std

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        mean, log_std = self(obs)
        return diag_gaussian_log_prob(act, mean, log_std)

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        mean, log_std = self(obs)
        return mean + torch.exp(log_std) * torch.randn_like(mean)


class TanhGaussianPolicy(nn.Module):
    """SAC's policy: a = tanh(u), u ~ N(mu(s), sigma(s)); log-std clamped to [-20, 2] (rlkit/SAC code)."""

    LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int]):
        super().__init__()
        self.net = mlp(obs_dim, hidden[:-1], hidden[-1]) if len(hidden) > 1 else nn.Identity()
        last = hidden[-1] if hidden else obs_dim
        self.trunk_act = nn.ReLU() if hidden else nn.Identity()
        self.head = nn.Linear(last, 2 * act_dim)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.head(self.trunk_act(self.net(obs))).chunk(2, dim=-1)
        return mean, log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)

    @staticmethod
    def _squash_correction(u: torch.Tensor) -> torch.Tensor:
        # log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u)), numerically stable
        return (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)

    def rsample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample and its log-density under the squashed distribution."""
        mean, log_std = self(obs)
        u = mean + torch.exp(log_std) * torch.randn_like(mean)
        logp = diag_gaussian_log_prob(u, mean, log_std) - self._squash_correction(u)
        return torch.tanh(u), logp

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        mean, log_std = self(obs)
        u = torch.atanh(act.clamp(-1.0 + eps, 1.0 - eps))
        return diag_gaussian_log_prob(u, mean, log_std) - self._squash_correction(u)

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        mean, _ = self(obs)
        return torch.tanh(mean)
