"""Run a grid of RunSpecs: local worker processes (one torch thread each, one process per core) or Ray.

Finished runs (a ``DONE`` file) are skipped, so a sweep that died is resumed by running it again;
an unfinished run is restarted from scratch. Every run's rows are on disk as soon as they exist.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import multiprocessing as mp
import os
import sys
import time
import traceback

from algorithms.base import UserError
from benchmarks.harness import RunSpec, prepare, run
from benchmarks.results import collect_sweep


def _run_one(spec_dict: dict, out_dir: str) -> tuple[str, float, str | None]:
    """Worker entry point: returns (run_id, seconds, error or None)."""
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    spec = RunSpec(**spec_dict)
    t0 = time.perf_counter()
    try:
        run(spec, out_dir, progress=False)
        return spec.run_id, time.perf_counter() - t0, None
    except UserError as e:
        return spec.run_id, time.perf_counter() - t0, str(e)
    except Exception:  # report and keep the sweep going
        return spec.run_id, time.perf_counter() - t0, traceback.format_exc(limit=3)


def _done(out_dir: str, spec: RunSpec) -> bool:
    return os.path.isfile(os.path.join(out_dir, "runs", spec.run_id, "DONE"))


def run_sweep(specs: list[RunSpec], out_dir: str, workers: int = 1, backend: str = "process",
              fresh: bool = False) -> int:
    if workers < 1:
        raise UserError("--workers must be >= 1")
    # validate every distinct (algo, task, config) before starting anything: bad input fails fast
    seen = set()
    for s in specs:
        key = (s.algo, s.task, s.dataset, s.env, str(sorted(s.overrides.items())), s.algo_preset)
        if key not in seen:
            seen.add(key)
            prepare(s)
    todo = [s for s in specs if fresh or not _done(out_dir, s)]
    skipped = len(specs) - len(todo)
    os.makedirs(out_dir, exist_ok=True)
    print(f"sweep: {len(specs)} runs ({skipped} already finished), {workers} worker(s), backend {backend}, "
          f"results in {out_dir}", file=sys.stderr)
    t0 = time.perf_counter()
    failures: list[tuple[str, str]] = []

    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc="sweep", unit="run", dynamic_ncols=True)

    def record(result):
        rid, secs, err = result
        if err:
            failures.append((rid, err))
            bar.write(f"FAILED {rid}: {err.strip().splitlines()[-1]}")
        else:
            bar.set_postfix(last=f"{rid} {secs:.0f}s", refresh=False)
        bar.update(1)

    dicts = [dataclasses.asdict(s) for s in todo]
    if backend == "ray":
        try:
            import ray
        except ImportError:
            raise UserError("backend 'ray' needs Ray: pip install -e '.[ray]'") from None
        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True)
        remote = ray.remote(num_cpus=1)(_run_one)
        pending = [remote.remote(d, os.path.abspath(out_dir)) for d in dicts]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            record(ray.get(ready[0]))
    elif workers == 1:
        for d in dicts:
            record(_run_one(d, out_dir))
    else:
        ctx = mp.get_context("spawn")  # fresh interpreters: no forked torch thread pools
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(_run_one, d, out_dir) for d in dicts]
            for fut in cf.as_completed(futures):
                record(fut.result())
    bar.close()
    path = collect_sweep(out_dir)
    print(f"sweep: {len(todo) - len(failures)}/{len(todo)} runs finished in {time.perf_counter() - t0:.0f}s; "
          f"table: {path}", file=sys.stderr)
    for rid, err in failures:
        print(f"  failed: {rid}: {err.strip().splitlines()[-1]}", file=sys.stderr)
    return 1 if failures else 0
