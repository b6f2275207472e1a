"""One protocol for every algorithm: offline pretraining, then online fine-tuning, evaluated on a schedule.

    1. fill the replay buffer with the offline dataset
    2. offline phase: N gradient steps on it, evaluating every ``eval_every_offline`` steps and once at
       the very end (the switch point)
    3. ``algo.on_phase_switch(buffer)``  <- the one line where the phase changes
    4. online phase: M environment steps; each iteration collects ``rhythm[0]`` steps with the sampled
       policy into the same buffer, then runs ``rhythm[1] * utd`` updates; evaluation every ``eval_every``
       environment steps with ``eval_episodes`` deterministic episodes on a separate environment.

The algorithm cannot change when the phase switches or how it is evaluated; it only declares its
collection rhythm, its buffer capacity and whether it learns online.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import algorithms
from algorithms.base import UserError
from benchmarks.buffer import ReplayBuffer
from benchmarks.data import portable_path
from benchmarks.results import RunWriter
from benchmarks.tasks import Task, get_task

DIAG_BATCH = 1024  # fixed offline batch for the log-likelihood and Q-vs-Monte-Carlo diagnostics


@dataclass
class RunSpec:
    algo: str
    task: str
    seed: int = 0
    offline_steps: int = 10_000
    online_steps: int = 10_000
    eval_every: int = 1_000          # online: environment steps between evaluations
    eval_every_offline: int = 0      # offline: gradient steps between evaluations (0: only at the switch)
    eval_episodes: int = 5
    utd: int = 1                     # updates per environment step (multiplies the algorithm's rhythm)
    log_every: int = 500             # gradient steps between rows of train diagnostics
    algo_preset: str | None = None   # None: the preset named after the task family if the algorithm has one
    overrides: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    env: str | None = None
    device: str = "cpu"
    threads: int = 1
    save_model: bool = False         # write the final state (networks + optimizers) to final.pt
    bf16: bool = False               # opt-in bfloat16 autocast of the forward passes (see docs/PERFORMANCE.md)
    compile: bool = False            # opt-in torch.compile of the loss functions (eager fallback on failure)
    cuda_graphs: bool = False        # opt-in: compile with CUDA graphs (mode "reduce-overhead"; CUDA only)

    @property
    def run_id(self) -> str:
        preset = f"-{self.algo_preset}" if self.algo_preset else ""
        bf16 = "-bf16" if self.bf16 else ""  # different numbers: never mistaken for the float32 run
        task = self.task.replace("/", "-")  # a Minari id (mujoco/hopper/medium-v0) names one directory
        return f"{self.algo}{preset}{bf16}__{task}__s{self.seed}"

    def validate(self) -> None:
        for k in ("offline_steps", "online_steps"):
            if getattr(self, k) < 0:
                raise UserError(f"--{k.replace('_', '-')} must be >= 0")
        for k in ("eval_every", "eval_episodes", "utd", "log_every", "threads"):
            if getattr(self, k) < 1:
                raise UserError(f"{k} must be >= 1")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"device '{self.device}' requested but CUDA is not available")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Episode:
    """The online episode in progress: current observation, its return so far, the last finished one."""

    obs: np.ndarray
    ret: float = 0.0
    last_ret: float = float("nan")


def collect(env, algo, buffer: ReplayBuffer, ep: Episode, n: int) -> None:
    """Take ``n`` environment steps with the sampled policy into ``buffer`` (the online hot path)."""
    for _ in range(n):
        act = algo.act(ep.obs[None], deterministic=False)[0]
        next_obs, rew, term, trunc, _ = env.step(act)
        buffer.add(ep.obs, act, rew, next_obs, term, trunc and not term)
        ep.ret += float(rew)
        ep.obs = next_obs
        if term or trunc:
            ep.obs, _ = env.reset()
            ep.last_ret, ep.ret = ep.ret, 0.0


def evaluate(algo, env, task: Task, episodes: int, seed: int) -> dict[str, float]:
    """Deterministic-policy returns on ``episodes`` episodes of a separate env (seeded per evaluation)."""
    returns, successes, finals = [], [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        total, n_success, done, at_goal = 0.0, 0, False, False
        while not done:
            act = algo.act(obs[None], deterministic=True)[0]
            obs, rew, term, trunc, info = env.step(act)
            total += float(rew)
            at_goal = bool(info.get("success", False))
            n_success += int(at_goal)
            done = term or trunc
        returns.append(total)
        if task.success_min_steps is not None:
            successes.append(float(n_success > task.success_min_steps))
            finals.append(float(at_goal))
    ret_mean = float(np.mean(returns))
    sr = float(np.mean(successes)) if successes else None
    # success_rate: DAPG's rule (goal achieved in > success_min_steps steps); success_final: at the goal on
    # the episode's last step
    return {"return_mean": ret_mean, "return_std": float(np.std(returns)), "success_rate": sr,
            "success_final": float(np.mean(finals)) if finals else None,
            "normalized_score": task.normalized_score(ret_mean, sr)}


class _Progress:
    """A tqdm bar with ETA over all steps of a run (offline gradient steps + online env steps)."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, leave=False)

    def update(self, n: int, **postfix) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def prepare(spec: RunSpec):
    """Everything that can fail on bad input, done before any file is written."""
    spec.validate()
    task = get_task(spec.task, spec.dataset, spec.env)
    cls = algorithms.get(spec.algo)
    preset = spec.algo_preset if spec.algo_preset else (task.family if task.family in cls.presets else None)
    cfg = algorithms.resolve_config(spec.algo, preset, spec.overrides)
    env = task.make_env()
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    # the env's own action space: when make_env rescaled it to [-1, 1], the dataset's actions are mapped too
    ds = task.load_dataset(obs_dim, act_dim, env.unwrapped.action_space)
    return task, cls, preset, cfg, env, ds


def planned_updates(spec: RunSpec, algo) -> int:
    """Gradient steps a run will take: the offline steps plus, if the algorithm learns online, one block of
    ``rhythm[1] * utd`` updates per collection of ``rhythm[0]`` environment steps (the last one partial)."""
    if not algo.learns_online or spec.online_steps == 0:
        return spec.offline_steps
    n_collect, n_update = algo.online_rhythm()
    return spec.offline_steps + -(-spec.online_steps // max(1, n_collect)) * n_update * spec.utd


def run(spec: RunSpec, out_dir: str, progress: bool = True) -> str:
    """Run one offline->online experiment; returns its run directory."""
    task, cls, preset, cfg, env, ds = prepare(spec)
    torch.set_num_threads(spec.threads)
    seed_everything(spec.seed)
    device = torch.device(spec.device)
    obs_dim, act_dim = ds.obs_dim, ds.act_dim
    algo = cls(obs_dim, act_dim, cfg, device=device)
    algo.set_speed_options(bf16=spec.bf16, compile=spec.compile, cuda_graphs=spec.cuda_graphs)
    eval_env = task.make_env()
    # e.g. a budget that ends inside BEAR's warm-up; printed (sweep workers silence ``warnings``) and recorded
    budget_warnings = [str(w) for w in algo.budget_warnings(planned_updates(spec, algo))]
    for msg in budget_warnings:
        print(f"warning: {spec.run_id}: {msg}", file=sys.stderr, flush=True)

    buffer = ReplayBuffer(obs_dim, act_dim, algo.buffer_capacity(len(ds), spec.online_steps), device,
                          seed=spec.seed, with_returns=algo.needs_returns)
    buffer.add_many(ds.obs, ds.act, ds.rew, ds.next_obs, ds.done, ds.timeout)
    if buffer.size < buffer.capacity:  # prior data stays for the whole run (AWAC paper Sec. 5); the FIFO
        buffer.protect()               # of a capacity-limited algorithm (AWR) cycles over online rows only

    # fixed diagnostic batch from the offline data, with Monte-Carlo returns for the Q-estimate check
    gamma = float(getattr(cfg, "gamma", 0.99))
    rng = np.random.default_rng(spec.seed)
    diag_idx = rng.choice(len(ds), size=min(DIAG_BATCH, len(ds)), replace=False)
    diag_obs = torch.as_tensor(ds.obs[diag_idx], device=device)
    diag_act = torch.as_tensor(ds.act[diag_idx], device=device)
    diag_mc = float(ds.mc_returns(gamma)[diag_idx].mean())

    run_dir = os.path.join(out_dir, "runs", spec.run_id)
    config = {**dataclasses.asdict(spec), "run_id": spec.run_id, "algo_preset_resolved": preset,
              "algo_config": cfg.to_dict(), "task_env_id": task.env_id,
              # paths relative to the project root (or ~/...), never this machine's absolute prefix
              "dataset": portable_path(spec.dataset), "dataset_path": portable_path(task.dataset_path),
              "action_scale": ds.action_scale,
              "dataset_rows": len(ds), "dataset_sha256": ds.checksum(), "gamma": gamma,
              "warnings": budget_warnings}
    writer = RunWriter(run_dir, config)
    t0 = time.perf_counter()
    base = {"run_id": spec.run_id, "algo": spec.algo, "task": task.name, "seed": spec.seed}

    def do_eval(phase: str, env_step: int) -> dict[str, float]:
        # the same evaluation episodes (seeds) at every evaluation: common random numbers, less noise
        res = evaluate(algo, eval_env, task, spec.eval_episodes, seed=10_000 * (spec.seed + 1))
        writer.eval_row({**base, "phase": phase, "grad_step": algo.grad_steps, "env_step": env_step, **res,
                         "wall_s": round(time.perf_counter() - t0, 3)})
        with torch.inference_mode():
            ll = algo.log_likelihood(diag_obs, diag_act)
            q = algo.q_value(diag_obs, diag_act)
        writer.train_rows(spec.run_id, algo.grad_steps, phase, {
            "offline_loglik": float(ll.mean()) if ll is not None else float("nan"),
            "q_estimate": float(q.mean()) if q is not None else float("nan"),
            "mc_return": diag_mc})
        return res

    bar = _Progress(spec.offline_steps + spec.online_steps, f"{spec.run_id}", progress)
    block = max(1, algo.online_rhythm()[1])
    try:
        # ---- offline phase --------------------------------------------------------------------
        bs = algo.batch_size("offline")
        for g in range(spec.offline_steps):
            if g % block == 0:
                algo.prepare_updates(buffer)
            metrics = algo.update(buffer.sample(bs))
            step = g + 1
            if step % spec.log_every == 0:
                writer.train_rows(spec.run_id, algo.grad_steps, "offline", metrics)
            if spec.eval_every_offline and step % spec.eval_every_offline == 0 and step != spec.offline_steps:
                res = do_eval("offline", 0)
                bar.update(0, score=f"{res['normalized_score']:.1f}")
            bar.update(1)
        res = do_eval("offline", 0)  # the switch point
        bar.update(0, phase="online", score=f"{res['normalized_score']:.1f}")

        # ---- the switch -----------------------------------------------------------------------
        algo.on_phase_switch(buffer)

        # ---- online phase ---------------------------------------------------------------------
        bs = algo.batch_size("online")
        n_collect, n_update = algo.online_rhythm()
        n_update *= spec.utd
        ep = Episode(env.reset(seed=spec.seed)[0])
        env.action_space.seed(spec.seed)
        env_step, next_eval, last_eval = 0, spec.eval_every, 0
        while env_step < spec.online_steps:
            n = min(n_collect, spec.online_steps - env_step)
            collect(env, algo, buffer, ep, n)
            env_step += n
            if algo.learns_online:
                algo.prepare_updates(buffer)
                for _ in range(n_update):
                    metrics = algo.update(buffer.sample(bs))
                    if algo.grad_steps % spec.log_every == 0:
                        writer.train_rows(spec.run_id, algo.grad_steps, "online", metrics)
            bar.update(n)
            if env_step >= next_eval:  # with a multi-step rhythm, evaluate after the block that crosses it
                res = do_eval("online", env_step)
                last_eval = env_step
                bar.update(0, score=f"{res['normalized_score']:.1f}", train_ret=f"{ep.last_ret:.0f}")
                while next_eval <= env_step:
                    next_eval += spec.eval_every
        if env_step != last_eval:
            do_eval("online", env_step)  # the budget's last point, so every run ends with an evaluation
    except BaseException as e:
        writer.close()  # rows written so far stay on disk; no DONE marker
        bar.close()
        if isinstance(e, UserError):  # bad input found late: leave no partial result behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    bar.close()
    writer.finish({"wall_s": round(time.perf_counter() - t0, 3), "grad_steps": algo.grad_steps,
                   "buffer_bytes": buffer.nbytes()})
    if spec.save_model:
        algo.save(os.path.join(run_dir, "final.pt"))
    return run_dir
