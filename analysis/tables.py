"""Tables for the report: "offline → online" scores (markdown and LaTeX), per-task metrics, aggregates."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import stats
from analysis.load import BOUNDED_SOURCES, SCORE_LABELS
from analysis.style import display_name, format_steps, order_algos

MISSING = "—"
SOURCE_NOTE = {
    "normalized_score": "normalized score",
    "success_rate": "success rate × 100",
    "return_mean": "return (no normalized score or success rate)",
}


def cell_summary(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per (task, algo): mean and std over seeds of offline_final and online_final, run counts."""
    grouped = metrics.groupby(["task", "algo"])
    return pd.DataFrame(
        {
            "off_mean": grouped["offline_final"].mean(),
            "off_std": grouped["offline_final"].std(),
            "on_mean": grouped["online_final"].mean(),
            "on_std": grouped["online_final"].std(),
            "n": grouped.size(),
            "n_incomplete": grouped["complete"].apply(lambda c: int((~c.astype(bool)).sum())),
        }
    )


def _pm(mean: float, std: float, pm: str, missing: str = MISSING) -> str:
    if np.isnan(mean):
        return missing
    return f"{mean:.1f}" if np.isnan(std) else f"{mean:.1f}{pm}{std:.1f}"


def offline_online_cells(metrics: pd.DataFrame, latex: bool = False) -> pd.DataFrame:
    """Task x algorithm frame of "45.2 ± 3.1 → 80.3 ± 5.0" strings ("—" where an algorithm did not run).

    The best final online mean of each task is bold; "(n=k)" marks cells with fewer seeds than the most
    any cell has; "†" marks cells that include unfinished runs.
    """
    summary = cell_summary(metrics)
    tasks = sorted(metrics["task"].unique())
    algos = order_algos(metrics["algo"].unique())
    pm, arrow = (r" $\pm$ ", r" $\rightarrow$ ") if latex else (" ± ", " → ")
    missing = "--" if latex else MISSING
    full_n = int(summary["n"].max()) if len(summary) else 0
    best = summary["on_mean"].groupby("task").max()
    cells = pd.DataFrame(missing, index=tasks, columns=algos)
    for (task, algo), row in summary.iterrows():
        online = _pm(row.on_mean, row.on_std, pm, missing)
        if not np.isnan(row.on_mean) and row.on_mean == best[task]:
            online = rf"\textbf{{{online}}}" if latex else f"**{online}**"
        text = _pm(row.off_mean, row.off_std, pm, missing) + arrow + online
        if row.n < full_n:
            text += f" (n={int(row.n)})"
        if row.n_incomplete:
            text += r"$^\dagger$" if latex else " †"
        cells.loc[task, algo] = text
    return cells


def table_caption(sources: dict[str, str], latex: bool = False) -> str:
    """Caption saying what the numbers are and which score each task uses."""
    arrow, pm, times, dagger = (
        (r"$\rightarrow$", r"$\pm$", r"$\times$", r"$^\dagger$") if latex else ("→", "±", "×", "†")
    )
    esc = _tex if latex else str
    per_task = "; ".join(
        f"{esc(t)}: {esc(SOURCE_NOTE[s]).replace('×', times)}" for t, s in sorted(sources.items())
    )
    return (
        f"Score at the end of offline training {arrow} score at the end of online fine-tuning (last "
        f"evaluation, never the best), mean {pm} standard deviation over seeds. Score = "
        f"{esc('normalized_score')} where defined, else {esc('success_rate')} {times} 100, else "
        f"{esc('return_mean')}; per task: {per_task}. Bold: best final online mean per task. "
        f"(n=k): fewer seeds than the other cells; {dagger}: includes unfinished runs."
    )


def _tex(text: str) -> str:
    """Escape LaTeX special characters in a plain label."""
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(a, b)
    return text


def to_markdown(cells: pd.DataFrame, first_header: str = "Task", headers: list[str] | None = None) -> str:
    """Plain GitHub-flavoured markdown table (no extra dependency)."""
    headers = headers or [display_name(c) for c in cells.columns]
    lines = [
        "| " + " | ".join([first_header, *headers]) + " |",
        "|" + "---|" * (len(headers) + 1),
    ]
    for index, row in cells.iterrows():
        lines.append("| " + " | ".join([str(index), *map(str, row.tolist())]) + " |")
    return "\n".join(lines)


def offline_online_markdown(metrics: pd.DataFrame, sources: dict[str, str]) -> str:
    """The offline → online table with its caption, in markdown."""
    return f"**Table.** {table_caption(sources)}\n\n{to_markdown(offline_online_cells(metrics))}\n"


def offline_online_latex(metrics: pd.DataFrame, sources: dict[str, str]) -> str:
    """The offline → online table as a LaTeX ``table`` (booktabs)."""
    cells = offline_online_cells(metrics, latex=True)
    header = " & ".join(["Task", *[_tex(display_name(a)) for a in cells.columns]]) + r" \\"
    body = [" & ".join([_tex(str(t)), *row.tolist()]) + r" \\" for t, row in cells.iterrows()]
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            r"\begin{tabular}{l" + "c" * len(cells.columns) + "}",
            r"\toprule",
            header,
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            r"\caption{" + table_caption(sources, latex=True) + "}",
            r"\label{tab:offline-online}",
            r"\end{table}",
            "",
        ]
    )


def _steps_summary(values: pd.Series) -> str:
    """Median env steps over seeds (inf = never) and how many seeds got there."""
    v = values.to_numpy(dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return MISSING
    return f"{format_steps(float(np.median(v)))} ({int(np.isfinite(v).sum())}/{v.size})"


def metrics_markdown(metrics: pd.DataFrame) -> str:
    """Per (task, algorithm) summary of the transition and data-efficiency metrics."""
    rows = []
    rank = {a: i for i, a in enumerate(order_algos(metrics["algo"].unique()))}
    cells = sorted(metrics.groupby(["task", "algo"]), key=lambda kv: (kv[0][0], rank[kv[0][1]]))
    for (task, algo), g in cells:
        rows.append(
            {
                "Task": task, "Algorithm": display_name(algo), "seeds": len(g),
                "offline final": _pm(g["offline_final"].mean(), g["offline_final"].std(), " ± "),
                "drop": _pm(g["drop_abs"].mean(), g["drop_abs"].std(), " ± "),
                "drop (%)": _pm(100 * g["drop_rel"].mean(), 100 * g["drop_rel"].std(), " ± "),
                "recovery steps": _steps_summary(g["recovery_steps"]),
                "online final": _pm(g["online_final"].mean(), g["online_final"].std(), " ± "),
                "norm. AUC": _pm(g["auc"].mean(), g["auc"].std(), " ± "),
                "steps to threshold": _steps_summary(g["steps_to_threshold"]),
                "threshold": f"{g['threshold'].iloc[0]:.1f}" if g["threshold"].notna().any() else MISSING,
                "regret": _regret_cell(g["regret"]) if "regret" in g else MISSING,
            }
        )  # fmt: skip
    if not rows:
        return "_no runs_\n"
    return to_markdown(pd.DataFrame(rows).set_index("Task"), "Task", list(rows[0])[1:]) + "\n"


def _regret_cell(values: pd.Series) -> str:
    v = values.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return MISSING
    return f"{v.mean():.2f}" if v.size == 1 else f"{v.mean():.2f} ± {v.std(ddof=1):.2f}"


def bounded_metrics(metrics: pd.DataFrame, sources: dict[str, str]) -> pd.DataFrame:
    """Runs of tasks whose score is on the common 0-100 scale (pooled in aggregates)."""
    bounded = [t for t, s in sources.items() if s in BOUNDED_SOURCES]
    return metrics[metrics["task"].isin(bounded)]


def aggregate_estimates(metrics: pd.DataFrame, sources: dict[str, str]) -> pd.DataFrame:
    """IQM and stratified-bootstrap CI per algorithm of offline_final, online_final, auc (0-100 tasks)."""
    data = bounded_metrics(metrics, sources)
    rows = []
    for algo in order_algos(data["algo"].unique()):
        mine = data[data["algo"] == algo]
        for metric in ("offline_final", "online_final", "auc"):
            groups = {t: g[metric].to_numpy() for t, g in mine.groupby("task")}
            est = stats.iqm_ci(groups)
            tasks = sum(np.isfinite(v).any() for v in groups.values())
            rows.append(
                {
                    "algo": algo,
                    "metric": metric,
                    "point": est.point,
                    "low": est.low,
                    "high": est.high,
                    "runs": est.n,
                    "tasks": tasks,
                }
            )
    return pd.DataFrame(rows, columns=["algo", "metric", "point", "low", "high", "runs", "tasks"])


def improvement_estimates(
    metrics: pd.DataFrame, sources: dict[str, str], reference: str = "awac", metric: str = "online_final"
) -> pd.DataFrame:
    """P(reference > baseline) on ``metric`` for every other algorithm, averaged over shared 0-100 tasks."""
    data = bounded_metrics(metrics, sources)
    columns = ["baseline", "point", "low", "high", "tasks"]
    if reference not in set(data["algo"]):
        return pd.DataFrame(columns=columns)
    by_task = {
        algo: {t: g[metric].to_numpy() for t, g in data[data["algo"] == algo].groupby("task")}
        for algo in data["algo"].unique()
    }
    rows = []
    for baseline in order_algos(data["algo"].unique()):
        if baseline == reference:
            continue
        est = stats.probability_of_improvement(by_task[reference], by_task[baseline])
        rows.append(
            {"baseline": baseline, "point": est.point, "low": est.low, "high": est.high, "tasks": est.n}
        )
    return pd.DataFrame(rows, columns=columns)


def _ci(point: float, low: float, high: float, digits: int = 1) -> str:
    if np.isnan(point):
        return MISSING
    if np.isnan(low):
        return f"{point:.{digits}f} (no CI)"
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def aggregate_markdown(estimates: pd.DataFrame) -> str:
    """IQM table: one row per algorithm, one column per metric, "point [low, high]"."""
    if estimates.empty:
        return "_no task with a 0-100 score; aggregates skipped_\n"
    labels = {"offline_final": "offline final", "online_final": "online final", "auc": "norm. AUC"}
    table = estimates.assign(text=[_ci(r.point, r.low, r.high) for r in estimates.itertuples()])
    wide = table.pivot(index="algo", columns="metric", values="text")[list(labels)].rename(columns=labels)
    counts = estimates.groupby("algo")[["runs", "tasks"]].max()
    wide["runs / tasks"] = [f"{counts.loc[a, 'runs']} / {counts.loc[a, 'tasks']}" for a in wide.index]
    wide = wide.loc[order_algos(wide.index)]
    wide.index = [display_name(a) for a in wide.index]
    return to_markdown(wide, "Algorithm", list(wide.columns)) + "\n"


def improvement_markdown(poi: pd.DataFrame, reference: str = "awac") -> str:
    """Probability-of-improvement table: one row per baseline."""
    if poi.empty:
        return f"_{display_name(reference)} has no runs on a 0-100 task; skipped_\n"
    rows = pd.DataFrame(
        {
            f"P({display_name(reference)} > baseline)": [
                _ci(r.point, r.low, r.high, 2) for r in poi.itertuples()
            ],
            "shared tasks": poi["tasks"].tolist(),
        },
        index=[display_name(b) for b in poi["baseline"]],
    )
    return to_markdown(rows, "Baseline", list(rows.columns)) + "\n"


def score_source_lines(sources: dict[str, str]) -> list[str]:
    """One markdown bullet per task: which column its score comes from."""
    return [f"  - `{task}`: {SCORE_LABELS[s]} (`{s}`)" for task, s in sorted(sources.items())]
