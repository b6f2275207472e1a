"""Per-run metrics of the offline-to-online transition: small pure functions on one run's arrays.

Every metric uses the *last* evaluation at the relevant point, never the best one. Scores are the
``score`` column of :func:`analysis.load.load_results` (normalized score, success rate in percent, or
return). Online arrays hold only online evaluations; the switch (end of offline training) is env step 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Drop:
    """Score lost right after the switch: ``absolute`` in score units, ``relative`` to |offline_final|."""

    absolute: float
    relative: float


@dataclass(frozen=True)
class Recovery:
    """Online environment steps until the score is back at its offline level.

    ``steps`` is 0 if no online evaluation fell below the offline level (``dropped`` False), ``inf`` if
    it fell and never came back within the data (``recovered`` False), NaN if undefined (no online
    evaluations or no offline score).
    """

    steps: float
    recovered: bool
    dropped: bool


def _sorted(x: np.ndarray | pd.Series, y: np.ndarray | pd.Series) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def offline_final(grad_steps, scores, offline_steps: int | None = None) -> float:
    """Score at the switch: the last offline evaluation.

    NaN if there is none, or if ``offline_steps`` is given and the last evaluation is before it (the
    run never reached the switch).
    """
    g, s = _sorted(grad_steps, scores)
    if g.size == 0 or (offline_steps is not None and g[-1] < offline_steps):
        return float("nan")
    return float(s[-1])


def online_final(env_steps, scores) -> float:
    """Score at the last online evaluation (NaN if the run has none)."""
    e, s = _sorted(env_steps, scores)
    return float(s[-1]) if e.size else float("nan")


def transition_drop(offline_score: float, env_steps, scores, window: float) -> Drop:
    """``offline_score`` minus the lowest score among online evaluations with ``env_step <= window``.

    Positive means the policy got worse after the switch; negative means it only improved. The relative
    drop divides by ``|offline_score|`` (NaN when that is 0). NaN if no evaluation lies in the window.
    """
    e, s = _sorted(env_steps, scores)
    in_window = s[(e > 0) & (e <= window)]
    if in_window.size == 0 or np.isnan(offline_score):
        return Drop(float("nan"), float("nan"))
    absolute = float(offline_score - np.nanmin(in_window))
    relative = absolute / abs(offline_score) if offline_score != 0 else float("nan")
    return Drop(absolute, float(relative))


def recovery_steps(offline_score: float, env_steps, scores, tolerance: float = 0.0) -> Recovery:
    """Environment steps from the switch until the score is back at ``offline_score`` after a dip.

    A dip is the first online evaluation below ``offline_score - tolerance``; the answer is the env step
    of the first evaluation after it that is back at or above that level. No dip -> 0; a dip without
    recovery in the data -> ``inf`` with ``recovered=False`` (for an unfinished run this means "not yet").
    """
    e, s = _sorted(env_steps, scores)
    if e.size == 0 or np.isnan(offline_score):
        return Recovery(float("nan"), False, False)
    level = offline_score - tolerance
    below = np.flatnonzero(s < level)
    if below.size == 0:
        return Recovery(0.0, True, False)
    back = np.flatnonzero(s[below[0] :] >= level)
    if back.size == 0:
        return Recovery(float("inf"), False, True)
    return Recovery(float(e[below[0] + back[0]]), True, True)


def normalized_auc(env_steps, scores, budget: float, start_score: float | None = None) -> float:
    """Area under the online curve over [0, budget] divided by ``budget``: the time-averaged score.

    Trapezoidal rule through ``(0, start_score)`` (the policy at the switch; pass ``offline_final``) and
    the online evaluations up to ``budget`` (interpolated at ``budget`` if an evaluation lies beyond it).
    Without ``start_score`` the area starts at the first evaluation and is divided by the span covered.
    NaN if the evaluations do not reach ``budget`` (unfinished runs cannot be compared on this).
    """
    e, s = _sorted(env_steps, scores)
    if start_score is not None:
        if np.isnan(start_score):
            return float("nan")
        e, s = np.concatenate([[0.0], e]), np.concatenate([[start_score], s])
    if e.size < 2 or e[-1] < budget or budget <= e[0]:
        return float("nan")
    keep = e < budget
    x = np.concatenate([e[keep], [budget]])
    y = np.concatenate([s[keep], [np.interp(budget, e, s)]])
    return float(np.trapezoid(y, x) / (budget - x[0]))


def steps_to_threshold(env_steps, scores, threshold: float, start_score: float | None = None) -> float:
    """Env steps of the first online evaluation with score >= ``threshold``.

    0 if ``start_score`` (the score at the switch) already meets it; ``inf`` if never reached; NaN if the
    threshold is NaN or there is nothing to look at.
    """
    e, s = _sorted(env_steps, scores)
    if np.isnan(threshold) or (e.size == 0 and start_score is None):
        return float("nan")
    if start_score is not None and start_score >= threshold:
        return 0.0
    hit = np.flatnonzero(s >= threshold)
    return float(e[hit[0]]) if hit.size else float("inf")


def transition_window(online_steps: int, eval_every: int, fraction: float = 0.2) -> float:
    """Window W for :func:`transition_drop`: ``fraction`` of the online budget, at least one evaluation."""
    return float(max(fraction * online_steps, eval_every))


def regret(success) -> float:
    """Mean failure over the online *training* episodes: the mean of 1 - success over every episode the learning
    agent played online (as CORL and Cal-QL report it for the binary tasks); NaN where no episode has a success
    value (tasks without a success notion, runs written before episodes.csv existed)."""
    s = np.asarray(success, dtype=float)
    s = s[np.isfinite(s)]
    return float(np.mean(1.0 - s)) if s.size else float("nan")


def run_metrics(
    evals: pd.DataFrame,
    runs: pd.DataFrame,
    window_fraction: float = 0.2,
    threshold_fraction: float = 0.8,
    episodes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per run with every metric above, computed on the ``score`` column.

    The threshold for :func:`steps_to_threshold` is per task: ``threshold_fraction`` times the best
    algorithm's mean ``online_final`` on that task (scale-free, so it works for returns too).
    """
    rows = []
    by_run = dict(tuple(episodes.groupby("run_id"))) if episodes is not None and len(episodes) else {}
    for run in runs.itertuples(index=False):
        ev = evals[evals["run_id"] == run.run_id]
        eps = by_run.get(run.run_id)
        off = ev[ev["phase"] == "offline"]
        on = ev[ev["phase"] == "online"]
        x, y = on["env_step"].to_numpy(), on["score"].to_numpy()
        start = offline_final(off["grad_step"], off["score"], run.offline_steps)
        window = transition_window(run.online_steps, run.eval_every, window_fraction)
        drop = transition_drop(start, x, y, window)
        rec = recovery_steps(start, x, y)
        rows.append(
            {
                "run_id": run.run_id, "algo": run.algo, "task": run.task, "seed": run.seed,
                "complete": run.complete, "offline_final": start, "drop_abs": drop.absolute,
                "drop_rel": drop.relative, "window": window, "recovery_steps": rec.steps,
                "recovered": rec.recovered, "online_final": online_final(x, y),
                "auc": normalized_auc(x, y, run.online_steps, start_score=start),
                "online_steps": run.online_steps, "online_x": x, "online_y": y,
                "regret": regret(eps["success"]) if eps is not None else float("nan"),
                "train_episodes": len(eps) if eps is not None else 0,
            }
        )  # fmt: skip
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    best = table.groupby(["task", "algo"])["online_final"].mean().groupby("task").max()
    table["threshold"] = table["task"].map(threshold_fraction * best).where(lambda t: t > 0)
    table["steps_to_threshold"] = [
        steps_to_threshold(r.online_x, r.online_y, r.threshold, start_score=r.offline_final)
        for r in table.itertuples(index=False)
    ]
    return table.drop(columns=["online_x", "online_y"])
