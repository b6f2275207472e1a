import os
import warnings

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings("ignore", message=".*reward functions were updated.*")
torch.set_num_threads(1)


@pytest.fixture
def tiny_d4rl(tmp_path):
    """Write a small valid D4RL-layout file for AdroitHandPen sizes and return its path and arrays."""
    import h5py
    import numpy as np

    def write(name="ok.hdf5", n=50, obs_dim=45, act_dim=24, drop=(), **replace):
        rng = np.random.default_rng(0)
        arrays = {
            "observations": rng.standard_normal((n, obs_dim)).astype(np.float32),
            "actions": rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
            "rewards": -np.ones(n, np.float32),
            "terminals": np.zeros(n, bool),
            "timeouts": np.zeros(n, bool),
        }
        arrays["timeouts"][np.arange(9, n, 10)] = True
        arrays.update(replace)
        path = tmp_path / name
        with h5py.File(path, "w") as f:
            for k, v in arrays.items():
                if k not in drop:
                    f.create_dataset(k, data=v)
        return str(path), arrays

    return write


class StopRun(BaseException):
    """Raised right after a checkpoint is on disk: the process ends there, as a kill would end it."""


@pytest.fixture
def interrupt_after_checkpoint():
    """``interrupt(fn, n)``: call ``fn`` and stop it right after its n-th checkpoint (``state.pt``) is written.

    The harness and the expert trainer both write checkpoints through ``benchmarks.common.checkpoint.atomic_save``."""
    from benchmarks.common import checkpoint

    def interrupt(fn, n: int) -> None:
        orig, count = checkpoint.atomic_save, [0]

        def save(obj, path):
            written = orig(obj, path)
            if path.endswith("state.pt"):
                count[0] += 1
                if count[0] == n:
                    raise StopRun
            return written

        checkpoint.atomic_save = save
        try:
            with pytest.raises(StopRun):
                fn()
        finally:
            checkpoint.atomic_save = orig

    return interrupt
