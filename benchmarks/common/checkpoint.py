"""Checkpoints: the complete state of a run, written atomically, read back with ``torch.load(weights_only=True)``.

A run directory's ``ckpt/`` holds

  state.pt         the latest state (replaced atomically): algorithm (networks, optimizers, counters, extra
                   state), buffer pointers and sampling generator, every RNG (python ``random``, numpy's global,
                   torch's, the training env's and its spaces'), the loop counters, the episode in progress,
                   the training env's simulator state, the rows and bytes of evals.csv/train.csv written so
                   far, and the elapsed wall time
  rows-NNNNN.pt    the buffer rows appended between checkpoint NNNNN-1 and NNNNN (append-only: a checkpoint
                   writes only its new online rows; the prior data is rebuilt from the dataset, whose checksum
                   config.json records, so it is never written)

Everything is stored as tensors, numbers, strings, lists, tuples and dicts (numpy arrays become tensors, numpy
generator states stay the dicts numpy gives), so nothing is unpickled on load.

The training env's state: for a MuJoCo env the integration state (``mujoco.mj_getState`` with
``mjSTATE_INTEGRATION``: time, qpos, qvel, act, warm start, controls, applied forces, mocap, user data), the
model fields that the Adroit envs' ``reset_model`` randomises (``body_pos``: door, relocate's object, hammer's
board; ``body_quat``: pen's target orientation; ``site_pos``: relocate's target; ``site_quat`` for good measure),
plus every numeric attribute of the env and of each wrapper around it (TimeLimit's elapsed steps, the pen env's
``pen_length``/``tar_length`` computed at reset, ...) and every numpy generator held by them or by their
spaces (gymnasium's PassiveEnvChecker is marked as having done its one-time checks, which touch no numbers).
The evaluation env needs none: it is reset with a seed at every evaluation.
"""

from __future__ import annotations

import glob
import os
import random
from typing import Any

import numpy as np
import torch

from benchmarks.common import files

CKPT_DIR = "ckpt"
STATE_FILE = "state.pt"
FORMAT = 1
MODEL_FIELDS = ("body_pos", "body_quat", "site_pos", "site_quat")


# -- files ------------------------------------------------------------------------------------------------
def atomic_save(obj: Any, path: str) -> int:
    """``torch.save`` to ``path`` atomically (``files.atomic_torch_save``): a reader sees the old file or the new
    one, never half of one; a failed write raises ``files.WriteError`` and leaves the old file. Returns the bytes
    written."""
    return files.atomic_torch_save(obj, path)


fsync_dir = files.fsync_dir


def load(path: str) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def chunk_path(ckpt_dir: str, k: int) -> str:
    return os.path.join(ckpt_dir, f"rows-{k:05d}.pt")


def drop_chunks_after(ckpt_dir: str, k: int) -> None:
    """Remove row chunks written after checkpoint ``k`` (by a checkpoint that was never completed)."""
    for p in glob.glob(os.path.join(ckpt_dir, "rows-*.pt*")):
        stem = os.path.basename(p)[5:].split(".")[0]
        if not stem.isdigit() or int(stem) > k or p.endswith(".tmp"):
            os.remove(p)


# -- numpy <-> tensors ----------------------------------------------------------------------------------
def encode(x: Any) -> Any:
    """Numpy arrays and scalars to tensors and Python numbers, recursively (dicts, lists, tuples)."""
    if isinstance(x, np.ndarray):
        kind = x.dtype.kind
        if kind == "f":
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
        elif kind in "biu":
            t = torch.from_numpy(np.ascontiguousarray(x).astype(np.int64))
        else:
            raise TypeError(f"cannot checkpoint a numpy array of dtype {x.dtype}")
        return {"__ndarray__": t, "dtype": x.dtype.str}
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, dict):
        return {k: encode(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(encode(v) for v in x)
    return x


def decode(x: Any) -> Any:
    if isinstance(x, dict):
        if "__ndarray__" in x:
            return x["__ndarray__"].numpy().astype(np.dtype(x["dtype"]))
        return {k: decode(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(decode(v) for v in x)
    return x


# -- RNGs -------------------------------------------------------------------------------------------------
def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": encode(np.random.get_state(legacy=False)),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(decode(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- the training environment ---------------------------------------------------------------------------
def _layers(env) -> list:
    """The env and every wrapper around it, outermost first, the unwrapped env last."""
    import gymnasium as gym

    out, e = [], env
    while isinstance(e, gym.Wrapper):
        out.append(e)
        e = e.env
    return [*out, e]


def _numeric(v: Any) -> bool:
    if isinstance(v, bool | int | float | np.number):
        return True
    return isinstance(v, np.ndarray) and v.dtype.kind in "biuf" and v.size <= 1_000_000


def _generators(layer) -> dict[str, np.random.Generator]:
    """numpy generators held by one layer: its own and those of the spaces it holds."""
    import gymnasium as gym

    found = {}
    for k, v in vars(layer).items():
        if isinstance(v, np.random.Generator):
            found[k] = v
        elif isinstance(v, gym.spaces.Space) and isinstance(getattr(v, "_np_random", None), np.random.Generator):
            found[f"{k}._np_random"] = v._np_random
    return found


def env_state(env) -> dict:
    layers = []
    for layer in _layers(env):
        attrs = {k: encode(v) for k, v in vars(layer).items() if _numeric(v)}
        gens = {k: g.bit_generator.state for k, g in _generators(layer).items()}
        layers.append({"type": type(layer).__name__, "attrs": attrs, "generators": gens})
    state: dict[str, Any] = {"layers": layers}
    u = env.unwrapped
    model, data = getattr(u, "model", None), getattr(u, "data", None)
    if model is not None and data is not None and type(model).__name__ == "MjModel":
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        buf = np.empty(mujoco.mj_stateSize(model, spec), dtype=np.float64)
        mujoco.mj_getState(model, data, buf, spec)
        state["mujoco"] = {"integration": torch.from_numpy(buf),
                           "model": {f: torch.from_numpy(np.array(getattr(model, f), dtype=np.float64))
                                     for f in MODEL_FIELDS}}
    return state


def set_env_state(env, state: dict) -> None:
    layers = _layers(env)
    if [type(x).__name__ for x in layers] != [x["type"] for x in state["layers"]]:
        raise ValueError("checkpointed environment has a different wrapper stack")
    for layer, saved in zip(layers, state["layers"], strict=True):
        for k, v in saved["attrs"].items():
            v = decode(v)
            cur = getattr(layer, k, None)
            if isinstance(cur, np.ndarray) and isinstance(v, np.ndarray) and cur.shape == v.shape \
                    and cur.flags.writeable:
                cur[...] = v  # in place: the attribute may be a view of the simulator's memory
            else:
                setattr(layer, k, v)
        for k, st in saved["generators"].items():
            if k.endswith("._np_random"):
                space = getattr(layer, k[: -len("._np_random")])
                if not isinstance(getattr(space, "_np_random", None), np.random.Generator):
                    space.seed(0)
                gen = space._np_random
            else:
                gen = getattr(layer, k, None)
                if not isinstance(gen, np.random.Generator):
                    gen = np.random.Generator(getattr(np.random, st["bit_generator"])())
                    setattr(layer, k, gen)
            gen.bit_generator.state = st
        if type(layer).__name__ == "PassiveEnvChecker":  # its one-time checks of the first reset and steps
            layer.checked_reset = layer.checked_step = layer.checked_data_reuse = True  # ran before the checkpoint
            layer._previous_data = None
    if "mujoco" in state:
        import mujoco

        u = env.unwrapped
        for f, t in state["mujoco"]["model"].items():
            getattr(u.model, f)[...] = t.numpy()
        mujoco.mj_setState(u.model, u.data, np.ascontiguousarray(state["mujoco"]["integration"].numpy()),
                           mujoco.mjtState.mjSTATE_INTEGRATION)
