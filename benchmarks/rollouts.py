"""Acting in an environment: seeding, collecting online steps into a replay buffer, evaluating a policy.

Used by the run (``benchmarks/run``), by data generation (``benchmarks/generation``: experts, prior data) and by
the speed measurements; a "policy" is anything with ``act(obs[None], deterministic) -> actions[None]``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.data.buffer import ReplayBuffer
from benchmarks.tasks.task import Task


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Episode:
    """The online episode in progress: current observation, its return, length and steps at the goal so far
    (``info["success"]``), and the last finished episode's return."""

    obs: np.ndarray
    ret: float = 0.0
    last_ret: float = float("nan")
    steps: int = 0
    goal_steps: int = 0


def collect(env, algo, buffer: ReplayBuffer, ep: Episode, n: int, ended: list | None = None) -> list[float]:
    """Take ``n`` environment steps with the sampled policy (``algo.act``) into ``buffer`` (the online hot path);
    returns the returns of the episodes that ended, and appends (return, length, steps at the goal) of each to
    ``ended`` when given."""
    finished = []
    for _ in range(n):
        act = algo.act(ep.obs[None], deterministic=False)[0]
        next_obs, rew, term, trunc, info = env.step(act)
        buffer.add(ep.obs, act, rew, next_obs, term, trunc and not term)
        ep.ret += float(rew)
        ep.steps += 1
        ep.goal_steps += int(bool(info.get("success", False)))
        ep.obs = next_obs
        if term or trunc:
            if ended is not None:
                ended.append((ep.ret, ep.steps, ep.goal_steps))
            ep.obs, _ = env.reset()
            ep.last_ret, ep.ret, ep.steps, ep.goal_steps = ep.ret, 0.0, 0, 0
            finished.append(ep.last_ret)
    return finished


def evaluate(algo, env, task: Task, episodes: int, seed: int) -> dict[str, float]:
    """Deterministic-policy returns on ``episodes`` episodes of a separate env (seeded per evaluation)."""
    returns, successes, finals = [], [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        total, n_success, done, at_goal = 0.0, 0, False, False
        while not done:
            act = algo.act(obs[None], deterministic=True)[0]
            obs, rew, term, trunc, info = env.step(act)
            total += float(rew)
            at_goal = bool(info.get("success", False))
            n_success += int(at_goal)
            done = term or trunc
        returns.append(total)
        if task.success_min_steps is not None:
            successes.append(float(n_success > task.success_min_steps))
            finals.append(float(at_goal))
    ret_mean = float(np.mean(returns))
    sr = float(np.mean(successes)) if successes else None
    # success_rate: DAPG's rule (goal achieved in > success_min_steps steps); success_final: at the goal on
    # the episode's last step
    return {"return_mean": ret_mean, "return_std": float(np.std(returns)), "success_rate": sr,
            "success_final": float(np.mean(finals)) if finals else None,
            "normalized_score": task.normalized_score(ret_mean, sr)}


class RandomPolicy:
    """Uniformly random actions of an action space, behind an algorithm's ``act``."""

    def __init__(self, space):
        self.space = space

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return self.space.sample()[None]
