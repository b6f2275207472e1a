"""Tidy result tables, written row by row as a run goes (nothing is lost when a run dies).

A run directory holds:
  evals.csv   one row per evaluation (EVAL_COLUMNS)
  train.csv   long-format diagnostics: run_id, grad_step, phase, metric, value
  episodes.csv  one row per online training episode (EPISODE_COLUMNS): return, length, success
  config.json the resolved run spec and algorithm config
  meta.json   versions, git commit, device, host, start/end time
  DONE        written last, when the run finished
  FAILED      instead of DONE when the run stopped for good (a non-finite loss or parameter), with the reason
  ckpt/       the latest checkpoint (benchmarks/common/checkpoint.py), removed when the run finished
  progress.json  steps done, wall time, last checkpoint, pid and host (read by the sweep's bar and ``status``)
A sweep directory holds ``runs/<run_id>/`` plus ``evals.csv`` and ``evals.parquet`` over all runs.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import platform
import socket
from typing import Any

from benchmarks.common import files
from benchmarks.common.provenance import code_identity

# The results contract, written once: every column of evals.csv and train.csv in file order, with its kind.
# "str", "int": a value on every row; "float": a number on every row; "float?": a number or empty (NaN).
# The harness writes these columns (RunWriter) and analysis/schema.py validates them.
EVAL_COLUMNS: dict[str, str] = {
    "run_id": "str", "algo": "str", "task": "str", "seed": "int", "phase": "str", "grad_step": "int",
    "env_step": "int", "return_mean": "float", "return_std": "float?", "normalized_score": "float?",
    "success_rate": "float?", "success_final": "float?", "wall_s": "float?"}
TRAIN_COLUMNS: dict[str, str] = {"run_id": "str", "grad_step": "int", "phase": "str", "metric": "str",
                                 "value": "float?"}
# one row per online *training* episode (the sampled policy that collects data): what regret is computed from.
# env_step: the online step count at the end of the collection block in which the episode ended; success: the
# task's rule (DAPG's, hand tasks) or empty where the task has none.
EPISODE_COLUMNS: dict[str, str] = {"run_id": "str", "algo": "str", "task": "str", "seed": "int", "env_step": "int",
                                   "return": "float", "length": "int", "success": "float?"}


def columns_of(columns: dict[str, str], kind: str) -> tuple[str, ...]:
    """The names of the columns of one kind, in file order."""
    return tuple(name for name, k in columns.items() if k == kind)


def _fmt(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        if v != v:  # NaN -> empty, as pandas reads it back
            return ""
        return repr(v)
    return v


class RunWriter:
    """Writes one run's files. A new run needs a directory that does not exist yet (the harness moves an old one
    aside, it never deletes one); ``resume`` continues a run from a checkpoint's ``rows`` record, truncating
    evals.csv and train.csv to what had been written when that checkpoint was taken.

    Rows are appended whole or not at all (``files.AppendFile``): a write that fails (a full disk) raises
    ``files.WriteError`` and leaves every earlier row intact."""

    def __init__(self, run_dir: str, config: dict[str, Any], resume: dict[str, int] | None = None,
                 meta_extra: dict[str, Any] | None = None):
        self.run_dir = run_dir
        evals, train, episodes = (os.path.join(run_dir, n) for n in ("evals.csv", "train.csv", "episodes.csv"))
        if resume is None:
            os.makedirs(run_dir)  # FileExistsError if it exists: never write over an earlier run
            files.atomic_write_json(os.path.join(run_dir, "config.json"), config)
            self.meta = {**run_metadata(config.get("device", "cpu")), **(meta_extra or {})}
            self._write_meta()
            self._evals = files.AppendFile(evals, create=True)
            self._train = files.AppendFile(train, create=True)
            self._episodes = files.AppendFile(episodes, create=True)
            self.n_evals = self.n_train = self.n_episodes = 0
            self._evals.append(_csv_bytes([list(EVAL_COLUMNS)]))
            self._train.append(_csv_bytes([list(TRAIN_COLUMNS)]))
            self._episodes.append(_csv_bytes([list(EPISODE_COLUMNS)]))
        else:
            for path, key in ((evals, "evals_bytes"), (train, "train_bytes"), (episodes, "episodes_bytes")):
                if key in resume and os.path.getsize(path) < resume[key]:
                    raise ValueError(f"{os.path.basename(path)} is shorter than its checkpoint recorded")
            with open(os.path.join(run_dir, "meta.json")) as f:
                self.meta = json.load(f)
            now = run_metadata(config.get("device", "cpu"))
            self.meta.setdefault("resumed", []).append(
                {k: now[k] for k in ("started", "host", "git_commit", "code_hash", "device")})
            for k, v in (meta_extra or {}).items():  # e.g. a code change allowed at this resume
                self.meta.setdefault(k, []).extend(v)
            self._write_meta()
            # drop rows written after the checkpoint
            self._evals = files.AppendFile(evals, truncate_to=resume["evals_bytes"])
            self._train = files.AppendFile(train, truncate_to=resume["train_bytes"])
            self.n_evals, self.n_train = int(resume["evals_rows"]), int(resume["train_rows"])
            # a checkpoint from before episodes.csv existed (resumed with --allow-code-change): no episodes.csv for
            # this run rather than one that misses its first episodes (its regret stays undefined)
            self._episodes = files.AppendFile(episodes, truncate_to=resume["episodes_bytes"]) \
                if "episodes_bytes" in resume else None
            self.n_episodes = int(resume.get("episodes_rows", 0))

    def eval_row(self, row: dict[str, Any]) -> None:
        self._evals.append(_csv_bytes([[_fmt(row.get(c)) for c in EVAL_COLUMNS]]))
        self.n_evals += 1

    def train_rows(self, run_id: str, grad_step: int, phase: str, metrics: dict[str, float]) -> None:
        self._train.append(_csv_bytes([[run_id, grad_step, phase, k, _fmt(float(v))] for k, v in metrics.items()]))
        self.n_train += len(metrics)

    def episode_rows(self, rows: list[dict[str, Any]]) -> None:
        if self._episodes is None:
            return
        self._episodes.append(_csv_bytes([[_fmt(r.get(c)) for c in EPISODE_COLUMNS] for r in rows]))
        self.n_episodes += len(rows)

    def _tables(self) -> list[files.AppendFile]:
        return [fh for fh in (self._evals, self._train, self._episodes) if fh is not None]

    def rows(self) -> dict[str, int]:
        """Rows and bytes on disk now (fsync'd), for a checkpoint to record."""
        for fh in self._tables():
            fh.sync()
        rows = {"evals_rows": self.n_evals, "train_rows": self.n_train,
                "evals_bytes": self._evals.size, "train_bytes": self._train.size}
        if self._episodes is not None:
            rows.update(episodes_rows=self.n_episodes, episodes_bytes=self._episodes.size)
        return rows

    def finish(self, extra_meta: dict[str, Any] | None = None) -> None:
        self.rows()  # every row on disk before DONE says so
        self.meta["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.meta.update(extra_meta or {})
        self._write_meta()
        self.close()
        files.atomic_write_text(os.path.join(self.run_dir, "DONE"), "ok\n")

    def fail(self, reason: str) -> None:
        """Stop the run for good: its reason, one line, in FAILED (the rows so far stay)."""
        self.close()
        files.atomic_write_text(os.path.join(self.run_dir, "FAILED"), reason.strip().replace("\n", " ") + "\n")

    def close(self) -> None:
        for fh in self._tables():
            fh.close()

    def _write_meta(self) -> None:
        files.atomic_write_json(os.path.join(self.run_dir, "meta.json"), self.meta)


def _csv_bytes(rows: list[list[Any]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode()


def run_metadata(device: str) -> dict[str, Any]:
    import gymnasium
    import numpy
    import torch

    try:
        import mujoco

        mj = mujoco.__version__
    except ImportError:
        mj = None
    dev = str(device)
    if dev.startswith("cuda") and torch.cuda.is_available():
        dev = f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
    return {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "gymnasium": gymnasium.__version__,
        "mujoco": mj,
        "git_commit": code_identity()["commit"],
        "code_hash": code_identity()["code_hash"],
        "device": dev,
        "torch_threads": torch.get_num_threads(),
    }


def collect_sweep(out_dir: str) -> str | None:
    """Concatenate every run's evals.csv under ``out_dir/runs`` into ``out_dir/evals.csv`` (+ parquet)."""
    import pandas as pd

    runs_dir = os.path.join(out_dir, "runs")
    frames = []
    for rid in sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else []:
        p = os.path.join(runs_dir, rid, "evals.csv")
        if os.path.isfile(p) and os.path.getsize(p) > 0:
            frames.append(pd.read_csv(p))
    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    path = os.path.join(out_dir, "evals.csv")
    df.to_csv(path, index=False)
    try:
        df.to_parquet(os.path.join(out_dir, "evals.parquet"), index=False)
    except ImportError:
        pass
    return path
