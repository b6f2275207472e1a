"""Replay-buffer hot paths: uniform minibatch sampling and the one-row online append."""

import numpy as np
import pytest

from .conftest import ACT, OBS


@pytest.mark.parametrize("batch", [256, 1024])
def test_sample(benchmark, batch):
    from benchmarks.commands import speed

    benchmark(speed.synthetic_buffer(OBS, ACT, 100_000).sample, batch)


def test_add_one_transition(benchmark):
    from benchmarks.data.buffer import ReplayBuffer

    buf = ReplayBuffer(OBS, ACT, 100_000)
    obs, act = np.zeros(OBS), np.zeros(ACT, np.float32)
    benchmark(buf.add, obs, act, 0.5, obs, False, False)
