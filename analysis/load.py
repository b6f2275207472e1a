"""Read every run of a results directory into tidy DataFrames.

The per-run files under ``DIR/runs/<run_id>/`` are the source of truth; a concatenated ``DIR/evals.csv``,
if present, is ignored. Runs without a ``DONE`` file are incomplete: their rows are kept and flagged
(``complete == False``) so that every figure and table can say which numbers come from unfinished runs.
Runs that stopped for good (a ``FAILED`` file: a non-finite loss or parameter) carry its reason in the run
table's ``failed`` column ("" otherwise); the report lists them.

Two derived columns are added to the evaluations:

``score``
    One score per task on which all algorithms are compared: ``normalized_score`` if it is defined on
    every evaluation of the task, else ``success_rate * 100`` if that is, else ``return_mean`` (see
    :func:`choose_score_source`). The choice is recorded in ``score_source`` and in the report.
``t``
    A single signed time axis: ``grad_step - offline_steps`` (<= 0) for offline rows, so the switch
    evaluation sits at ``t = 0``; ``env_step`` (> 0) for online rows. Curves are put on common grids
    along ``t`` by :mod:`analysis.grid`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import schema
from analysis.schema import SchemaError

SCORE_SOURCES = ("normalized_score", "success_rate", "return_mean")
SCORE_LABELS = {
    "normalized_score": "normalized score",
    "success_rate": "success rate (%)",
    "return_mean": "return",
}
RUN = "_run"  # the run folder name, carried on every row while loading
# Sources on a common 0-100 scale; only these tasks are pooled in aggregate statistics.
BOUNDED_SOURCES = ("normalized_score", "success_rate")

RUN_COLUMNS = (
    "run_id", "algo", "task", "seed", "offline_steps", "online_steps", "eval_every", "utd", "eval_episodes", "complete",
    "n_offline_evals", "n_online_evals", "last_grad_step", "last_env_step", "reached_switch",
    "reached_budget", "failed", "path",
)  # fmt: skip


@dataclass
class Results:
    """Everything :func:`load_results` read: tidy evaluations, training metrics and one row per run."""

    root: Path
    evals: pd.DataFrame
    train: pd.DataFrame
    runs: pd.DataFrame
    score_sources: dict[str, str]
    notes: list[str] = field(default_factory=list)
    # one row per online training episode (episodes.csv; empty for runs written before it existed)
    episodes: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def algos(self) -> list[str]:
        return sorted(self.runs["algo"].unique())

    @property
    def tasks(self) -> list[str]:
        return sorted(self.runs["task"].unique())


def load_results(results_dir: str | Path) -> Results:
    """Read and validate every run under ``results_dir/runs``.

    Raises :class:`analysis.SchemaError` (one line, naming the file and column/key) if the directory or
    a required file is missing or a file breaks the contract. Incomplete runs (no ``DONE``) may lack
    ``evals.csv``/``train.csv``/``meta.json`` (treated as empty) and are skipped with a note if they have
    no ``config.json`` yet; finished runs must have all four files. Rows repeated within a run (same
    phase and steps, e.g. after a resume) keep the last copy, with a note.
    """
    root = Path(results_dir)
    runs_dir = root / "runs"
    if not root.is_dir():
        raise SchemaError(f"{root}: results directory does not exist")
    if not runs_dir.is_dir():
        raise SchemaError(f"{runs_dir}: missing directory (expected one folder per run)")
    run_dirs = sorted(p for p in runs_dir.iterdir() if p.is_dir())
    if not run_dirs:
        raise SchemaError(f"{runs_dir}: no run folders")

    notes: list[str] = []
    infos, evals_parts, train_parts = [], [], []
    for run_dir in run_dirs:
        found = read_run_files(run_dir, notes)
        if found is not None:
            infos.append(found[0])
            evals_parts.append(found[1])
            train_parts.append(found[2])
    if not infos:
        raise SchemaError(f"{runs_dir}: no readable runs")

    # Validate all files at once (fast); errors still name the file and line of the first bad cell.
    info = pd.DataFrame(infos).set_index("run_id", drop=False)
    evals = schema.validate_evals(pd.concat(evals_parts, ignore_index=True))
    train = schema.validate_train(pd.concat(train_parts, ignore_index=True))
    _check_consistency(evals, train, info)
    evals = _drop_duplicate_evals(evals, notes)

    per_row = info.loc[evals[RUN], ["complete", "offline_steps", "online_steps"]].reset_index(drop=True)
    evals = pd.concat([evals.reset_index(drop=True), per_row], axis=1)
    evals["t"] = signed_time(evals["phase"], evals["grad_step"], evals["env_step"], evals["offline_steps"])
    for col in ("algo", "task", "seed", "complete"):
        train[col] = info.loc[train[RUN], col].to_numpy()
    train["t"] = train_time(train, evals, info["offline_steps"])

    sources = {task: choose_score_source(group) for task, group in evals.groupby("task", sort=True)}
    for task in info["task"].unique():
        sources.setdefault(task, "return_mean")  # a task whose runs have no evaluations yet
    evals["score_source"] = evals["task"].map(sources)
    evals["score"] = score_values(evals, sources)

    runs = run_table(info, evals)
    _note_duplicate_seeds(runs, notes)
    drop = [schema.FILE, schema.LINE, RUN]
    evals = evals.drop(columns=drop).sort_values(
        ["task", "algo", "seed", "run_id", "t"], kind="stable", ignore_index=True
    )
    train = train.drop(columns=drop).sort_values(
        ["run_id", "metric", "grad_step"], kind="stable", ignore_index=True
    )
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return Results(root=root, evals=evals, train=train, runs=runs, score_sources=sources, notes=notes,
                   episodes=read_episodes(run_dirs))


def read_episodes(run_dirs: list[Path]) -> pd.DataFrame:
    """Every run's episodes.csv (one row per online training episode), where it has one."""
    parts = [pd.read_csv(d / "episodes.csv") for d in run_dirs
             if (d / "episodes.csv").is_file() and (d / "episodes.csv").stat().st_size > 0]
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["run_id", "algo", "task", "seed", "env_step", "return", "length", "success"])


def read_run_files(run_dir: Path, notes: list[str]) -> tuple[dict, pd.DataFrame, pd.DataFrame] | None:
    """One run's config summary and its raw (untyped, row-tagged) evaluation and training rows."""
    complete = (run_dir / "DONE").exists()
    if not complete and not (run_dir / "config.json").is_file():
        notes.append(f"{run_dir}: skipped (incomplete run without config.json)")
        return None
    config = schema.read_config(run_dir / "config.json")
    if complete or (run_dir / "meta.json").exists():
        schema.read_json(run_dir / "meta.json")
    evals = _read_or_empty(run_dir / "evals.csv", schema.EVALS_COLUMNS, schema.EVALS_STR, complete, notes)
    train = _read_or_empty(run_dir / "train.csv", schema.TRAIN_COLUMNS, schema.TRAIN_STR, complete, notes)
    info = {"run_id": run_dir.name, "complete": complete, "path": str(run_dir), "failed": failed_reason(run_dir)}
    info.update({k: config[k] for k in schema.CONFIG_KEYS})
    info.update({k: config.get(k) for k in ("utd", "eval_episodes")})  # the budget's other terms (None: unrecorded)
    info["algo"] = algo_label(config)
    return info, evals.assign(**{RUN: run_dir.name}), train.assign(**{RUN: run_dir.name})


def algo_label(config: dict) -> str:
    """The algorithm as the run's rows name it (``RunSpec.label``, recorded as ``algo_label``: ``sacfd`` with
    preset ``prior`` is ``sacfd-prior``, SACfD-pretrain); runs written before the label existed name it by
    ``algo`` alone, as their rows do."""
    return str(config.get("algo_label") or config["algo"])


def failed_reason(run_dir: Path) -> str:
    """The reason a run stopped for good (its ``FAILED`` file, written by the harness: a non-finite loss or
    parameter), or "" if it did not fail."""
    path = run_dir / "FAILED"
    if not path.is_file():
        return ""
    try:
        return path.read_text().strip() or "(no reason recorded)"
    except OSError:
        return "(FAILED file unreadable)"


def _read_or_empty(
    path: Path, columns: tuple[str, ...], str_cols: tuple[str, ...], complete: bool, notes: list[str]
) -> pd.DataFrame:
    """Read and tag a CSV; an incomplete run may not have written it yet (empty frame plus a note)."""
    if not complete and not path.is_file():
        notes.append(f"{path}: missing in an incomplete run (treated as empty)")
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        return schema.tag_rows(empty, path)
    return schema.tag_rows(schema.read_csv_checked(path, columns, str_cols), path)


def _check_consistency(evals: pd.DataFrame, train: pd.DataFrame, info: pd.DataFrame) -> None:
    """Every row's run_id must be its folder name; algo, task and seed must match config.json."""
    schema.check_matches(evals, "run_id", evals[RUN], "the run folder name")
    schema.check_matches(train, "run_id", train[RUN], "the run folder name")
    for col in ("algo", "task", "seed"):
        schema.check_matches(evals, col, info.loc[evals[RUN], col].reset_index(drop=True), "config.json")


def _drop_duplicate_evals(evals: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Keep the last of repeated (phase, grad_step, env_step) rows of a run, e.g. from a resumed run.

    A stray online row at env_step 0 would collide with the switch evaluation (t = 0) and is dropped.
    """
    dup = evals.duplicated([RUN, "phase", "grad_step", "env_step"], keep="last")
    clash = (evals["phase"] == "online") & (evals["env_step"] == 0)
    for mask, what in (
        (dup, "repeated evaluation row(s); kept the last"),
        (clash, "online row(s) at env_step 0 ignored (the switch is t = 0)"),
    ):
        for file, count in evals.loc[mask, schema.FILE].value_counts(sort=False).items():
            notes.append(f"{file}: {count} {what}")
    return evals[~(dup | clash)].reset_index(drop=True)


def signed_time(phase: pd.Series, grad_step: pd.Series, env_step: pd.Series, offline_steps) -> pd.Series:
    """``grad_step - offline_steps`` for offline rows (<= 0, switch at 0), ``env_step`` for online rows."""
    values = np.where(phase == "offline", grad_step - offline_steps, env_step)
    return pd.Series(values, index=phase.index, dtype=np.int64)


def train_time(train: pd.DataFrame, evals: pd.DataFrame, offline_steps: pd.Series) -> pd.Series:
    """Signed time ``t`` for training rows (which only carry ``grad_step``).

    Offline rows: ``grad_step - offline_steps``. Online rows: the environment step at that gradient step,
    read off the run's online evaluations (exact where a row was logged at an evaluation, linear in
    between, anchored at (offline_steps, 0)); NaN after the run's last online evaluation.
    """
    budget = offline_steps.reindex(train["run_id"]).to_numpy()
    grad = train["grad_step"].to_numpy()
    t = np.where(train["phase"].to_numpy() == "offline", grad - budget, np.nan).astype(float)
    online_evals = evals[evals["phase"] == "online"].sort_values("grad_step")
    curves = {run: g for run, g in online_evals.groupby("run_id")[["grad_step", "env_step"]]}
    online_rows = train.index[train["phase"] == "online"].to_numpy()
    for run, rows in pd.Series(online_rows).groupby(train["run_id"].to_numpy()[online_rows]):
        if run not in curves:
            continue
        xp = np.concatenate([[offline_steps[run]], curves[run]["grad_step"].to_numpy()])
        fp = np.concatenate([[0], curves[run]["env_step"].to_numpy()])
        g = grad[rows.to_numpy()]
        t[rows.to_numpy()] = np.where((g >= xp[0]) & (g <= xp[-1]), np.interp(g, xp, fp), np.nan)
    return pd.Series(t, index=train.index)


def run_table(info: pd.DataFrame, evals: pd.DataFrame) -> pd.DataFrame:
    """One row per run: config, completeness and how far its evaluations got."""
    offline = evals[evals["phase"] == "offline"].groupby("run_id")
    online = evals[evals["phase"] == "online"].groupby("run_id")
    runs = info.drop(columns=["run_id"]).rename_axis("run_id").reset_index()
    ids = runs["run_id"]
    runs["n_offline_evals"] = ids.map(offline.size()).fillna(0).astype(int).to_numpy()
    runs["n_online_evals"] = ids.map(online.size()).fillna(0).astype(int).to_numpy()
    runs["last_grad_step"] = (
        ids.map(evals.groupby("run_id")["grad_step"].max()).fillna(-1).astype(int).to_numpy()
    )
    runs["last_env_step"] = ids.map(online["env_step"].max()).fillna(0).astype(int).to_numpy()
    runs["reached_switch"] = (
        ids.map(offline["grad_step"].max()).fillna(-1) >= runs["offline_steps"]
    ).to_numpy()
    runs["reached_budget"] = (runs["n_online_evals"] > 0) & (runs["last_env_step"] >= runs["online_steps"])
    runs = runs[list(RUN_COLUMNS)]
    return runs.sort_values(["task", "algo", "seed", "run_id"], ignore_index=True)


def choose_score_source(task_evals: pd.DataFrame) -> str:
    """First of normalized_score, success_rate, return_mean that is defined on every row of the task.

    One source per task keeps all algorithms of a task on the same scale.
    """
    for source in SCORE_SOURCES:
        if len(task_evals) and task_evals[source].notna().all():
            return source
    return "return_mean"


def score_values(evals: pd.DataFrame, sources: dict[str, str]) -> pd.Series:
    """The ``score`` column: the chosen source per task, success rates scaled to percent."""
    score = pd.Series(np.nan, index=evals.index, dtype=float)
    for task, source in sources.items():
        rows = evals["task"] == task
        factor = 100.0 if source == "success_rate" else 1.0
        score[rows] = evals.loc[rows, source] * factor
    return score


def _note_duplicate_seeds(runs: pd.DataFrame, notes: list[str]) -> None:
    dup = runs.duplicated(["algo", "task", "seed"], keep=False)
    if dup.any():
        ids = ", ".join(runs.loc[dup, "run_id"])
        notes.append(f"runs share (algo, task, seed) and are treated as separate samples: {ids}")
