"""Aggregate statistics with bootstrap confidence intervals (``scipy.stats.bootstrap``).

* Interquartile mean (IQM): the mean of the middle 50% of all (task, seed) scores, as in rliable
  (Agarwal et al., 2021); ``scipy.stats.trim_mean(x, 0.25)``.
* Stratified bootstrap: each task's runs are resampled separately (each task is one of the independent
  samples handed to ``scipy.stats.bootstrap``), so every resample keeps the task mix.
* Probability of improvement P(X > Y): per task, the chance that a random run of X scores higher than
  a random run of Y (ties count one half; the Mann-Whitney U statistic over n*m), averaged over tasks.

All intervals are 95% percentile intervals from ``N_RESAMPLES`` resamples with a fixed seed, so report
numbers are reproducible. A task (stratum) with a single run cannot be resampled; it enters every
resample unchanged. If no stratum has two or more runs the interval is NaN (not a zero-width interval).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

N_RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 0

CI_DESCRIPTION = (
    f"Error bars and bands are {CONFIDENCE:.0%} percentile bootstrap confidence intervals "
    f"(scipy.stats.bootstrap, {N_RESAMPLES} resamples, seed {SEED}): over seeds for a single task, and a "
    "stratified bootstrap over seeds within tasks for aggregates across tasks."
)

Statistic = Callable[[list[np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval and the number of runs behind it."""

    point: float
    low: float
    high: float
    n: int = 0


def iqm(values) -> float:
    """Interquartile mean of the non-NaN values: ``trim_mean(x, 0.25)`` (NaN if empty)."""
    x = np.asarray(values, dtype=float).ravel()
    x = x[~np.isnan(x)]
    return float(stats.trim_mean(x, 0.25)) if x.size else float("nan")


def _iqm_stat(arrays: list[np.ndarray]) -> np.ndarray:
    return stats.trim_mean(np.concatenate(arrays, axis=-1), 0.25, axis=-1)


def _mean_stat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays, axis=-1).mean(axis=-1)


def poi_point(x, y) -> float:
    """P(X > Y) + 0.5 P(X = Y) for independent draws from the samples ``x`` and ``y``."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    return float(_pairwise_win(x, y))


def _pairwise_win(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Vectorised over leading axes: mean over all (x_i, y_j) pairs of [x_i > y_j] + 0.5 [x_i == y_j]."""
    xi, yj = x[..., :, None], y[..., None, :]
    return ((xi > yj) + 0.5 * (xi == yj)).mean(axis=(-2, -1))


def stratified_bootstrap(
    samples: Sequence[np.ndarray],
    statistic: Statistic,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point estimate and percentile CI of ``statistic`` with each sample (stratum) resampled on its own.

    ``samples[i]`` has shape ``(n_i,)`` or ``(n_i, k)`` (k curve points evaluated at once). ``statistic``
    gets the list of samples with the run axis *last* (shape ``(..., n_i)``) and reduces over it.
    Strata with a single run are held fixed (resampling one value always gives it back).
    """
    moved = [np.moveaxis(np.asarray(s, dtype=float), 0, -1) for s in samples]
    point = np.asarray(statistic(moved), dtype=float)
    free = [i for i, s in enumerate(moved) if s.shape[-1] >= 2]
    if not free:
        nan = np.full(point.shape, np.nan)
        return point, nan, nan.copy()

    def resampled_statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        it = iter(resampled)
        ref = resampled[0]
        arrays = []
        for i, s in enumerate(moved):
            if i in free:
                arrays.append(next(it))
            else:  # fixed singleton stratum: broadcast over the resample axis scipy added
                c = s.reshape(s.shape[:-1] + (1,) * (ref.ndim - s.ndim) + (1,))
                arrays.append(np.broadcast_to(c, ref.shape[:-1] + (1,)))
        return statistic(arrays)

    result = stats.bootstrap(
        [moved[i] for i in free],
        resampled_statistic,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        axis=-1,
        rng=np.random.default_rng(seed),
    )
    ci = result.confidence_interval
    return point, np.asarray(ci.low, dtype=float), np.asarray(ci.high, dtype=float)


def _estimate(samples: list[np.ndarray], statistic: Statistic) -> Estimate:
    samples = [s for s in samples if len(s)]
    n = sum(len(s) for s in samples)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    point, low, high = stratified_bootstrap(samples, statistic)
    return Estimate(float(point), float(low), float(high), n)


def _clean(values) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    return x[np.isfinite(x)]


def mean_ci(values) -> Estimate:
    """Mean of the finite values with a bootstrap CI (e.g. across the seeds of one task)."""
    return _estimate([_clean(values)], _mean_stat)


def stratified_mean_ci(values_by_task: Mapping[str, Sequence[float]]) -> Estimate:
    """Mean over all (task, seed) values with a stratified bootstrap CI (seeds resampled within each task)."""
    return _estimate([_clean(g) for g in values_by_task.values()], _mean_stat)


def iqm_ci(scores_by_task: Mapping[str, Sequence[float]] | Sequence[Sequence[float]]) -> Estimate:
    """IQM over all (task, seed) scores with a stratified bootstrap CI (tasks are the strata)."""
    groups = scores_by_task.values() if isinstance(scores_by_task, Mapping) else scores_by_task
    return _estimate([_clean(g) for g in groups], _iqm_stat)


def probability_of_improvement(
    x_by_task: Mapping[str, Sequence[float]], y_by_task: Mapping[str, Sequence[float]]
) -> Estimate:
    """P(X > Y) averaged over the tasks where both algorithms have runs, with a stratified bootstrap CI.

    Each task contributes two strata (the runs of X and of Y), all resampled independently.
    ``n`` is the number of tasks used.
    """
    tasks = [
        t for t in x_by_task if t in y_by_task and _clean(x_by_task[t]).size and _clean(y_by_task[t]).size
    ]
    if not tasks:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    samples = [arr for t in tasks for arr in (_clean(x_by_task[t]), _clean(y_by_task[t]))]

    def statistic(arrays: list[np.ndarray]) -> np.ndarray:
        wins = [_pairwise_win(arrays[2 * i], arrays[2 * i + 1]) for i in range(len(tasks))]
        return np.mean(wins, axis=0)

    point, low, high = stratified_bootstrap(samples, statistic)
    return Estimate(float(point), float(low), float(high), len(tasks))


def curve_ci(matrix: pd.DataFrame, strata: pd.Series | None = None, statistic: str = "mean") -> pd.DataFrame:
    """Statistic and CI at every grid point of a runs x grid matrix (NaN = run absent at that point).

    ``statistic`` is "mean" (CI over runs) or "iqm" (stratified by ``strata``, e.g. each run's task).
    Grid points where the same runs are present are bootstrapped together in one call, which keeps
    this fast. Returns a frame indexed by grid point with columns point, low, high, n.
    """
    stat = _mean_stat if statistic == "mean" else _iqm_stat
    strata = pd.Series("all", index=matrix.index) if strata is None else strata.reindex(matrix.index)
    out = pd.DataFrame(np.nan, index=matrix.columns, columns=["point", "low", "high", "n"])
    present = matrix.notna().to_numpy()
    if present.size == 0:
        return out
    patterns, which = np.unique(present.T, axis=0, return_inverse=True)
    for p, pattern in enumerate(patterns):
        if not pattern.any():
            continue
        cols = np.flatnonzero(which.ravel() == p)
        block = matrix.iloc[pattern, cols]
        samples = [g.to_numpy() for _, g in block.groupby(strata[pattern].to_numpy(), sort=True)]
        point, low, high = stratified_bootstrap(samples, stat)
        out.iloc[cols] = np.column_stack([point, low, high, np.full(cols.size, pattern.sum())])
    return out
