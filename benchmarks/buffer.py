"""The one replay buffer: preallocated tensors on the run's device, FIFO, vectorised sampling.

Rows are stored in insertion order, so episodes stay contiguous (needed for TD(lambda) returns):
``done`` marks a true terminal state (no bootstrap), ``timeout`` marks the last step of an episode
cut by a time limit (bootstrap from V(s')). An episode still being collected has neither flag on its
latest row. Offline data goes in first; online transitions are appended after it (AWAC's recipe).
"""

from __future__ import annotations

import numpy as np
import torch

from algorithms.base import Batch


class ReplayBuffer:
    def __init__(self, obs_dim: int, act_dim: int, capacity: int, device: str | torch.device = "cpu",
                 seed: int = 0, with_returns: bool = False):
        if capacity <= 0:
            raise ValueError("replay buffer capacity must be positive")
        self.device = torch.device(device)
        self.capacity = int(capacity)
        f32 = dict(dtype=torch.float32, device=self.device)
        self.obs = torch.empty((capacity, obs_dim), **f32)
        self.act = torch.empty((capacity, act_dim), **f32)
        self.rew = torch.empty((capacity,), **f32)
        self.next_obs = torch.empty((capacity, obs_dim), **f32)
        self.done = torch.empty((capacity,), **f32)
        self.timeout = torch.empty((capacity,), dtype=torch.bool, device=self.device)
        self.ret = torch.zeros((capacity,), **f32) if with_returns else None
        self.size = 0   # number of valid rows
        self.ptr = 0    # next row to write
        self.n_offline = 0
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(int(seed))
        self._out: dict[int, Batch] = {}
        self._empty = torch.empty((0,), **f32)

    def __len__(self) -> int:
        return self.size

    # -- writing -----------------------------------------------------------------------------
    def add_many(self, obs, act, rew, next_obs, done, timeout) -> None:
        """Append a block of transitions (numpy or tensors); wraps around when full."""
        n = len(obs)
        if n > self.capacity:  # keep the most recent rows only
            sl = slice(n - self.capacity, n)
            obs, act, rew, next_obs, done, timeout = (x[sl] for x in (obs, act, rew, next_obs, done, timeout))
            n = self.capacity
        cols = (self.obs, self.act, self.rew, self.next_obs, self.done, self.timeout)
        vals = (obs, act, rew, next_obs, done, timeout)
        first = min(n, self.capacity - self.ptr)
        for col, val in zip(cols, vals, strict=True):
            t = torch.as_tensor(np.asarray(val), device=self.device).to(col.dtype)
            col[self.ptr:self.ptr + first] = t[:first]
            if first < n:
                col[: n - first] = t[first:]
        self.ptr = (self.ptr + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def add(self, obs, act, rew: float, next_obs, done: bool, timeout: bool) -> None:
        """Append one transition (the online hot path: no Python-side allocation beyond the copy)."""
        i = self.ptr
        self.obs[i] = torch.as_tensor(obs, device=self.device)
        self.act[i] = torch.as_tensor(act, device=self.device)
        self.rew[i] = float(rew)
        self.next_obs[i] = torch.as_tensor(next_obs, device=self.device)
        self.done[i] = float(done)
        self.timeout[i] = bool(timeout)
        self.ptr = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    # -- reading -----------------------------------------------------------------------------
    def order(self) -> torch.Tensor:
        """Row indices from oldest to newest (for computations over trajectories)."""
        if self.size < self.capacity:
            return torch.arange(self.size, device=self.device)
        return torch.arange(self.ptr, self.ptr + self.capacity, device=self.device) % self.capacity

    def sample(self, batch_size: int) -> Batch:
        """Uniform minibatch, gathered into tensors preallocated per batch size (reused: copy to keep)."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, self.size, (batch_size,), generator=self._gen, device=self.device)
        out = self._out.get(batch_size)
        if out is None:
            out = Batch(*(torch.empty((batch_size, *c.shape[1:]), dtype=torch.float32, device=self.device)
                          for c in (self.obs, self.act, self.rew, self.next_obs, self.done)),
                        torch.empty((batch_size,), dtype=torch.float32, device=self.device)
                        if self.ret is not None else self._empty)
            self._out[batch_size] = out
        torch.index_select(self.obs, 0, idx, out=out.obs)
        torch.index_select(self.act, 0, idx, out=out.act)
        torch.index_select(self.rew, 0, idx, out=out.rew)
        torch.index_select(self.next_obs, 0, idx, out=out.next_obs)
        torch.index_select(self.done, 0, idx, out=out.done)
        if self.ret is not None:
            torch.index_select(self.ret, 0, idx, out=out.ret)
        return out

    def nbytes(self) -> int:
        tensors = [self.obs, self.act, self.rew, self.next_obs, self.done, self.timeout]
        if self.ret is not None:
            tensors.append(self.ret)
        return sum(t.element_size() * t.nelement() for t in tensors)
