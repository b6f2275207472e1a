"""Tidy result tables, written row by row as a run goes (nothing is lost when a run dies).

A run directory holds:
  evals.csv   one row per evaluation (EVAL_COLUMNS)
  train.csv   long-format diagnostics: run_id, grad_step, phase, metric, value
  config.json the resolved run spec and algorithm config
  meta.json   versions, git commit, device, host, start/end time
  DONE        written last, when the run finished
  FAILED      instead of DONE when the run stopped for good (a non-finite loss or parameter), with the reason
  ckpt/       the latest checkpoint (benchmarks/checkpoint.py), removed when the run finished
  progress.json  steps done, wall time, last checkpoint, pid and host (read by the sweep's bar and ``status``)
A sweep directory holds ``runs/<run_id>/`` plus ``evals.csv`` and ``evals.parquet`` over all runs.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import socket
import subprocess
from typing import Any

# The results contract, written once: every column of evals.csv and train.csv in file order, with its kind.
# "str", "int": a value on every row; "float": a number on every row; "float?": a number or empty (NaN).
# The harness writes these columns (RunWriter) and analysis/schema.py validates them.
EVAL_COLUMNS: dict[str, str] = {
    "run_id": "str", "algo": "str", "task": "str", "seed": "int", "phase": "str", "grad_step": "int",
    "env_step": "int", "return_mean": "float", "return_std": "float?", "normalized_score": "float?",
    "success_rate": "float?", "success_final": "float?", "wall_s": "float?"}
TRAIN_COLUMNS: dict[str, str] = {"run_id": "str", "grad_step": "int", "phase": "str", "metric": "str",
                                 "value": "float?"}


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
    evals.csv and train.csv to what had been written when that checkpoint was taken."""

    def __init__(self, run_dir: str, config: dict[str, Any], resume: dict[str, int] | None = None):
        self.run_dir = run_dir
        evals, train = (os.path.join(run_dir, n) for n in ("evals.csv", "train.csv"))
        if resume is None:
            os.makedirs(run_dir)  # FileExistsError if it exists: never write over an earlier run
            _write_json(os.path.join(run_dir, "config.json"), config)
            self.meta = run_metadata(config.get("device", "cpu"))
            self._write_meta()
            self._evals = open(evals, "w", newline="")
            self._train = open(train, "w", newline="")
            self.n_evals = self.n_train = 0
        else:
            for path, key in ((evals, "evals_bytes"), (train, "train_bytes")):
                if os.path.getsize(path) < resume[key]:
                    raise ValueError(f"{os.path.basename(path)} is shorter than its checkpoint recorded")
                os.truncate(path, resume[key])  # drop rows written after the checkpoint
            with open(os.path.join(run_dir, "meta.json")) as f:
                self.meta = json.load(f)
            now = run_metadata(config.get("device", "cpu"))
            self.meta.setdefault("resumed", []).append(
                {k: now[k] for k in ("started", "host", "git_commit", "device")})
            self._write_meta()
            self._evals = open(evals, "a", newline="")
            self._train = open(train, "a", newline="")
            self.n_evals, self.n_train = int(resume["evals_rows"]), int(resume["train_rows"])
        self._ew = csv.writer(self._evals)
        self._tw = csv.writer(self._train)
        if resume is None:
            self._ew.writerow(EVAL_COLUMNS)
            self._tw.writerow(TRAIN_COLUMNS)
        self._flush()

    def eval_row(self, row: dict[str, Any]) -> None:
        self._ew.writerow([_fmt(row.get(c)) for c in EVAL_COLUMNS])
        self.n_evals += 1
        self._flush()

    def train_rows(self, run_id: str, grad_step: int, phase: str, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            self._tw.writerow([run_id, grad_step, phase, k, _fmt(float(v))])
        self.n_train += len(metrics)

    def rows(self) -> dict[str, int]:
        """Rows and bytes on disk now (flushed and fsync'd), for a checkpoint to record."""
        self._flush()
        for fh in (self._evals, self._train):
            os.fsync(fh.fileno())
        return {"evals_rows": self.n_evals, "train_rows": self.n_train,
                "evals_bytes": os.fstat(self._evals.fileno()).st_size,
                "train_bytes": os.fstat(self._train.fileno()).st_size}

    def finish(self, extra_meta: dict[str, Any] | None = None) -> None:
        self.meta["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.meta.update(extra_meta or {})
        self._write_meta()
        self.close()
        with open(os.path.join(self.run_dir, "DONE"), "w") as f:
            f.write("ok\n")

    def fail(self, reason: str) -> None:
        """Stop the run for good: its reason, one line, in FAILED (the rows so far stay)."""
        self.close()
        with open(os.path.join(self.run_dir, "FAILED"), "w") as f:
            f.write(reason.strip().replace("\n", " ") + "\n")

    def close(self) -> None:
        for fh in (self._evals, self._train):
            if not fh.closed:
                fh.flush()
                fh.close()

    def _flush(self) -> None:
        self._evals.flush()
        self._train.flush()

    def _write_meta(self) -> None:
        _write_json(os.path.join(self.run_dir, "meta.json"), self.meta)


def _write_json(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


def git_commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


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
        "git_commit": git_commit(),
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
