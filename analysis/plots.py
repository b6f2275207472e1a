"""Report figures (seaborn theme, matplotlib Agg backend), each saved as PNG and PDF.

Every figure uses :func:`analysis.style.algo_palette`, so an algorithm has the same colour everywhere,
and copes with missing data: an algorithm absent from a task, missing seeds, runs with only offline rows.

The learning-curve axes put the offline phase at negative x: an offline evaluation at gradient step g of
a run with offline budget B sits at ``(g - B) * scale``, so the switch is at x = 0 and online
environment steps continue at positive x. ``scale`` makes the offline segment ``OFFLINE_WIDTH`` of the
online span wide; its ticks are labelled in gradient steps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, Locator, MaxNLocator

from analysis import grid as grid_mod
from analysis import stats
from analysis.load import BOUNDED_SOURCES, SCORE_LABELS
from analysis.style import display_name, format_steps, order_algos, theme

NEVER_LEVEL = 1.12  # "never recovered" is drawn at this multiple of the online budget
OFFLINE_WIDTH = 0.35  # offline segment width as a fraction of the online span
OFFLINE_SHADE = "#eeeeee"
SCORE_MARGIN = 5.0  # points below 0 and above 100 that a 0-100 score's axis always shows (and +-5 for drops)
# an interval panel's names are set at an angle when (longest name) x (number of names) exceeds this many characters
# (each name gets a slot as wide as the panel / the number of names; 7 names with "SACfD-pretrain" overlap)
CROWDED_LABEL_CHARS = 60
FACET_W, FACET_H = 4.3, 3.3
MAX_COLS = 3
# Log y-axis when values span more than this many times their median: Q blow-ups (SACfD) need it early;
# log-likelihoods stay linear unless a collapse would flatten every other curve.
WIDE_Q, WIDE_LOGLIK = 30, 1000
DPI = 150
STEP_AXIS_LABEL = "offline: gradient steps  |  online: environment steps"

Palette = dict[str, tuple[float, float, float]]
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class StepAxis:
    """How a task's signed time t maps to plot x (see the module docstring)."""

    offline_budget: int
    online_budget: int
    scale: float

    def x(self, t) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        return np.where(t < 0, t * self.scale, t)

    @property
    def x_min(self) -> float:
        return -self.offline_budget * self.scale


def step_axis(task_runs: pd.DataFrame) -> StepAxis:
    """Axis for one task from its runs' budgets.

    If runs disagree on the offline budget, ticks are labelled for the largest one; every run is still
    aligned at its own switch (x = 0).
    """
    offline = int(task_runs["offline_steps"].max())
    online = int(task_runs["online_steps"].max())
    width = OFFLINE_WIDTH * online if online > 0 else float(offline)
    scale = width / offline if offline > 0 else 1.0
    return StepAxis(offline, online, scale)


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write ``name.png`` and ``name.pdf`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=DPI)
    fig.set_layout_engine("none")  # keep the layout just computed; the PDF does not need it again
    fig.savefig(paths[1], metadata={"CreationDate": None})  # reproducible bytes: no timestamp
    return paths


def new_figure(rows: int, cols: int, figsize: tuple[float, float], **subplots) -> tuple[Figure, np.ndarray]:
    """A figure on the Agg canvas (no pyplot, no display) with a ``rows x cols`` array of axes."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, **subplots)
    return fig, axes


def themed(plot: Callable[P, R]) -> Callable[P, R]:
    """Run a plotting function inside the shared seaborn theme, restoring rcParams afterwards."""

    @functools.wraps(plot)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with theme():
            return plot(*args, **kwargs)

    return wrapper


def facet_columns(n: int) -> int:
    """Columns for ``n`` facets: 2 to MAX_COLS, as few empty panels as possible, then the fewest rows
    (4 tasks: 2 x 2, not 3 + 1 with two empty panels; 5: 3 + 2; 6: 3 x 2; 7: 2 x 4)."""
    if n <= 2:
        return max(1, n)
    return min(range(2, min(MAX_COLS, n) + 1), key=lambda c: ((-n) % c, -(-n // c)))


def _facets(n: int) -> tuple[Figure, np.ndarray]:
    """Figure with ``n`` facets in at most MAX_COLS columns (``facet_columns``)."""
    cols = facet_columns(n)
    rows = max(1, -(-n // cols))
    return new_figure(rows, cols, (FACET_W * cols, FACET_H * rows + 0.6))


def _paired_facets(n: int) -> tuple[Figure, list[tuple[Axes, Axes]]]:
    """Figure with ``n`` facets of two stacked axes each (top, bottom), at most MAX_COLS facets a row."""
    cols = facet_columns(n)
    groups = max(1, -(-n // cols))
    fig, axes = new_figure(2 * groups, cols, (FACET_W * cols, 2 * FACET_H * groups + 0.6))
    pairs = [
        (axes[2 * (k // cols), k % cols], axes[2 * (k // cols) + 1, k % cols]) for k in range(groups * cols)
    ]
    for top, bottom in pairs[n:]:
        top.set_visible(False)
        bottom.set_visible(False)
    return fig, pairs[:n]


def _hide_unused(axes: np.ndarray, used: int) -> None:
    for ax in axes.ravel()[used:]:
        ax.set_visible(False)


def _legend(fig: Figure, algos: list[str], palette: Palette, extra: list[Line2D] | None = None) -> None:
    handles = [Line2D([], [], color=palette[a], lw=2.5, label=display_name(a)) for a in algos]
    handles += extra or []
    if handles:
        # as many columns as fit the figure's width (about 1.3 inch per entry), so no label is clipped
        ncol = max(1, min(len(handles), 8, int(fig.get_figwidth() / 1.3)))
        fig.legend(handles=handles, loc="outside upper center", ncol=ncol, frameon=False)


def _no_data(ax: Axes, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="grey")


def _headroom(ax: Axes, fraction: float = 0.1) -> None:
    """Extend the top of the y-range so the in-axes "offline" label sits above the data."""
    low, high = ax.get_ylim()
    if ax.get_yscale() == "linear":
        ax.set_ylim(low, high + fraction * (high - low))
    elif ax.get_yscale() == "log" and low > 0:
        ax.set_ylim(low, high * (high / low) ** fraction)


def _style_step_axis(ax: Axes, axis: StepAxis) -> None:
    """Shade the offline segment, mark the switch and label ticks in grad steps (x<0) / env steps (x>=0)."""
    x_max = max(axis.online_budget, 1)
    ax.set_xlim(axis.x_min, x_max * 1.02)
    _headroom(ax)
    if axis.offline_budget > 0:
        ax.axvspan(axis.x_min, 0, color=OFFLINE_SHADE, zorder=0, lw=0)
        ax.text(
            0.01,
            0.98,
            "offline",
            transform=ax.transAxes,
            ha="left",
            va="top",
            fontsize=8,
            color="dimgrey",
            style="italic",
        )
    ax.axvline(0, color="black", ls="--", lw=1, zorder=1)

    online_ticks = [v for v in MaxNLocator(nbins=4).tick_values(0, x_max) if 0 < v <= x_max]
    min_gap = 0.15 * (x_max - axis.x_min)  # keep offline tick labels clear of the bold "switch" label
    offline_grads = [
        g for g in MaxNLocator(nbins=2).tick_values(0, axis.offline_budget)
        if 0 <= g < axis.offline_budget and (axis.offline_budget - g) * axis.scale >= min_gap
    ]
    ticks = [(g - axis.offline_budget) * axis.scale for g in offline_grads] + [0.0] + online_ticks
    labels = [format_steps(g) for g in offline_grads] + ["switch"] + [format_steps(v) for v in online_ticks]
    tick_objects = ax.set_xticks(ticks, labels)
    for tick in tick_objects[: len(offline_grads)]:
        tick.label1.set_color("dimgrey")
        tick.label1.set_style("italic")
    tick_objects[len(offline_grads)].label1.set_fontweight("bold")


def _band(ax: Axes, x: np.ndarray, ci: pd.DataFrame, colour, label: str | None = None, **line) -> None:
    marker = "o" if len(x) == 1 else None  # a single evaluation would otherwise be invisible
    ax.plot(x, ci["point"], color=colour, lw=1.8, label=label, marker=marker, **line)
    ax.fill_between(x, ci["low"], ci["high"], color=colour, alpha=0.2, lw=0)


# ---------------------------------------------------------------------------------------------------------
# 1. Learning curves per task


@themed
def plot_learning_curves(
    evals: pd.DataFrame, runs: pd.DataFrame, palette: Palette, out_dir: Path
) -> list[Path]:
    """Score against steps per task: mean and bootstrap 95% CI over seeds, one line per algorithm."""
    tasks = sorted(runs["task"].unique())
    fig, axes = _facets(len(tasks))
    for ax, task in zip(axes.ravel(), tasks, strict=False):
        task_evals = evals[evals["task"] == task]
        axis = step_axis(runs[runs["task"] == task])
        task_grid = grid_mod.union_grid(task_evals["t"])
        for algo in order_algos(task_evals["algo"].unique()):
            matrix = grid_mod.curves_on_grid(task_evals[task_evals["algo"] == algo], "score", task_grid)
            if matrix.empty:
                continue
            ci = stats.curve_ci(matrix).dropna(subset=["point"])
            _band(ax, axis.x(ci.index.to_numpy()), ci, palette[algo])
        if task_evals.empty:
            _no_data(ax)
        source = task_evals["score_source"].iloc[0] if len(task_evals) else "return_mean"
        if source in BOUNDED_SOURCES:  # the whole 0-100 range (or more), also where every curve sits at 0
            low, high = ax.get_ylim()
            ax.set_ylim(min(low, -SCORE_MARGIN), max(high, 100 + SCORE_MARGIN))
        _style_step_axis(ax, axis)
        ax.set_title(task)
        ax.set_ylabel(SCORE_LABELS[source])
        ax.set_xlabel(STEP_AXIS_LABEL, fontsize=8)
    _hide_unused(axes, len(tasks))
    _legend(fig, order_algos(evals["algo"].unique()), palette)
    return save(fig, out_dir, "learning_curves")


# ---------------------------------------------------------------------------------------------------------
# 2. The transition: drop and recovery


def _interval_panel(
    ax: Axes, data: pd.DataFrame, column: str, algos: list[str], palette: Palette, cap: float | None = None
) -> None:
    """Seeds as dots, mean and bootstrap 95% CI as a bar, one slot per algorithm.

    With ``cap`` (recovery steps: the online budget), ``inf`` ("never") is drawn with an x marker on a
    "never" row above the budget and counted as ``cap`` in the mean, which is then a lower bound.
    """
    rng = np.random.default_rng(0)
    for i, algo in enumerate(algos):
        values = data.loc[data["algo"] == algo, column].to_numpy(dtype=float)
        values = values[~np.isnan(values)]
        if values.size == 0:
            ax.text(i, 0.5, "n/a", transform=ax.get_xaxis_transform(), ha="center", color="grey", fontsize=8)
            continue
        never = np.isinf(values)
        counted = np.where(never, cap, values) if cap is not None else values
        jitter = rng.uniform(-0.15, 0.15, size=values.size)
        ax.scatter(i + jitter[~never], values[~never], s=28, color=palette[algo], alpha=0.75, lw=0, zorder=5)
        if never.any():
            y = np.full(int(never.sum()), NEVER_LEVEL * cap)
            ax.scatter(i + jitter[never], y, s=40, marker="x", color=palette[algo], lw=1.8, zorder=5)
        est = stats.mean_ci(counted)
        ax.plot([i - 0.28, i + 0.28], [est.point] * 2, color=palette[algo], lw=2, zorder=3)
        if not np.isnan(est.low):
            ax.errorbar(
                i,
                est.point,
                yerr=[[est.point - est.low], [est.high - est.point]],
                color="black",
                lw=1.2,
                capsize=4,
                zorder=4,
            )
    names = [display_name(a) for a in algos]
    crowded = max(map(len, names), default=0) * len(names) > CROWDED_LABEL_CHARS  # labels would run into each other
    ax.set_xticks(range(len(algos)), names, rotation=30 if crowded else 0, ha="right" if crowded else "center",
                  rotation_mode="anchor")
    ax.set_xlim(-0.6, len(algos) - 0.4)


@themed
def plot_transition(metrics: pd.DataFrame, runs: pd.DataFrame, palette: Palette, out_dir: Path) -> list[Path]:
    """Per task: the drop after the switch (top) and env steps to recover the offline score (bottom)."""
    tasks = sorted(runs["task"].unique())
    fig, pairs = _paired_facets(len(tasks))
    for task, (top, bottom) in zip(tasks, pairs, strict=True):
        data = metrics[metrics["task"] == task]
        algos = order_algos(data["algo"].unique())
        budget = max(float(runs.loc[runs["task"] == task, "online_steps"].max()), 1.0)
        window = data["window"].max() if len(data) else float("nan")
        _interval_panel(top, data, "drop_abs", algos, palette)
        low, high = top.get_ylim()  # at least +-SCORE_MARGIN points: an all-zero panel is not scaled to noise
        top.set_ylim(min(low, -SCORE_MARGIN), max(high, SCORE_MARGIN))
        top.axhline(0, color="black", lw=0.8)
        top.set_title(task)
        top.set_ylabel(f"drop (score, first {format_steps(window)} env steps)", fontsize=8)
        _interval_panel(bottom, data, "recovery_steps", algos, palette, cap=budget)
        bottom.axhline(budget, color="grey", ls=":", lw=1)
        bottom.set_ylim(-0.05 * budget, budget * (NEVER_LEVEL + 0.08))
        ticks = [v for v in MaxNLocator(nbins=4).tick_values(0, budget) if 0 <= v <= budget]
        bottom.set_yticks([*ticks, NEVER_LEVEL * budget], [format_steps(v) for v in ticks] + ["never"])
        bottom.set_ylabel("env steps to recover offline score", fontsize=8)
        if data.empty:
            _no_data(top)
            _no_data(bottom)
    fig.suptitle("Transition: mean and 95% CI over seeds", fontsize=10)
    return save(fig, out_dir, "transition")


# ---------------------------------------------------------------------------------------------------------
# 3. Aggregate data efficiency


def bounded_tasks(evals: pd.DataFrame) -> list[str]:
    """The tasks with a 0-100 score (sorted): the only ones an aggregate pools."""
    return sorted(evals.loc[evals["score_source"].isin(BOUNDED_SOURCES), "task"].unique())


def shared_tasks(evals: pd.DataFrame, algos: list[str]) -> list[str]:
    """The tasks with a 0-100 score on which every one of ``algos`` has evaluations (sorted): the tasks an
    aggregate can pool without comparing algorithms over different task sets (a grid still running)."""
    bounded = evals[evals["score_source"].isin(BOUNDED_SOURCES)]
    per_algo = [set(bounded.loc[bounded["algo"] == a, "task"]) for a in algos]
    per_algo = [tasks for tasks in per_algo if tasks]
    return sorted(set.intersection(*per_algo)) if per_algo else []


def aggregate_curves(evals: pd.DataFrame, algos: list[str]) -> dict[str, pd.DataFrame]:
    """IQM (stratified bootstrap CI over tasks) of the online score per algorithm on one union grid.

    Only the tasks with a 0-100 score that every algorithm ran are pooled (``shared_tasks``); the switch
    evaluation is the point at env step 0.
    """
    online = evals[(evals["t"] >= 0) & evals["task"].isin(shared_tasks(evals, algos))]
    common = grid_mod.union_grid(online["t"])
    curves = {}
    for algo in algos:
        rows = online[online["algo"] == algo]
        matrix = grid_mod.curves_on_grid(rows, "score", common)
        if matrix.empty:
            continue
        task_of = rows.groupby("run_id")["task"].first()
        curves[algo] = stats.curve_ci(matrix, strata=task_of, statistic="iqm").dropna(subset=["point"])
    return curves


@themed
def plot_aggregate(
    evals: pd.DataFrame, poi: pd.DataFrame, palette: Palette, out_dir: Path, reference: str = "awac"
) -> list[Path]:
    """Left: IQM score against env steps with CI bands. Right: P(reference > baseline) with CIs."""
    algos = order_algos(evals["algo"].unique())
    fig, axes = new_figure(1, 2, (2 * FACET_W + 0.8, FACET_H + 0.6), width_ratios=[1.5, 1])
    ax, ax_poi = axes[0]
    curves = aggregate_curves(evals, algos)
    for algo, ci in curves.items():
        _band(ax, ci.index.to_numpy(), ci, palette[algo])
    pooled, ran = shared_tasks(evals, algos), len(bounded_tasks(evals))
    if not curves:
        _no_data(ax, "no task with a 0-100 score" if not ran else "no 0-100 task that every algorithm ran")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_steps(v)))
    ax.set_xlim(left=0)
    ax.set_xlabel("online environment steps (0 = switch)")
    ax.set_ylabel("IQM score (0-100)")
    ax.set_title(f"Aggregate over {len(pooled)} tasks" if len(pooled) == ran else
                 f"Aggregate over the {len(pooled)} of {ran} tasks every algorithm ran", fontsize=10)

    shown = poi.dropna(subset=["point"]) if len(poi) else poi
    for i, row in enumerate(shown.itertuples(index=False)):
        colour = palette.get(row.baseline, "grey")
        xerr = None if np.isnan(row.low) else [[row.point - row.low], [row.high - row.point]]
        ax_poi.errorbar(row.point, i, xerr=xerr, fmt="o", color=colour, capsize=4, lw=2)
    ax_poi.axvline(0.5, color="grey", ls="--", lw=1)
    ax_poi.set_yticks(range(len(shown)), [display_name(b) for b in shown["baseline"]] if len(shown) else [])
    ax_poi.set_ylim(-0.6, max(len(shown), 1) - 0.4)
    ax_poi.invert_yaxis()
    ax_poi.set_xlim(-0.03, 1.03)
    ax_poi.set_xlabel(f"P({display_name(reference)} > baseline), final online score")
    ax_poi.set_title("Probability of improvement")
    if shown.empty:
        _no_data(ax_poi, f"needs {display_name(reference)} and a baseline\nwith online runs on a 0-100 task")
    _legend(fig, list(curves), palette)
    return save(fig, out_dir, "aggregate")


# ---------------------------------------------------------------------------------------------------------
# 4. The AWAC paper's analysis figure: offline log-likelihood and Q vs Monte-Carlo return


def _log_if_wide(ax: Axes, values: np.ndarray, wide: float) -> None:
    """Log y-scale when values span more than ``wide`` times their median (a Q blow-up).

    Positive values get a log scale; values of both signs a symmetric log scale, linear around 0.
    """
    v = values[np.isfinite(values)]
    a = np.abs(v)
    if not a.size or a.max() == 0 or a.max() / max(np.median(a), 1e-9) <= wide:
        return
    if (v > 0).all():
        ax.set_yscale("log")
    else:
        ax.set_yscale("symlog", linthresh=max(float(np.percentile(a[a > 0], 10)), 1e-3))
        # one label per decade floods the axis when a policy's log-likelihood collapses to ~-1e16 (BEAR on
        # pen-binary): at most ~7 labels, every few decades, none on top of another where the linear part
        # around 0 and the other sign's decades are squeezed together
        locator = ax.yaxis.get_major_locator()
        locator.set_params(numticks=7)
        ax.yaxis.set_major_locator(_SpacedLocator(locator))


class _SpacedLocator(Locator):
    """Another locator's ticks, dropping any closer than ``min_gap`` (a fraction of the axis) to the one below."""

    def __init__(self, base: Locator, min_gap: float = 0.07) -> None:
        self.base, self.min_gap = base, min_gap

    def set_axis(self, axis) -> None:  # noqa: ANN001 (matplotlib's Axis)
        super().set_axis(axis)
        self.base.set_axis(axis)

    def __call__(self) -> list[float]:
        lo, hi = sorted(self.axis.get_view_interval())
        return self.tick_values(lo, hi)

    def tick_values(self, vmin: float, vmax: float) -> list[float]:
        ticks = sorted(t for t in self.base.tick_values(vmin, vmax) if vmin <= t <= vmax)
        scale = self.axis.get_transform() if self.axis is not None else None
        if scale is None or len(ticks) < 2:
            return ticks
        lo, hi = scale.transform(np.array([vmin, vmax], dtype=float))
        pos = (scale.transform(np.asarray(ticks, dtype=float)) - lo) / max(hi - lo, 1e-12)
        kept, last = [], -np.inf
        for t, p in zip(ticks, pos, strict=True):
            if p - last >= self.min_gap:
                kept.append(t)
                last = p
        return kept


@themed
def plot_policy_analysis(
    train: pd.DataFrame, runs: pd.DataFrame, palette: Palette, out_dir: Path
) -> list[Path]:
    """Top: mean log-likelihood of offline data under each policy. Bottom: Q estimate vs MC return."""
    tasks = sorted(runs["task"].unique())
    fig, pairs = _paired_facets(len(tasks))
    for task, (ax_ll, ax_q) in zip(tasks, pairs, strict=True):
        rows = train[(train["task"] == task) & train["t"].notna()]
        axis = step_axis(runs[runs["task"] == task])
        plotted_ll, plotted_q = [], []
        for algo in order_algos(rows["algo"].unique()):
            mine = rows[rows["algo"] == algo]
            ll = grid_mod.curves_on_grid(mine[mine["metric"] == "offline_loglik"], "value")
            if not ll.empty:
                ci = stats.curve_ci(ll).dropna(subset=["point"])
                _band(ax_ll, axis.x(ci.index.to_numpy()), ci, palette[algo])
                plotted_ll.append(ci["point"].to_numpy())
            for metric, ls in (("q_estimate", "-"), ("mc_return", "--")):
                m = grid_mod.curves_on_grid(mine[mine["metric"] == metric], "value")
                if m.empty:
                    continue
                ci = stats.curve_ci(m).dropna(subset=["point"])
                ax_q.plot(axis.x(ci.index.to_numpy()), ci["point"], color=palette[algo], ls=ls, lw=1.8)
                if metric == "q_estimate":
                    ax_q.fill_between(
                        axis.x(ci.index.to_numpy()),
                        ci["low"],
                        ci["high"],
                        color=palette[algo],
                        alpha=0.15,
                        lw=0,
                    )
                plotted_q.append(ci["point"].to_numpy())
        for ax, plotted, wide in ((ax_ll, plotted_ll, WIDE_LOGLIK), (ax_q, plotted_q, WIDE_Q)):
            if plotted:
                _log_if_wide(ax, np.concatenate(plotted), wide)
            else:
                _no_data(ax, "not logged")
            _style_step_axis(ax, axis)
        ax_ll.tick_params(labelbottom=False)  # same x-axis as the panel below
        ax_ll.set_title(task)
        ax_ll.set_ylabel("log-likelihood of offline data")
        ax_q.set_ylabel("Q estimate (solid) / MC return (dashed)", fontsize=8)
        ax_q.set_xlabel(STEP_AXIS_LABEL, fontsize=8)
    extra = [
        Line2D([], [], color="black", ls="-", label="Q estimate"),
        Line2D([], [], color="black", ls="--", label="MC return"),
    ]
    _legend(fig, order_algos(train["algo"].unique()) if len(train) else [], palette, extra)
    return save(fig, out_dir, "policy_analysis")
