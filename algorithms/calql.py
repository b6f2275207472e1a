"""Cal-QL: Calibrated Q-Learning (Nakamoto, Zhai, Singh, Mark, Ma, Finn, Kumar, Levine 2023, arXiv 2303.05479).

CQL (``algorithms/cql.py``, whose docstring states the whole update) with one change, paper Eq. 5.1 and
nakamotoo/Cal-QL ``JaxCQL/conservative_sac.py`` ``_train_step`` ("Cal-QL: bound Q-values with MC return-to-go",
``enable_calql=True``): in the conservative term, the Q-values of the policy's actions are bounded from below by
the Monte-Carlo return of the data's trajectory from the row on,

    Q_j(s, a^c_i) <- max(Q_j(s, a^c_i), mc_return(s, a)),   Q_j(s, a^n_i) <- max(Q_j(s, a^n_i), mc_return(s, a))

for the N actions a^c_i ~ pi(.|s) and a^n_i ~ pi(.|s') of every row, before their log-densities are subtracted;
the uniform actions' Q-values and the Bellman error are untouched. The bound makes the conservative term stop
pushing down a policy value that is already below the data's own return, so Q stays calibrated (paper Sec. 5).

What the harness provides (``batch_extras``): ``batch.extras["mc_return"]``, [B] float32, for offline and online
rows alike: the discounted return sum_k gamma^k r~_{t+k} of the row's episode from the row to its end, with
gamma = ``discount`` and r~ = ``reward_transform(r)`` (the rewards the critic learns: reward_scale r +
reward_bias, as ``replay_buffer.py`` computes it on scaled rewards), cut at a true terminal
(``calc_return_to_go``: ``gamma * prev_return * (1 - terminal)``). One rule of that function matters for the
sparse tasks: an episode whose every reward is the failure reward r~_neg gets r~_neg / (1 - gamma) on every row
(the return of failing forever, not of failing until a time limit). On the hand tasks (``end_at_goal``, the
"hand" default) every step at the goal is a terminal, so the return stops there: at most r~_pos = 5 (the harness's
goal-terminal view of the prior data and its online episodes, ``Algorithm.ends_at_goal``).

Defaults: the binary Adroit launcher ``scripts/run_adroit.sh`` where it sets a value, ``FLAGS_DEF`` and
``get_default_config`` otherwise (``CQLConfig``). Its 20 epochs x 1000 offline steps (20k) are the harness's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from algorithms import register
from algorithms.base import Batch, returns_to_go
from algorithms.cql import CQL, CQLConfig


@dataclass
class CalQLConfig(CQLConfig):
    # scripts/run_adroit.sh: --policy_arch=512-512 --qf_arch=512-512-512
    actor_hidden: tuple[int, ...] = (512, 512)
    critic_hidden: tuple[int, ...] = (512, 512, 512)
    # run_adroit.sh: --cql_min_q_weight=1.0 (FLAGS_DEF 5.0)
    cql_min_q_weight: float = 1.0
    # run_adroit.sh: --reward_scale=10.0 --reward_bias=5.0 (binary rewards -1/0 become -5/5)
    reward_scale: float = 10.0
    reward_bias: float = 5.0
    # run_adroit.sh and run_antmaze.sh: --mixing_ratio=0.5 (half of each online batch from the offline data)
    mixing_ratio: float | None = 0.5
    # the failure reward of a sparse task before scaling (JaxCQL ``calc_return_to_go``: ENV_CONFIG "reward_neg";
    # the binary Adroit reward is -1 on every step not at the goal); None: a dense task, no all-failure rule
    sparse_reward_neg: float | None = -1.0
    # conservative_sac_main.py: use_goal=True on the binary Adroit tasks (CQLConfig.end_at_goal says what it does)
    end_at_goal: bool = True


@register
class CalQL(CQL):
    name = "calql"
    Config = CalQLConfig
    presets = {
        # scripts/run_adroit.sh: the defaults
        "hand": {},
        # no locomotion launcher in Cal-QL: conservative_sac_main.py FLAGS_DEF (256-256 networks, CQL weight 5,
        # rewards as they are), keeping the 0.5 mixing of both of its sparse-task launchers
        "mujoco": {"actor_hidden": (256, 256), "critic_hidden": (256, 256), "cql_min_q_weight": 5.0,
                   "reward_scale": 1.0, "reward_bias": 0.0, "sparse_reward_neg": None,
                   "end_at_goal": False},
    }
    batch_extras: ClassVar[tuple[str, ...]] = ("mc_return",)

    def policy_q_lower_bound(self, batch: Batch) -> torch.Tensor:
        if "mc_return" not in batch.extras:
            raise RuntimeError("calql needs batch.extras['mc_return'] (declared in batch_extras); this batch has "
                            f"{sorted(batch.extras) or 'no extras'}")
        return batch.extras["mc_return"]

    def mc_returns(self, rew: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """The ``mc_return`` column (JaxCQL ``calc_return_to_go``): the discounted return-to-go of the scaled rewards
        r~ = reward_scale r + reward_bias, except that on a sparse task an episode whose every reward is the
        failure reward gets r~_neg / (1 - gamma) on every row (the return of failing forever)."""
        c = self.cfg
        r = np.asarray(rew, np.float64) * c.reward_scale + c.reward_bias
        out = returns_to_go(r, ends, self.discount)
        if c.sparse_reward_neg is not None:
            r_neg = c.sparse_reward_neg * c.reward_scale + c.reward_bias
            bounds = np.flatnonzero(ends) + 1
            for lo, hi in zip(np.r_[0, bounds[:-1]], bounds, strict=True):
                if np.all(r[lo:hi] == r_neg):
                    out[lo:hi] = r_neg / (1.0 - self.discount)
        return out

    def calibrate(self, q: torch.Tensor, lower_bound: torch.Tensor) -> torch.Tensor:
        """max(Q_j(s, a_i), mc_return(s, a)) for the N policy actions [B, N] of each row."""
        return torch.maximum(q, lower_bound.unsqueeze(1))
