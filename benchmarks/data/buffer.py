"""The one replay buffer: preallocated tensors on the run's device, FIFO, vectorised sampling.

The float fields of a transition (s, a, r, s', d and the named extra columns an algorithm declares, e.g. AWR's
return and advantage) share one row of a single
[capacity, width] float32 table; ``obs``, ``act``, ... are column views of it. Sampling is then one
``index_select`` of whole rows into a preallocated [B, width] tensor (one random memory access per
transition instead of one per field) and the batch fields are column views of that tensor.

Rows are stored in insertion order, so episodes stay contiguous (needed for TD(lambda) returns):
``done`` marks a true terminal state (no bootstrap), ``timeout`` marks the last step of an episode
cut by a time limit (bootstrap from V(s')). An episode still being collected has neither flag on its
latest row. Offline data goes in first; online transitions are appended after it (AWAC's recipe).

Prior data is never evicted: after the offline data is in, ``protect()`` marks those rows as a protected
prefix [0, P). Wrapping then cycles through the online region [P, capacity) only (a FIFO over online rows),
as in the AWAC paper's protocol, where every method keeps the prior data in its buffer (Sec. 5). ``order()``
lists the protected rows first, then the online rows from oldest to newest, so an online episode that
straddles the physical wrap point stays contiguous in that order.
"""

from __future__ import annotations

import numpy as np
import torch

from algorithms.base import Batch


class ReplayBuffer:
    def __init__(self, obs_dim: int, act_dim: int, capacity: int, device: str | torch.device = "cpu",
                 seed: int = 0, extras: tuple[str, ...] | dict[str, int | tuple[int]] = ()):
        if capacity <= 0:
            raise ValueError("replay buffer capacity must be positive")
        self.device = torch.device(device)
        self.capacity = int(capacity)
        f32 = dict(dtype=torch.float32, device=self.device)
        # column layout of a row: obs | act | rew | next_obs | done | the extras in order (``extras``: names of
        # scalar columns, or name -> 1 for a scalar column, (width,) for a vector one, e.g. {"next_act": (act_dim,)})
        extras = dict(extras) if isinstance(extras, dict) else dict.fromkeys(extras, 1)
        self.extra_names = tuple(extras)
        widths = (obs_dim, act_dim, 1, obs_dim, 1) + tuple(w[0] if isinstance(w, tuple) else int(w)
                                                            for w in extras.values())
        starts = [sum(widths[:i]) for i in range(len(widths))]
        # vector fields are column slices ([n, dim] views), scalar fields single columns ([n] views)
        vector = {0, 1, 3} | {5 + i for i, w in enumerate(extras.values()) if isinstance(w, tuple)}
        self._cols = [slice(a, a + w) if i in vector else a
                      for i, (a, w) in enumerate(zip(starts, widths, strict=True))]
        self._width = sum(widths)
        self._extra_start = starts[5] if self.extra_names else self._width  # the extras: columns [start, width)
        self._rows = torch.empty((capacity, self._width), **f32)
        if self.extra_names:
            self._rows[:, self._extra_start:] = 0.0
        self.obs, self.act, self.rew, self.next_obs, self.done = self._views(self._rows)[:5]
        self.timeout = torch.empty((capacity,), dtype=torch.bool, device=self.device)
        # the extra columns by name ([capacity] or [capacity, width] views), written by whoever computes them
        self.extras = {n: self._rows[:, self._cols[5 + i]] for i, n in enumerate(self.extra_names)}
        self.size = 0   # number of valid rows
        self.ptr = 0    # next row to write
        self.protected = 0  # rows [0, protected) are never overwritten (``protect``)
        self.added = 0      # rows ever appended (prior and online): checkpoints save the rows added since the last
        # positions of the prior data's demonstration rows (``sample_demo``), set by whoever loads the prior data
        self.demo_rows: torch.Tensor | None = None
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(int(seed))
        # CPU: numpy views of the same memory make the one-row writes of ``add`` ~5x cheaper
        self._np = ([t.numpy() for t in (self.obs, self.act, self.rew, self.next_obs, self.done, self.timeout)]
                    if self.device.type == "cpu" else None)

    def __len__(self) -> int:
        return self.size

    # -- writing -----------------------------------------------------------------------------
    def protect(self) -> None:
        """Make every row now in the buffer a protected prefix that wrapping never overwrites.

        Called once, after the offline data went in (rows 0..size-1 in insertion order, no wrap yet);
        later rows cycle through the remaining ``capacity - size`` slots."""
        if self.protected or self.ptr != self.size % self.capacity:
            raise RuntimeError("protect() needs a buffer filled once, in order, and not protected yet")
        self.protected = self.size
        self.ptr = self.size if self.size < self.capacity else 0

    def _ring(self) -> int:
        """Slots that wrapping cycles through (the unprotected region [protected, capacity))."""
        ring = self.capacity - self.protected
        if ring <= 0:
            raise RuntimeError(f"replay buffer full of protected rows ({self.protected}): no room for new ones")
        return ring

    def add_many(self, obs, act, rew, next_obs, done, timeout) -> None:
        """Append a block of transitions (numpy or tensors); wraps around the unprotected region when full."""
        n, ring, lo = len(obs), self._ring(), self.protected
        total = n
        if n > ring:  # keep the most recent rows only
            sl = slice(n - ring, n)
            obs, act, rew, next_obs, done, timeout = (x[sl] for x in (obs, act, rew, next_obs, done, timeout))
            n = ring
        cols = (self.obs, self.act, self.rew, self.next_obs, self.done, self.timeout)
        vals = (obs, act, rew, next_obs, done, timeout)
        first = min(n, self.capacity - self.ptr)
        for col, val in zip(cols, vals, strict=True):
            t = torch.as_tensor(np.asarray(val), device=self.device).to(col.dtype)
            col[self.ptr:self.ptr + first] = t[:first]
            if first < n:
                col[lo:lo + n - first] = t[first:]
        self.ptr = lo + (self.ptr - lo + n) % ring
        self.size = min(self.size + n, self.capacity)
        self.added += total

    def add(self, obs, act, rew: float, next_obs, done: bool, timeout: bool) -> None:
        """Append one transition (the online hot path: no Python-side allocation beyond the copy)."""
        i = self.ptr
        if self.protected == self.capacity:
            self._ring()  # raises: every row is protected
        nxt = i + 1 if i + 1 < self.capacity else self.protected  # wrap past the protected prefix
        if self._np is not None:  # CPU: write through numpy views (no tensor wrapping per field)
            o, a, r, o2, d, to = self._np
            o[i], a[i], r[i], o2[i], d[i], to[i] = obs, act, rew, next_obs, done, timeout
            self.ptr = nxt
            self.size = min(self.size + 1, self.capacity)
            self.added += 1
            return
        self.obs[i] = torch.as_tensor(obs, device=self.device)
        self.act[i] = torch.as_tensor(act, device=self.device)
        self.rew[i] = float(rew)
        self.next_obs[i] = torch.as_tensor(next_obs, device=self.device)
        self.done[i] = float(done)
        self.timeout[i] = bool(timeout)
        self.ptr = nxt
        self.size = min(self.size + 1, self.capacity)
        self.added += 1

    # -- reading -----------------------------------------------------------------------------
    def order(self) -> torch.Tensor:
        """Row indices from oldest to newest (for computations over trajectories): the protected rows,
        then the unprotected ones from the oldest surviving row (at ``ptr`` once full) to the newest."""
        if self.size < self.capacity:
            return torch.arange(self.size, device=self.device)
        lo = self.protected
        if lo >= self.capacity:
            return torch.arange(self.capacity, device=self.device)
        ring = torch.arange(self.ptr - lo, self.ptr - lo + self.capacity - lo, device=self.device)
        return torch.cat([torch.arange(lo, device=self.device), lo + ring % (self.capacity - lo)])

    def _views(self, rows: torch.Tensor) -> list[torch.Tensor]:
        """Column views (obs, act, rew, next_obs, done, extras...) of a [n, width] table."""
        return [rows[:, c] for c in self._cols]

    def sample(self, batch_size: int) -> Batch:
        """Uniform minibatch: one gather of whole rows into a new [B, width] tensor; the batch fields are
        column views of it, so a batch stays valid whatever is sampled or written afterwards."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, self.size, (batch_size,), generator=self._gen, device=self.device)
        return self._gather(idx)

    def sample_mixed(self, batch_size: int, prior_fraction: float) -> Batch:
        """``round(prior_fraction * batch_size)`` rows drawn uniformly from the prior data (the protected rows) and
        the rest from the online rows, in that order (RLPD's symmetric sampling, Cal-QL's mixing_ratio)."""
        n_online = self.size - self.protected
        if not self.protected or n_online <= 0:
            raise RuntimeError("mixed sampling needs protected prior rows and at least one online row")
        k = int(round(prior_fraction * batch_size))
        idx = torch.cat([torch.randint(0, self.protected, (k,), generator=self._gen, device=self.device),
                         self.protected + torch.randint(0, n_online, (batch_size - k,), generator=self._gen,
                                                        device=self.device)])
        return self._gather(idx)

    def sample_demo(self, batch_size: int) -> Batch:
        """Uniform minibatch from the demonstration rows (``demo_rows``) only: SAC+BC's behaviour-cloning batch,
        rlkit's ``demo_train_buffer``. Drawn with the buffer's own generator, so it is checkpointed with it."""
        if self.demo_rows is None or not len(self.demo_rows):
            raise RuntimeError("no demonstration rows to sample from (demo_rows is unset or empty)")
        k = torch.randint(0, len(self.demo_rows), (batch_size,), generator=self._gen, device=self.device)
        return self._gather(self.demo_rows[k])

    def _gather(self, idx: torch.Tensor) -> Batch:
        widths = [c.stop - c.start if isinstance(c, slice) else 1 for c in self._cols]
        f = torch.index_select(self._rows, 0, idx).split_with_sizes(widths, 1)  # one op for every column view
        cols = [t if isinstance(c, slice) else t.squeeze(1) for t, c in zip(f, self._cols, strict=True)]
        return Batch(cols[0], cols[1], cols[2], cols[3], cols[4], dict(zip(self.extra_names, cols[5:], strict=True)))

    def positions(self, first: int, n: int) -> torch.Tensor:
        """Where the rows appended as the ``first``-th .. ``first + n - 1``-th (counting from 0, as ``added``) are
        now: online rows cycle through the unprotected region. Rows overwritten since are the caller's concern."""
        k = torch.arange(first, first + n, device=self.device)
        lo = self.protected
        if lo == 0:
            return k % self.capacity
        return torch.where(k < lo, k, lo + (k - lo) % (self.capacity - lo))

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self, since: int) -> tuple[dict, dict]:
        """(state, rows): the pointers, the sampling generator's state and the extra columns of every row (AWR
        rewrites its returns and advantages in place) in ``state``; in ``rows`` the rows appended
        since ``added`` was ``since``, with their physical positions (the prior data is not included: it is
        rebuilt from the dataset, whose checksum the run's config records). Restoring a fresh buffer that
        holds the same prior rows, applying every ``rows`` chunk in order and then ``state`` reproduces this
        buffer exactly."""
        lo = self.protected
        ring = self.capacity - lo
        m = max(0, min(self.added - int(since), ring))
        if m:
            pos = lo + (self.ptr - lo - m + torch.arange(m, device=self.device)) % ring
        else:
            pos = torch.zeros(0, dtype=torch.long, device=self.device)
        rows = {"pos": pos.cpu(), "rows": self._rows[pos].cpu(), "timeout": self.timeout[pos].cpu()}
        state = {"ptr": self.ptr, "size": self.size, "protected": self.protected, "added": self.added,
                 "capacity": self.capacity, "width": self._width, "gen": self._gen.get_state(),
                 "extras": self._rows[:, self._extra_start:].cpu().clone() if self.extra_names else None}
        return state, rows

    def apply_rows(self, rows: dict) -> None:
        """Write one chunk of rows saved by ``state_dict`` back to its positions."""
        pos = rows["pos"].to(self.device)
        self._rows[pos] = rows["rows"].to(self.device)
        self.timeout[pos] = rows["timeout"].to(self.device)

    def load_state_dict(self, state: dict) -> None:
        """Restore pointers, generator and the extra columns (after ``apply_rows`` of every chunk)."""
        if (state["capacity"], state["width"], state["protected"]) != (self.capacity, self._width, self.protected):
            raise ValueError("checkpointed buffer does not match this run's buffer (capacity, width or prior rows)")
        self.ptr, self.size, self.added = int(state["ptr"]), int(state["size"]), int(state["added"])
        self._gen.set_state(state["gen"])
        extras = state.get("extras", state.get("ret_adv"))  # "ret_adv": checkpoints from before named extras
        if extras is not None:
            self._rows[:, self._extra_start:] = extras.to(self.device)

    def nbytes(self) -> int:
        return self._rows.element_size() * self._rows.nelement() + self.timeout.element_size() * self.capacity
