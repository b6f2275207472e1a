"""Regenerate every figure and ``report.md`` of a results directory from stored results alone.

Usage: ``make_report("results/quick")`` or ``python -m analysis.report results/quick``; the CLI wires it
to ``awac-bench plots DIR``. Nothing is trained; the bootstrap uses a fixed seed, so numbers reproduce.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

from analysis import fidelity, plots, tables
from analysis.grid import GRID_DESCRIPTION
from analysis.load import Results, load_results
from analysis.metrics import run_metrics
from analysis.stats import CI_DESCRIPTION
from analysis.style import algo_palette, display_name, order_algos
from benchmarks.common.provenance import provenance_lines, stale_datasets, summarize

REFERENCE = "awac"
WINDOW_FRACTION = 0.2
THRESHOLD_FRACTION = 0.8

FIGURES = {
    "learning_curves": (
        "Learning curves per task: the offline phase at negative x (gradient steps, shaded), the switch at "
        "0, online environment steps after it; mean and 95% bootstrap CI over seeds."
    ),
    "transition": (
        "The transition per task: score drop in the first online steps (top) and environment steps until "
        "the offline score is regained (bottom); dots are seeds, bars mean and 95% bootstrap CI; x on the "
        "'never' row marks a seed that never recovered, counted at the online budget in the mean (a lower "
        "bound)."
    ),
    "aggregate": (
        "Aggregate data efficiency: IQM score over tasks and seeds against online environment steps with "
        "stratified-bootstrap 95% CI bands (tasks with a 0-100 score only), and the probability that AWAC "
        "ends online training with a higher score than each baseline."
    ),
    "policy_analysis": (
        "As in the AWAC paper: mean log-likelihood of a fixed offline batch under each policy across the "
        "switch (top) and mean Q estimate against the Monte-Carlo return of the same samples (bottom); the "
        "y-axis turns logarithmic when values span orders of magnitude."
    ),
}


def make_report(results_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write figures (``figures/*.png|pdf``), tables (``tables/``) and ``report.md``; return the report path.

    Output goes to ``results_dir`` unless ``out_dir`` is given. Raises :class:`analysis.SchemaError` if
    the results break the contract.
    """
    start = time.perf_counter()
    results_dir = Path(results_dir)
    out = Path(out_dir) if out_dir is not None else results_dir
    fig_dir, table_dir = out / "figures", out / "tables"
    table_dir.mkdir(parents=True, exist_ok=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # loader notes are listed in the report instead
        results = load_results(results_dir)
    metrics = run_metrics(results.evals, results.runs, WINDOW_FRACTION, THRESHOLD_FRACTION, results.episodes)
    palette = algo_palette(results.algos)
    estimates = tables.aggregate_estimates(metrics, results.score_sources)
    poi = tables.improvement_estimates(metrics, results.score_sources, REFERENCE)

    plots.plot_learning_curves(results.evals, results.runs, palette, fig_dir)
    plots.plot_transition(metrics, results.runs, palette, fig_dir)
    plots.plot_aggregate(results.evals, poi, palette, fig_dir, REFERENCE)
    plots.plot_policy_analysis(results.train, results.runs, palette, fig_dir)

    markdown_table = tables.offline_online_markdown(metrics, results.score_sources)
    (table_dir / "offline_online.md").write_text(markdown_table)
    (table_dir / "offline_online.tex").write_text(tables.offline_online_latex(metrics, results.score_sources))
    metrics.to_csv(table_dir / "metrics_per_run.csv", index=False)
    estimates.to_csv(table_dir / "aggregate_iqm.csv", index=False)
    poi.to_csv(table_dir / "probability_of_improvement.csv", index=False)

    report = out / "report.md"
    report.write_text(render_report(results, metrics, estimates, poi, markdown_table))
    seconds = time.perf_counter() - start
    print(f"report: {report}\nfigures: {fig_dir}/ (PNG and PDF)\ntables: {table_dir}/  [{seconds:.1f} s]")
    return report


FLAG = "†"  # marks runs whose config.json records harness warnings (e.g. a budget inside BEAR's warm-up)


def run_warnings(runs: pd.DataFrame) -> dict[str, list[str]]:
    """The ``warnings`` each run recorded in its config.json, for the runs that have any.

    The harness writes them when the run starts (``Algorithm.budget_warnings``: e.g. a budget that ends
    inside BEAR's warm-up, so the run is MMD-constrained behaviour cloning throughout). Runs written before
    the key existed have none."""
    flagged: dict[str, list[str]] = {}
    for run_id, path in zip(runs["run_id"], runs["path"], strict=True):
        try:
            found = json.loads((Path(path) / "config.json").read_text()).get("warnings") or []
        except (OSError, ValueError, AttributeError):
            found = []
        if found:
            flagged[str(run_id)] = [str(w) for w in found]
    return flagged


def _unshared_tasks_note(results) -> list[str]:
    """A warning where the algorithms ran on different 0-100 tasks (a grid still running): their rows below pool
    different tasks, and the aggregate figure pools only the shared ones."""
    evals = results.evals
    shared, ran = plots.shared_tasks(evals, order_algos(evals["algo"].unique())), plots.bounded_tasks(evals)
    if len(shared) == len(ran):
        return []
    names = ", ".join(f"`{t}`" for t in shared) or "none"
    return [f"**Not every algorithm ran every task** (runs / tasks column): the rows below pool different tasks "
            f"and are not comparable with each other. The aggregate figure pools only the {len(shared)} of "
            f"{len(ran)} tasks every algorithm ran: {names}.", ""]


def _warnings_section(flagged: dict[str, list[str]]) -> list[str]:
    if not flagged:
        return []
    lines = ["## Run warnings", "",
             f"Runs marked {FLAG} in the tables above recorded these warnings when they started (config.json "
             "`warnings`); their numbers do not show the algorithm as intended.", ""]
    for run_id, msgs in sorted(flagged.items()):
        lines += [f"- {FLAG} `{run_id}`: {msg}" for msg in msgs]
    return [*lines, ""]


def _failed_section(runs: pd.DataFrame) -> list[str]:
    """The runs that stopped for good, with the reason in their FAILED file."""
    failed = runs[runs["failed"].astype(str) != ""]
    if not len(failed):
        return []
    lines = ["## Failed runs", "",
             "These runs stopped for good (their `FAILED` file gives the reason); their rows up to the failure are "
             "in the tables as unfinished runs.", ""]
    lines += [f"- `{r}`: {reason}" for r, reason in zip(failed["run_id"], failed["failed"], strict=True)]
    return [*lines, ""]


def _old_data_note(results: Results) -> list[str]:
    """A header note when runs used prior data other than the suite's current reference generation."""
    stale = stale_datasets(summarize(results.runs["path"].astype(str).tolist()))
    if not stale:
        return []
    tasks_text = ", ".join(f"`{t}` (sha256 {', '.join(s[:12] for s in shas)})" for t, shas in sorted(stale.items()))
    return ["> **Made with other data than today's.** The runs of " + tasks_text + " used prior data that is not "
            "the suite's current reference generation of the task (benchmarks/datasets/MANIFEST.json): older data, "
            "or data generated on another platform. Their numbers describe the data they ran on; docs/TASKS.md "
            "(\"Data quality\") says how the data changed.", ""]


def _data_section(results: Results, flagged: dict[str, list[str]] | None = None) -> list[str]:
    """What was loaded: runs, unfinished runs, missing (task, algorithm) cells, scores, grid, error bars."""
    runs = results.runs
    flagged = flagged or {}
    unfinished = runs.loc[~runs["complete"], "run_id"].tolist()
    n_failed = int((runs["failed"].astype(str) != "").sum())
    seeds = runs.pivot_table(index="task", columns="algo", values="seed", aggfunc="count", fill_value=0)
    seeds = seeds[order_algos(seeds.columns)]
    absent = [
        f"{display_name(a)} on `{t}`" for t in seeds.index for a in seeds.columns if seeds.loc[t, a] == 0
    ]
    marked = runs[runs["run_id"].astype(str).isin(flagged)]
    if len(marked):  # "3 (2†)": 3 runs in the cell, 2 of them flagged
        n_flag = marked.groupby(["task", "algo"]).size()
        seeds = seeds.astype(object)
        for (t, a), k in n_flag.items():
            seeds.loc[t, a] = f"{seeds.loc[t, a]} ({k}{FLAG})"
    flag_text = (
        [f"- {len(marked)} run(s) marked {FLAG} recorded warnings when they started: see *Run warnings*."]
        if len(marked) else []
    )
    unfinished_text = f": {', '.join(f'`{r}`' for r in unfinished)}" if unfinished else ""
    algos = ", ".join(display_name(a) for a in order_algos(results.algos))
    task_names = ", ".join(f"`{t}`" for t in results.tasks)
    plural = "" if len(runs) == 1 else "s"
    return [
        "## Data",
        "",
        f"- {len(runs)} run{plural}: {len(runs) - len(unfinished)} finished, {len(unfinished)} unfinished "
        f"(no `DONE`){unfinished_text}.",
        f"- Algorithms: {algos}; tasks: {task_names}.",
        *_budget_lines(runs),
        f"- Not run: {', '.join(absent)}." if absent else "- Every algorithm ran on every task.",
        *flag_text,
        *([f"- {n_failed} of the unfinished runs failed: see *Failed runs*."] if n_failed else []),
        "- Score per task (normalized score where defined, else success rate × 100, else return):",
        *tables.score_source_lines(results.score_sources),
        f"- Grid: {GRID_DESCRIPTION}",
        f"- Error bars: {CI_DESCRIPTION}",
        "",
        "Provenance (meta.json and config.json of every run: the code and data each was made with):",
        "",
        *provenance_lines(summarize(runs["path"].astype(str).tolist())),
        "",
        "Runs per task and algorithm:",
        "",
        tables.to_markdown(seeds.rename(columns=display_name), "Task"),
        "",
    ]


def _budget_lines(runs: pd.DataFrame) -> list[str]:
    """The budgets the runs' config.json record (one line per distinct budget, with its run count), and the
    finished runs whose last online evaluation fell short of their own budget."""
    keys = ["offline_steps", "online_steps", "utd", "eval_every", "eval_episodes"]
    lines = ["- Budget (config.json):"]
    for values, group in runs.groupby(keys, dropna=False, sort=True):
        off, on, utd, every, episodes = (None if pd.isna(v) else v for v in values)
        ratio = f"at {utd:g} update{'' if utd == 1 else 's'} per step" if utd is not None else "(ratio unrecorded)"
        evals = f"{int(episodes)} evaluation episodes" if episodes is not None else "evaluation episodes unrecorded"
        lines.append(f"  - {int(off):,} offline gradient steps, then {int(on):,} online environment steps "
                     f"{ratio}; {evals} every {int(every):,} steps: {len(group)} run{'' if len(group) == 1 else 's'}")
    short = runs.loc[runs["complete"] & (runs["online_steps"] > 0) & ~runs["reached_budget"], "run_id"].tolist()
    if short:
        lines.append(f"- **Finished short of their online budget**: {', '.join(f'`{r}`' for r in short)}.")
    return lines


def _success_section(results: Results) -> list[str]:
    """Both readings of success on the tasks that have one: DAPG's rule (the figures' score) and the
    fraction of episodes at the goal on their last step; mean over seeds at the switch and at the end."""
    ev = results.evals
    if "success_final" not in ev or ev["success_final"].isna().all():
        return []
    ev = ev[ev["success_final"].notna()]
    last = ev.sort_values(["run_id", "phase", "env_step", "grad_step"]).groupby(["run_id", "phase"]).tail(1)
    cells = {}
    for (task, algo), g in last.groupby(["task", "algo"]):
        parts = []
        for phase in ("offline", "online"):
            p = g[g["phase"] == phase]
            if len(p):
                parts.append(f"{100 * p['success_rate'].mean():.0f} / {100 * p['success_final'].mean():.0f}")
        cells.setdefault(task, {})[algo] = " → ".join(parts)
    table = pd.DataFrame(cells).T
    table = table[order_algos(table.columns)].fillna("")
    return [
        "## Success: two readings",
        "",
        "Per task with a success notion, `rule / final` in percent, at the switch → at the last online "
        "evaluation (mean over seeds): *rule* is DAPG's `evaluate_success` (goal reached in more than 20 steps "
        "for pen, 25 for door and relocate; the score in every table and figure above), *final* the fraction "
        "of evaluation episodes at the goal on their last step.",
        "",
        tables.to_markdown(table.rename(columns=display_name), "Task"),
        "",
    ]


def _metric_definitions(metrics: pd.DataFrame) -> list[str]:
    """Bullets defining every column of the metrics table, with the window and threshold actually used."""
    windows = metrics["window"].unique() if len(metrics) else []
    window_text = f"{windows[0]:.0f} env steps" if len(windows) == 1 else "varies by run"
    return [
        "- **offline final**: score at the switch (last offline evaluation, at the offline budget).",
        "- **drop**: offline final minus the lowest score in the first W online environment steps "
        f"(W = {WINDOW_FRACTION:.0%} of the online budget, at least one evaluation interval: "
        f"{window_text}); positive = worse after the switch; **drop (%)** is relative to |offline final|.",
        "- **recovery steps**: environment steps until the score is back at offline final after first "
        "falling below it (0 = never fell below); median over seeds, (k/n) = seeds that recovered, "
        "`never` = the median seed did not recover within the data.",
        "- **online final**: score at the last online evaluation (never the best one).",
        "- **norm. AUC**: area under the online curve from the switch (env step 0, offline final) to the "
        "online budget divided by the budget, i.e. the time-averaged score (trapezoidal rule); empty for "
        "unfinished runs.",
        "- **steps to threshold**: environment steps until the score first reaches the task's threshold = "
        f"{THRESHOLD_FRACTION:.0%} of the best algorithm's mean online final on that task (0 = already "
        "there at the switch); median over seeds, (k/n) = seeds that reached it.",
        "- **regret**: mean of 1 - success over the online *training* episodes (the sampled policy that collects "
        "the data; `episodes.csv`), as CORL and Cal-QL report it; tasks with a success notion only (empty "
        "elsewhere, and for runs written before training episodes were recorded). A run that ends its training "
        "episodes at the goal (`end_at_goal`: CQL's and Cal-QL's hand protocol) counts reaching it as success, "
        "as Cal-QL does; evaluation episodes keep the task's rule for every algorithm.",
    ]


def _fidelity_section(results: Results, metrics: pd.DataFrame) -> list[str]:
    lines = fidelity.fidelity_markdown(metrics, results.train)
    short = results.runs["online_steps"].max() < fidelity.DECLARED_ONLINE_STEPS if len(results.runs) else True
    if short:
        lines[2:2] = [f"**These runs are shorter than the declared experiment ({fidelity.DECLARED_ONLINE_STEPS:,} "
                      "online steps, `awac-bench sweep --preset main`): the verdicts below apply the declared "
                      "tests to this budget and are not the fidelity result; see `results/main`.** "
                      f"{_short_budget_text(results.runs)}", ""]
    return lines


def _short_budget_text(runs: pd.DataFrame) -> str:
    """What a budget shorter than the declared one can and cannot show, with its own numbers."""
    online = int(runs["online_steps"].max()) if len(runs) else 0
    episodes = runs["eval_episodes"].dropna()  # None where config.json predates the key
    noise = (f", {int(episodes.min())} evaluation episodes per point: one episode moves a success rate by "
             f"{100 / episodes.min():.0f} points" if len(episodes) and episodes.min() > 0 else "")
    return (f"At this budget ({online:,} online steps{noise}) the report shows the offline phase, the score at the "
            "switch, the first online steps (the drop) and online changes large enough to clear the evaluation "
            "noise; most differences between algorithms do not clear it over so few steps and seeds, so these "
            "verdicts do not test the paper's claims.")


def render_report(
    results: Results,
    metrics: pd.DataFrame,
    estimates: pd.DataFrame,
    poi: pd.DataFrame,
    markdown_table: str,
) -> str:
    """The text of ``report.md`` (links are relative to the folder the report is written to)."""
    flagged = run_warnings(results.runs)
    lines = [
        f"# Offline-to-online report: `{results.root.name}`",
        "",
        f"Generated from the stored results in `{results.root}` (no training). Regenerate with "
        f"`awac-bench plots {results.root}`.",
        "",
        *_old_data_note(results),
        *_data_section(results, flagged),
        *_failed_section(results.runs),
        "## Offline → online",
        "",
        markdown_table,
        "LaTeX version: [tables/offline_online.tex](tables/offline_online.tex).",
        "",
        "## Transition and data efficiency",
        "",
        *_metric_definitions(metrics),
        "",
        tables.metrics_markdown(metrics),
        "Per-run values: [tables/metrics_per_run.csv](tables/metrics_per_run.csv).",
        "",
        "## Aggregate over tasks (IQM)",
        "",
        "Interquartile mean over all (task, seed) runs of tasks with a 0-100 score, with stratified "
        "bootstrap 95% CIs (seeds resampled within each task).",
        "",
        *_unshared_tasks_note(results),
        tables.aggregate_markdown(estimates),
        f"## Probability of improvement ({display_name(REFERENCE)} vs each baseline)",
        "",
        f"P({display_name(REFERENCE)} > baseline) on the final online score: per task the chance that "
        "a random seed of the first beats a random seed of the second (ties count 1/2), averaged over the "
        "0-100 tasks both ran on, with a stratified bootstrap 95% CI.",
        "",
        tables.improvement_markdown(poi, REFERENCE),
        *_success_section(results),
        *_fidelity_section(results, metrics),
        "## Figures",
        "",
    ]
    for name, caption in FIGURES.items():
        lines += [f"![{name}](figures/{name}.png)", "", f"{caption} ([PDF](figures/{name}.pdf))", ""]
    lines += _warnings_section(flagged)
    if results.notes:
        lines += ["## Loader notes", "", *[f"- {note}" for note in results.notes], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m analysis.report DIR [--out OUT]``."""
    parser = argparse.ArgumentParser(description="Regenerate figures and report.md from stored results.")
    parser.add_argument("results_dir")
    parser.add_argument("--out", default=None, help="output directory (default: the results directory)")
    args = parser.parse_args(argv)
    make_report(args.results_dir, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
