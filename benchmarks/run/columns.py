"""The per-row columns the harness computes for an algorithm that declares them (``Algorithm.batch_extras``).

* ``mc_return``: the Monte-Carlo return of the row's episode from the row on, as the algorithm defines it
  (``Algorithm.mc_returns``: by default the discounted return-to-go with its ``discount``; Cal-QL's on its scaled
  rewards, with JaxCQL's rule for all-failure episodes). Prior rows get theirs when the data goes into the buffer.
  An online row gets its value when its episode ends; until then it holds -inf ("no return known yet": a lower
  bound of -inf bounds nothing). JaxCQL adds a trajectory to its buffer only once it is complete, so its online
  rows always have their return; here rows are sampled from the step they are collected (the protocol's one
  update per step), which is the one difference.
* ``next_act``: the action taken at the row's next state, i.e. the next row's action while the episode goes on
  (D4RL's ``qlearning_dataset``: ``actions[i + 1]``), NaN at an episode's last row (a terminal, a time limit, the
  newest row of an episode still being collected).

Any other declared column is the algorithm's own to write (AWR's returns and advantages).

Beside the columns, ``prior_buffer`` marks the demonstration rows of an algorithm that draws a demonstration batch
(``Algorithm.demo_batch_size``), and ``minibatch`` draws every batch the harness passes to ``update``.
"""

from __future__ import annotations

import numpy as np
import torch

from algorithms.base import Batch, UserError
from benchmarks.data.buffer import ReplayBuffer

HARNESS_COLUMNS = ("mc_return", "next_act")


def prior_buffer(algo, ds, capacity: int, device="cpu", seed: int = 0) -> ReplayBuffer:
    """A replay buffer for ``algo`` (its declared extra columns) holding the dataset ``ds`` first, with the
    harness's columns of those rows filled in."""
    buffer = ReplayBuffer(ds.obs_dim, ds.act_dim, capacity, device, seed=seed, extras=widths(algo, ds.act_dim))
    buffer.add_many(ds.obs, ds.act, ds.rew, ds.next_obs, ds.done, ds.timeout)
    fill_prior(buffer, algo, ds)
    if algo.demo_batch_size():  # the demonstration rows (every prior row where the file marks none)
        rows = buffer.positions(0, len(ds))
        buffer.demo_rows = rows if ds.demo is None else rows[torch.as_tensor(ds.demo, device=buffer.device)]
        if not len(buffer.demo_rows):
            raise UserError(f"{algo.name} draws a batch of demonstrations, but dataset {ds.source} marks none of its "
                            f"{len(ds)} rows as one (its 'source' column has no 0)")
    return buffer


def minibatch(buffer, algo, batch_size: int, phase: str) -> Batch:
    """The batch of one gradient step: uniform over the buffer, or online at the algorithm's ``online_mix`` share of
    prior rows; with ``Batch.demo`` drawn after it where the algorithm declares ``demo_batch_size``."""
    mix = algo.online_mix() if phase == "online" else None
    batch = buffer.sample(batch_size) if mix is None else buffer.sample_mixed(batch_size, mix)
    n_demo = algo.demo_batch_size()
    return batch._replace(demo=buffer.sample_demo(n_demo)) if n_demo else batch


def widths(algo, act_dim: int) -> dict[str, int | tuple[int]]:
    """The buffer's extra columns for ``algo``: name -> 1 (a scalar per row) or (width,) (a vector per row)."""
    return {n: (act_dim,) if n == "next_act" else 1 for n in algo.batch_extras}


def _columns(algo, names, rew: np.ndarray, act: np.ndarray, ends: np.ndarray, complete: bool) -> dict:
    out = {}
    if "mc_return" in names:
        out["mc_return"] = algo.mc_returns(rew, ends) if complete else np.full(len(rew), -np.inf)
    if "next_act" in names:
        nxt = np.full(act.shape, np.nan, dtype=np.float32)
        goes_on = ~ends[:-1]
        nxt[:-1][goes_on] = act[1:][goes_on]
        out["next_act"] = nxt
    return out


def _write(buffer, cols: dict, pos: torch.Tensor) -> None:
    for name, values in cols.items():
        buffer.extras[name][pos] = torch.as_tensor(values, dtype=torch.float32, device=buffer.device)


def fill_prior(buffer, algo, ds) -> None:
    """The harness's columns of the prior data, rows 0 .. len(ds) - 1 of the buffer (its first rows)."""
    names = [n for n in algo.batch_extras if n in HARNESS_COLUMNS]
    if names and len(ds):
        _write(buffer, _columns(algo, names, ds.rew, ds.act, ds.episode_ends(), True), buffer.positions(0, len(ds)))


def fill_online(buffer, algo, ended_lengths: list[int], current_steps: int) -> None:
    """After a block of collection: the columns of the episodes that ended in it (their lengths, in order) and of
    the episode in progress (its ``current_steps`` rows so far), which are the newest rows of the buffer. Of an
    episode longer than the online part of the buffer only the rows still there count (a return-to-go and a next
    action depend on later rows only)."""
    names = [n for n in algo.batch_extras if n in HARNESS_COLUMNS]
    if not names:
        return
    oldest = buffer.added - (buffer.capacity - buffer.protected)  # the oldest online row still in the buffer
    end = buffer.added
    spans = [(end - current_steps, end, False)] if current_steps else []
    end -= current_steps
    for n in reversed(ended_lengths):
        spans.append((end - n, end, True))
        end -= n
    for first, stop, complete in spans:
        first = max(first, oldest)
        if first >= stop:
            continue
        pos = buffer.positions(first, stop - first)
        ends = np.zeros(stop - first, dtype=bool)
        ends[-1] = True  # an ended episode's last row; in an unfinished one the newest row has no next row yet
        cols = _columns(algo, names, buffer.rew[pos].cpu().numpy(), buffer.act[pos].cpu().numpy(), ends, complete)
        _write(buffer, cols, pos)
