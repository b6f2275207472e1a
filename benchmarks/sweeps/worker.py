"""The worker entry point every sweep backend runs a run through (local process pool and Ray tasks)."""

from __future__ import annotations

import os
import time
import traceback

from algorithms.base import UserError
from benchmarks.common.files import WriteError
from benchmarks.run.harness import SKIPPED, RunFailed, RunLocked, RunSpec, run


def run_one(spec_dict: dict, out_dir: str, force: bool = False,
            allow_code_change: bool = False) -> tuple[str, float, str | None]:
    """Worker entry point (local pool and Ray tasks): returns (run_id, seconds, error or None); an error that
    starts with ``SKIPPED`` means another live process holds the run."""
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    spec = RunSpec(**spec_dict)
    t0 = time.perf_counter()
    try:
        run(spec, out_dir, progress=False, resume=True, force=force, allow_code_change=allow_code_change)
        return spec.run_id, time.perf_counter() - t0, None
    except RunFailed as e:
        return spec.run_id, time.perf_counter() - t0, e.reason
    except RunLocked as e:
        return spec.run_id, time.perf_counter() - t0, f"{SKIPPED}{e}"
    except (UserError, WriteError) as e:
        return spec.run_id, time.perf_counter() - t0, str(e)
    except Exception:  # report and keep the sweep going
        return spec.run_id, time.perf_counter() - t0, traceback.format_exc(limit=3)
