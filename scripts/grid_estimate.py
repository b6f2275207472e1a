"""Wall time of a grid at 1 update per environment step, estimated from the measured runs of results/standard.

The standard grid ran every algorithm on pen-binary, door-binary, halfcheetah-awac and hopper-awac with 25k offline
updates, 100k online environment steps at 0.1 updates per step (10k online updates) and 10 evaluation episodes,
two runs at a time on the 2-core development machine. For each (algorithm, task) its mean ``wall_s`` splits into

    environment and evaluation time  E(task)  = BC's wall time minus its 25k offline updates (BC at ~400/s),
    update time                     U(algo, task) = wall - E(task),

and a run of another budget is estimated as 1.5 E (twice the evaluation episodes) + U x (its updates / 35k).
walker2d-awac, which the standard grid lacks, is taken as halfcheetah-awac. BEAR with d3rlpy's 256-256 networks
(the first declared cut) is taken at half its update time (the ``check`` preset's measurement: "halves its runs").

    python scripts/grid_estimate.py [--online 100000] [--bear-small]
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDARD_UPDATES = 35_000  # 25k offline + 10k online
BC_RATE = 400.0            # BC updates per second (docs/PERFORMANCE.md, about 360-440)


def measured() -> dict[tuple[str, str], float]:
    walls = collections.defaultdict(list)
    for d in glob.glob(os.path.join(ROOT, "results", "standard", "runs", "*")):
        with open(os.path.join(d, "meta.json")) as f:
            meta = json.load(f)
        with open(os.path.join(d, "config.json")) as f:
            config = json.load(f)
        walls[(config["algo"], config["task"])].append(float(meta["wall_s"]))
    return {k: sum(v) / len(v) for k, v in walls.items()}


def estimate(online: int, bear_small: bool, seeds: int = 3, workers: int = 2) -> tuple[dict, float]:
    wall = measured()
    tasks = {"pen-binary": ("pen-binary", 25_000), "door-binary": ("door-binary", 25_000),
             "halfcheetah-awac": ("halfcheetah-awac", 50_000), "walker2d-awac": ("halfcheetah-awac", 50_000)}
    algos = {"awac": "awac", "sacfd": "sacfd", "sacfd-prior": "sacfd", "bear": "bear", "awr": "awr", "bc": "bc",
             "iql": "iql"}
    per = {}
    for task, (like, offline) in tasks.items():
        env = max(0.0, wall[("bc", like)] - 25_000 / BC_RATE)
        for label, algo in algos.items():
            upd = max(0.0, wall[(algo, like)] - env)
            if algo == "bc":  # learns offline only
                upd_new = upd * offline / 25_000
            elif algo == "awr":  # its own rhythm: about 1500 updates per 2048 steps, as in the standard grid's ratio
                upd_new = upd * (offline + online * 1500 / 2048) / (25_000 + 100_000 * 1500 / 20_480)
            else:
                upd_new = upd * (offline + online) / STANDARD_UPDATES
            if algo == "bear" and bear_small:
                upd_new /= 2
            per[(label, task)] = 1.5 * env * online / 100_000 + upd_new
    total = seeds * sum(per.values())
    return per, total / workers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--online", type=int, default=100_000)
    ap.add_argument("--bear-small", action="store_true")
    a = ap.parse_args()
    per, hours = estimate(a.online, a.bear_small)
    by_algo = collections.defaultdict(float)
    for (label, _), s in per.items():
        by_algo[label] += s
    for label, s in sorted(by_algo.items(), key=lambda kv: -kv[1]):
        print(f"{label:12s} {s / 3600:5.2f} h per seed over the 4 tasks")
    print(f"grid (3 seeds, 2 workers): {hours / 3600:.1f} h")


if __name__ == "__main__":
    main()
