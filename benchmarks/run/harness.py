"""One protocol for every algorithm: offline pretraining, then online fine-tuning, evaluated on a schedule.

    1. fill the replay buffer with the offline dataset
    2. offline phase: N gradient steps on it, evaluating every ``eval_every_offline`` steps and once at
       the very end (the switch point)
    3. ``algo.on_phase_switch(buffer)``  <- the one line where the phase changes
    4. online phase: M environment steps; each iteration collects ``rhythm[0]`` steps with the sampled
       policy into the same buffer, then runs ``rhythm[1] * utd`` updates (``online_blocks``: a fractional
       ``utd`` lengthens the collection instead); evaluation every ``eval_every``
       environment steps with ``eval_episodes`` deterministic episodes on a separate environment.

The algorithm cannot change when the phase switches or how it is evaluated; it only declares its
collection rhythm, its buffer capacity and whether it learns online.

Long runs survive: the complete state of the run is checkpointed (``benchmarks/common/checkpoint.py``) after every
evaluation and at least every ``checkpoint_every_min`` minutes, and an unfinished run continues from its last
checkpoint with the same rows as an uninterrupted run (``tests/test_resume.py``). A non-finite metric or
parameter (checked at every log step and evaluation) stops the run with its reason in ``FAILED``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import torch

import algorithms
from algorithms.base import UserError
from benchmarks.common import checkpoint, files
from benchmarks.common.provenance import code_identity, describe_change
from benchmarks.data.buffer import ReplayBuffer
from benchmarks.data.dataset import portable_path
from benchmarks.rollouts import Episode, collect, evaluate, seed_everything
from benchmarks.run.results import RunWriter
from benchmarks.tasks.registry import get_task

DIAG_BATCH = 1024  # fixed offline batch for the log-likelihood and Q-vs-Monte-Carlo diagnostics


def _arg(default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = dataclasses.MISSING, **cli: Any):
    """A RunSpec field with its help text (and any other ``awac-bench run`` option setting, e.g. ``flag``)."""
    return field(default=default, default_factory=factory, metadata={"help": help, **cli})


@dataclass
class RunSpec:
    """One offline->online run. Every field is an option of ``awac-bench run`` (``offline_steps`` is
    ``--offline-steps``), typed and explained by the field itself (``benchmarks/commands/cli.py`` derives the
    options)."""

    algo: str = _arg(help="a registered algorithm (awac-bench list)")
    task: str = _arg(help="a registered task, a D4RL name, a Minari id, or 'custom' with --dataset/--env")
    seed: int = _arg(0, "seed of the run (networks, sampling, environments)")
    offline_steps: int = _arg(10_000, "offline gradient steps")
    online_steps: int = _arg(10_000, "online environment steps")
    eval_every: int = _arg(1_000, "online environment steps between evaluations")
    eval_every_offline: int = _arg(0, "offline gradient steps between evaluations (0: only at the switch)")
    eval_episodes: int = _arg(5, "episodes per evaluation (deterministic policy)")
    utd: float = _arg(1, "updates per environment step, scaling the algorithm's rhythm (0.1: one update per 10 steps)")
    log_every: int = _arg(500, "gradient steps between rows of train diagnostics")
    algo_preset: str | None = _arg(None, "a named config variant, e.g. awac: hand|mujoco|paper, sacfd: prior "
                                         "(default: the preset named after the task's family, where there is one)")
    overrides: dict[str, Any] = _arg(factory=dict, help="override an algorithm config key (repeatable)",
                                     flag="--set")
    dataset: str | None = _arg(None, "D4RL-layout HDF5 file or Minari dataset folder (overrides the task's)")
    env: str | None = _arg(None, "gymnasium id (overrides the task's)")
    device: str = _arg("cpu", "torch device: cpu, cuda, cuda:1, ...")
    threads: int = _arg(1, "torch threads (1 per run is fastest per core)")
    save_model: bool = _arg(False, "write the final state (networks + optimizers) to final.pt")
    bf16: bool = _arg(False, "bfloat16 autocast of the forward passes (opt-in; docs/PERFORMANCE.md)")
    compile: bool = _arg(False, "compile each loss with its gradient (opt-in; docs/PERFORMANCE.md)")
    cuda_graphs: bool = _arg(False, "compile with CUDA graphs (mode reduce-overhead; CUDA devices only)")
    checkpoint_at_eval: bool = _arg(True, "write a checkpoint after every evaluation (benchmarks/common/checkpoint.py)")
    checkpoint_every_min: float = _arg(10.0, "minutes between checkpoints at the most (a checkpoint also follows "
                                                 "every evaluation; <= 0: only at evaluations)")

    def label(self, family: str | None = None) -> str:
        """The algorithm as results name it: its registry name, with an explicitly chosen preset appended
        (``sacfd-prior``, the paper's SAC+BC, is another baseline than ``sacfd``), unless that preset is the one
        the task's ``family`` picks anyway (``--algo-preset hand`` on a hand task is plain AWAC)."""
        return f"{self.algo}-{self.algo_preset}" if self.algo_preset and self.algo_preset != family else self.algo

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
        for k in ("eval_every", "eval_episodes", "log_every", "threads"):
            if getattr(self, k) < 1:
                raise UserError(f"{k} must be >= 1")
        if not 0 < self.utd <= 1000:
            raise UserError(f"utd (updates per environment step) must be in (0, 1000], got {self.utd}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"device '{self.device}' requested but CUDA is not available")


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


def check_spec(spec: RunSpec):
    """The checks of a run's input that need neither its environment nor its data: (task, class, preset, config)."""
    spec.validate()
    task = get_task(spec.task, spec.dataset, spec.env)
    cls = algorithms.get(spec.algo)
    preset = spec.algo_preset if spec.algo_preset else (task.family if task.family in cls.presets else None)
    cfg = algorithms.resolve_config(spec.algo, preset, spec.overrides)
    return task, cls, preset, cfg


def prepare(spec: RunSpec):
    """Everything that can fail on bad input, done before any file is written. The task's dataset must be on disk
    (a suite-generated one is made beforehand by ``benchmarks.generation.prepare``)."""
    task, cls, preset, cfg = check_spec(spec)
    env = task.make_env()
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    # the env's own action space: when make_env rescaled it to [-1, 1], the dataset's actions are mapped too
    ds = task.load_dataset(obs_dim, act_dim, env.unwrapped.action_space)
    return task, cls, preset, cfg, env, ds


def online_blocks(rhythm: tuple[int, int], utd: float) -> tuple[int, int]:
    """(environment steps collected, updates run) per block of the online loop: the algorithm's rhythm
    (collect, update) scaled to ``utd`` times its updates per step, in whole blocks of the rhythm: ``utd = 2``
    runs each block's updates twice, ``utd = 0.1`` collects 10 blocks' steps before one block of updates
    (rhythm (1, 1): 10 steps, then 1 update; AWR's (2048, 1500): 20480 steps, then its 1500 updates)."""
    n_collect, n_update = rhythm
    ratio = Fraction(utd).limit_denominator(1000)
    return n_collect * ratio.denominator, n_update * ratio.numerator


def planned_updates(spec: RunSpec, algo) -> int:
    """Gradient steps a run will take: the offline steps plus, if the algorithm learns online, one block of
    updates per collection (``online_blocks``; the last collection partial)."""
    if not algo.learns_online or spec.online_steps == 0:
        return spec.offline_steps
    n_collect, n_update = online_blocks(algo.online_rhythm(), spec.utd)
    return spec.offline_steps + -(-spec.online_steps // max(1, n_collect)) * n_update


class RunFailed(Exception):
    """A run stopped for good; its directory's FAILED file holds the reason (the CLI prints it, exit code 1)."""

    def __init__(self, run_id: str, reason: str):
        super().__init__(f"{run_id}: {reason}")
        self.run_id, self.reason = run_id, reason


class _Diverged(Exception):
    pass


# config.json keys that do not change a run's numbers: a stored run whose config differs only in these resumes
NON_RESULT_KEYS = frozenset({"save_model", "checkpoint_every_min", "checkpoint_at_eval", "dataset", "dataset_path",
                             "algo_label",
                             "warnings"})
PROGRESS_EVERY_S = 2.0  # seconds between progress.json updates (read by the sweep's bar and `awac-bench status`)
KILL_ENV = "AWAC_BENCH_TEST_KILL"  # tests: "ckpt:N" | "offline:G" | "online:E" -> SIGKILL this process there


def check_output_dir(path: str) -> None:
    """A results directory that cannot be created or written is bad input: one line, before anything runs."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise UserError(f"cannot write results to '{path}': '{probe}' is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"cannot write results to '{path}': '{probe}' is not writable")


def keep_aside(run_dir: str) -> str:
    """Move a run directory to ``OUT/old/<run_id>.old-<UTC timestamp>`` (outside ``OUT/runs``, so tables and
    reports never mix it in); returns the new path. Nothing is ever deleted."""
    out = os.path.dirname(os.path.dirname(os.path.abspath(run_dir)))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = os.path.join(out, "old", f"{os.path.basename(run_dir)}.old-{stamp}")
    dest, k = base, 1
    while os.path.exists(dest):
        dest, k = f"{base}-{k}", k + 1
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    os.rename(run_dir, dest)
    return dest


def config_diff(stored: dict, new: dict) -> list[str]:
    """Keys whose values differ between two run configs, ignoring NON_RESULT_KEYS."""
    a, b = (json.loads(json.dumps(d, sort_keys=True, default=str)) for d in (stored, new))
    return sorted(k for k in set(a) | set(b) if k not in NON_RESULT_KEYS and a.get(k) != b.get(k))


def _read_checkpoint(run_dir: str, config: dict) -> tuple[dict | None, str | None]:
    """(state with its row chunks, None) if the unfinished run in ``run_dir`` can be resumed, else (None, why)."""
    try:
        with open(os.path.join(run_dir, "config.json")) as f:
            stored = json.load(f)
    except (OSError, ValueError):
        return None, "its config.json is missing or unreadable"
    diff = config_diff(stored, config)
    if diff:
        return None, f"its config differs ({', '.join(diff)})"
    ckpt_dir = os.path.join(run_dir, checkpoint.CKPT_DIR)
    path = os.path.join(ckpt_dir, checkpoint.STATE_FILE)
    if not os.path.isfile(path):
        return None, "it has no checkpoint"
    try:
        state = checkpoint.load(path)
        if state.get("format") != checkpoint.FORMAT or state.get("run_id") != config["run_id"]:
            return None, "its checkpoint has another format or run id"
        state["_chunks"] = [checkpoint.load(checkpoint.chunk_path(ckpt_dir, k)) for k in state["chunks"]]
        for name in ("evals", "train", "episodes"):
            if f"{name}_bytes" not in state["rows"]:  # a checkpoint from before episodes.csv existed
                continue
            if os.path.getsize(os.path.join(run_dir, f"{name}.csv")) < state["rows"][f"{name}_bytes"]:
                return None, f"its {name}.csv is shorter than the checkpoint recorded"
    except Exception as e:  # unreadable, truncated, unpickling refused, ...
        return None, f"its checkpoint cannot be read ({type(e).__name__})"
    return state, None


def _param_sums(algo) -> dict[str, float]:
    sums = {}
    for name, m in algo.modules().items():
        if isinstance(m, torch.nn.Module):
            ps = [p.detach().sum() for p in m.parameters()]
            if ps:
                sums[name] = float(torch.stack(ps).sum())
    return sums


def check_finite(metrics: dict[str, float], algo) -> None:
    """Raise _Diverged naming the first non-finite metric or network (a sum over its parameters)."""
    for k, v in metrics.items():
        if not math.isfinite(v):
            raise _Diverged(f"non-finite {k} ({v}) at grad step {algo.grad_steps}")
    for name, v in _param_sums(algo).items():
        if not math.isfinite(v):
            raise _Diverged(f"non-finite parameters in {name} (sum {v}) at grad step {algo.grad_steps}")


def _kill_point() -> tuple[str, int] | None:
    v = os.environ.get(KILL_ENV)
    if not v:
        return None
    kind, n = v.split(":")
    return kind, int(n)


def write_progress(run_dir: str, info: dict) -> None:
    files.atomic_write_json(os.path.join(run_dir, "progress.json"), info, indent=None)


class RunLocked(UserError):
    """Another live process is writing this run (its lock in ``OUT/locks/``)."""


SKIPPED = "skipped: "  # the start of a sweep worker's error that is no failure: another process writes the run


def run_lock_path(out_dir: str, run_id: str) -> str:
    """The run's lock file: outside its directory, so that it stays put when the directory is moved aside."""
    return os.path.join(out_dir, "locks", f"{run_id}.lock")


def lock_run(out_dir: str, run_id: str) -> files.FileLock:
    return files.exclusive(run_lock_path(out_dir, run_id), f"{run_id} is being written by another process", out_dir,
                     RunLocked, hint=f" (results folder {out_dir})")


def run(spec: RunSpec, out_dir: str, progress: bool = True, resume: bool = True, force: bool = False,
        allow_code_change: bool = False) -> str:
    """Run one offline->online experiment; returns its run directory.

    One writer per run: the run's lock (``run_lock_path``) is held from before its directory is looked at until
    the run ends; a second writer gets ``RunLocked`` (one line with the holder's PID, exit code 2) and touches
    nothing. An existing run directory is never deleted: a finished run (``DONE``) is skipped (``force``: moved
    aside to ``OUT/old/`` and started again); a run that failed for good (``FAILED``) raises RunFailed again
    unless ``force``; an unfinished one continues from its last checkpoint if ``resume`` and its config (but for
    NON_RESULT_KEYS) is unchanged, and is moved aside with a one-line notice otherwise. A checkpoint written by
    other code (``provenance.code_identity``) is refused unless ``allow_code_change``, which records the change
    in meta.json."""
    check_output_dir(out_dir)
    task, cls, preset, cfg, env, ds = prepare(spec)
    lock = lock_run(out_dir, spec.run_id)
    try:
        return _run_locked(spec, out_dir, progress, resume, force, allow_code_change,
                           (task, cls, preset, cfg, env, ds))
    finally:
        lock.release()


def _run_locked(spec: RunSpec, out_dir: str, progress: bool, resume: bool, force: bool, allow_code_change: bool,
                prepared: tuple) -> str:
    task, cls, preset, cfg, env, ds = prepared
    run_dir = os.path.join(out_dir, "runs", spec.run_id)
    done, failed = (os.path.join(run_dir, n) for n in ("DONE", "FAILED"))
    if os.path.isfile(done) and not force:
        print(f"{spec.run_id}: already finished ({done}): skipped; --force starts it again",
              file=sys.stderr, flush=True)
        return run_dir
    if os.path.isfile(failed) and not force:
        with open(failed) as f:
            reason = f.read().strip()
        raise RunFailed(spec.run_id, f"failed earlier: {reason} (--force starts it again)")
    torch.set_num_threads(spec.threads)
    seed_everything(spec.seed)
    device = torch.device(spec.device)
    obs_dim, act_dim = ds.obs_dim, ds.act_dim
    algo = cls(obs_dim, act_dim, cfg, device=device)
    algo.set_speed_options(bf16=spec.bf16, compile=spec.compile, cuda_graphs=spec.cuda_graphs)
    eval_env = task.make_env()
    # e.g. a budget that ends inside BEAR's warm-up; printed (sweep workers silence ``warnings``) and recorded
    budget_warnings = [str(w) for w in algo.budget_warnings(planned_updates(spec, algo))]

    buffer = ReplayBuffer(obs_dim, act_dim, algo.buffer_capacity(len(ds), spec.online_steps), device,
                          seed=spec.seed, with_returns=algo.needs_returns)
    buffer.add_many(ds.obs, ds.act, ds.rew, ds.next_obs, ds.done, ds.timeout)
    if buffer.size < buffer.capacity:  # prior data stays for the whole run (AWAC paper Sec. 5); the FIFO
        buffer.protect()               # of a capacity-limited algorithm (AWR) cycles over online rows only

    # fixed diagnostic batch from the offline data, with Monte-Carlo returns for the Q-estimate check
    gamma = algo.discount
    rng = np.random.default_rng(spec.seed)
    diag_idx = rng.choice(len(ds), size=min(DIAG_BATCH, len(ds)), replace=False)
    diag_obs = torch.as_tensor(ds.obs[diag_idx], device=device)
    diag_act = torch.as_tensor(ds.act[diag_idx], device=device)
    diag_mc = float(ds.mc_returns(gamma)[diag_idx].mean())

    config = {**dataclasses.asdict(spec), "run_id": spec.run_id, "algo_preset_resolved": preset,
              "algo_label": spec.label(task.family),
              "algo_config": cfg.to_dict(), "task_env_id": task.env_id,
              # paths relative to the project root (or ~/...), never this machine's absolute prefix
              "dataset": portable_path(spec.dataset), "dataset_path": portable_path(task.dataset_path),
              "action_scale": ds.action_scale,
              "dataset_rows": len(ds), "dataset_sha256": ds.checksum(), "gamma": gamma,
              "warnings": budget_warnings}

    state, code_changes = None, []
    if os.path.isdir(run_dir):
        if force:
            why = "finished" if os.path.isfile(done) else "failed" if os.path.isfile(failed) else "unfinished"
            why = f"{why}, --force"
        elif not resume:
            why = "unfinished (--resume continues it)"
        else:
            state, why = _read_checkpoint(run_dir, config)
            if state is None:
                why = f"unfinished but cannot be resumed: {why}"
            else:
                code_changes = _code_change(spec.run_id, state, allow_code_change)
        if state is None:
            dest = keep_aside(run_dir)
            print(f"{spec.run_id}: {why}: kept aside in {dest}; starting it again", file=sys.stderr, flush=True)
    for msg in budget_warnings:
        print(f"warning: {spec.run_id}: {msg}", file=sys.stderr, flush=True)
    try:
        os.makedirs(os.path.dirname(run_dir), exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write results to '{out_dir}': {e.strerror}") from None
    try:
        return _execute(spec, task, algo, env, eval_env, buffer, config, run_dir, state, progress,
                        (diag_obs, diag_act, diag_mc), code_changes)
    except _RestoreFailed as e:  # the checkpoint read but does not fit this run: start again from scratch
        dest = keep_aside(run_dir)
        print(f"{spec.run_id}: unfinished but cannot be resumed: {e}: kept aside in {dest}; starting it again",
              file=sys.stderr, flush=True)
        fresh = (task, cls, preset, cfg, task.make_env(), ds)  # the old env may hold half a restored state
        return _run_locked(spec, out_dir, progress, False, False, allow_code_change, fresh)


def _code_change(run_id: str, state: dict, allow: bool) -> list[dict]:
    """[] when the checkpoint was written by this code; else the change to record (``allow``) or UserError."""
    code = code_identity()
    old = state.get("code")
    if (old or {}).get("code_hash") == code["code_hash"]:
        return []
    change = describe_change(old, code)
    at = int(state["offline_step"]) if state["stage"] == "offline" else \
        int(state["offline_step"]) + int(state["online"]["env_step"])
    if not allow:
        raise UserError(f"{run_id}: its checkpoint (step {at}) was written by other code ({change}): "
                        "--allow-code-change resumes it and records the change, --force starts it again")
    print(f"{run_id}: resuming across a code change ({change}), recorded in meta.json", file=sys.stderr, flush=True)
    return [{"at_step": at, "change": change, "from": old, "to": code,
             "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]


class _RestoreFailed(Exception):
    pass


def _restore(state: dict, algo, buffer: ReplayBuffer, env, ckpt_dir: str, eval_every: int) -> tuple:
    """Put algorithm, buffer, training env and RNGs back as they were when ``state`` was checkpointed; returns
    the loop's position (offline step, episode, env_step, next_eval, last_eval, row chunks, elapsed seconds)."""
    algo.load_state_dict(state["algo"])
    for rows in state["_chunks"]:
        buffer.apply_rows(rows)
    buffer.load_state_dict(state["buffer"])
    algo.on_resume(buffer)
    ep, online = None, (0, eval_every, 0)  # an offline checkpoint: the online counters as they start
    if state["stage"] == "online":
        checkpoint.set_env_state(env, state["env"])
        e = state["episode"]
        ep = Episode(checkpoint.decode(e["obs"]), float(e["ret"]), float(e["last_ret"]), int(e.get("steps", 0)),
                     int(e.get("goal_steps", 0)))
        online = tuple(int(state["online"][k]) for k in ("env_step", "next_eval", "last_eval"))
    chunks = list(state["chunks"])
    checkpoint.drop_chunks_after(ckpt_dir, max(chunks, default=0))
    checkpoint.set_rng_state(state["rng"])  # last: nothing above draws from them
    return (int(state["offline_step"]), ep, *online, chunks, float(state["elapsed_s"]))


def _execute(spec, task, algo, env, eval_env, buffer, config, run_dir, state, progress, diag,
             code_changes: list[dict]) -> str:
    diag_obs, diag_act, diag_mc = diag
    ckpt_dir = os.path.join(run_dir, checkpoint.CKPT_DIR)
    # the loop's position: phase, offline steps done, online counters, the episode in progress
    stage, g0, ep = "offline", 0, None
    env_step, next_eval, last_eval = 0, spec.eval_every, 0
    elapsed0, chunks = 0.0, []
    if state is not None:  # resume: everything as it was when the checkpoint was taken
        try:
            g0, ep, env_step, next_eval, last_eval, chunks, elapsed0 = _restore(state, algo, buffer, env, ckpt_dir,
                                                                                spec.eval_every)
            writer = RunWriter(run_dir, config, resume=state["rows"],
                               meta_extra={"code_changes": code_changes} if code_changes else None)
        except files.WriteError:
            raise  # a full disk is not a checkpoint that does not fit: the run stays resumable
        except Exception as e:
            raise _RestoreFailed(f"its checkpoint does not fit ({type(e).__name__}: {e})") from e
        stage = state["stage"]
        print(f"{spec.run_id}: resumed from its checkpoint ({stage}, "
              f"{g0 if stage == 'offline' else spec.offline_steps + env_step} of "
              f"{spec.offline_steps + spec.online_steps} steps)", file=sys.stderr, flush=True)
    else:
        writer = RunWriter(run_dir, config)
    os.makedirs(ckpt_dir, exist_ok=True)

    t0 = time.perf_counter() - elapsed0
    base = {"run_id": spec.run_id, "algo": config["algo_label"], "task": task.name, "seed": spec.seed}
    total = spec.offline_steps + spec.online_steps
    kill = _kill_point()
    ck = {"since": buffer.added, "last": time.monotonic(), "written": 0, "seconds": [], "bytes": [],
          "progress_at": 0.0}
    every_s = spec.checkpoint_every_min * 60.0 if spec.checkpoint_every_min > 0 else math.inf

    def save_progress(steps_done: int, last_ckpt: float | None = None, **extra) -> None:
        info = {"run_id": spec.run_id, "steps_done": steps_done, "steps_total": total,
                "wall_s": round(time.perf_counter() - t0, 3), "updated": time.time(), "pid": os.getpid(),
                "host": socket.gethostname(), **extra}
        if last_ckpt is not None:
            info["last_checkpoint"] = last_ckpt
        write_progress(run_dir, info)
        ck["progress_at"] = time.monotonic()

    def save_checkpoint(stage: str, g: int) -> None:
        t = time.perf_counter()
        buf_state, rows = buffer.state_dict(ck["since"])
        nbytes = 0
        if len(rows["pos"]):
            k = max(chunks, default=0) + 1
            nbytes += checkpoint.atomic_save(rows, checkpoint.chunk_path(ckpt_dir, k))
            chunks.append(k)
        st = {"format": checkpoint.FORMAT, "run_id": spec.run_id, "stage": stage, "offline_step": g,
              "algo": algo.state_dict(), "buffer": buf_state, "chunks": list(chunks),
              "rng": checkpoint.rng_state(), "rows": writer.rows(), "elapsed_s": time.perf_counter() - t0,
              "code": code_identity()}
        if stage == "online":
            st["online"] = {"env_step": env_step, "next_eval": next_eval, "last_eval": last_eval}
            st["episode"] = {"obs": checkpoint.encode(np.asarray(ep.obs)), "ret": ep.ret, "last_ret": ep.last_ret,
                             "steps": ep.steps, "goal_steps": ep.goal_steps}
            st["env"] = checkpoint.env_state(env)
        nbytes += checkpoint.atomic_save(st, os.path.join(ckpt_dir, checkpoint.STATE_FILE))
        ck["since"] = buffer.added
        ck["last"] = time.monotonic()
        ck["written"] += 1
        ck["seconds"].append(time.perf_counter() - t)
        ck["bytes"].append(nbytes)
        done = g if stage == "offline" else spec.offline_steps + env_step
        save_progress(done, last_ckpt=time.time(), phase=stage)
        if kill == ("ckpt", ck["written"]):
            os.kill(os.getpid(), signal.SIGKILL)

    def tick(stage: str, g: int, evaluated: bool) -> None:
        """After each offline step / online iteration: checkpoint if due, progress.json now and then."""
        if kill is not None and kill[0] == stage and (g if stage == "offline" else env_step) >= kill[1]:
            os.kill(os.getpid(), signal.SIGKILL)  # tests: killed before this point's checkpoint
        now = time.monotonic()
        ck["done"] = g if stage == "offline" else spec.offline_steps + env_step
        if (evaluated and spec.checkpoint_at_eval) or now - ck["last"] >= every_s:
            save_checkpoint(stage, g)
        elif now - ck["progress_at"] >= PROGRESS_EVERY_S:
            save_progress(ck["done"], phase=stage)

    def do_eval(phase: str, env_step: int) -> dict[str, float]:
        check_finite({}, algo)  # no evaluation with a broken policy
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

    bar = _Progress(total, f"{spec.run_id}", progress)
    bar.update(g0 if stage == "offline" else spec.offline_steps + env_step)
    block = max(1, algo.online_rhythm()[1])
    try:
        if stage == "offline":
            # ---- offline phase --------------------------------------------------------------------
            bs = algo.batch_size("offline")
            for g in range(g0, spec.offline_steps):
                if g % block == 0:
                    algo.prepare_updates(buffer)
                metrics = algo.update(buffer.sample(bs))
                step = g + 1
                if step % spec.log_every == 0:
                    check_finite(metrics, algo)
                    writer.train_rows(spec.run_id, algo.grad_steps, "offline", metrics)
                evaluated = False
                if spec.eval_every_offline and step % spec.eval_every_offline == 0 and step != spec.offline_steps:
                    res = do_eval("offline", 0)
                    evaluated = True
                    bar.update(0, score=f"{res['normalized_score']:.1f}")
                bar.update(1)
                tick("offline", step, evaluated)
            res = do_eval("offline", 0)  # the switch point
            bar.update(0, phase="online", score=f"{res['normalized_score']:.1f}")

            # ---- the switch -----------------------------------------------------------------------
            algo.on_phase_switch(buffer)
            ep = Episode(env.reset(seed=spec.seed)[0])
            env.action_space.seed(spec.seed)
            stage = "online"
            tick("online", spec.offline_steps, True)

        # ---- online phase ---------------------------------------------------------------------
        bs = algo.batch_size("online")
        n_collect, n_update = online_blocks(algo.online_rhythm(), spec.utd)
        ended: list[tuple[float, int, int]] = []
        while env_step < spec.online_steps:
            n = min(n_collect, spec.online_steps - env_step)
            collect(env, algo, buffer, ep, n, ended)
            env_step += n
            if ended:  # the training episodes that ended in this block (regret: mean failure over them)
                writer.episode_rows([{**base, "env_step": env_step, "return": r, "length": length,
                                      "success": None if task.success_min_steps is None
                                      else float(goal > task.success_min_steps)} for r, length, goal in ended])
                ended.clear()
            if algo.learns_online:
                algo.prepare_updates(buffer)
                for _ in range(n_update):
                    metrics = algo.update(buffer.sample(bs))
                    if algo.grad_steps % spec.log_every == 0:
                        check_finite(metrics, algo)
                        writer.train_rows(spec.run_id, algo.grad_steps, "online", metrics)
            bar.update(n)
            evaluated = False
            if env_step >= next_eval:  # with a multi-step rhythm, evaluate after the block that crosses it
                res = do_eval("online", env_step)
                last_eval = env_step
                evaluated = True
                bar.update(0, score=f"{res['normalized_score']:.1f}", train_ret=f"{ep.last_ret:.0f}")
                while next_eval <= env_step:
                    next_eval += spec.eval_every
            tick("online", spec.offline_steps, evaluated)
        if env_step != last_eval:
            do_eval("online", env_step)  # the budget's last point, so every run ends with an evaluation
    except _Diverged as e:
        bar.close()
        writer.fail(str(e))
        save_progress(ck.get("done", 0), phase="failed")
        raise RunFailed(spec.run_id, str(e)) from None
    except BaseException as e:
        writer.close()  # rows written so far stay on disk; no DONE marker
        bar.close()
        if isinstance(e, UserError) and state is None and not ck["written"]:
            shutil.rmtree(run_dir, ignore_errors=True)  # bad input found late: nothing of this new run is kept
        raise
    bar.close()
    cs, cb = ck["seconds"], ck["bytes"]
    writer.finish({"wall_s": round(time.perf_counter() - t0, 3), "grad_steps": algo.grad_steps,
                   "buffer_bytes": buffer.nbytes(),
                   "checkpoints": {"count": len(cs), "seconds_mean": round(float(np.mean(cs)), 4) if cs else None,
                                   "seconds_max": round(max(cs), 4) if cs else None,
                                   "bytes_mean": int(np.mean(cb)) if cb else None,
                                   "bytes_total": int(sum(cb))}})
    save_progress(total, phase="done")
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # a finished run needs no checkpoint (--save-model keeps the model)
    if spec.save_model:
        algo.save(os.path.join(run_dir, "final.pt"))
    return run_dir
