"""Making the suite's own datasets on disk, as an explicit step: the CLI (``run``, ``sweep``, ``check``,
``data prepare``/``generate``/``quality``) calls it before anything reads a task's dataset; loading a task
(``Task.load_dataset``) never generates.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import sys

from benchmarks.generation import generate, priordata
from benchmarks.tasks.registry import TASKS
from benchmarks.tasks.task import Task


def ensure_generated(task: Task, progress: bool = True) -> str:
    """Generate a recipe task's dataset if it is not on disk yet (with progress); returns its path. The
    checksum is compared with the manifest's reference generation and a difference is reported (another
    platform or torch build may round differently; the run records the checksum it used)."""
    if os.path.exists(task.dataset_path):
        return task.dataset_path
    print(f"generating the prior data of '{task.name}' ({task.description}) ...", file=sys.stderr)
    _, info = priordata.generate(task, task.dataset_path, progress=progress)
    ref = generate.manifest_entry(task.name)
    # an entry without a checksum holds only a ladder walk or a quality measurement: nothing to compare with
    if ref is not None and ref.get("sha256") and ref["sha256"] != info["sha256"]:
        print(f"note: {task.name} data sha256 {info['sha256'][:12]} differs from the manifest's "
              f"{ref['sha256'][:12]} (platform or build difference)", file=sys.stderr)
    return task.dataset_path


def _ensure_by_name(name: str) -> str:
    return ensure_generated(TASKS[name], progress=True)  # one tqdm bar (with ETA) per stage and process


def ensure_generated_many(names: list[str], workers: int = 1) -> None:
    """Generate the missing datasets of several recipe tasks, one process per task (up to ``workers``)."""
    todo = [n for n in dict.fromkeys(names) if n in TASKS and TASKS[n].recipe is not None
            and not os.path.exists(TASKS[n].dataset_path)]
    if not todo:
        return
    print(f"generating prior data for {', '.join(todo)} ({min(workers, len(todo))} process(es); "
          "a few minutes each) ...", file=sys.stderr)
    if workers <= 1 or len(todo) == 1:
        for n in todo:
            ensure_generated(TASKS[n])
        return
    with cf.ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=mp.get_context("spawn")) as pool:
        for path in pool.map(_ensure_by_name, todo):
            print(f"  wrote {path}", file=sys.stderr)


def ensure_specs(task_names, workers: int = 1) -> None:
    """Generate what a list of runs needs: the missing datasets of the recipe tasks among ``task_names``."""
    ensure_generated_many([n for n in task_names if n in TASKS], workers)
