"""ReplayBuffer.sample: each batch is its own memory, whole transitions, valid whatever comes after it."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.data.buffer import ReplayBuffer


def numbered_buffer(n=50, extras=()):
    """Row i holds the value i in every field (obs, act, rew, next_obs = i + 0.5, done = i % 2)."""
    buf = ReplayBuffer(3, 2, n, seed=0, extras=extras)
    i = np.arange(n, dtype=np.float32)
    buf.add_many(np.repeat(i[:, None], 3, 1), np.repeat(i[:, None], 2, 1), i, np.repeat(i[:, None] + 0.5, 3, 1),
                 i % 2, np.zeros(n, bool))
    return buf


def test_a_batch_survives_later_samples_and_writes():
    buf = numbered_buffer()
    first = buf.sample(16)
    kept = [t.clone() for t in first[:5]]
    for _ in range(3):
        buf.sample(16)  # same size: the case that used to overwrite the first batch
    buf.add(np.full(3, -7.0), np.full(2, -7.0), -7.0, np.full(3, -7.0), True, False)
    buf.add_many(*(np.full((10, d), -9.0) for d in (3, 2)), np.full(10, -9.0), np.full((10, 3), -9.0),
                 np.ones(10), np.zeros(10, bool))
    for t, k in zip(first[:5], kept, strict=True):
        assert torch.equal(t, k)


def test_fields_come_from_the_same_transition():
    buf = numbered_buffer(extras=("ret", "adv"))
    b = buf.sample(64)
    i = b.rew
    assert torch.equal(b.obs, i[:, None].expand(-1, 3)) and torch.equal(b.act, i[:, None].expand(-1, 2))
    assert torch.equal(b.next_obs, i[:, None].expand(-1, 3) + 0.5) and torch.equal(b.done, i % 2)
    assert b.extras["ret"].shape == b.extras["adv"].shape == (64,)
    assert numbered_buffer().sample(4).extras == {}  # no extra columns: no extras
