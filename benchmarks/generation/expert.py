"""Data-generating experts: the suite's SAC trained online on a gymnasium MuJoCo env, resumable.

The AWAC paper's MuJoCo prior data starts from demonstrations of an expert (rlkit ``awac_rl.py`` ENV_PARAMS:
``{hc,ant,walker}_action_noise_15.npy``). Its appendix data table gives those experts' returns:
HalfCheetah 9,962, Walker2d 5,062, Ant 5,207 (read from the authors' LaTeX source, docs/FIDELITY.md). The
suite's experts are trained until their deterministic return (``eval_episodes`` = 10 episodes) reaches 90%
of those (``BARS``), or for at most ``steps`` environment steps (2M by default), then the plateau is stated.

Training is the suite's SAC (``algorithms/sac.py``, default config: SAC v2 paper Table 1) with
``random_steps`` uniformly random actions first, then one update per environment step, a FIFO replay
buffer of ``buffer`` (1M: SAC v2 paper Table 1 "replay buffer size 10^6") transitions.

A training is a directory (``runs/experts/<env>-s<seed>/`` by default) with ``config.json``, ``curve.csv``
(one row per evaluation: return against environment steps), ``progress.json`` and ``ckpt/`` (the harness's
checkpoint format, ``benchmarks/common/checkpoint.py``: SAC's networks and optimisers, the buffer's new rows as
append-only chunks, every RNG, the training env's simulator state). A checkpoint follows every evaluation and
at least every ``checkpoint_every_min`` minutes; a rerun of the same command continues from it with the same
numbers as an uninterrupted training. Only ``steps`` and ``until`` may change between a kill and the resume
(to extend a budget); any other setting is refused. One process at a time holds a directory (an advisory
lock the OS releases when the process dies).

The expert file (weights of the actor only, loaded with ``weights_only=True``) is written when the training
ends, with its command, steps, curve, return and wall time; ``partial.pt`` in the directory is the latest
actor at every evaluation.

Across machines. The replay buffer (up to 1M rows, ~170 MB) is not something to commit, so a training that
outlives a machine continues from ``portable.pt`` (written with every checkpoint: SAC's networks, optimisers
and temperature, the step count, the curve; ~3 MB): ``--warm-start FILE`` on a new machine starts a new
directory at that step with an empty buffer, collects ``REFILL_STEPS`` steps with the policy before its next
update, and records the warm start (step, file) in the expert file. That is not the uninterrupted training:
the expert's summary says so.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

import algorithms
from algorithms.base import UserError
from benchmarks.common import checkpoint, files
from benchmarks.common.provenance import code_identity, describe_change
from benchmarks.data.buffer import ReplayBuffer
from benchmarks.data.dataset import DATA_DIR
from benchmarks.rollouts import Episode, RandomPolicy, collect, evaluate, seed_everything

EXPERT_DIR = os.path.join(DATA_DIR, "experts")
WORK_ROOT = os.path.join("runs", "experts")

# 90% of the AWAC paper's experts (appendix data table: HalfCheetah 9,962, Walker2d 5,062, Ant 5,207), as
# issue "Room to learn online" sets them; Hopper is not a paper task (its bar: the same issue's 3,000).
BARS = {"HalfCheetah-v5": 9_000.0, "Walker2d-v5": 4_500.0, "Ant-v5": 4_500.0, "Hopper-v5": 3_000.0}
PAPER_EXPERT_RETURN = {"HalfCheetah-v5": 9_962.0, "Walker2d-v5": 5_062.0, "Ant-v5": 5_207.0}

PORTABLE_FORMAT = 1
# a warm start (``--warm-start``) collects this many steps with its policy into its new, empty buffer before
# its first update, so that SAC's first batches are not 256 draws from a few hundred rows
REFILL_STEPS = 10_000

# settings that change the numbers: a resume with any of them different is refused
FIXED = ("env_id", "seed", "random_steps", "buffer", "eval_every", "eval_episodes", "sac")


@dataclass
class ExpertSpec:
    env_id: str
    steps: int = 2_000_000          # environment steps at most (the 2M plateau rule)
    random_steps: int = 5_000       # uniform random actions before the first update (CleanRL sac_continuous)
    seed: int = 0
    until: float | None = None      # stop at the first evaluation at or above this return (None: BARS or never)
    eval_every: int = 20_000
    eval_episodes: int = 10
    buffer: int = 1_000_000
    checkpoint_every_min: float = 10.0

    def validate(self) -> None:
        if self.random_steps < 0 or self.steps <= self.random_steps:
            raise UserError("--steps must exceed --random-steps (>= 0)")
        if self.eval_every < 1 or self.eval_episodes < 1 or self.buffer < 1:
            raise UserError("--eval-every, --eval-episodes and the buffer size must be >= 1")

    @property
    def target(self) -> float | None:
        return self.until if self.until is not None else BARS.get(self.env_id)

    def command(self) -> str:
        until = f" --until {self.until:g}" if self.until is not None else ""
        return (f"awac-bench data expert --env {self.env_id} --steps {self.steps} --random-steps "
                f"{self.random_steps} --seed {self.seed} --eval-every {self.eval_every}{until}")


def expert_path(env_id: str) -> str:
    return os.path.join(EXPERT_DIR, f"{env_id}-sac.pt")


def load_expert(env_id: str, path: str | None = None):
    """The saved expert actor (a ``TanhGaussianPolicy``) and its summary; weights only, no unpickling.

    ``env_id``: an env id (its expert ``experts/<env>-sac.pt``) or the name of a file in ``experts/``
    (``Hopper-v5-sac-200k.pt``: an expert a dataset is pinned to)."""
    from algorithms.networks import TanhGaussianPolicy

    if path is None:
        path = os.path.join(EXPERT_DIR, env_id) if env_id.endswith(".pt") else expert_path(env_id)
    if not os.path.isfile(path):
        raise UserError(f"no expert policy for {env_id} at {path}: run `awac-bench data expert --env {env_id}`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        info = json.loads(state["info"])
        sd = state["actor"]
    except Exception as e:
        raise UserError(f"expert file {path} cannot be read ({type(e).__name__}): restore it from git "
                        f"(git checkout -- {path}) or retrain it") from None
    actor = TanhGaussianPolicy(state["obs_dim"], state["act_dim"], state["hidden"])
    # the Linear layers in order, whatever the module names were when it was saved (an MLP's weights do not
    # depend on how the code groups its layers)
    saved = [(v, sd[k[: -len("weight")] + "bias"]) for k, v in sd.items() if k.endswith("weight")]
    linears = [m for m in actor.modules() if isinstance(m, torch.nn.Linear)]
    if [w.shape for w, _ in saved] != [m.weight.shape for m in linears]:
        raise UserError(f"expert {path}: its layers {[tuple(w.shape) for w, _ in saved]} do not fit the policy")
    with torch.no_grad():
        for m, (w, b) in zip(linears, saved, strict=True):
            m.weight.copy_(w)
            m.bias.copy_(b)
    actor.requires_grad_(False)
    return actor, info


def write_sidecar(path: str) -> str:
    """``<expert>.json`` beside an expert file: its summary (command, steps, return, bar, wall time, curve) in
    plain JSON, readable without torch; the same as the file's own ``info``."""
    _, info = load_expert(os.path.basename(path), path)
    side = os.path.splitext(path)[0] + ".json"
    files.atomic_write_json(side, info)
    return side


def lock_path(workdir: str) -> str:
    """A training directory's lock: ``<parent>/locks/<name>.lock``."""
    parent, name = os.path.split(os.path.abspath(workdir))
    return os.path.join(parent, "locks", f"{name}.lock")


def default_workdir(spec: ExpertSpec) -> str:
    return os.path.join(WORK_ROOT, f"{spec.env_id}-s{spec.seed}")


def _config(spec: ExpertSpec, sac) -> dict:
    return {"env_id": spec.env_id, "seed": spec.seed, "random_steps": spec.random_steps, "buffer": spec.buffer,
            "eval_every": spec.eval_every, "eval_episodes": spec.eval_episodes,
            "sac": json.loads(json.dumps(sac.cfg.to_dict(), default=list)),
            "algorithm": "sacfd (algorithms/sac.py, default config)", "torch": str(torch.__version__)}


def _save_actor(path: str, sac, info: dict) -> None:
    state = {"actor": sac.actor.state_dict(), "obs_dim": sac.obs_dim, "act_dim": sac.act_dim,
             "hidden": list(sac.cfg.actor_hidden), "info": json.dumps(info, sort_keys=True)}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    checkpoint.atomic_save(state, path)


def train_expert(spec: ExpertSpec, out: str | None = None, workdir: str | None = None,
                 progress: bool = True, allow_code_change: bool = False, warm_start: str | None = None) -> dict:
    """Train (or continue training) an expert; returns its summary (also stored in the expert file)."""
    from benchmarks.tasks.task import Task

    spec.validate()
    out = out or expert_path(spec.env_id)
    workdir = workdir or default_workdir(spec)
    task = Task(spec.env_id, spec.env_id, "mujoco")
    env = task.make_env()  # an unknown env id: one line (UserError) before anything is written
    eval_env = task.make_env()
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]

    # beside the directory, not in it: moving the directory aside never moves the lock with it
    lock = files.exclusive(lock_path(workdir),
                           f"expert training {spec.env_id} (seed {spec.seed}) in {workdir} is being "
                           "written by another process", workdir)
    try:
        return _train(spec, out, workdir, task, env, eval_env, obs_dim, act_dim, progress, allow_code_change,
                      warm_start)
    finally:
        lock.release()


def _train(spec, out, workdir, task, env, eval_env, obs_dim, act_dim, progress, allow_code_change,
           warm_start) -> dict:
    torch.set_num_threads(1)
    seed_everything(spec.seed)
    sac = algorithms.make("sacfd", obs_dim, act_dim)
    buf = ReplayBuffer(obs_dim, act_dim, spec.buffer, seed=spec.seed)
    tr = _Training(spec, workdir, task, env, eval_env, sac, buf, _config(spec, sac))
    if warm_start is not None and (os.path.isfile(tr.done_path) or os.path.isfile(tr.state_path)):
        raise UserError(f"{workdir} already holds a training of its own: rerun without --warm-start to continue "
                        "it, or warm-start into another --workdir")
    if os.path.isfile(tr.done_path):
        with open(tr.done_path) as f:
            summary = json.load(f)
        print(f"expert {spec.env_id}: already finished in {workdir} ({summary['steps_done']} steps, return "
              f"{summary['eval_return_mean']:.1f}); delete the directory to train again", file=sys.stderr)
        return summary
    state = tr.stored_state(allow_code_change)
    os.makedirs(tr.ckpt_dir, exist_ok=True)
    if state is None:
        tr.start(warm_start, allow_code_change)
    else:
        tr.restore(state)
    tr.loop(progress)
    return tr.finish(out)


class _Training:
    """One expert training: its networks, buffer and env, the loop's position (step ``t``, the episode in progress,
    the checkpoint chunks), its records (curve, returns, code changes, warm starts) and its steps."""

    def __init__(self, spec, workdir, task, env, eval_env, sac, buf, config):
        self.spec, self.workdir, self.task, self.env, self.eval_env = spec, workdir, task, env, eval_env
        self.sac, self.buf, self.config = sac, buf, config
        self.ckpt_dir = os.path.join(workdir, checkpoint.CKPT_DIR)
        self.state_path = os.path.join(self.ckpt_dir, checkpoint.STATE_FILE)
        self.cfg_path, self.curve_path = os.path.join(workdir, "config.json"), os.path.join(workdir, "curve.csv")
        self.done_path = os.path.join(workdir, "DONE")
        self.t, self.chunks, self.elapsed0, self.returns = 0, [], 0.0, []
        self.refill_until, self.warm_starts, self.code_changes = 0, [], []
        self.ep = None
        self.last_eval = None
        self.reached = False

    def stored_state(self, allow_code_change: bool) -> dict | None:
        """The checkpoint to continue from (None: a new training); refuses other settings and, unless allowed,
        other code."""
        spec, workdir = self.spec, self.workdir
        if not os.path.isfile(self.cfg_path):
            return None
        with open(self.cfg_path) as f:
            stored = json.load(f)
        diff = [k for k in FIXED if stored.get(k) != self.config.get(k)]
        if diff:
            raise UserError(f"{workdir} holds an expert training with other settings ({', '.join(diff)}): "
                            "resume it with its own settings or use another --workdir")
        if not os.path.isfile(self.state_path):
            return None
        try:
            state = checkpoint.load(self.state_path)
            state["_chunks"] = [checkpoint.load(checkpoint.chunk_path(self.ckpt_dir, k)) for k in state["chunks"]]
        except Exception as e:
            raise UserError(f"{self.state_path} cannot be read ({type(e).__name__}); move {workdir} aside to start "
                            "again") from None
        self.code_changes += _check_code(state, allow_code_change, f"expert training {spec.env_id} in {workdir}",
                                         int(state["t"]))
        return state

    def start(self, warm_start: str | None, allow_code_change: bool) -> None:
        """A new directory: config, an empty curve, the first episode; from another machine's portable state with
        ``warm_start`` (its networks, a new buffer: module docstring)."""
        spec = self.spec
        files.atomic_write_json(self.cfg_path, self.config)
        with open(self.curve_path, "w") as f:
            f.write("env_step,grad_step,eval_return_mean,eval_return_std,train_return_last10,wall_s\n")
        self.env.action_space.seed(spec.seed)
        self.ep = Episode(self.env.reset(seed=spec.seed)[0])
        if warm_start is None:
            return
        ws = _load_portable(warm_start, self.config)
        self.code_changes += _check_code(ws, allow_code_change, f"{warm_start}", int(ws["t"]))
        self.sac.load_state_dict(ws["algo"])
        t = self.t = int(ws["t"])
        self.elapsed0 = float(ws["elapsed_s"])
        self.returns = [float(x) for x in ws["returns"]]
        self.code_changes = list(ws.get("code_changes", [])) + self.code_changes
        with open(self.curve_path, "a") as f:
            csv.writer(f).writerows([list(r.values()) for r in ws["curve"]])
        seed_everything(spec.seed + t)  # new streams: the old ones went with the other machine
        self.env.action_space.seed(spec.seed + t)
        self.ep = Episode(self.env.reset(seed=spec.seed + t)[0])
        self.refill_until = t + REFILL_STEPS
        self.warm_starts = list(ws.get("warm_starts", [])) + [
            {"at_step": t, "file": os.path.basename(warm_start), "refill_steps": REFILL_STEPS}]
        print(f"expert {spec.env_id}: warm start from {warm_start} at step {t}: a new replay buffer, "
              f"{REFILL_STEPS} steps of the policy before the next update", file=sys.stderr, flush=True)

    def restore(self, state: dict) -> None:
        """Everything as it was at the checkpoint: networks, buffer, env, episode, curve, RNGs (last)."""
        self.refill_until, self.warm_starts = int(state.get("refill_until", 0)), list(state.get("warm_starts", []))
        self.sac.load_state_dict(state["algo"])
        for rows in state["_chunks"]:
            self.buf.apply_rows(rows)
        self.buf.load_state_dict(state["buffer"])
        checkpoint.set_env_state(self.env, state["env"])
        e = state["episode"]
        self.ep = Episode(checkpoint.decode(e["obs"]), float(e["ret"]), float(e["last_ret"]))
        self.t, self.chunks, self.elapsed0 = int(state["t"]), list(state["chunks"]), float(state["elapsed_s"])
        self.returns = [float(x) for x in state["returns"]]
        self.code_changes = list(state.get("code_changes", [])) + self.code_changes
        checkpoint.drop_chunks_after(self.ckpt_dir, max(self.chunks, default=0))
        _truncate_curve(self.curve_path, int(state["curve_bytes"]))
        checkpoint.set_rng_state(state["rng"])
        print(f"expert {self.spec.env_id}: resumed from its checkpoint at {self.t} of {self.spec.steps} steps",
              file=sys.stderr, flush=True)

    def checkpoint(self) -> None:
        """The checkpoint (new buffer rows as a chunk, then the state) and ``portable.pt``."""
        buf_state, rows = self.buf.state_dict(self.since)
        if len(rows["pos"]):
            k = max(self.chunks, default=0) + 1
            checkpoint.atomic_save(rows, checkpoint.chunk_path(self.ckpt_dir, k))
            self.chunks.append(k)
        ep = self.ep
        st = {"format": checkpoint.FORMAT, "t": self.t, "algo": self.sac.state_dict(), "buffer": buf_state,
              "chunks": list(self.chunks), "rng": checkpoint.rng_state(), "env": checkpoint.env_state(self.env),
              "episode": {"obs": checkpoint.encode(np.asarray(ep.obs)), "ret": ep.ret, "last_ret": ep.last_ret},
              "returns": self.returns[-100:], "curve_bytes": os.path.getsize(self.curve_path),
              "code": code_identity(), "code_changes": self.code_changes, "refill_until": self.refill_until,
              "warm_starts": self.warm_starts, "elapsed_s": time.perf_counter() - self.t0}
        checkpoint.atomic_save({"format": PORTABLE_FORMAT, "t": self.t, "algo": st["algo"], "returns": st["returns"],
                                "elapsed_s": st["elapsed_s"], "curve": _read_curve(self.curve_path),
                                "config": self.config, "code": st["code"], "code_changes": self.code_changes,
                                "warm_starts": self.warm_starts}, os.path.join(self.workdir, "portable.pt"))
        checkpoint.atomic_save(st, self.state_path)
        self.since, self.last_ckpt = self.buf.added, time.monotonic()
        _progress(self.workdir, self.t, self.spec.steps, time.perf_counter() - self.t0, self.last_eval)

    def evaluation(self) -> dict:
        """Evaluate, append the curve row (fsynced) and write ``partial.pt``; returns the evaluation."""
        spec, sac = self.spec, self.sac
        res = evaluate(sac, self.eval_env, self.task, spec.eval_episodes, seed=10_000)
        self.last_eval = {"env_step": self.t, "grad_step": sac.grad_steps, "eval_return_mean": res["return_mean"],
                          "eval_return_std": res["return_std"],
                          "train_return_last10": float(np.mean(self.returns[-10:])) if self.returns
                          else float("nan"), "wall_s": round(time.perf_counter() - self.t0, 1)}
        with open(self.curve_path, "a") as f:
            csv.writer(f).writerow(self.last_eval.values())
            f.flush()
            os.fsync(f.fileno())
        _save_actor(os.path.join(self.workdir, "partial.pt"), sac,
                    {**self.config, "command": spec.command(), "steps_done": self.t, "partial": True,
                     "eval_return_mean": res["return_mean"]})
        return res

    def loop(self, progress: bool) -> None:
        """Environment steps (random first, then one SAC update per step) until the bar or the budget."""
        spec, sac = self.spec, self.sac
        explore = RandomPolicy(self.env.action_space)
        self.t0 = time.perf_counter() - self.elapsed0
        self.since, self.last_ckpt = self.buf.added, time.monotonic()
        every_s = spec.checkpoint_every_min * 60.0 if spec.checkpoint_every_min > 0 else math.inf
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=spec.steps, initial=self.t, desc=f"expert {spec.env_id}", unit="step", mininterval=5.0,
                       dynamic_ncols=True)
        self.last_eval = _last_curve_row(self.curve_path)
        target = spec.target
        self.reached = self.last_eval is not None and target is not None and \
            self.last_eval["eval_return_mean"] >= target
        while self.t < spec.steps and not self.reached:
            policy = explore if self.t < spec.random_steps else sac
            self.returns += collect(self.env, policy, self.buf, self.ep, 1)
            if self.t >= spec.random_steps and self.t >= self.refill_until:
                sac.update(self.buf.sample(sac.batch_size("online")))
            self.t += 1
            if bar is not None:
                bar.update(1)
            if self.t % spec.eval_every == 0 or self.t == spec.steps:
                res = self.evaluation()
                if bar is not None:
                    bar.set_postfix(eval=f"{res['return_mean']:.0f}", refresh=False)
                self.reached = target is not None and res["return_mean"] >= target
                if not self.reached and self.t < spec.steps:
                    self.checkpoint()
            elif time.monotonic() - self.last_ckpt >= every_s:
                self.checkpoint()
        if bar is not None:
            bar.close()

    def finish(self, out: str) -> dict:
        """The expert file with its summary (and the plateau, if the bar was not reached), DONE, no checkpoint."""
        spec, t, last_eval, target = self.spec, self.t, self.last_eval, self.spec.target
        curve = _read_curve(self.curve_path)
        summary = {**self.config, "command": spec.command(), "steps_done": t, "grad_steps": self.sac.grad_steps,
                   "eval_return_mean": last_eval["eval_return_mean"], "eval_return_std": last_eval["eval_return_std"],
                   "eval_episodes": spec.eval_episodes, "bar": target, "reached_bar": bool(self.reached),
                   "paper_expert_return": PAPER_EXPERT_RETURN.get(spec.env_id),
                   "wall_s": round(time.perf_counter() - self.t0, 1), "curve": curve, "code": code_identity(),
                   "code_changes": self.code_changes, "warm_starts": self.warm_starts}
        if not self.reached and target is not None:
            best = max(curve, key=lambda r: r["eval_return_mean"])
            summary["plateau"] = (f"below its bar {target:g} after {t} steps: last "
                                  f"{last_eval['eval_return_mean']:.0f}, best {best['eval_return_mean']:.0f} at "
                                  f"{best['env_step']}")
        _save_actor(out, self.sac, summary)
        write_sidecar(out)
        files.atomic_write_json(self.done_path, {k: v for k, v in summary.items() if k != "curve"})
        for p in os.listdir(self.ckpt_dir):  # a finished training needs no checkpoint: the expert file is the result
            os.remove(os.path.join(self.ckpt_dir, p))
        _progress(self.workdir, t, spec.steps, summary["wall_s"], last_eval, done=True)
        return summary


def _check_code(state: dict, allow: bool, what: str, at_step: int) -> list[dict]:
    """[] when ``state`` was written by this code; the change to record when ``allow``; else UserError."""
    code = code_identity()
    if (state.get("code") or {}).get("code_hash") == code["code_hash"]:
        return []
    change = describe_change(state.get("code"), code)
    if not allow:
        raise UserError(f"{what} was checkpointed by other code ({change}): resume with --allow-code-change to "
                        "accept it (recorded)")
    return [{"at_step": at_step, "change": change, "from": state.get("code"), "to": code}]


def _load_portable(path: str, config: dict) -> dict:
    """A training's portable state (``portable.pt``: networks and optimisers, no buffer), checked against this
    training's settings."""
    if not os.path.isfile(path):
        raise UserError(f"warm-start file not found: {path}")
    try:
        ws = checkpoint.load(path)
        assert ws["format"] == PORTABLE_FORMAT
    except Exception as e:
        raise UserError(f"warm-start file {path} cannot be read ({type(e).__name__})") from None
    diff = [k for k in FIXED if ws["config"].get(k) != config.get(k)]
    if diff:
        raise UserError(f"warm-start file {path} is of a training with other settings ({', '.join(diff)})")
    return ws


def export_portable(workdir: str, dest: str) -> dict:
    """Write the portable state (``--warm-start``'s input) of the latest checkpoint in ``workdir`` to ``dest``;
    for a directory whose training was checkpointed by a version without ``portable.pt``."""
    path = os.path.join(workdir, checkpoint.CKPT_DIR, checkpoint.STATE_FILE)
    if not os.path.isfile(path):
        raise UserError(f"no checkpoint to export in {workdir}")
    state = checkpoint.load(path)
    with open(os.path.join(workdir, "config.json")) as f:
        config = json.load(f)
    curve = _read_curve(os.path.join(workdir, "curve.csv"), int(state["curve_bytes"]))
    portable = {"format": PORTABLE_FORMAT, "t": int(state["t"]), "algo": state["algo"], "returns": state["returns"],
                "elapsed_s": float(state["elapsed_s"]), "curve": curve, "config": config, "code": state.get("code"),
                "code_changes": state.get("code_changes", []), "warm_starts": state.get("warm_starts", [])}
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    checkpoint.atomic_save(portable, dest)
    return portable


def _progress(workdir: str, t: int, total: int, wall_s: float, last_eval: dict | None, done: bool = False) -> None:
    info = {"steps_done": t, "steps_total": total, "wall_s": round(wall_s, 1), "updated": time.time(),
            "pid": os.getpid(), "last_eval": last_eval, "done": done}
    files.atomic_write_json(os.path.join(workdir, "progress.json"), info, indent=None)


def _read_curve(path: str, nbytes: int = -1) -> list[dict]:
    """curve.csv's rows (its first ``nbytes`` bytes: what a checkpoint recorded), numbers typed."""
    if not os.path.isfile(path):
        return []
    with open(path, "rb") as f:
        text = f.read(nbytes).decode()
    return [{k: (float(v) if "." in v or "e" in v or "nan" in v else int(v)) for k, v in row.items()}
            for row in csv.DictReader(text.splitlines())]


def _last_curve_row(path: str) -> dict | None:
    rows = _read_curve(path)
    return rows[-1] if rows else None


def _truncate_curve(path: str, nbytes: int) -> None:
    """Drop curve rows written after the checkpoint (an evaluation whose checkpoint never completed)."""
    if os.path.getsize(path) > nbytes:
        with open(path, "r+b") as f:
            f.truncate(nbytes)


def expert_summary_line(info: dict) -> str:
    bar = info.get("bar")
    verdict = ("" if bar is None else f", bar {bar:g} {'reached' if info['reached_bar'] else 'NOT reached'}")
    return (f"expert {info['env_id']}: eval return {info['eval_return_mean']:.1f} +- {info['eval_return_std']:.1f} "
            f"({info['eval_episodes']} episodes) after {info['steps_done']} steps{verdict}, {info['wall_s']:.0f} s")
