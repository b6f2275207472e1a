"""Behaviour cloning: maximum likelihood of the dataset's actions (the AWAC paper's BC baseline).

    L = -mean_B log pi(a|s)

The policy is the same Gaussian as AWAC's (rlkit's ``GaussianPolicy``, tanh mean, state-independent
log-std), trained as rlkit's ``AWACTrainer.run_bc_batch`` does. ``bc_loss`` is the rule and ``bc_step`` its
update; SACfD-prior's warm start runs both on its actor. By default BC does not learn online: the paper draws
it as a flat line after the switch. ``learn_online=True`` keeps cloning the growing buffer (online data included).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms import register
from algorithms.base import Algorithm, Batch, Config
from algorithms.networks import GaussianActing, GaussianPolicy, make_adam


def bc_loss(policy, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """L = -mean_B log pi(a|s): maximum likelihood of the dataset's actions under ``policy.log_prob``."""
    return -policy.log_prob(obs, act).mean()


def bc_step(loss: torch.Tensor, opt) -> dict[str, float]:
    """One optimizer step on a BC loss (``bc_loss``), and its metrics."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {"bc_loss": loss.item()}


@dataclass
class BCConfig(Config):
    # rlkit examples/awac/hand/awac1.py policy_kwargs: hidden_sizes=[256, 256], min/max_log_std -6/0
    actor_hidden: tuple[int, ...] = (256, 256)
    min_log_std: float = -6.0
    max_log_std: float = 0.0
    # rlkit awac1.py trainer_kwargs: policy_lr=3e-4, policy_weight_decay=1e-4 (the BC optimizer is the policy's)
    lr: float = 3e-4
    weight_decay: float = 1e-4
    # rlkit AWACTrainer default bc_batch_size=128
    batch_size: int = 128
    # AWAC paper Fig. 3: BC is offline only (flat line online); True keeps cloning the online buffer
    learn_online: bool = False


@register
class BC(GaussianActing, Algorithm):
    name = "bc"
    Config = BCConfig
    # BC has no returns; its diagnostic Monte-Carlo returns use the discount of the suite's other algorithms
    discount = 0.99

    def __init__(self, obs_dim: int, act_dim: int, config: BCConfig, device="cpu"):
        super().__init__(obs_dim, act_dim, config, device)
        c = config
        self.actor = GaussianPolicy(obs_dim, act_dim, c.actor_hidden, c.min_log_std, c.max_log_std,
                                    rlkit_init=True).to(self.device)
        self.opt = make_adam(self.actor, c.lr, c.weight_decay)

    @property
    def learns_online(self) -> bool:  # type: ignore[override]
        return bool(self.cfg.learn_online)

    def loss(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return bc_loss(self.actor, obs, act)

    def update(self, batch: Batch) -> dict[str, float]:
        metrics = bc_step(self.loss(batch.obs, batch.act), self.opt)
        self.grad_steps += 1
        return metrics

    def modules(self):
        return {"actor": self.actor, "opt": self.opt}
