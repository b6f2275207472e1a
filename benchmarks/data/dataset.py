"""Offline datasets: the D4RL HDF5 layout, read and checked by the suite itself (no ``d4rl`` import).

D4RL layout: one row per step, keys ``observations, actions, rewards, terminals`` and (v2 datasets)
``timeouts``; ``next_observations`` is optional. Without it, next observations are derived the way
D4RL's ``qlearning_dataset`` does: s'_i = s_{i+1}; a row whose ``timeouts`` flag is set is dropped
(its successor belongs to the next episode and the time limit is not a terminal), and the last row
is dropped; a terminal row is kept (it is never bootstrapped from).
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, replace

import numpy as np

from algorithms.base import UserError, episode_ends, returns_to_go
from benchmarks.common import files

# the suite's own data: shipped demonstrations and policies, generated prior data, experts, MANIFEST.json
DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "datasets")

REQUIRED = ("observations", "actions", "rewards", "terminals")
# actions at most this fraction of the bound range outside the env's bounds are clipped (float32 rounding of
# data recorded at the bound); farther out they are an error (``rescale_actions``)
ACTION_TOL = 1e-5
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Dataset:
    """Transitions as float32 arrays; ``done`` = true terminal, ``timeout`` = episode end by time limit."""

    obs: np.ndarray
    act: np.ndarray
    rew: np.ndarray
    next_obs: np.ndarray
    done: np.ndarray
    timeout: np.ndarray
    source: str = ""
    # the env's original action bounds when the actions were mapped to [-1, 1] (``rescale_actions``), else None
    action_scale: dict | None = None
    # a view made from a stored dataset (``goal_terminal_view``): what was done and the source's size and checksum
    view: dict | None = None
    # which rows are demonstrations (bool per row), from a generated file's ``source`` column (0 = demonstration
    # row, ``benchmarks/generation/priordata.py``); None where the file does not say. Read by algorithms that
    # draw a separate demonstration batch (``Algorithm.demo_batch_size``)
    demo: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.obs)

    @property
    def obs_dim(self) -> int:
        return self.obs.shape[1]

    @property
    def act_dim(self) -> int:
        return self.act.shape[1]

    def episode_ends(self) -> np.ndarray:
        """Boolean mask of rows that end an episode (``algorithms.base.episode_ends``)."""
        return episode_ends(self.obs, self.next_obs, self.done, self.timeout)

    def episode_returns(self) -> np.ndarray:
        ends = np.flatnonzero(self.episode_ends())
        starts = np.r_[0, ends[:-1] + 1]
        return np.array([self.rew[s:e + 1].sum() for s, e in zip(starts, ends, strict=True)], dtype=np.float64)

    def mc_returns(self, gamma: float) -> np.ndarray:
        """Discounted return-to-go of every row within its episode (no bootstrap past its end)."""
        return returns_to_go(self.rew, self.episode_ends(), gamma)

    def goal_terminal_view(self, at_goal: np.ndarray) -> Dataset:
        """The dataset with the goal as a terminal state (Cal-QL's hand data, nakamotoo/Cal-QL
        ``JaxCQL/replay_buffer.py`` ``get_hand_dataset_with_mc_calculation``): ``at_goal`` marks the rows whose step
        reached the goal; each episode is cut after its last such row, an episode without one is dropped, and every
        such row becomes terminal (``done``). ``view`` records the source's rows, episodes and checksum."""
        at_goal = np.asarray(at_goal, dtype=bool)
        if at_goal.shape != (len(self),):
            raise ValueError(f"at_goal has shape {at_goal.shape}, the dataset {len(self)} rows")
        ends = np.flatnonzero(self.episode_ends())
        keep = np.zeros(len(self), dtype=bool)
        kept = 0
        for s, e in zip(np.r_[0, ends[:-1] + 1], ends, strict=True):
            hits = np.flatnonzero(at_goal[s:e + 1])
            if len(hits):
                keep[s:s + hits[-1] + 1] = True
                kept += 1
        done = np.where(at_goal, 1.0, self.done).astype(self.done.dtype)
        view = {"kind": "goal_terminal", "source_rows": len(self), "source_episodes": len(ends),
                "source_sha256": self.checksum(), "rows": int(keep.sum()), "episodes": kept}
        return replace(self, obs=self.obs[keep], act=self.act[keep], rew=self.rew[keep],
                       next_obs=self.next_obs[keep], done=done[keep], timeout=self.timeout[keep], view=view,
                       demo=None if self.demo is None else self.demo[keep])

    def checksum(self) -> str:
        h = hashlib.sha256()
        for a in (self.obs, self.act, self.rew, self.next_obs, self.done, self.timeout):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


def load_dataset(path: str, obs_dim: int | None = None, act_dim: int | None = None) -> Dataset:
    """A D4RL-layout HDF5 file, or a Minari dataset on disk (its folder or its ``data/main_data.hdf5``)."""
    import h5py

    path = os.path.expanduser(path)
    if os.path.isdir(path):
        return load_minari(path, obs_dim, act_dim)
    if os.path.isfile(path):
        try:
            with h5py.File(path, "r") as f:
                is_minari = "episode_0" in f and "observations" not in f
        except OSError as e:
            raise UserError(f"cannot read dataset {path} as HDF5: {e}") from None
        if is_minari:
            return load_minari(path, obs_dim, act_dim)
    return load_d4rl_hdf5(path, obs_dim, act_dim)


def load_minari(path: str, obs_dim: int | None = None, act_dim: int | None = None) -> Dataset:
    """Read a Minari dataset: its HDF5 storage without the ``minari`` package, its arrow / parquet storage
    (``data_format`` in ``data/metadata.json``) through ``minari.MinariDataset`` when minari is installed.

    Minari stores one group per episode, ``episode_<i>``, with ``observations`` (n + 1 rows: the last is
    the final next observation), ``actions``, ``rewards``, ``terminations`` and ``truncations`` (n rows)
    (Farama-Foundation/Minari:minari/dataset/_storages/hdf5_storage.py). Only flat Box observations are
    supported.
    """
    import h5py

    file = os.path.join(path, "data", "main_data.hdf5") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        fmt = _minari_format(path) if os.path.isdir(path) else None
        if fmt in ("arrow", "parquet"):
            return _load_minari_package(path, fmt, obs_dim, act_dim)
        raise UserError(f"Minari dataset file not found: {file}")
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "rew", "next_obs", "done", "timeout")}
    with h5py.File(file, "r") as f:
        episodes = sorted((k for k in f if k.startswith("episode_")), key=lambda k: int(k.split("_")[1]))
        if not episodes:
            raise UserError(f"Minari dataset {file} has no episode_* groups")
        for name in episodes:
            ep = f[name]
            missing = [k for k in ("observations", "actions", "rewards", "terminations", "truncations") if k not in ep]
            if missing:
                raise UserError(f"Minari dataset {file}: {name} is missing key(s): {', '.join(missing)}")
            if not isinstance(ep["observations"], h5py.Dataset):
                raise UserError(f"Minari dataset {file}: only flat (Box) observations are supported")
            _add_minari_episode(cols, file, name, ep["observations"], ep["actions"], ep["rewards"],
                                ep["terminations"], ep["truncations"])
    return _minari_columns(cols, file, obs_dim, act_dim)


def _add_minari_episode(cols: dict[str, list[np.ndarray]], source: str, name: str, obs, actions, rewards,
                        terminations, truncations) -> None:
    """Append one Minari episode (n + 1 observations, n of the rest) as n transitions to ``cols``."""
    o = np.asarray(obs, dtype=np.float32)
    n = len(actions)
    if len(o) != n + 1:
        raise UserError(f"Minari dataset {source}: {name} has {len(o)} observations for {n} actions "
                        f"(expected {n + 1})")
    term = np.asarray(terminations, dtype=bool).reshape(n)
    trunc = np.asarray(truncations, dtype=bool).reshape(n)
    trunc[-1] |= not term[-1]  # an episode cut without a flag still ends there
    cols["obs"].append(o[:-1].reshape(n, -1))
    cols["next_obs"].append(o[1:].reshape(n, -1))
    cols["act"].append(np.asarray(actions, dtype=np.float32).reshape(n, -1))
    cols["rew"].append(np.asarray(rewards, dtype=np.float32).reshape(n))
    cols["done"].append(term.astype(np.float32))
    cols["timeout"].append(trunc & ~term)


def _minari_columns(cols: dict[str, list[np.ndarray]], source: str, obs_dim: int | None,
                    act_dim: int | None) -> Dataset:
    raw = {"observations": np.concatenate(cols["obs"]), "actions": np.concatenate(cols["act"]),
           "rewards": np.concatenate(cols["rew"]), "terminals": np.concatenate(cols["done"]).astype(bool),
           "timeouts": np.concatenate(cols["timeout"]), "next_observations": np.concatenate(cols["next_obs"])}
    return from_arrays(raw, source, obs_dim, act_dim)


def _minari_format(folder: str) -> str | None:
    """``data_format`` of a Minari dataset folder (minari/dataset/minari_storage.py writes it), or None."""
    import json

    meta = os.path.join(folder, "data", "metadata.json")
    try:
        with open(meta) as f:
            return json.load(f).get("data_format")
    except (OSError, ValueError):
        return None


def _load_minari_package(folder: str, fmt: str, obs_dim: int | None, act_dim: int | None) -> Dataset:
    """A Minari dataset in arrow / parquet storage, read episode by episode with ``minari.MinariDataset``."""
    data = os.path.join(folder, "data")
    try:
        import minari
    except ImportError:
        raise UserError(f"Minari dataset {folder} uses minari's {fmt} storage: reading it needs the minari "
                        "package (pip install minari==0.5.4), or re-save it with data_format='hdf5'") from None
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "rew", "next_obs", "done", "timeout")}
    for i, ep in enumerate(minari.MinariDataset(data).iterate_episodes()):
        if not isinstance(ep.observations, np.ndarray):
            raise UserError(f"Minari dataset {folder}: only flat (Box) observations are supported")
        _add_minari_episode(cols, data, f"episode {i}", ep.observations, ep.actions, ep.rewards,
                            ep.terminations, ep.truncations)
    if not cols["obs"]:
        raise UserError(f"Minari dataset {folder} has no episodes")
    return _minari_columns(cols, data, obs_dim, act_dim)


def load_d4rl_hdf5(path: str, obs_dim: int | None = None, act_dim: int | None = None) -> Dataset:
    """Read and validate a D4RL-layout HDF5 file. Every problem is a one-line ``UserError``."""
    import h5py

    if not os.path.isfile(path):
        raise UserError(f"dataset file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise UserError(f"cannot read dataset {path} as HDF5: {e}") from None
    with f:
        missing = [k for k in REQUIRED if k not in f]
        if missing:
            raise UserError(f"dataset {path} is missing key(s): {', '.join(missing)} "
                            f"(D4RL layout needs {', '.join(REQUIRED)})")
        raw = {k: np.asarray(f[k]) for k in (*REQUIRED, "timeouts", "next_observations", "source") if k in f}
    return from_arrays(raw, path, obs_dim, act_dim)


def from_arrays(raw: dict[str, np.ndarray], source: str, obs_dim: int | None = None,
                act_dim: int | None = None) -> Dataset:
    """Validate D4RL-layout arrays (lengths, shapes, finiteness, sizes) and build a ``Dataset``. An optional
    ``source`` array (the suite's generated files: 0 = demonstration row) gives ``Dataset.demo``."""
    n = len(raw["observations"])
    raw = dict(raw)
    marks = raw.pop("source", None)  # the suite's own column; a file's unrelated "source" of another shape is ignored
    demo = (marks == 0) if marks is not None and np.shape(marks) == (n,) else None
    for k, v in raw.items():
        if len(v) != n:
            raise UserError(f"dataset {source}: '{k}' has {len(v)} rows but 'observations' has {n}")
    if n < 2:
        raise UserError(f"dataset {source}: needs at least 2 rows, has {n}")
    obs = raw["observations"].astype(np.float32).reshape(n, -1)
    act = raw["actions"].astype(np.float32).reshape(n, -1)
    rew = raw["rewards"].astype(np.float32).reshape(n)
    term = raw["terminals"].astype(bool).reshape(n)
    tout = raw["timeouts"].astype(bool).reshape(n) if "timeouts" in raw else np.zeros(n, bool)
    for k, v in (("observations", obs), ("actions", act), ("rewards", rew)):
        bad = ~np.isfinite(v)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise UserError(f"dataset {source}: '{k}' has {int(bad.sum())} NaN/inf value(s) (first at row {row})")
    if obs_dim is not None and obs.shape[1] != obs_dim:
        raise UserError(f"dataset {source}: observations have size {obs.shape[1]} but the environment's is {obs_dim}")
    if act_dim is not None and act.shape[1] != act_dim:
        raise UserError(f"dataset {source}: actions have size {act.shape[1]} but the environment's is {act_dim}")

    if "next_observations" in raw:
        nxt = raw["next_observations"].astype(np.float32).reshape(n, -1)
        if nxt.shape != obs.shape:
            raise UserError(f"dataset {source}: 'next_observations' shape {nxt.shape} != observations {obs.shape}")
        if not np.isfinite(nxt).all():
            raise UserError(f"dataset {source}: 'next_observations' has NaN/inf values")
        return Dataset(obs, act, rew, nxt, term.astype(np.float32), tout, source, demo=demo)

    # D4RL qlearning_dataset: drop time-limit rows and the last row; keep terminal rows.
    keep = ~tout[:-1]
    idx = np.flatnonzero(keep)
    nxt = obs[idx + 1]
    # the row before a dropped time-limit row ends its episode by time limit too
    timeout = np.zeros(len(idx), bool)
    timeout[:-1] = idx[1:] != idx[:-1] + 1
    return Dataset(obs[idx], act[idx], rew[idx], nxt, term[idx].astype(np.float32), timeout, source,
                   demo=None if demo is None else demo[idx])


def write_d4rl_hdf5(path: str, ds: Dataset, attrs: dict[str, str] | None = None,
                    extra: dict[str, np.ndarray] | None = None) -> None:
    """Write a dataset in the D4RL layout (with ``next_observations``), gzip-compressed, atomically (built in
    memory, then ``files.atomic_write_bytes``). ``extra``: more per-row arrays (e.g. ``episode_ids``), ignored by
    D4RL-layout readers."""
    import h5py

    image = io.BytesIO()
    with h5py.File(image, "w") as f:
        for k, v in (("observations", ds.obs), ("actions", ds.act), ("rewards", ds.rew),
                     ("next_observations", ds.next_obs), ("terminals", ds.done.astype(bool)),
                     ("timeouts", ds.timeout.astype(bool)), *(extra or {}).items()):
            f.create_dataset(k, data=v, compression="gzip", compression_opts=4, shuffle=True)
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
    files.atomic_write_bytes(path, image.getvalue())


def rescale_actions(ds: Dataset, low: np.ndarray, high: np.ndarray, tol: float = ACTION_TOL) -> Dataset:
    """Map actions recorded in the env's units to [-1, 1] as gymnasium's ``RescaleAction(env, -1, 1)`` maps the
    policy's back: ``a_norm = 2 (a - low) / (high - low) - 1`` per dimension (the inverse of
    gymnasium/wrappers/transform_action.py ``RescaleAction``: ``low + (high - low) * (a_norm + 1) / 2``).

    An action more than ``tol * (high - low)`` outside [low, high] is a ``UserError``; within that it is
    clipped. Sets ``ds.action_scale`` to the bounds (recorded in the run's config.json).
    """
    low = np.asarray(low, np.float64).reshape(-1)
    high = np.asarray(high, np.float64).reshape(-1)
    if not (np.isfinite(low).all() and np.isfinite(high).all()) or (high <= low).any():
        raise UserError(f"dataset {ds.source}: cannot map actions to [-1, 1]: env action bounds "
                        f"[{low.tolist()}, {high.tolist()}] are not finite and ordered")
    act = ds.act.astype(np.float64)
    margin = tol * (high - low)
    bad = (act < low - margin) | (act > high + margin)
    if bad.any():
        row, dim = (int(i) for i in np.argwhere(bad)[0])
        raise UserError(f"dataset {ds.source}: {int(bad.sum())} action value(s) outside the env's bounds "
                        f"(first: row {row}, dim {dim}: {act[row, dim]:.6g} not in [{low[dim]:.6g}, {high[dim]:.6g}])")
    ds.act = np.clip(2.0 * (act - low) / (high - low) - 1.0, -1.0, 1.0).astype(np.float32)
    ds.action_scale = {"low": low.tolist(), "high": high.tolist()}
    return ds


def portable_path(path: str | None) -> str | None:
    """A dataset path for config.json without this machine's absolute prefix: relative to the project root
    when inside it, ``~/...`` when inside the user's home, else relative to the project root."""
    if path is None:
        return None
    full = os.path.abspath(os.path.expanduser(path))
    home = os.path.expanduser("~")
    inside = os.path.commonpath([full, PROJECT_ROOT]) == PROJECT_ROOT
    if not inside and home not in ("", "/") and os.path.commonpath([full, home]) == home:
        return "~/" + os.path.relpath(full, home)
    return os.path.relpath(full, PROJECT_ROOT)
