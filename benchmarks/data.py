"""Offline datasets: the D4RL HDF5 layout, read and checked by the suite itself (no ``d4rl`` import).

D4RL layout: one row per step, keys ``observations, actions, rewards, terminals`` and (v2 datasets)
``timeouts``; ``next_observations`` is optional. Without it, next observations are derived the way
D4RL's ``qlearning_dataset`` does: s'_i = s_{i+1}; a row whose ``timeouts`` flag is set is dropped
(its successor belongs to the next episode and the time limit is not a terminal), and the last row
is dropped; a terminal row is kept (it is never bootstrapped from).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from algorithms.base import UserError

REQUIRED = ("observations", "actions", "rewards", "terminals")


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

    def __len__(self) -> int:
        return len(self.obs)

    @property
    def obs_dim(self) -> int:
        return self.obs.shape[1]

    @property
    def act_dim(self) -> int:
        return self.act.shape[1]

    def episode_ends(self) -> np.ndarray:
        """Boolean mask of rows that end an episode (terminal, time limit, or the last row)."""
        ends = self.done.astype(bool) | self.timeout.astype(bool)
        # a break in continuity also ends an episode (rows whose successor is not the next row's obs)
        if len(self) > 1:
            ends[:-1] |= ~np.all(self.next_obs[:-1] == self.obs[1:], axis=1)
        if len(self):
            ends[-1] = True
        return ends

    def episode_returns(self) -> np.ndarray:
        ends = np.flatnonzero(self.episode_ends())
        starts = np.r_[0, ends[:-1] + 1]
        return np.array([self.rew[s:e + 1].sum() for s, e in zip(starts, ends, strict=True)], dtype=np.float64)

    def mc_returns(self, gamma: float) -> np.ndarray:
        """Discounted return-to-go of every row within its episode (no bootstrap past its end)."""
        out = np.zeros(len(self), dtype=np.float64)
        ends = self.episode_ends()
        acc = 0.0
        for i in range(len(self) - 1, -1, -1):
            if ends[i]:
                acc = 0.0
            acc = float(self.rew[i]) + gamma * acc
            out[i] = acc
        return out

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
    """Read a Minari dataset (HDF5 storage) without the ``minari`` package.

    Minari stores one group per episode, ``episode_<i>``, with ``observations`` (n + 1 rows: the last is
    the final next observation), ``actions``, ``rewards``, ``terminations`` and ``truncations`` (n rows).
    Only flat Box observations are supported.
    """
    import h5py

    file = os.path.join(path, "data", "main_data.hdf5") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        hint = " (Minari's arrow storage is not supported; use its HDF5 storage)" if os.path.isdir(path) else ""
        raise UserError(f"Minari dataset file not found: {file}{hint}")
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
            o = np.asarray(ep["observations"], dtype=np.float32)
            n = len(ep["actions"])
            if len(o) != n + 1:
                raise UserError(f"Minari dataset {file}: {name} has {len(o)} observations for {n} actions "
                                f"(expected {n + 1})")
            term = np.asarray(ep["terminations"], dtype=bool).reshape(n)
            trunc = np.asarray(ep["truncations"], dtype=bool).reshape(n)
            trunc[-1] |= not term[-1]  # an episode cut without a flag still ends there
            cols["obs"].append(o[:-1])
            cols["next_obs"].append(o[1:])
            cols["act"].append(np.asarray(ep["actions"], dtype=np.float32).reshape(n, -1))
            cols["rew"].append(np.asarray(ep["rewards"], dtype=np.float32).reshape(n))
            cols["done"].append(term.astype(np.float32))
            cols["timeout"].append(trunc & ~term)
    raw = {"observations": np.concatenate(cols["obs"]), "actions": np.concatenate(cols["act"]),
           "rewards": np.concatenate(cols["rew"]), "terminals": np.concatenate(cols["done"]).astype(bool),
           "timeouts": np.concatenate(cols["timeout"]), "next_observations": np.concatenate(cols["next_obs"])}
    return from_arrays(raw, file, obs_dim, act_dim)


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
        raw = {k: np.asarray(f[k]) for k in (*REQUIRED, "timeouts", "next_observations") if k in f}
    return from_arrays(raw, path, obs_dim, act_dim)


def from_arrays(raw: dict[str, np.ndarray], source: str, obs_dim: int | None = None,
                act_dim: int | None = None) -> Dataset:
    """Validate D4RL-layout arrays (lengths, shapes, finiteness, sizes) and build a ``Dataset``."""
    n = len(raw["observations"])
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
        return Dataset(obs, act, rew, nxt, term.astype(np.float32), tout, source)

    # D4RL qlearning_dataset: drop time-limit rows and the last row; keep terminal rows.
    keep = ~tout[:-1]
    idx = np.flatnonzero(keep)
    nxt = obs[idx + 1]
    # the row before a dropped time-limit row ends its episode by time limit too
    timeout = np.zeros(len(idx), bool)
    timeout[:-1] = idx[1:] != idx[:-1] + 1
    return Dataset(obs[idx], act[idx], rew[idx], nxt, term[idx].astype(np.float32), timeout, source)


def write_d4rl_hdf5(path: str, ds: Dataset, attrs: dict[str, str] | None = None) -> None:
    """Write a dataset in the D4RL layout (with ``next_observations``), gzip-compressed, atomically."""
    import h5py

    tmp = f"{path}.tmp"
    with h5py.File(tmp, "w") as f:
        for k, v in (("observations", ds.obs), ("actions", ds.act), ("rewards", ds.rew),
                     ("next_observations", ds.next_obs), ("terminals", ds.done.astype(bool)),
                     ("timeouts", ds.timeout.astype(bool))):
            f.create_dataset(k, data=v, compression="gzip", compression_opts=4, shuffle=True)
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
    os.replace(tmp, path)
