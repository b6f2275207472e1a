"""Sweep presets: the algorithm x task x seed grids that ``awac-bench sweep`` runs.

* ``smoke``: every registered algorithm, one task, one seed, tiny budgets (tests; well under 3 minutes).
* ``quick``: what ``make bench`` runs on a laptop: every algorithm x 2 tasks x 3 seeds, budgets just
  large enough to show the offline-to-online transition. Batch sizes are the algorithms' defaults
  except where noted in QUICK_OVERRIDES.
* ``paper``: the AWAC paper's protocol (Sec. 5; rlkit awac1.py: 25k offline steps for the hand tasks,
  online up to 500k-1M environment steps, 1000-step evaluation epochs). For a cluster, through Ray.
"""

from __future__ import annotations

import algorithms
from algorithms.base import UserError
from benchmarks.harness import RunSpec

# Quick preset: AWAC at batch 256 instead of 1024 (4x cheaper per update) so that the grid fits a laptop;
# the deviation is recorded in every run's config.json.
QUICK_OVERRIDES: dict[str, dict] = {"awac": {"batch_size": 256}}

PRESETS = {
    "smoke": dict(tasks=["pen-binary-human"], seeds=[0],
                  spec=dict(offline_steps=100, online_steps=100, eval_every=50, eval_every_offline=50,
                            eval_episodes=1, log_every=25)),
    "quick": dict(tasks=["pen-binary-human", "halfcheetah-sac-replay"], seeds=[0, 1, 2],
                  spec=dict(offline_steps=4_000, online_steps=4_000, eval_every=500, eval_every_offline=1_000,
                            eval_episodes=5, log_every=250)),
    "paper": dict(tasks=["pen-binary-human", "door-binary-human", "halfcheetah-sac-replay"],
                  seeds=[0, 1, 2, 3, 4],
                  spec=dict(offline_steps=25_000, online_steps=500_000, eval_every=5_000,
                            eval_every_offline=5_000, eval_episodes=10, log_every=1_000)),
}


def grid(preset: str, algos: list[str] | None = None, tasks: list[str] | None = None,
         seeds: list[int] | None = None, device: str = "cpu", overrides: dict | None = None) -> list[RunSpec]:
    if preset not in PRESETS:
        raise UserError(f"unknown preset '{preset}' (known: {', '.join(PRESETS)})")
    p = PRESETS[preset]
    algos = algos or algorithms.names()
    for a in algos:
        algorithms.get(a)  # unknown names fail here, before anything runs
    specs = []
    for task in tasks or p["tasks"]:
        for algo in algos:
            for seed in seeds if seeds is not None else p["seeds"]:
                ov = dict(QUICK_OVERRIDES.get(algo, {})) if preset == "quick" else {}
                ov.update(overrides or {})
                specs.append(RunSpec(algo=algo, task=task, seed=seed, device=device, overrides=ov, **p["spec"]))
    return specs
