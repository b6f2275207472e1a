"""Standard dataset names found on local disk: D4RL names and Minari ids, and export to Minari.

``tasks.get_task`` asks :func:`resolve` about a name that is not a registered task. Nothing is downloaded:
the file must already be in the library's own local folder.

D4RL (``<env>-<dataset>-v<k>``, e.g. ``hopper-medium-v2``, ``halfcheetah-medium-replay-v2``, ``pen-human-v1``):

* folder: ``$D4RL_DATASET_DIR``, default ``~/.d4rl/datasets`` (Farama-Foundation/D4RL:d4rl/offline_env.py,
  ``set_dataset_path``); D4RL saves a dataset as ``<folder>/<basename of its URL>`` (``filepath_from_url``).
* file names, from the URLs in Farama-Foundation/D4RL:d4rl/infos.py (``DATASET_URLS``):
  locomotion v1/v2 ``<env>_<dataset with _>-v<k>.hdf5`` (``hopper_medium-v2.hdf5``,
  ``halfcheetah_medium_replay-v2.hdf5``); locomotion v0 ``<env>_<dataset>.hdf5`` except medium-replay,
  ``<env>_mixed.hdf5`` (``walker_mixed.hdf5`` for walker2d); Adroit v1 ``<env>-<dataset>-v1.hdf5``
  (``pen-human-v1.hdf5``); Adroit v0 ``<env>-v0_demos_clipped.hdf5`` (human),
  ``<env>-demos-v0-bc-combined.hdf5`` (cloned), ``<env>-v0_expert_clipped.hdf5`` (expert).
* environments (gymnasium): HalfCheetah-v5 (17 obs), Hopper-v5 (11), Walker2d-v5 (17) have D4RL's
  observation sizes. D4RL's ant data came from gym's Ant-v2/v3 (mujoco-py): 111 observations, the last 84
  the clipped contact forces ``cfrc_ext`` of 14 bodies. Ant-v5 has 105 (worldbody's 6 dropped) or 27, so
  ant maps to ``Ant-v4`` with ``use_contact_forces=True`` (111, same layout). Caveat: with mujoco-py >= 2.0
  those contact forces were always 0 (gymnasium/envs/mujoco/ant_v5.py docstring), so they are 0 in D4RL's
  data but not in Ant-v4, which also adds its contact cost to the reward. Adroit pen/door/hammer/relocate
  map to AdroitHand{Pen,Door,Hammer,Relocate}-v1 (gymnasium-robotics; 45/39/46/39 observations as in D4RL)
  with D4RL's episode limits (pen 100 steps, others 200: d4rl/hand_manipulation_suite/__init__.py);
  locomotion episodes are 1000 steps. AntMaze is refused: gymnasium-robotics' AntMaze_* envs have
  goal-conditioned dict observations and other mazes than D4RL's.
* reference scores: the D4RL family of the env (``benchmarks/common/scores.py``; d4rl/infos.py gives every
  dataset of a family the same REF_MIN_SCORE / REF_MAX_SCORE).

Minari (``<namespace>/<name>-v<k>``, e.g. ``mujoco/hopper/medium-v0``, ``D4RL/pen/human-v2``):

* folder: ``$MINARI_DATASETS_PATH``, default ``~/.minari/datasets``; a dataset lives in ``<root>/<id>/data``
  (Farama-Foundation/Minari:minari/storage/datasets_root_dir.py ``get_dataset_path``,
  minari/storage/local.py ``load_dataset``) with ``metadata.json`` and, for the HDF5 storage,
  ``main_data.hdf5`` (minari/dataset/_storages/hdf5_storage.py).
* environment: the ``env_spec`` (gymnasium ``EnvSpec`` JSON) in ``data/metadata.json``
  (minari/dataset/minari_storage.py); without one, :data:`MINARI_ENVS` by the id's second part.
* id syntax ``(namespace/)name(-v<version>)``: minari/dataset/minari_dataset.py ``DATASET_ID_RE``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import warnings

import numpy as np

from algorithms.base import UserError
from benchmarks.common import scores
from benchmarks.tasks.task import Task

LOCOMOTION_ENVS = {"halfcheetah": ("HalfCheetah-v5", {}), "hopper": ("Hopper-v5", {}),
                   "walker2d": ("Walker2d-v5", {}), "ant": ("Ant-v4", {"use_contact_forces": True})}
ADROIT_ENVS = {"pen": "AdroitHandPen-v1", "door": "AdroitHandDoor-v1", "hammer": "AdroitHandHammer-v1",
               "relocate": "AdroitHandRelocate-v1"}
ADROIT_STEPS = {"pen": 100, "door": 200, "hammer": 200, "relocate": 200}  # d4rl hand_manipulation_suite
LOCOMOTION_DATASETS = {  # d4rl/infos.py: v0 URLs listed one by one, v1/v2 generated in its loop
    0: ("random", "medium", "expert", "medium-replay", "medium-expert", "random-expert"),
    1: ("random", "medium", "expert", "medium-replay", "full-replay", "medium-expert"),
    2: ("random", "medium", "expert", "medium-replay", "full-replay", "medium-expert"),
}
ADROIT_DATASETS = {0: ("human", "cloned", "expert"), 1: ("human", "cloned", "expert")}
# Minari ids without an env_spec in their metadata: the id's second part -> gymnasium env
MINARI_ENVS = {**{k: v[0] for k, v in LOCOMOTION_ENVS.items()}, "ant": "Ant-v5", **ADROIT_ENVS}
MINARI_ID_RE = re.compile(r"^(?P<namespace>[-_\w][-_\w/]*[-_\w]+)/(?P<name>[-_\w]+?)-v(?P<version>\d+)$")
D4RL_NAME_RE = re.compile(r"^(?P<env>[a-z0-9]+)-(?P<dataset>[a-z]+(?:-[a-z]+)*)-v(?P<version>\d+)$")
EXPORT_NAMESPACE = "awac-bench"
MINARI_VERSION_HINT = "pip install minari==0.5.4"


def d4rl_dir() -> str:
    return os.environ.get("D4RL_DATASET_DIR") or os.path.expanduser("~/.d4rl/datasets")


def minari_dir() -> str:
    return os.environ.get("MINARI_DATASETS_PATH") or os.path.join(os.path.expanduser("~"), ".minari", "datasets")


def d4rl_filename(env: str, dataset: str, version: int) -> str | None:
    """D4RL's file name for a dataset (basename of its URL in d4rl/infos.py), or None if D4RL has none."""
    if env in LOCOMOTION_ENVS and dataset in LOCOMOTION_DATASETS.get(version, ()):
        if version == 0:
            if dataset == "medium-replay":
                return f"{'walker' if env == 'walker2d' else env}_mixed.hdf5"
            if dataset == "random-expert" and env != "ant":
                return None
            return f"{env}_{dataset.replace('-', '_')}.hdf5"
        if dataset == "random-expert":
            return None
        return f"{env}_{dataset.replace('-', '_')}-v{version}.hdf5"
    if env in ADROIT_ENVS and dataset in ADROIT_DATASETS.get(version, ()):
        if version == 1:
            return f"{env}-{dataset}-v1.hdf5"
        return {"human": f"{env}-v0_demos_clipped.hdf5", "cloned": f"{env}-demos-v0-bc-combined.hdf5",
                "expert": f"{env}-v0_expert_clipped.hdf5"}[dataset]
    return None


def resolve(name: str, dataset: str | None = None, env_id: str | None = None) -> Task | None:
    """The task for a D4RL name or Minari id found on disk; None if ``name`` has neither form.

    ``dataset`` / ``env_id`` (``--dataset`` / ``--env``) override the file and the environment.
    """
    if "/" in name:
        if MINARI_ID_RE.match(name):
            return _minari_task(name, dataset, env_id)
        return None
    m = D4RL_NAME_RE.match(name)
    if m:
        return _d4rl_task(name, m["env"], m["dataset"], int(m["version"]), dataset, env_id)
    return None


def _d4rl_task(name: str, env: str, dset: str, version: int, dataset: str | None, env_id: str | None) -> Task | None:
    if env == "antmaze":
        raise UserError(f"D4RL '{name}' is not supported: gymnasium-robotics' AntMaze_* envs have dict "
                        "(goal-conditioned) observations and other mazes than D4RL's antmaze")
    if env not in LOCOMOTION_ENVS and env not in ADROIT_ENVS:
        return None
    fname = d4rl_filename(env, dset, version)
    if fname is None:
        raise UserError(f"D4RL has no dataset '{name}' (d4rl/infos.py)")
    path = dataset or os.path.join(d4rl_dir(), fname)
    if not os.path.exists(os.path.expanduser(path)):
        raise UserError(f"D4RL dataset '{name}' not found: no {fname} in {d4rl_dir()} ($D4RL_DATASET_DIR, default "
                        f"~/.d4rl/datasets); on a machine with network run `python -c \"import gym, d4rl; "
                        f"gym.make('{name}').get_dataset()\"` and copy the file there")
    hand = env in ADROIT_ENVS
    gym_id, kwargs = (ADROIT_ENVS[env], {}) if hand else LOCOMOTION_ENVS[env]
    if env_id:
        gym_id, kwargs = env_id, {}
    steps = ADROIT_STEPS[env] if hand else 1000
    return Task(name, gym_id, "hand" if hand else "mujoco", path, steps, None, None, env,
                f"D4RL {name} ({fname}) on {gym_id}", env_kwargs=dict(kwargs))


def _minari_task(name: str, dataset: str | None, env_id: str | None) -> Task:
    folder = os.path.join(minari_dir(), name)
    path = dataset or folder
    if not os.path.isdir(os.path.join(os.path.expanduser(path), "data")) and not dataset:
        raise UserError(f"Minari dataset '{name}' not found: no {name}/data in {minari_dir()} "
                        f"($MINARI_DATASETS_PATH, default ~/.minari/datasets); on a machine with network run "
                        f"`minari download {name}` and copy {folder} there")
    spec = read_minari_env_spec(path) if os.path.isdir(path) else None
    kwargs: dict = {}
    steps = None
    if spec is not None:
        gym_id, kwargs, steps = spec["id"], dict(spec.get("kwargs") or {}), spec.get("max_episode_steps")
    else:
        part = name.split("/")[1] if name.count("/") >= 2 else ""
        gym_id = MINARI_ENVS.get(part)
    if env_id:
        gym_id, kwargs = env_id, {}
    if not gym_id:
        raise UserError(f"Minari dataset '{name}' has no env_spec in its metadata: pass --env GYM_ID")
    hand = gym_id.startswith("AdroitHand")
    fam = scores.family_of(gym_id)
    return Task(name, gym_id, "hand" if hand else "mujoco", path, steps, None, None, fam,
                f"Minari {name} on {gym_id}", env_kwargs=kwargs)


def read_minari_env_spec(folder: str) -> dict | None:
    """``env_spec`` of a Minari dataset folder's ``data/metadata.json`` as a dict (id, kwargs, ...), or None."""
    meta = os.path.join(os.path.expanduser(folder), "data", "metadata.json")
    if not os.path.isfile(meta):
        return None
    try:
        with open(meta) as f:
            raw = json.load(f).get("env_spec")
        return json.loads(raw) if isinstance(raw, str) else raw
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read Minari metadata {meta}: {e}") from None


@contextlib.contextmanager
def _minari_root(root: str | None):
    """Point minari at ``root`` for the duration (minari reads $MINARI_DATASETS_PATH at each call)."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    if root is not None:
        os.environ["MINARI_DATASETS_PATH"] = os.path.abspath(os.path.expanduser(root))
    try:
        yield
    finally:
        if root is not None:
            if old is None:
                os.environ.pop("MINARI_DATASETS_PATH", None)
            else:
                os.environ["MINARI_DATASETS_PATH"] = old


def export_id(task_name: str) -> str:
    """Minari id of an exported suite dataset: ``awac-bench/<task>-v0`` (namespace/name-version)."""
    return f"{EXPORT_NAMESPACE}/{task_name}-v0"


def export_minari(task: Task, root: str | None = None) -> tuple[str, str, int]:
    """Write a task's dataset (on disk: the caller generates it first) as a Minari dataset with the real
    ``minari`` package.

    Episodes are cut where ``Dataset.episode_ends`` says; each gets ``n + 1`` observations (its rows' obs
    and the last row's next obs), ``terminations`` = terminal, ``truncations`` = time limit or cut. The env
    spec is the task's gymnasium env without the suite's wrappers: a binary-reward task's rewards stay the
    relabelled binary ones (said in the description). Returns (dataset id, its folder, transitions).
    """
    try:
        import gymnasium as gym
        import minari
        from minari.data_collector import EpisodeBuffer
    except ImportError:
        raise UserError(f"export needs the minari package: {MINARI_VERSION_HINT}") from None
    env = task.make_env()
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    ds = task.load_dataset(obs_dim, act_dim)
    raw_env = gym.make(task.env_id, max_episode_steps=task.max_episode_steps, **task.env_kwargs)
    ends = np.flatnonzero(ds.episode_ends())
    starts = np.r_[0, ends[:-1] + 1]
    buffers = []
    for i, (s, e) in enumerate(zip(starts, ends, strict=True)):
        term = ds.done[s:e + 1].astype(bool)
        trunc = ~term
        trunc[:-1] = ds.timeout[s:e].astype(bool)  # rows inside an episode: only a recorded time limit
        buffers.append(EpisodeBuffer(
            id=i, observations=np.concatenate([ds.obs[s:e + 1], ds.next_obs[e:e + 1]]),
            actions=ds.act[s:e + 1], rewards=ds.rew[s:e + 1], terminations=term, truncations=trunc))
    dataset_id = export_id(task.name)
    lo_hi = scores.D4RL_REF_SCORES.get(task.score_family) if task.binary_reward is None else None
    reward_note = " Rewards: the task's binary reward (0 success, -1 otherwise), not the env's." \
        if task.binary_reward is not None else ""
    with _minari_root(root):
        folder = os.path.join(minari_dir(), dataset_id)
        if os.path.exists(folder):
            raise UserError(f"Minari dataset {dataset_id} already exists at {folder}: delete it or pick another --out")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # minari's "author_email is None" notices
            minari.create_dataset_from_buffers(
                dataset_id, buffers, env=raw_env.spec, algorithm_name=f"awac-bench {task.name}",
                author="awac-bench", code_permalink="benchmarks/tasks/catalog.py",
                observation_space=raw_env.observation_space, action_space=raw_env.action_space,
                ref_min_score=lo_hi[0] if lo_hi else None, ref_max_score=lo_hi[1] if lo_hi else None,
                description=f"awac-bench task {task.name}: {task.description}.{reward_note}",
                data_format="hdf5")
    raw_env.close()
    env.close()
    return dataset_id, folder, len(ds)
