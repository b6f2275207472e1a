"""One protocol for every algorithm: offline pretraining, then online fine-tuning, evaluated on a schedule.

    1. fill the replay buffer with the offline dataset
    2. offline phase: N gradient steps on it, evaluating every ``eval_every_offline`` steps and once at
       the very end (the switch point)
    3. the switch (``RunLoop.switch``): the online episode starts
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
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import algorithms
from algorithms.base import UserError, ends_at_goal
from benchmarks.common import checkpoint, files
from benchmarks.common.provenance import code_identity, describe_change
from benchmarks.data.dataset import portable_path
from benchmarks.rollouts import seed_everything
from benchmarks.run import columns
from benchmarks.run.loop import (
    PROGRESS_EVERY_S,  # noqa: F401 - the sweeps read it from here
    Diagnostics,
    Faults,
    RestoreFailed,
    RunFailed,
    RunLoop,
    online_blocks,
)
from benchmarks.tasks.registry import get_task
from benchmarks.tasks.task import EndAtGoal

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
    bf16: bool = _arg(False, "bfloat16 autocast around every update (opt-in, for GPUs; docs/PERFORMANCE.md)")
    checkpoint_at_eval: bool = _arg(True, "write a checkpoint after every evaluation (benchmarks/common/checkpoint.py)")
    checkpoint_every_min: float = _arg(10.0, "minutes between checkpoints at the most (a checkpoint also follows "
                                                 "every evaluation; <= 0: only at evaluations)")

    def label(self, task_preset: str | None = None) -> str:
        """The algorithm as results name it: its registry name, with an explicitly chosen preset appended
        (``sacfd-prior``, SACfD-pretrain, is another baseline than ``sacfd``), unless that preset is the one
        the task picks anyway (``task_preset``: ``--algo-preset hand`` on a hand task is plain AWAC)."""
        return f"{self.algo}-{self.algo_preset}" if self.algo_preset and self.algo_preset != task_preset else self.algo

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


def task_preset(task, cls) -> str | None:
    """The preset a task picks when the run names none: the one named after the task's environment
    (``score_family``: AWR's per-environment settings of awr_configs.py, ReBRAC's per-task BC coefficients) where
    the algorithm has it, else the one named after its family (``hand``, ``mujoco``), else none."""
    return next((p for p in (task.score_family, task.family) if p and p in cls.presets), None)


def check_spec(spec: RunSpec):
    """The checks of a run's input that need neither its environment nor its data: (task, class, preset, config)."""
    spec.validate()
    task = get_task(spec.task, spec.dataset, spec.env)
    cls = algorithms.get(spec.algo)
    preset = spec.algo_preset if spec.algo_preset else task_preset(task, cls)
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
    if ends_at_goal(cfg):  # the goal as a terminal state
        ds = ds.goal_terminal_view(task.goal_rows(ds))
        if not len(ds):
            raise UserError(f"end_at_goal: no episode of the dataset of '{task.name}' reaches the goal")
        env = EndAtGoal(env)
    return task, cls, preset, cfg, env, ds


def planned_updates(spec: RunSpec, algo) -> int:
    """Gradient steps a run will take: the offline steps (none for an algorithm that does not pretrain) plus, if
    the algorithm learns online, one block of updates per collection (``online_blocks``; the last partial)."""
    offline = spec.offline_steps if algo.pretrains else 0
    learning = spec.online_steps - min(algo.random_steps, spec.online_steps)  # after the random warm-up
    if not algo.learns_online or learning == 0:
        return offline
    n_collect, n_update = online_blocks(algo.online_rhythm(), spec.utd)
    return offline + -(-learning // max(1, n_collect)) * n_update


# config.json keys that do not change a run's numbers: a stored run whose config differs only in these resumes
NON_RESULT_KEYS = frozenset({"save_model", "checkpoint_every_min", "checkpoint_at_eval", "dataset", "dataset_path",
                             "algo_label", "compile", "cuda_graphs",  # speed options of earlier versions
                             "warnings"})


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
        allow_code_change: bool = False, faults: Faults | None = None) -> str:
    """Run one offline->online experiment; returns its run directory.

    One writer per run: the run's lock (``run_lock_path``) is held from before its directory is looked at until
    the run ends; a second writer gets ``RunLocked`` (one line with the holder's PID, exit code 2) and touches
    nothing. An existing run directory is never deleted: a finished run (``DONE``) is skipped (``force``: moved
    aside to ``OUT/old/`` and started again); a run that failed for good (``FAILED``) raises RunFailed again
    unless ``force``; an unfinished one continues from its last checkpoint if ``resume`` and its config (but for
    NON_RESULT_KEYS) is unchanged, and is moved aside with a one-line notice otherwise (also when its checkpoint
    reads but does not fit). A checkpoint written by other code (``provenance.code_identity``) is refused unless
    ``allow_code_change``, which records the change in meta.json. ``faults``: tests' fault injection
    (``loop.Faults``)."""
    check_output_dir(out_dir)
    prepared = prepare(spec)
    lock = lock_run(out_dir, spec.run_id)
    try:
        run_dir = os.path.join(out_dir, "runs", spec.run_id)
        if _finished_or_failed(spec, run_dir, force):
            return run_dir
        try:
            return _start(spec, out_dir, run_dir, prepared, progress, resume, force, allow_code_change, faults)
        except RestoreFailed as e:  # the checkpoint read but does not fit this run: start again from scratch
            dest = keep_aside(run_dir)
            print(f"{spec.run_id}: unfinished but cannot be resumed: {e}: kept aside in {dest}; starting it again",
                  file=sys.stderr, flush=True)
            task, cls, preset, cfg, _, ds = prepared
            fresh = (task, cls, preset, cfg, task.make_env(), ds)  # the old env may hold half a restored state
            return _start(spec, out_dir, run_dir, fresh, progress, False, False, allow_code_change, faults)
    finally:
        lock.release()


def _finished_or_failed(spec: RunSpec, run_dir: str, force: bool) -> bool:
    """True for a finished run (skipped); RunFailed for one that failed for good; False otherwise (or ``force``)."""
    done, failed = (os.path.join(run_dir, n) for n in ("DONE", "FAILED"))
    if os.path.isfile(done) and not force:
        print(f"{spec.run_id}: already finished ({done}): skipped; --force starts it again",
              file=sys.stderr, flush=True)
        return True
    if os.path.isfile(failed) and not force:
        with open(failed) as f:
            reason = f.read().strip()
        raise RunFailed(spec.run_id, f"failed earlier: {reason} (--force starts it again)")
    return False


def _build(spec: RunSpec, prepared: tuple):
    """The algorithm (seeded), the replay buffer holding the prior data, the evaluation env, the diagnostics batch
    and the run's config.json, in the order that fixes the run's random numbers."""
    task, cls, preset, cfg, env, ds = prepared
    torch.set_num_threads(spec.threads)
    seed_everything(spec.seed)
    device = torch.device(spec.device)
    obs_dim, act_dim = ds.obs_dim, ds.act_dim
    algo = cls(obs_dim, act_dim, cfg, device=device)
    eval_env = task.make_env()
    # e.g. a budget that ends inside BEAR's warm-up, a dataset that marks no demonstrations; printed (sweep
    # workers silence ``warnings``) and recorded
    run_warnings = [str(w) for w in algo.budget_warnings(planned_updates(spec, algo))]
    if spec.online_steps and algo.learns_online and algo.random_steps >= spec.online_steps:
        run_warnings.append(f"the online budget ({spec.online_steps} steps) ends inside the {algo.random_steps} "
                            "random-action steps (random_steps): no online update")

    # the prior data, with the declared columns the harness computes (mc_return, next_act)
    buffer = columns.prior_buffer(algo, ds, algo.buffer_capacity(len(ds), spec.online_steps), device, spec.seed)
    if buffer.size < buffer.capacity:  # prior data stays for the whole run (AWAC paper Sec. 5); the FIFO
        buffer.protect()               # of a capacity-limited algorithm (AWR) cycles over online rows only
    if algo.demo_batch_size() and ds.demo is None:
        run_warnings.append(f"dataset {portable_path(ds.source)} marks no demonstration rows (no 'source' column, "
                            f"0 = demonstration): the demonstration batch is drawn from all {len(ds)} prior rows")

    # fixed diagnostic batch from the offline data, with Monte-Carlo returns for the Q-estimate check
    gamma = algo.discount
    rng = np.random.default_rng(spec.seed)
    diag_idx = rng.choice(len(ds), size=min(DIAG_BATCH, len(ds)), replace=False)
    diag = Diagnostics(torch.as_tensor(ds.obs[diag_idx], device=device),
                       torch.as_tensor(ds.act[diag_idx], device=device), float(ds.mc_returns(gamma)[diag_idx].mean()))

    config = {**dataclasses.asdict(spec), "run_id": spec.run_id, "algo_preset_resolved": preset,
              "algo_label": spec.label(task_preset(task, type(algo))),
              "algo_config": cfg.to_dict(), "task_env_id": task.env_id,
              # paths relative to the project root (or ~/...), never this machine's absolute prefix
              "dataset": portable_path(spec.dataset), "dataset_path": portable_path(task.dataset_path),
              "action_scale": ds.action_scale,
              "dataset_rows": len(ds), "dataset_sha256": ds.checksum() if ds.view is None else None,
              "gamma": gamma, "warnings": run_warnings}
    if algo.demo_batch_size():
        config["demo_rows"] = len(buffer.demo_rows)
    if ds.view is not None:  # the stored dataset's checksum (provenance), what the run made of it beside
        config.update(dataset_sha256=ds.view["source_sha256"], dataset_rows=ds.view["source_rows"],
                      dataset_view=ds.view)
    return algo, buffer, eval_env, diag, config


def _resumable_state(spec: RunSpec, run_dir: str, config: dict, resume: bool, force: bool,
                     allow_code_change: bool) -> tuple[dict | None, list[dict]]:
    """(checkpoint state, code changes to record) of an unfinished run to continue; (None, []) for a new start, after
    moving an existing directory that cannot be continued aside."""
    if not os.path.isdir(run_dir):
        return None, []
    state, code_changes = None, []
    if force:
        done, failed = (os.path.isfile(os.path.join(run_dir, n)) for n in ("DONE", "FAILED"))
        why = f"{'finished' if done else 'failed' if failed else 'unfinished'}, --force"
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
    return state, code_changes


def _start(spec: RunSpec, out_dir: str, run_dir: str, prepared: tuple, progress: bool, resume: bool, force: bool,
           allow_code_change: bool, faults: Faults | None) -> str:
    task, env = prepared[0], prepared[4]
    algo, buffer, eval_env, diag, config = _build(spec, prepared)
    state, code_changes = _resumable_state(spec, run_dir, config, resume, force, allow_code_change)
    for msg in config["warnings"]:
        print(f"warning: {spec.run_id}: {msg}", file=sys.stderr, flush=True)
    try:
        os.makedirs(os.path.dirname(run_dir), exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write results to '{out_dir}': {e.strerror}") from None
    loop = RunLoop(spec, task, algo, env, eval_env, buffer, config, run_dir, diag, faults)
    if state is not None:
        loop.restore(state, code_changes)
    return loop.run(progress)


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
