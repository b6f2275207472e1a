"""Tidy result tables, written row by row as a run goes (nothing is lost when a run dies).

A run directory holds:
  evals.csv   one row per evaluation (EVAL_COLUMNS)
  train.csv   long-format diagnostics: run_id, grad_step, phase, metric, value
  config.json the resolved run spec and algorithm config
  meta.json   versions, git commit, device, host, start/end time
  DONE        written last, when the run finished
A sweep directory holds ``runs/<run_id>/`` plus ``evals.csv`` and ``evals.parquet`` over all runs.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import shutil
import socket
import subprocess
from typing import Any

EVAL_COLUMNS = ["run_id", "algo", "task", "seed", "phase", "grad_step", "env_step", "return_mean",
                "return_std", "normalized_score", "success_rate", "success_final", "wall_s"]
TRAIN_COLUMNS = ["run_id", "grad_step", "phase", "metric", "value"]


def _fmt(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        if v != v:  # NaN -> empty, as pandas reads it back
            return ""
        return repr(v)
    return v


class RunWriter:
    def __init__(self, run_dir: str, config: dict[str, Any]):
        self.run_dir = run_dir
        if os.path.exists(run_dir):
            shutil.rmtree(run_dir)  # an earlier, unfinished attempt: start clean
        os.makedirs(run_dir)
        with open(os.path.join(run_dir, "config.json"), "w") as f:
            json.dump(config, f, indent=2, sort_keys=True, default=str)
        self.meta = run_metadata(config.get("device", "cpu"))
        self._write_meta()
        self._evals = open(os.path.join(run_dir, "evals.csv"), "w", newline="")
        self._train = open(os.path.join(run_dir, "train.csv"), "w", newline="")
        self._ew = csv.writer(self._evals)
        self._tw = csv.writer(self._train)
        self._ew.writerow(EVAL_COLUMNS)
        self._tw.writerow(TRAIN_COLUMNS)
        self._flush()

    def eval_row(self, row: dict[str, Any]) -> None:
        self._ew.writerow([_fmt(row.get(c)) for c in EVAL_COLUMNS])
        self._flush()

    def train_rows(self, run_id: str, grad_step: int, phase: str, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            self._tw.writerow([run_id, grad_step, phase, k, _fmt(float(v))])

    def finish(self, extra_meta: dict[str, Any] | None = None) -> None:
        self.meta["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.meta.update(extra_meta or {})
        self._write_meta()
        self.close()
        with open(os.path.join(self.run_dir, "DONE"), "w") as f:
            f.write("ok\n")

    def close(self) -> None:
        for fh in (self._evals, self._train):
            if not fh.closed:
                fh.flush()
                fh.close()

    def _flush(self) -> None:
        self._evals.flush()
        self._train.flush()

    def _write_meta(self) -> None:
        tmp = os.path.join(self.run_dir, "meta.json.tmp")
        with open(tmp, "w") as f:
            json.dump(self.meta, f, indent=2, sort_keys=True, default=str)
        os.replace(tmp, os.path.join(self.run_dir, "meta.json"))


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
