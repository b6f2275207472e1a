"""A task: an environment, the offline dataset that fits it, and how to score it (no data generation here:
``benchmarks/generation`` makes the suite's own datasets, ``benchmarks/tasks/registry.py`` names the tasks).

The hand tasks' binary reward and success rule follow the AWAC fork of mj_envs (see ``registry.py``).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from algorithms.base import UserError
from benchmarks.common import scores
from benchmarks.data import dataset as data_mod
from benchmarks.tasks.recipe import Recipe

# door-v0 / AdroitHandDoor-v1 observation layout: qpos[1:-2] (27), latch, door hinge angle, ... (39)
# (mj_envs door_v0.py ``_get_obs``; gymnasium-robotics adroit_door.py, same concatenation)
DOOR_HINGE_INDEX = 28
# the door's goal: hinge >= 1.35 rad (mj_envs door_v0.py ``goal_achieved = door_pos >= 1.35``; the same in
# gymnasium-robotics AdroitHandDoor-v1 ``info["success"]``)
DOOR_OPEN_ANGLE = 1.35


def binary_reward(next_obs: np.ndarray, info: dict) -> float:
    """The AWAC fork of mj_envs: ``reward = goal_achieved - 1`` (0 at the goal, else -1)."""
    return 0.0 if info.get("success", False) else -1.0


def door_relabel(ds: data_mod.Dataset) -> np.ndarray:
    """door-binary rewards of recorded door transitions (dense rewards in the file): the env's own test
    on the next state's hinge angle, 0 if >= 1.35 rad else -1."""
    return np.where(ds.next_obs[:, DOOR_HINGE_INDEX] >= DOOR_OPEN_ANGLE, 0.0, -1.0).astype(np.float32)


class BinaryReward(gym.Wrapper):
    """Replace the env's reward by a task's binary reward computed from (s', info)."""

    def __init__(self, env: gym.Env, fn: Callable[[np.ndarray, dict], float]):
        super().__init__(env)
        self.fn = fn

    def step(self, action):
        obs, _, term, trunc, info = self.env.step(action)
        return obs, self.fn(obs, info), term, trunc, info


class EndAtGoal(gym.Wrapper):
    """End an episode at its first step at the goal (``info["success"]``) as a true terminal: the online side of
    an algorithm's ``end_at_goal`` (nakamotoo/Cal-QL ``JaxCQL/sampler.py``: ``done=True`` when goal_achieved)."""

    def step(self, action):
        obs, rew, term, trunc, info = self.env.step(action)
        return obs, rew, term or bool(info.get("success", False)), trunc, info


def _register_robotics() -> None:
    # gymnasium-robotics prints a notice about the *Dense* Adroit rewards on import (not used here:
    # our hand tasks are binary); keep it off stderr so that errors stay one line.
    with contextlib.redirect_stderr(io.StringIO()):
        import gymnasium_robotics
    gym.register_envs(gymnasium_robotics)


@dataclass
class Task:
    name: str
    env_id: str
    family: str  # "hand" or "mujoco": selects algorithm presets (e.g. AWAC's hand variant)
    dataset_path: str | None = None
    max_episode_steps: int | None = None
    binary_reward: Callable[[np.ndarray, dict], float] | None = None
    # steps with info["success"] needed for an episode to count as a success (None: no success notion)
    success_min_steps: int | None = None
    score_family: str | None = None  # D4RL reference-score family for normalisation
    description: str = ""
    env_kwargs: dict = field(default_factory=dict)
    # recomputes the dataset's rewards for this task (recorded rewards of another kind), or None
    relabel: Callable[[data_mod.Dataset], np.ndarray] | None = None
    # how the suite generates this task's dataset (``recipe.py``; made by ``benchmarks/generation/priordata.py``),
    # or None for a file on disk
    recipe: Recipe | None = None
    # the dataset is demonstrations alone (the shipped human data): every row is a demonstration row for an
    # algorithm that draws a demonstration batch (``Dataset.demo``; generated files mark theirs in a column)
    demonstrations_only: bool = False

    def relabel_rewards(self, ds: data_mod.Dataset) -> np.ndarray:
        """The dataset's rewards for this task: as recorded, or recomputed by ``relabel``."""
        return ds.rew if self.relabel is None else self.relabel(ds)

    def make_env(self) -> gym.Env:
        if self.env_id.startswith("AdroitHand"):
            _register_robotics()
        restore = self._mute_mujoco_compiler_deprecations()  # HalfCheetah's 'settotalmass' notice
        try:
            env = gym.make(self.env_id, max_episode_steps=self.max_episode_steps, **self.env_kwargs)
        except gym.error.Error as e:
            raise UserError(f"cannot make environment '{self.env_id}': {e}") from None
        finally:
            restore()
        if not isinstance(env.action_space, gym.spaces.Box) or not isinstance(env.observation_space, gym.spaces.Box):
            raise UserError(f"environment '{self.env_id}' must have Box observation and action spaces")
        if self.rescales(env.action_space):  # the policies act in [-1, 1]; load_dataset maps the data too
            space = env.action_space  # bounds in the space's dtype: no "precision lowered" warning from gymnasium
            env = gym.wrappers.RescaleAction(env, np.full(space.shape, -1, space.dtype),
                                             np.full(space.shape, 1, space.dtype))
        if self.binary_reward is not None:
            env = BinaryReward(env, self.binary_reward)
        return env

    @staticmethod
    def _mute_mujoco_compiler_deprecations():
        """Drop MuJoCo compiler deprecation notices while an env is built; returns the function that undoes it.

        MuJoCo (the pinned 4.0.0) reports deprecated XML attributes through ``mju_warning``, whose default
        handler prints "WARNING: ..." to stderr; gymnasium's half_cheetah.xml sets ``<compiler
        settotalmass=...>``, so every HalfCheetah build (training and evaluation env) printed one. The handler
        installed here (``mujoco.set_mju_user_warning``) drops only "compiler attribute ... deprecated"
        messages and passes any other warning on: to the handler installed before, else printed as MuJoCo's
        default does."""
        import sys

        try:
            import mujoco
        except ImportError:
            return lambda: None
        prev = mujoco.get_mju_user_warning()

        def handler(msg: str) -> None:
            if msg.startswith("compiler attribute") and "deprecated" in msg:
                return
            if prev is not None:
                prev(msg)
            else:
                print(f"WARNING: {msg}\n", file=sys.stderr, flush=True)

        mujoco.set_mju_user_warning(handler)
        return lambda: mujoco.set_mju_user_warning(prev)

    @staticmethod
    def rescales(space: gym.spaces.Box) -> bool:
        """Whether ``make_env`` wraps an env with this action space in ``RescaleAction(env, -1, 1)``."""
        return not (np.allclose(space.low, -1.0) and np.allclose(space.high, 1.0))

    def load_dataset(self, obs_dim: int, act_dim: int, action_space: gym.spaces.Box | None = None) -> data_mod.Dataset:
        """The task's dataset, checked against the env's sizes.

        ``action_space``: the env's own (unwrapped) action space. When ``make_env`` rescales it to [-1, 1],
        the dataset's actions, recorded in the env's units, get the same affine map
        (``data.rescale_actions``; out-of-bounds actions are an error) and ``ds.action_scale`` records it.
        """
        if self.dataset_path is None:
            raise UserError(f"task '{self.name}' needs a dataset: pass --dataset PATH")
        if not os.path.exists(self.dataset_path) and self.recipe is not None:  # generating is the caller's step
            raise UserError(f"the dataset of '{self.name}' is not generated yet ({self.dataset_path}): "
                            f"run `awac-bench data generate --task {self.name}`")
        ds = data_mod.load_dataset(self.dataset_path, obs_dim, act_dim)
        ds.rew = self.relabel_rewards(ds)
        if self.demonstrations_only and ds.demo is None:
            ds.demo = np.ones(len(ds), dtype=bool)
        if action_space is not None and self.rescales(action_space):
            ds = data_mod.rescale_actions(ds, action_space.low, action_space.high)
        return ds

    def goal_rows(self, ds: data_mod.Dataset) -> np.ndarray:
        """The dataset's rows whose step reached the goal: reward 0 under the binary reward (``binary_reward``:
        goal_achieved - 1). A task without a goal is an error."""
        if self.binary_reward is None:
            raise UserError(f"task '{self.name}' has no goal to end episodes at (end_at_goal needs a binary hand "
                            f"task, e.g. pen-binary)")
        return ds.rew == 0.0

    def normalized_score(self, ret: float, success_rate: float | None) -> float:
        if self.binary_reward is not None and success_rate is not None:
            return 100.0 * success_rate
        return scores.normalize(ret, self.score_family)


