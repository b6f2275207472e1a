#!/usr/bin/env python
"""Score cross-check: our CQL and Cal-QL against d3rlpy 2.8.1's, same data, same budget, same evaluator.

    .venv/bin/python scripts/compare_scores.py --out results/compare_scores --steps 10000 --seeds 0,1,2

For every algorithm (cql, calql) and seed, offline only:

1. ours: ``awac-bench run --algo A --task T --offline-steps N --online-steps 0 --eval-episodes E --seed S
   --set actor_hidden=H --set critic_hidden=H --threads 1`` (the task family's preset, "mujoco", applies; the
   config actually used is read back from the run's config.json, and d3rlpy's is derived from it);
2. d3rlpy: ``CQLConfig`` / ``CalQLConfig`` trained by ``fit`` for the same N gradient steps on the same HDF5 file,
   in a worker run by ``--d3rlpy-python`` (this file again, with ``--d3rlpy-worker``: numpy, h5py and d3rlpy only),
   exported with ``save_policy`` (TorchScript: tanh(mu(s)), the greedy action) and loaded here with ``torch.jit``;
3. both policies scored by OUR evaluator, ``benchmarks.rollouts.evaluate``, on the same env seeds as the run's
   eval rows (``10_000 * (seed + 1) + episode``), deterministic actions, normalised by ``Task.normalized_score``.

Output in ``--out``: ``ours/`` (the runs), ``d3rlpy/<algo>_s<seed>/`` (spec, result, policy.pt), ``scores.csv``,
``scores.json`` and ``scores.md`` (table: per seed, mean ± sample std over seeds). Finished pieces are reused when
the command is run again (a finished run is skipped by the harness; a d3rlpy result with its policy is kept).

Aligned (d3rlpy <- our config.json): hidden sizes (``VectorEncoderFactory``, actor and critic), batch size, gamma,
tau, actor lr, critic lr, temperature lr (ours: the actor's, JaxCQL's ``policy_lr``), initial temperature 1, the
conservative weight (``conservative_weight`` = ``cql_min_q_weight``) held fixed (``alpha_learning_rate=0``: no
alpha optimizer, so alpha stays ``initial_alpha`` = 1 and the loss is 1 * w * (gap - alpha_threshold), whose
threshold is a constant without gradient), ``n_action_samples`` = ``cql_n_actions``, two critics, no observation,
action or reward scaler, and the target backup: ``max_q_backup`` = ``cql_max_target_backup`` (on by default:
JaxCQL's and our default, and then both targets are r + gamma (1 - d) max_i min_j Q'_j(s', a'_i) over N policy
samples without an entropy term; ``--no-max-backup`` sets both off, which leaves a mismatch, see 8 below).

Remaining differences (read from d3rlpy/algos/qlearning/{cql,cal_ql}.py, torch/{cql,cal_ql,sac,ddpg}_impl.py,
models/torch/{policies,distributions}.py, dataset/*.py, torch_utility.py):

1. Update order. Ours: every loss from the pre-step parameters, one backward, then all optimizers (JaxCQL's
   ``_train_step``). d3rlpy: critic step first (target and conservative term with the pre-step policy), then the
   temperature step, then the actor step against the UPDATED critics with the UPDATED temperature; targets last.
2. Temperature loss. Ours: -log_alpha (log pi + H), gradient -(log pi + H) in log alpha. d3rlpy:
   -exp(log_temp) (log pi - |A|), the same fixed point (target entropy -|A|) with the gradient scaled by alpha.
3. Policy log-std. Ours: clip(m * raw + o, -20, 2) with trainable scalars m = 1, o = -1 at the start
   (JaxCQL's ``log_std_multiplier`` / ``log_std_offset``: the initial std is e^-1 of d3rlpy's). d3rlpy:
   clip(raw, -20, 2). (Ours has one output layer of 2|A| rows, d3rlpy two heads: the same function.)
4. Initialisation. Ours: orthogonal, gain sqrt 2 on hidden kernels and 1e-2 on the output kernel, zero biases
   (JaxCQL ``orthogonal_init``). d3rlpy: PyTorch's default ``nn.Linear`` init (kaiming-uniform weights, uniform
   biases).
5. Dataset actions: ours clamps them to +-0.99999 in the update (JaxCQL ``clip_action``); d3rlpy uses them as
   stored (here within [-1, 1]).
6. Conservative term: the same estimator on both sides (importance-sampled logsumexp over N uniform actions
   minus log 0.5^|A|, N pi(.|s) and N pi(.|s') actions minus their log-densities, all valued at s, temperature 1,
   no Q(s, a) inside, mean over the batch, summed over the two critics, policy samples without gradient). The
   log-density: ours takes the Gaussian term from the noise itself, d3rlpy ``Normal.log_prob`` of the raw sample;
   both use the tanh correction 2 (log 2 - u - softplus(-2u)).
7. Random numbers and sampling: different streams from the same seed (ours: torch generators, a buffer
   generator; d3rlpy: ``d3rlpy.seed``, transitions drawn with ``np.random.randint``); both draw batches
   uniformly with replacement.
8. Without the max backup (``--no-max-backup``): ours samples one a' ~ pi(.|s'); d3rlpy's non-soft target uses
   the mean action tanh(mu(s')) (``_compute_deterministic_target``). Neither subtracts alpha log pi.
9. Transitions. d3rlpy builds transitions from episodes of observations: next_observation is the next row's
   observation, and an episode that does not end in a terminal yields size - 1 transitions, so plain D4RL
   loading (``MDPDataset`` on the arrays) drops the last transition of every time-limited episode (103 of
   103,000 here; ``--d3rlpy-rows d4rl``). By default (``--d3rlpy-rows ours``) each such episode gets its stored
   final ``next_observations`` row appended (action 0, reward 0: never sampled, adds 0 to returns-to-go), so
   d3rlpy trains on exactly our transitions. Episode ends: ours and the worker both cut at terminals, timeouts
   and breaks in next_obs[t] != obs[t + 1].
10. Cal-QL's returns-to-go (mc_return). d3rlpy: computed per sampled transition when the batch is made
    (``TorchMiniBatch.from_batch`` -> ``_compute_return_to_go``): sum_k gamma^k r_{t+k} over the rest of the
    episode's stored rewards (float32, ``BasicTransitionPicker.rewards_to_go = rewards[index:]``), reward scaler
    applied if any, nothing bootstrapped: a terminal and a time limit both simply end the sum, and the last
    reward of a time-limited episode counts although its transition is never sampled. Ours: the same sum
    precomputed per row (float64, stored float32) on reward_scale r + reward_bias (here 1 and 0), cut at
    terminals, time limits and continuity breaks (``algorithms.base.returns_to_go``). On sparse tasks ours gives
    an all-failure EPISODE r_neg / (1 - gamma) on every row (JaxCQL), d3rlpy's
    ``SparseRewardTransitionPicker`` (not used by default) gives ``failure_return`` to a TRANSITION whose
    remaining rewards all equal the step reward. ``rtg_check`` compares the two on the data.
11. Optimisers: Adam (0.9, 0.999, eps 1e-8, no weight decay) on both; ours a fused flat-buffer kernel (same
    arithmetic).

Every number here is one library's training loop against the other's; the budget (small networks, N steps) is
far below the papers' (1M steps, 256-256), so the comparison is of implementations, not of published scores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np  # numpy is in both venvs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_D3RLPY_PYTHON = "/work/d3venv/bin/python"
D3RLPY_NAMES = {"cql": "CQLConfig", "calql": "CalQLConfig"}


# -- the d3rlpy worker (run by the d3rlpy venv: numpy, h5py, torch, d3rlpy; nothing of this package) ------------
def d3rlpy_dataset(path: str, rows: str, ends_path: str):
    """(d3rlpy ReplayBuffer, the arrays, the rows' episode ends) of the D4RL-layout HDF5 file at ``path``; the
    episode ends are ours (``algorithms.base.episode_ends``, computed in our venv and passed as a .npy file)."""
    import d3rlpy
    import h5py

    with h5py.File(path, "r") as f:
        obs = np.asarray(f["observations"], np.float32)
        act = np.asarray(f["actions"], np.float32)
        rew = np.asarray(f["rewards"], np.float32).reshape(-1)
        nxt = np.asarray(f["next_observations"], np.float32)
        term = np.asarray(f["terminals"]).astype(bool).reshape(-1)
        tout = np.asarray(f["timeouts"]).astype(bool).reshape(-1) if "timeouts" in f else np.zeros(len(obs), bool)
    ends = np.load(ends_path)
    arrays = {"obs": obs, "act": act, "rew": rew, "next_obs": nxt, "term": term}
    if rows == "d4rl":  # the plain loader: episodes cut at terminals / timeouts (the last row closes the data)
        tout_d4rl = tout & ~term
        tout_d4rl[-1] |= not term[-1]
        return d3rlpy.dataset.MDPDataset(obs, act, rew.reshape(-1, 1), term.astype(np.float32),
                                         tout_d4rl.astype(np.float32)), arrays, ends
    episodes = []
    start = 0
    for e in np.flatnonzero(ends):
        sl = slice(start, e + 1)
        if term[e]:
            episodes.append(d3rlpy.dataset.Episode(obs[sl], act[sl], rew[sl].reshape(-1, 1), terminated=True))
        else:  # the stored final next observation as one more row: size - 1 transitions = the episode's rows
            episodes.append(d3rlpy.dataset.Episode(
                np.concatenate([obs[sl], nxt[e:e + 1]]), np.concatenate([act[sl], np.zeros_like(act[:1])]),
                np.concatenate([rew[sl], [0.0]]).astype(np.float32).reshape(-1, 1), terminated=False))
        start = e + 1
    buffer = d3rlpy.dataset.ReplayBuffer(d3rlpy.dataset.InfiniteBuffer(), episodes=episodes,
                                         action_space=d3rlpy.ActionSpace.CONTINUOUS, action_size=act.shape[1])
    return buffer, arrays, ends


def d3rlpy_rtg(dataset, arrays, ends, gamma: float, every: int = 97) -> dict:
    """d3rlpy's return-to-go (``_compute_return_to_go`` of its transition picker) on every ``every``-th
    transition, with the row of our file it is (matched by observation and action); our side compares."""
    from d3rlpy.torch_utility import _compute_return_to_go

    starts = np.r_[0, np.flatnonzero(ends)[:-1] + 1]
    rows, values, transitions = [], [], 0
    picker = dataset.transition_picker
    for k, ep in enumerate(dataset.episodes):
        transitions += ep.transition_count
        for i in range(0, ep.transition_count, every):
            row = int(starts[k]) + i
            tr = picker(ep, i)
            if not (np.array_equal(tr.observation, arrays["obs"][row]) and np.array_equal(tr.action,
                                                                                            arrays["act"][row])):
                raise RuntimeError(f"episode {k} transition {i} is not row {row}")
            if not np.array_equal(tr.next_observation, arrays["next_obs"][row]) and not tr.terminal:
                raise RuntimeError(f"episode {k} transition {i}: next observation differs from the file's")
            rows.append(row)
            values.append(float(_compute_return_to_go(gamma, tr.rewards_to_go, None)[0]))
    return {"rows": rows, "values": values, "transitions": transitions}


def rtg_check(d3: dict, rew, ends, gamma: float) -> dict:
    """d3rlpy's returns-to-go against ours (``algorithms.base.returns_to_go``) on the rows it reported."""

    from algorithms.base import returns_to_go

    ours = returns_to_go(rew, ends, gamma)[d3["rows"]]
    d = np.abs(np.asarray(d3["values"]) - ours)
    return {"checked": len(d), "transitions": d3["transitions"], "rows": int(len(rew)),
            "max_abs_diff": float(d.max()), "max_rel_diff": float((d / np.maximum(np.abs(ours), 1.0)).max())}


def d3rlpy_worker(spec_path: str) -> None:
    """Train d3rlpy on the spec (JSON), save policy.pt and result.json next to it."""
    import d3rlpy
    import torch

    with open(spec_path) as f:
        spec = json.load(f)
    torch.set_num_threads(1)
    try:  # d3rlpy logs through structlog at info level: keep warnings only
        import logging

        import structlog

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    except ImportError:
        pass
    out = os.path.dirname(os.path.abspath(spec_path))
    d3rlpy.seed(spec["seed"])
    dataset, arrays, ends = d3rlpy_dataset(spec["dataset_path"], spec["rows"], os.path.join(out, "ends.npy"))
    rtg = d3rlpy_rtg(dataset, arrays, ends, spec["config"]["gamma"]) if spec["algo"] == "calql" else None
    d3rlpy.seed(spec["seed"])  # the check drew nothing, but start the training from the seed itself
    c = dict(spec["config"])
    hidden = c.pop("hidden_units")
    cfg = getattr(d3rlpy.algos, D3RLPY_NAMES[spec["algo"]])(
        actor_encoder_factory=d3rlpy.models.VectorEncoderFactory(hidden_units=hidden),
        critic_encoder_factory=d3rlpy.models.VectorEncoderFactory(hidden_units=hidden),
        q_func_factory=d3rlpy.models.MeanQFunctionFactory(), **c)
    algo = cfg.create(device="cpu:0")
    # epochs only group d3rlpy's metric means (no draw from any generator): the last epoch's are over the last
    # ``per_epoch`` steps
    per_epoch = 1000 if spec["steps"] % 1000 == 0 else spec["steps"]
    t0 = time.perf_counter()
    history = algo.fit(dataset, n_steps=spec["steps"], n_steps_per_epoch=per_epoch, show_progress=False,
                       logger_adapter=d3rlpy.logging.NoopAdapterFactory(), save_interval=spec["steps"] + 1)
    train_s = time.perf_counter() - t0
    # mean min_j Q_j(s, a) on our run's diagnostic batch (``harness.DIAG_BATCH`` rows, default_rng(seed))
    idx = np.random.default_rng(spec["seed"]).choice(len(arrays["obs"]), size=min(1024, len(arrays["obs"])),
                                                     replace=False)
    with torch.no_grad():
        q = algo.impl.q_function
        x = torch.as_tensor(arrays["obs"][idx])
        a = torch.as_tensor(arrays["act"][idx])
        q_est = float(torch.stack([qf(x, a).q_value for qf in q]).min(0).values.mean())
        temp = float(next(algo.impl.modules.log_temp.parameters()).exp())
        dist = d3rlpy.models.torch.build_squashed_gaussian_distribution(algo.impl.modules.policy(x))
        entropy = float(-dist.sample_with_log_prob()[1].mean())  # after training: draws nothing it uses
    algo.save_policy(os.path.join(out, "policy.pt"))
    result = {"train_s": round(train_s, 3), "updates_per_s": round(spec["steps"] / train_s, 2),
              "final_metrics": {k: float(v) for k, v in history[-1][1].items()}, "metrics_mean_over_steps": per_epoch,
              "final_temperature": temp, "final_entropy_diag": entropy, "q_estimate": q_est,
              "d3rlpy": d3rlpy.__version__, "torch": torch.__version__, "config": cfg.serialize_to_dict(),
              "transitions": dataset.transition_count, "rtg_d3rlpy": rtg}
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f, indent=1, default=str)


# -- the comparison (our venv) ------------------------------------------------------------------------------------
def d3rlpy_config(algo_config: dict) -> dict:
    """d3rlpy's config keys from our run's ``algo_config``; what d3rlpy cannot express must be at our default."""
    c = algo_config
    fixed = {"use_automatic_entropy_tuning": True, "alpha_multiplier": 1.0, "target_entropy": None,
             "backup_entropy": False, "cql_importance_sample": True, "cql_temp": 1.0, "cql_clip_diff_min": None,
             "cql_clip_diff_max": None, "cql_lagrange": False, "reward_scale": 1.0, "reward_bias": 0.0}
    bad = {k: c[k] for k, v in fixed.items() if k in c and c[k] != v}
    if c.get("sparse_reward_neg") is not None:
        bad["sparse_reward_neg"] = c["sparse_reward_neg"]
    if bad or list(c["actor_hidden"]) != list(c["critic_hidden"]):
        raise SystemExit(f"config not expressible in d3rlpy's CQL here: {bad or 'actor/critic sizes differ'}")
    return {"hidden_units": list(c["actor_hidden"]), "batch_size": c["batch_size"], "gamma": c["gamma"],
            "tau": c["tau"], "actor_learning_rate": c["actor_lr"], "critic_learning_rate": c["critic_lr"],
            "temp_learning_rate": c["actor_lr"], "initial_temperature": 1.0, "alpha_learning_rate": 0.0,
            "initial_alpha": 1.0, "conservative_weight": c["cql_min_q_weight"],
            "n_action_samples": c["cql_n_actions"], "max_q_backup": c["cql_max_target_backup"],
            "soft_q_backup": False, "n_critics": 2}


def run_ours(a, algo: str, seed: int) -> dict:
    out = os.path.join(a.out, "ours")
    hidden = a.hidden.replace(" ", "")
    cmd = [sys.executable, "-m", "benchmarks", "run", "--algo", algo, "--task", a.task, "--offline-steps",
           str(a.steps), "--online-steps", "0", "--eval-every-offline", str(a.steps), "--eval-episodes",
           str(a.episodes), "--seed", str(seed), "--set", f"actor_hidden={hidden}", "--set",
           f"critic_hidden={hidden}", "--set", f"cql_max_target_backup={a.max_backup}", "--out", out,
           "--no-progress", "--threads", "1"]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    wall = time.perf_counter() - t0
    run_dir = os.path.join(out, "runs", f"{algo}__{a.task}__s{seed}")
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(run_dir, "meta.json")) as f:
        meta = json.load(f)
    import csv

    with open(os.path.join(run_dir, "evals.csv")) as f:
        row = list(csv.DictReader(f))[-1]
    with open(os.path.join(run_dir, "train.csv")) as f:  # long format: run_id, grad_step, phase, metric, value
        last = {r["metric"]: float(r["value"]) for r in csv.DictReader(f)}
    if int(row["grad_step"]) != a.steps:
        raise SystemExit(f"{run_dir}: last evaluation at grad step {row['grad_step']}, expected {a.steps}")
    return {"config": config, "return": float(row["return_mean"]), "score": float(row["normalized_score"]),
            "run_wall_s": meta.get("wall_s"), "process_s": round(wall, 1), "run_dir": os.path.relpath(run_dir, ROOT),
            "q_estimate": last.get("q_estimate"), "mc_return": last.get("mc_return")}


def dataset_ends(path: str):
    """(rewards, episode ends) of the HDF5 file by our rules (``algorithms.base.episode_ends``)."""
    import h5py

    from algorithms.base import episode_ends

    with h5py.File(path, "r") as f:
        obs, nxt = np.asarray(f["observations"], np.float32), np.asarray(f["next_observations"], np.float32)
        term = np.asarray(f["terminals"]).astype(bool).reshape(-1)
        tout = np.asarray(f["timeouts"]).astype(bool).reshape(-1) if "timeouts" in f else np.zeros(len(obs), bool)
        rew = np.asarray(f["rewards"], np.float32).reshape(-1)
    return rew, episode_ends(obs, nxt, term, tout)


def run_d3rlpy(a, algo: str, seed: int, ours: dict) -> dict:
    out = os.path.join(a.out, "d3rlpy", f"{algo}_s{seed}")
    os.makedirs(out, exist_ok=True)
    config = ours["config"]
    spec = {"algo": algo, "seed": seed, "steps": a.steps, "rows": a.d3rlpy_rows,
            "dataset_path": os.path.join(ROOT, config["dataset_path"]) if not os.path.isabs(config["dataset_path"])
            else config["dataset_path"], "config": d3rlpy_config(config["algo_config"])}
    spec_path = os.path.join(out, "spec.json")
    result_path, policy_path = os.path.join(out, "result.json"), os.path.join(out, "policy.pt")
    old = None
    if os.path.isfile(spec_path) and os.path.isfile(result_path) and os.path.isfile(policy_path):
        with open(spec_path) as f:
            old = json.load(f)
    rew, ends = dataset_ends(spec["dataset_path"])
    if old != spec:
        np.save(os.path.join(out, "ends.npy"), ends)  # our episode ends: the worker cuts d3rlpy's episodes there
        with open(spec_path, "w") as f:
            json.dump(spec, f, indent=1)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        subprocess.run([a.d3rlpy_python, os.path.abspath(__file__), "--d3rlpy-worker", os.path.abspath(spec_path)],
                       cwd=out,
                       check=True, env=env)
    with open(result_path) as f:
        result = json.load(f)
    if result.get("rtg_d3rlpy"):
        result["rtg_check"] = rtg_check(result.pop("rtg_d3rlpy"), rew, ends, spec["config"]["gamma"])
    return {**result, "rtg_check": result.get("rtg_check"), "policy": policy_path, "dir": os.path.relpath(out, ROOT)}


class TorchScriptPolicy:
    """d3rlpy's exported greedy policy behind our ``act(obs[None], deterministic)``."""

    def __init__(self, path: str):
        import torch

        self.module = torch.jit.load(path, map_location="cpu").eval()

    def act(self, obs, deterministic: bool = True):
        import torch

        with torch.inference_mode():
            return self.module(torch.as_tensor(obs, dtype=torch.float32)).numpy()


def evaluate_policy(a, policy_path: str, seed: int) -> dict:
    """Our evaluator on the run's evaluation seeds (``RunLoop.evaluation``: 10_000 * (seed + 1))."""
    from benchmarks.rollouts import evaluate
    from benchmarks.tasks.registry import get_task

    task = get_task(a.task)
    t0 = time.perf_counter()
    res = evaluate(TorchScriptPolicy(policy_path), task.make_env(), task, a.episodes, seed=10_000 * (seed + 1))
    return {**res, "eval_s": round(time.perf_counter() - t0, 2)}


def mean_std(xs: list[float]) -> str:

    return f"{np.mean(xs):.1f} ± {np.std(xs, ddof=1):.1f}" if len(xs) > 1 else f"{xs[0]:.1f}"


def markdown(rows: list[dict], a, argv: list[str]) -> str:
    lines = [f"Command: `{' '.join(argv)}`", "",
             f"Task {a.task}, {a.steps} offline gradient steps, networks {a.hidden} (actor and critic), "
             f"max-Q backup {'on' if a.max_backup else 'off'}, {a.episodes} deterministic evaluation episodes, "
             "our evaluator on the same env seeds. Score: D4RL-normalised (return). Mean ± sample std over seeds.",
             "", "| algorithm | seed | ours | d3rlpy 2.8.1 |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['algo']} | {r['seed']} | {r['ours_score']:.1f} ({r['ours_return']:.0f}) | "
                     f"{r['d3rlpy_score']:.1f} ({r['d3rlpy_return']:.0f}) |")
    for algo in dict.fromkeys(r["algo"] for r in rows):
        rs = [r for r in rows if r["algo"] == algo]
        lines.append(f"| {algo} | mean | {mean_std([r['ours_score'] for r in rs])} "
                     f"({mean_std([r['ours_return'] for r in rs])}) | {mean_std([r['d3rlpy_score'] for r in rs])} "
                     f"({mean_std([r['d3rlpy_return'] for r in rs])}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--d3rlpy-worker"]:
        d3rlpy_worker(argv[1])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for the runs, the d3rlpy policies and the score table")
    p.add_argument("--algos", default="cql,calql")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=10_000, help="offline gradient steps (both libraries)")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes")
    p.add_argument("--hidden", default="64,64", help="hidden sizes of actor and critics (both libraries)")
    p.add_argument("--task", default="halfcheetah-awac")
    p.add_argument("--max-backup", action=argparse.BooleanOptionalAction, default=True,
                   help="max-Q target backup on both sides (cql_max_target_backup / max_q_backup)")
    p.add_argument("--d3rlpy-rows", choices=["ours", "d4rl"], default="ours",
                   help="ours: d3rlpy gets exactly our transitions; d4rl: plain MDPDataset loading")
    p.add_argument("--d3rlpy-python", default=DEFAULT_D3RLPY_PYTHON)
    a = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    import torch

    torch.set_num_threads(1)
    a.out = os.path.abspath(a.out)
    os.makedirs(a.out, exist_ok=True)
    t_start = time.perf_counter()
    rows = []
    for algo in a.algos.split(","):
        if algo not in D3RLPY_NAMES:
            raise SystemExit(f"unknown algorithm {algo!r} (cql, calql)")
        for seed in (int(s) for s in a.seeds.split(",")):
            ours = run_ours(a, algo, seed)
            d3 = run_d3rlpy(a, algo, seed, ours)
            ev = evaluate_policy(a, d3["policy"], seed)
            row = {"algo": algo, "seed": seed, "steps": a.steps, "episodes": a.episodes,
                   "ours_score": ours["score"], "ours_return": ours["return"], "d3rlpy_score": ev["normalized_score"],
                   "d3rlpy_return": ev["return_mean"], "d3rlpy_return_std": ev["return_std"],
                   "ours_q_estimate": ours["q_estimate"], "d3rlpy_q_estimate": d3["q_estimate"],
                   "mc_return": ours["mc_return"], "ours_run_wall_s": ours["run_wall_s"],
                   "d3rlpy_train_s": d3["train_s"], "d3rlpy_updates_per_s": d3["updates_per_s"],
                   "d3rlpy_eval_s": ev["eval_s"], "ours_run": ours["run_dir"], "d3rlpy_dir": d3["dir"],
                   "ours_algo_config": ours["config"]["algo_config"], "d3rlpy_config": d3["config"],
                   "d3rlpy_final_metrics": d3["final_metrics"], "d3rlpy_transitions": d3["transitions"],
                   "rtg_check": d3["rtg_check"]}
            rows.append(row)
            print(f"{algo} s{seed}: ours {row['ours_score']:.1f} ({row['ours_return']:.0f}, run {ours['run_wall_s']} s)"
                  f"  d3rlpy {row['d3rlpy_score']:.1f} ({row['d3rlpy_return']:.0f}, train {d3['train_s']} s, "
                  f"{d3['updates_per_s']} upd/s)", flush=True)
    flat = [{k: v for k, v in r.items() if not isinstance(v, dict)} for r in rows]
    import csv

    with open(os.path.join(a.out, "scores.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(flat[0]))
        w.writeheader()
        w.writerows(flat)
    # the training and evaluation seconds of every piece, whether run now or reused from an earlier invocation
    compute_s = round(sum(r["ours_run_wall_s"] + r["d3rlpy_train_s"] + r["d3rlpy_eval_s"] for r in rows), 1)
    with open(os.path.join(a.out, "scores.json"), "w") as f:
        json.dump({"argv": argv, "wall_s": round(time.perf_counter() - t_start, 1), "compute_s": compute_s,
                   "rows": rows}, f, indent=1, default=str)
    cmd = [".venv/bin/python", "scripts/compare_scores.py", *argv]
    table = markdown(rows, a, cmd) + (f"\nCompute: {compute_s:.0f} s on one core (our runs, d3rlpy's training and "
                                      "the evaluation of its policies).\n")
    with open(os.path.join(a.out, "scores.md"), "w") as f:
        f.write(table)
    print(table)
    print(f"wall time {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
