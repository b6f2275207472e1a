"""Run a grid of RunSpecs: local worker processes (one torch thread each, one process per core) or Ray.

Rerunning a sweep continues it: finished runs (``DONE``) are skipped, runs that failed for good (``FAILED``)
are listed again without rerunning them, unfinished runs continue from their last checkpoint (see
``benchmarks.run.harness.run``); ``force`` starts every run again and keeps the old directories in ``OUT/old/``.
A worker process that dies (killed, out of memory) takes its run with it, not the sweep: the runs it held
are started again in a new pool and continue from their checkpoints (at most MAX_RETRIES times each).

``OUT/sweep.json`` lists the sweep's specs (written when it starts), so ``awac-bench status OUT`` can tell
finished, running, failed and remaining runs apart. One progress bar counts every step of the sweep
(offline + online steps of every run, read from each run's ``progress.json``) with an ETA from the
throughput measured per algorithm.

Backend ``ray`` (``benchmarks/sweeps/ray_backend.py``) runs one Ray task per run on the cluster that ``RAY_ADDRESS``
names (a new local instance without it) and needs no shared filesystem: ``OUT`` lives on the driver's node only.
Each task runs in a temporary directory on its own node, sends every checkpoint to a store actor on the driver's
node that keeps it in ``OUT/runs/<run_id>/``, and returns its finished run directory to the driver. A task whose
worker process or node dies is retried by Ray (at most MAX_RETRIES times) and continues, on any node, from the
last checkpoint that reached the driver. ``tests/test_ray.py`` runs it on a local instance and on a two-node
cluster with a worker killed mid-run.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import datetime as dt
import json
import multiprocessing as mp
import os
import socket
import sys
import threading
import time
from types import SimpleNamespace

from algorithms.base import UserError
from benchmarks.common import files, provenance
from benchmarks.generation.prepare import ensure_generated_many
from benchmarks.run.harness import (
    SKIPPED,
    RunSpec,
    check_output_dir,
    check_spec,
    prepare,
    run_lock_path,
)
from benchmarks.run.results import collect_sweep
from benchmarks.sweeps.worker import run_one

MAX_RETRIES = 2      # new attempts for a run whose worker process died
POLL_S = 1.0         # seconds between progress-bar updates


def _state(out_dir: str, run_id: str) -> str:
    d = os.path.join(out_dir, "runs", run_id)
    if os.path.isfile(os.path.join(d, "DONE")):
        return "finished"
    if os.path.isfile(os.path.join(d, "FAILED")):
        return "failed"
    return "partial" if os.path.isdir(d) else "new"


def _failed_reason(out_dir: str, run_id: str) -> str:
    try:
        with open(os.path.join(out_dir, "runs", run_id, "FAILED")) as f:
            return f.read().strip()
    except OSError:
        return "?"


def read_progress(out_dir: str, run_id: str) -> dict | None:
    try:
        with open(os.path.join(out_dir, "runs", run_id, "progress.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def steps_of(spec: RunSpec) -> int:
    return spec.offline_steps + spec.online_steps


def write_sweep_json(out_dir: str, specs: list[RunSpec], workers: int, backend: str) -> None:
    info = {"started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "host": socket.gethostname(),
            "workers": workers, "backend": backend,
            "runs": [{"run_id": s.run_id, **dataclasses.asdict(s)} for s in specs]}
    files.atomic_write_text(os.path.join(out_dir, "sweep.json"), json.dumps(info, indent=1, sort_keys=True))


def algo_rates(specs: list[RunSpec], progress: dict[str, dict | None], finished: set[str]) -> dict[str, float]:
    """Steps per run-second of each algorithm: over its finished runs where it has any (a whole run: offline
    gradient steps and online environment steps, which cost differently), else over its runs' progress so far."""
    sums: dict[tuple[str, bool], list[float]] = {}
    for s in specs:
        p = progress.get(s.run_id)
        if p and p.get("wall_s", 0) > 0 and p.get("steps_done", 0) > 0:
            acc = sums.setdefault((s.algo, s.run_id in finished), [0.0, 0.0])
            acc[0] += p["steps_done"]
            acc[1] += p["wall_s"]
    rates = {algo: done / wall for (algo, fin), (done, wall) in sums.items() if not fin}
    rates.update({algo: done / wall for (algo, fin), (done, wall) in sums.items() if fin})
    return rates


def estimate_eta(specs: list[RunSpec], progress: dict[str, dict | None], finished: set[str],
                 workers: int) -> float | None:
    """Seconds left: the remaining steps of every unfinished run at its algorithm's measured throughput
    (``algo_rates``; the mean over all algorithms where one has none yet), spread over ``workers`` (at most
    one per unfinished run)."""
    if all(s.run_id in finished for s in specs):
        return 0.0
    rates = algo_rates(specs, progress, finished)
    if not rates:
        return None
    overall = sum(rates.values()) / len(rates)
    run_seconds, left = 0.0, 0
    for s in specs:
        if s.run_id in finished:
            continue
        p = progress.get(s.run_id) or {}
        remaining = max(0, steps_of(s) - int(p.get("steps_done", 0)))
        run_seconds += remaining / rates.get(s.algo, overall)
        left += 1
    return run_seconds / max(1, min(workers, left)) if left else 0.0


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class _SweepBar:
    """One bar over every step of the sweep, refreshed from the runs' progress.json files by a thread."""

    def __init__(self, specs: list[RunSpec], out_dir: str, workers: int, enabled: bool = True):
        from tqdm.auto import tqdm

        self.specs, self.out_dir, self.workers = specs, out_dir, workers
        self.finished: set[str] = set()
        self.failed = 0
        self.bar = tqdm(total=sum(steps_of(s) for s in specs), desc="sweep", unit="step", dynamic_ncols=True,
                        disable=not enabled, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                                        "steps [{elapsed}{postfix}]")
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.refresh()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.wait(POLL_S):
            self.refresh()

    def refresh(self) -> None:
        with self.lock:
            progress = {s.run_id: read_progress(self.out_dir, s.run_id) for s in self.specs}
            n = sum(steps_of(s) if s.run_id in self.finished else int((progress.get(s.run_id) or {})
                                                                       .get("steps_done", 0))
                    for s in self.specs)
            eta = estimate_eta(self.specs, progress, self.finished, self.workers)
            self.bar.n = n
            runs = f"{len(self.finished)}/{len(self.specs)} runs" + (f", {self.failed} failed" if self.failed else "")
            self.bar.set_postfix_str(f"eta {_fmt_s(eta)}, {runs}", refresh=False)
            self.bar.refresh()

    def run_ended(self, run_id: str, failed: bool) -> None:
        with self.lock:
            self.finished.add(run_id)
            self.failed += int(failed)
        self.refresh()

    def write(self, msg: str) -> None:
        self.bar.write(msg, file=sys.stderr)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.refresh()
        self.bar.close()


def sweep_lock_path(out_dir: str) -> str:
    return os.path.join(out_dir, "locks", "sweep.lock")


def run_sweep(specs: list[RunSpec], out_dir: str, workers: int = 1, backend: str = "process",
              fresh: bool = False, progress: bool = True, allow_code_change: bool = False) -> int:
    """Run every spec; returns 0, or 1 if any run failed (the summary lists them). ``fresh``: --force.

    One sweep per folder: a second sweep on ``out_dir`` while one runs is refused (UserError with the holder's
    PID) before it touches anything. Runs that another live process writes (an ``awac-bench run`` into the same
    folder) are skipped and listed; ``awac-bench status`` shows them as running."""
    if workers < 1:
        raise UserError("--workers must be >= 1")
    check_output_dir(out_dir)
    lock = files.exclusive(sweep_lock_path(out_dir), f"{out_dir} is being written by another sweep", out_dir,
                     hint=f"; `awac-bench status {out_dir}` shows its progress")
    try:
        return _sweep_locked(specs, out_dir, workers, backend, fresh, progress, allow_code_change)
    finally:
        lock.release()


def _sweep_locked(specs: list[RunSpec], out_dir: str, workers: int, backend: str, fresh: bool, progress: bool,
                  allow_code_change: bool) -> int:
    # validate every distinct (algo, task, config) before starting anything: bad input fails fast; then make the
    # missing suite-generated datasets (an explicit, announced step) and check every run against its env and data
    distinct = list({(s.algo, s.task, s.dataset, s.env, str(sorted(s.overrides.items())), s.algo_preset): s
                     for s in specs}.values())
    # with Ray the runs' device is the workers' business: a driver without CUDA can run a GPU sweep
    distinct = [dataclasses.replace(s, device="cpu") if backend == "ray" else s for s in distinct]
    for s in distinct:
        check_spec(s)
    ensure_generated_many([s.task for s in distinct if s.dataset is None], workers)
    for s in distinct:
        prepare(s)
    states = {s.run_id: _state(out_dir, s.run_id) for s in specs}
    count = {k: sum(v == k for v in states.values()) for k in ("finished", "failed", "partial", "new")}
    todo = specs if fresh else [s for s in specs if states[s.run_id] in ("partial", "new")]
    held = {s.run_id: files.lock_holder(run_lock_path(out_dir, s.run_id)) for s in todo}
    skipped = [(rid, f"being written by another process (PID {pid})") for rid, pid in held.items() if pid is not None]
    todo = [s for s in todo if held[s.run_id] is None]
    for rid, why in skipped:
        print(f"sweep: {rid} is {why}: skipped", file=sys.stderr)
    late: list[tuple[str, str]] = []  # taken by another process between that look and the run's start
    ray_started = False
    if backend == "ray" and todo:
        from benchmarks.sweeps import ray_backend

        ray_started, workers = ray_backend.connect()  # workers: the cluster's CPUs (for the ETA)
    try:
        os.makedirs(out_dir, exist_ok=True)
        write_sweep_json(out_dir, specs, workers, backend)
    except OSError as e:
        raise UserError(f"cannot write results to '{out_dir}': {e.strerror}") from None
    what = (f"{count['finished']} already finished, {count['failed']} failed earlier, {count['partial']} to resume"
            if not fresh else "all started again (--force)")
    print(f"sweep: {len(specs)} runs ({what}), {workers} worker(s), backend {backend}, results in {out_dir}",
          file=sys.stderr)
    t0 = time.perf_counter()
    failures: list[tuple[str, str]] = []
    if not fresh:
        failures += [(s.run_id, f"failed earlier: {_failed_reason(out_dir, s.run_id)}") for s in specs
                     if states[s.run_id] == "failed"]

    bar = _SweepBar(todo, out_dir, workers, enabled=progress)

    def record(result):
        rid, secs, err = result
        if err and err.startswith(SKIPPED):  # another process took the run after the look above
            late.append((rid, err[len(SKIPPED):]))
            bar.write(f"skipped {rid}: {err[len(SKIPPED):]}")
            bar.run_ended(rid, False)
            return
        if err:
            failures.append((rid, err))
            bar.write(f"FAILED {rid}: {err.strip().splitlines()[-1]}")
        bar.run_ended(rid, bool(err))

    dicts = [dataclasses.asdict(s) for s in todo]
    try:
        if backend == "ray":
            _run_ray(dicts, out_dir, fresh, record, allow_code_change)
        elif workers == 1:
            for d in dicts:
                record(run_one(d, out_dir, fresh, allow_code_change))
        else:
            _run_pool(dicts, out_dir, workers, fresh, record, allow_code_change)
    finally:
        bar.close()
        if ray_started:
            import ray

            ray.shutdown()
    path = collect_sweep(out_dir)
    print(f"sweep: {len(todo) - len(failures) - len(late)}/{len(todo)} runs finished in "
          f"{time.perf_counter() - t0:.0f}s; table: {path}", file=sys.stderr)
    for rid, err in failures:
        print(f"  failed: {rid}: {err.strip().splitlines()[-1]}", file=sys.stderr)
    for rid, why in skipped + late:
        print(f"  skipped: {rid}: {why}", file=sys.stderr)
    return 1 if failures else 0


def _run_pool(dicts: list[dict], out_dir: str, workers: int, force: bool, record,
              allow_code_change: bool = False) -> None:
    """Local worker processes; the runs of a pool that broke (a worker died) go to a new pool and resume."""
    ctx = mp.get_context("spawn")  # fresh interpreters: no forked torch thread pools
    attempts: dict[str, int] = {}
    pending = list(dicts)
    while pending:
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            # --force applies to a run's first attempt only: a retry continues that attempt
            futures = {pool.submit(run_one, d, out_dir, force and not attempts.get(RunSpec(**d).run_id),
                                   allow_code_change=allow_code_change): d
                       for d in pending}
            pending = []
            for fut in cf.as_completed(futures):
                d = futures[fut]
                try:
                    record(fut.result())
                except Exception as e:  # BrokenProcessPool: a worker process died
                    rid = RunSpec(**d).run_id
                    attempts[rid] = attempts.get(rid, 0) + 1
                    if attempts[rid] > MAX_RETRIES:
                        record((rid, 0.0, f"worker process died {attempts[rid]} times ({type(e).__name__})"))
                    else:
                        pending.append(d)  # continues from its checkpoint


def _run_ray(dicts: list[dict], out_dir: str, force: bool, record, allow_code_change: bool) -> None:
    """One Ray task per run, no shared filesystem (benchmarks/sweeps/ray_backend.py has the storage model)."""
    from benchmarks.sweeps import ray_backend

    ray_backend.run_tasks(dicts, out_dir, force, record, max_retries=MAX_RETRIES,
                          allow_code_change=allow_code_change)


# -- awac-bench status ------------------------------------------------------------------------------------
def sweep_status(out_dir: str, now: float | None = None) -> list[str]:
    """Lines for ``awac-bench status OUT``: every run of OUT/sweep.json (and any other run folder in OUT/runs)
    as finished, running (age of its last checkpoint), interrupted, failed (reason) or remaining."""
    if not os.path.isdir(out_dir):
        raise UserError(f"results directory not found: {out_dir}")
    now = time.time() if now is None else now
    planned: dict[str, int | None] = {}
    specs, workers = [], 1  # what the ETA needs of each run: run_id, algo, offline_steps, online_steps
    try:
        with open(os.path.join(out_dir, "sweep.json")) as f:
            info = json.load(f)
        for r in info["runs"]:
            planned[r["run_id"]] = int(r["offline_steps"]) + int(r["online_steps"])
            specs.append(SimpleNamespace(run_id=r["run_id"], algo=r["algo"], offline_steps=int(r["offline_steps"]),
                                         online_steps=int(r["online_steps"])))
        workers = max(1, int(info.get("workers", 1)))
    except (OSError, ValueError, KeyError, TypeError):
        specs = []
    runs_dir = os.path.join(out_dir, "runs")
    for rid in sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else []:
        if os.path.isdir(os.path.join(runs_dir, rid)):
            planned.setdefault(rid, None)
    if not planned:
        raise UserError(f"no sweep.json and no runs in {out_dir}")
    groups: dict[str, list[str]] = {k: [] for k in ("finished", "running", "interrupted", "failed", "remaining")}
    host = socket.gethostname()
    states = {rid: _state(out_dir, rid) for rid in planned}
    progress = {rid: read_progress(out_dir, rid) for rid in planned}
    finished = {rid for rid, state in states.items() if state == "finished"}
    rates, algo_of = algo_rates(specs, progress, finished), {s.run_id: s.algo for s in specs}
    for rid in sorted(planned):
        state = states[rid]
        if state == "finished":
            groups["finished"].append(rid)
        elif state == "failed":
            groups["failed"].append(f"{rid}: {_failed_reason(out_dir, rid)}")
        elif (pid := files.lock_holder(run_lock_path(out_dir, rid))) is not None:  # a live writer holds it
            p = progress[rid] or {}
            total = p.get("steps_total") or planned[rid]
            pct = f"{p.get('steps_done', 0)}/{total} steps" if total else "starting"
            groups["running"].append(f"{rid}: {pct} (PID {pid})")
        elif state == "new":
            groups["remaining"].append(rid)
        else:
            p = progress[rid] or {}
            ckpt = os.path.join(runs_dir, rid, "ckpt", "state.pt")
            last = p.get("last_checkpoint") or (os.path.getmtime(ckpt) if os.path.isfile(ckpt) else None)
            age = "no checkpoint yet" if last is None else f"last checkpoint {_fmt_s(now - last)} ago"
            total = p.get("steps_total") or planned[rid]
            pct = f"{p.get('steps_done', 0)}/{total} steps" if total else "started"
            done, wall = int(p.get("steps_done", 0)), float(p.get("wall_s", 0.0))
            rate = rates.get(algo_of.get(rid, ""), done / wall if done > 0 and wall > 0 else 0.0)
            if total and rate > 0:  # its algorithm's pace over finished runs, else its own pace so far
                pct += f" (about {_fmt_s(max(0, int(total) - done) / rate)} left)"
            if not p:
                groups["interrupted"].append(f"{rid}: no progress recorded, {age}")
            elif p.get("host") == host and p.get("pid") and not files.pid_alive(int(p["pid"])):
                groups["interrupted"].append(f"{rid}: {pct}, {age} (rerun the sweep or `run --resume`)")
            elif p.get("host") not in (None, host) and now - float(p.get("updated", 0)) > 600:
                groups["interrupted"].append(f"{rid}: {pct}, {age}, no progress for "
                                             f"{_fmt_s(now - float(p.get('updated', 0)))} (on {p.get('host')})")
            else:
                groups["running"].append(f"{rid}: {pct}, {age}")
    n = len(planned)
    lines = [f"{out_dir}: {n} run{'' if n == 1 else 's'}: " + ", ".join(f"{len(v)} {k}" for k, v in groups.items())]
    if specs and len(groups["finished"]) < n:
        eta = estimate_eta(specs, progress, finished, workers)
        if eta is not None:
            lines.append(f"  {'eta':11s} about {_fmt_s(eta)} of wall time left at {workers} worker"
                         f"{'' if workers == 1 else 's'} (each algorithm's steps per second over its finished "
                         "runs, else so far)")
    for k in ("running", "interrupted", "failed", "remaining"):
        lines += [f"  {k:11s} {item}" for item in groups[k]]
    dirs = [os.path.join(runs_dir, rid) for rid in planned if os.path.isdir(os.path.join(runs_dir, rid))]
    if dirs:
        summary = provenance.summarize(dirs)
        lines.append("  provenance" + (" (WARNING: mixed)" if provenance.has_warning(summary) else ""))
        lines += [f"    {line[2:] if line.startswith('- ') else line}" for line in provenance.provenance_lines(summary)]
    return lines
