"""Put ragged curves on a common grid.

Runs differ in length (unfinished runs), in seeds, and possibly in where they were evaluated. Curves that
are averaged together are first placed on the **union grid**: every time point ``t`` at which any of the
runs being combined was evaluated. A run's value at a grid point is its most recent evaluation at or
before that point (**last observation carried forward**, LOCF). A run contributes nothing (NaN) before
its first evaluation or after its last one: values are never extrapolated, so a run that stopped early
drops out of the later points and the number of runs behind each point can shrink.

On the union grid LOCF only lags a run by less than one of its own evaluation intervals, and where all
runs share their evaluation points (the normal case) the grid is exactly those points and nothing moves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GRID_DESCRIPTION = (
    "Curves were put on the union of all evaluation points of the runs being combined: each run's value "
    "at a grid point is its most recent evaluation at or before that point (last observation carried "
    "forward), and nothing is extrapolated past a run's last evaluation, so unfinished runs drop out of "
    "later points."
)


def locf(t: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Last observation carried forward from points (t, values) onto ``grid``; NaN outside [t[0], t[-1]].

    ``t`` must be sorted ascending. Example: t=[0, 10], values=[1, 2], grid=[-5, 0, 5, 10, 15]
    gives [nan, 1, 1, 2, nan].
    """
    t = np.asarray(t, dtype=float)
    values = np.asarray(values, dtype=float)
    grid = np.asarray(grid, dtype=float)
    out = np.full(grid.shape, np.nan)
    if t.size == 0:
        return out
    idx = np.searchsorted(t, grid, side="right") - 1
    inside = (idx >= 0) & (grid <= t[-1])
    out[inside] = values[idx[inside]]
    return out


def union_grid(t: pd.Series | np.ndarray) -> np.ndarray:
    """Sorted unique time points."""
    values = np.asarray(t, dtype=float)
    return np.unique(values[~np.isnan(values)])


def curves_on_grid(
    df: pd.DataFrame, value: str, grid: np.ndarray | None = None, run_col: str = "run_id", t_col: str = "t"
) -> pd.DataFrame:
    """Wide frame (one row per run, one column per grid point) of ``value`` carried forward onto ``grid``.

    ``grid`` defaults to the union of ``df[t_col]``. Rows with a NaN ``value`` are ignored, so a run's
    curve carries its last defined value.
    """
    df = df[df[value].notna() & df[t_col].notna()]
    grid = union_grid(df[t_col]) if grid is None else np.asarray(grid, dtype=float)
    rows = {}
    for run_id, run in df.groupby(run_col, sort=True):
        run = run.sort_values(t_col)
        rows[run_id] = locf(run[t_col].to_numpy(), run[value].to_numpy(), grid)
    return pd.DataFrame.from_dict(rows, orient="index", columns=grid) if rows else pd.DataFrame(columns=grid)
