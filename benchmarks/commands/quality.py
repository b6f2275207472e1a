"""Prior-data quality, measured as the AWAC paper measures it: "BC (2)", behaviour cloning on the whole prior data.

The paper's appendix table of prior-data quality (read from the authors' LaTeX source, docs/FIDELITY.md) gives,
for BC trained on the expert demonstrations plus the BC rollouts ("BC (2)"): success 76% (pen), 0% (door),
1% (relocate); return 4,524 / 1,701 / 1,704 on HalfCheetah / Walker2d / Ant, whose experts return 9,962 /
5,062 / 5,207. A benchmark whose data is better than that has less left to learn online than the paper's.

The measurement (declared in docs/TASKS.md "Data quality" before the data it judges was generated):

* BC (2) is the suite's BC (``algorithms/bc.py``, its defaults and the task family's preset) trained on every
  row of the task's prior data for the paper launchers' offline length (``q_num_pretrain2_steps``: 25k
  gradient steps on the hand tasks, 50k on MuJoCo; the offline phase every baseline of the grid gets), seed 0,
  through the harness (``awac-bench run --algo bc --online-steps 0``), and evaluated at the switch on
  ``EPISODES`` = 100 deterministic episodes: exactly BC's offline score in a grid run, with more episodes.
* The bar: success within 15 points of the paper's (hand tasks), or BC's share of the expert's return (the
  expert's 10-episode deterministic return recorded in its file) within 15 points of the paper's share
  (MuJoCo). Tasks that are not the paper's (hopper-awac) are measured and reported without a band.
* Where the recipe lands outside its band, ``--ladder`` walks the recipe's pre-declared ladder
  (``Recipe.ladder`` of ``Recipe.ladder_field``) in order and takes the first rung within the band; each
  rung's data is generated into its own file (never over the task's), every rung's result is recorded in
  MANIFEST.json, and the chosen rung is set in the task's recipe (``benchmarks/tasks/registry.py``) by hand, so that
  ``awac-bench data generate`` keeps making exactly the measured data.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass

from algorithms.base import UserError

EPISODES = 100
BAND_POINTS = 15.0
OFFLINE_STEPS = {"hand": 25_000, "mujoco": 50_000}  # rlkit examples/awac/{hand,mujoco}/awac1.py
QUALITY_ROOT = os.path.join("runs", "quality")


@dataclass(frozen=True)
class PaperQuality:
    """The paper's BC (2) for one task: a success rate (hand) or a return with its expert's return (MuJoCo)."""

    success: float | None = None       # percent
    bc_return: float | None = None
    expert_return: float | None = None

    @property
    def value(self) -> float:
        """What the band is about: success in percent, or BC's share of the expert's return in percent."""
        return self.success if self.success is not None else 100.0 * self.bc_return / self.expert_return


# the AWAC paper's appendix data-quality table (anair13/thesis @ 5f453bd, awac/main.tex; docs/FIDELITY.md)
PAPER = {
    "pen-binary": PaperQuality(success=76.0),
    "door-binary": PaperQuality(success=0.0),
    "relocate-binary": PaperQuality(success=1.0),
    "halfcheetah-awac": PaperQuality(bc_return=4_524.0, expert_return=9_962.0),
    "walker2d-awac": PaperQuality(bc_return=1_701.0, expert_return=5_062.0),
    "ant-awac": PaperQuality(bc_return=1_704.0, expert_return=5_207.0),
}


def band(task_name: str) -> tuple[float, float] | None:
    p = PAPER.get(task_name)
    if p is None:
        return None
    return max(0.0, p.value - BAND_POINTS), min(100.0, p.value + BAND_POINTS)


def measure(task, dataset_path: str, seed: int = 0, episodes: int = EPISODES, offline_steps: int | None = None,
            progress: bool = True, workdir: str | None = None) -> dict:
    """BC (2) on ``dataset_path`` (the task's prior data or a rung's): train, evaluate, return the numbers."""
    import pandas as pd

    from benchmarks.data.dataset import load_dataset
    from benchmarks.run.harness import RunSpec, run

    steps = offline_steps if offline_steps is not None else OFFLINE_STEPS[task.family]
    sha = load_dataset(dataset_path).checksum()
    # one directory per dataset checksum and measurement setting: a finished measurement of the same data with the
    # same steps, episodes and seed is reused, never one of other data or settings
    out = os.path.join(workdir or QUALITY_ROOT, f"{task.name}-{sha[:12]}-bc{steps}-e{episodes}-s{seed}")
    spec = RunSpec(algo="bc", task=task.name, seed=seed, offline_steps=steps, online_steps=0,
                   eval_episodes=episodes, dataset=dataset_path, checkpoint_every_min=5.0)
    t0 = time.perf_counter()
    run_dir = run(spec, out, progress=progress, resume=True)
    row = pd.read_csv(os.path.join(run_dir, "evals.csv")).iloc[-1]
    res = {"algo": "bc", "offline_steps": steps, "seed": seed, "episodes": episodes,
           "return_mean": float(row["return_mean"]), "dataset_sha256": sha,
           "wall_s": round(time.perf_counter() - t0, 1)}
    if task.success_min_steps is not None:
        res["success_rate"] = 100.0 * float(row["success_rate"])
        res["value"] = res["success_rate"]
    else:
        from benchmarks.generation.expert import load_expert

        _, info = load_expert(task.recipe.demos.partition(":")[2]) if task.recipe else (None, {})
        expert_ret = info.get("eval_return_mean")
        res["expert_return"] = expert_ret
        res["share_of_expert"] = 100.0 * res["return_mean"] / expert_ret if expert_ret else None
        res["value"] = res["share_of_expert"]
    b = band(task.name)
    res["paper"] = PAPER[task.name].value if task.name in PAPER else None
    res["band"] = list(b) if b else None
    res["in_band"] = None if b is None or res["value"] is None else bool(b[0] <= res["value"] <= b[1])
    return res


def _rung_task(task, value: float):
    recipe = dataclasses.replace(task.recipe, **{task.recipe.ladder_field: value})
    from benchmarks.generation.priordata import GENERATED_DIR

    path = os.path.join(GENERATED_DIR, "ladder", f"{task.name}-{task.recipe.ladder_field}-{value:g}.hdf5")
    return dataclasses.replace(task, recipe=recipe, dataset_path=path)


def quality(task_name: str, ladder: bool = False, progress: bool = True) -> dict:
    """``awac-bench data quality TASK [--ladder]``: measure BC (2) on the task's data (generating it if it is
    missing) and record it in MANIFEST.json; with ``ladder``, walk the declared ladder (see the module doc)."""
    from benchmarks.generation import generate
    from benchmarks.generation.prepare import ensure_generated
    from benchmarks.tasks.registry import TASKS

    task = TASKS.get(task_name)
    if task is None or task.recipe is None:
        known = ", ".join(n for n, t in TASKS.items() if t.recipe is not None)
        raise UserError(f"unknown or non-generated task '{task_name}' (data quality knows: {known})")
    if not ladder:
        from benchmarks.data.dataset import load_dataset

        ensure_generated(task, progress=progress)
        entry = generate.manifest_entry(task_name) or {}
        sha = load_dataset(task.dataset_path).checksum()
        if entry.get("sha256") != sha:  # measured data must be the recorded reference generation
            raise UserError(f"{task.dataset_path} fails its recorded checksum (sha256 {sha[:12]}, MANIFEST.json "
                            f"{str(entry.get('sha256'))[:12]}): regenerate it with `awac-bench data generate "
                            f"--task {task_name}`")
        res = measure(task, task.dataset_path, progress=progress)
        res["rung"] = {task.recipe.ladder_field: getattr(task.recipe, task.recipe.ladder_field)} \
            if task.recipe.ladder else None
        res["command"] = f"awac-bench data quality {task_name}"
        generate.record_manifest_field(task_name, "bc2", res)
        return res
    if not task.recipe.ladder:
        raise UserError(f"task '{task_name}' declares no data-quality ladder")
    walk = []
    chosen = None
    for value in task.recipe.ladder:
        rt = _rung_task(task, value)
        if not os.path.exists(rt.dataset_path):
            from benchmarks.generation import priordata

            print(f"{task_name}: generating the rung {task.recipe.ladder_field} = {value:g} ...", file=sys.stderr)
            priordata.generate(rt, rt.dataset_path, progress=progress)
        res = measure(rt, rt.dataset_path, progress=progress)
        res[task.recipe.ladder_field] = value
        walk.append(res)
        print(f"{task_name}: {task.recipe.ladder_field} = {value:g}: BC (2) {res['value']:.1f} "
              f"(band {res['band']}) -> {'in band' if res['in_band'] else 'outside'}", file=sys.stderr)
        if res["in_band"] is not False:
            chosen = value
            break
    summary = {"field": task.recipe.ladder_field, "ladder": list(task.recipe.ladder), "walk": walk,
               "chosen": chosen, "command": f"awac-bench data quality {task_name} --ladder"}
    if chosen is None:  # declared: the rung closest to the band, and the miss stated
        b = walk[-1]["band"]
        best = min(walk, key=lambda r: 0.0 if b is None else max(b[0] - r["value"], r["value"] - b[1], 0.0))
        summary["chosen"] = best[task.recipe.ladder_field]
        summary["missed"] = True
    generate.record_manifest_field(task_name, "ladder", summary)
    return summary


def quality_line(task_name: str, res: dict) -> str:
    """One line for the terminal: the measurement (or the ladder's outcome) against the paper's band."""
    if "walk" in res:
        steps = ", ".join(f"{r[res['field']]:g}: {r['value']:.1f}" for r in res["walk"])
        miss = " (no rung in band: the closest is used)" if res.get("missed") else ""
        return (f"{task_name}: ladder of {res['field']} -> {steps}; chosen {res['field']} = {res['chosen']:g}{miss}; "
                f"set it in the task's recipe (benchmarks/tasks/registry.py) and run `awac-bench data generate --task "
                f"{task_name}`")
    what = "success" if "success_rate" in res else "share of the expert's return"
    verdict = "no band (not a paper task)" if res["band"] is None else \
        f"paper {res['paper']:.1f}, band [{res['band'][0]:.1f}, {res['band'][1]:.1f}]: " \
        f"{'inside' if res['in_band'] else 'OUTSIDE'}"
    return (f"{task_name}: BC (2) {what} {res['value']:.1f}% (return {res['return_mean']:.1f}, {res['episodes']} "
            f"episodes, {res['offline_steps']} BC steps); {verdict}")
