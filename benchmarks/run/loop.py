"""The run loop: offline phase, the switch, online phase, each a method of one object that holds the run's state.

``RunLoop`` owns everything that moves while a run runs: the algorithm, the replay buffer, the training env, the
loop's position (``Position``) and the results writer. Its state is written by ``checkpoint`` and put back by
``restore``; ``run`` goes on from wherever the position says (offline step g, or online env step t), so a resumed
run and an uninterrupted one take the same steps (``tests/test_resume.py``).

Tests that kill a run at a given point pass a ``faults`` object (``Faults``: two no-op hooks the loop calls after
every checkpoint and at every loop step); the loop itself knows no test.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch

from algorithms.base import Rhythm, UserError
from benchmarks.common import checkpoint, files
from benchmarks.common.precision import autocast
from benchmarks.common.provenance import code_identity
from benchmarks.rollouts import Episode, RandomPolicy, collect, evaluate
from benchmarks.run.columns import fill_online, minibatch
from benchmarks.run.results import RunWriter

PROGRESS_EVERY_S = 2.0  # seconds between progress.json updates (read by the sweep's bar and `awac-bench status`)


class RunFailed(Exception):
    """A run stopped for good; its directory's FAILED file holds the reason (the CLI prints it, exit code 1)."""

    def __init__(self, run_id: str, reason: str):
        super().__init__(f"{run_id}: {reason}")
        self.run_id, self.reason = run_id, reason


class Diverged(Exception):
    """A non-finite metric or parameter: the run fails with this reason."""


class RestoreFailed(Exception):
    """A checkpoint that was read but does not fit this run (the caller starts the run again)."""


class Faults:
    """Hooks for fault injection (tests): the loop calls ``after_checkpoint(n)`` after its n-th checkpoint of this
    process and ``at(stage, step)`` after every offline step and online block (before that point's checkpoint)."""

    def after_checkpoint(self, n: int) -> None:
        pass

    def at(self, stage: str, step: int) -> None:
        pass


def online_blocks(rhythm: Rhythm, utd: float) -> tuple[int, int]:
    """(environment steps collected, updates run) per block of the online loop: the algorithm's rhythm
    (collect, update) scaled to ``utd`` times its updates per step, in whole blocks of the rhythm: ``utd = 2``
    runs each block's updates twice, ``utd = 0.1`` collects 10 blocks' steps before one block of updates
    (rhythm (1, 1): 10 steps, then 1 update; AWR's (2048, 1500): 20480 steps, then its 1500 updates)."""
    n_collect, n_update = rhythm
    ratio = Fraction(utd).limit_denominator(1000)
    return n_collect * ratio.denominator, n_update * ratio.numerator


def action_seed(seed: int) -> int:
    """The seed of the training env's action space (``random_steps``' uniform actions): derived from the run's
    seed, so that it draws other numbers than the env's reset, which is seeded with the run's seed itself."""
    return int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])


def _param_sums(algo) -> dict[str, float]:
    sums = {}
    for name, m in algo.modules().items():
        if isinstance(m, torch.nn.Module):
            ps = [p.detach().sum() for p in m.parameters()]
            if ps:
                sums[name] = float(torch.stack(ps).sum())
    return sums


def check_finite(metrics: dict[str, float], algo) -> None:
    """Raise Diverged naming the first non-finite metric or network (a sum over its parameters)."""
    for k, v in metrics.items():
        if not math.isfinite(v):
            raise Diverged(f"non-finite {k} ({v}) at grad step {algo.grad_steps}")
    for name, v in _param_sums(algo).items():
        if not math.isfinite(v):
            raise Diverged(f"non-finite parameters in {name} (sum {v}) at grad step {algo.grad_steps}")


def write_progress(run_dir: str, info: dict) -> None:
    files.atomic_write_json(os.path.join(run_dir, "progress.json"), info, indent=None)


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


@dataclass
class Position:
    """Where the loop is: the phase, offline steps done, the online counters and the episode in progress."""

    stage: str = "offline"
    offline_step: int = 0
    env_step: int = 0
    next_eval: int = 0
    last_eval: int = 0
    episode: Episode | None = None


@dataclass
class _Checkpoints:
    """What the loop knows about its checkpoints: buffer rows saved so far, when, how many, their costs."""

    since: int
    last: float = field(default_factory=time.monotonic)
    written: int = 0
    chunks: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    nbytes: list[int] = field(default_factory=list)
    progress_at: float = 0.0


@dataclass
class Diagnostics:
    """A fixed batch of dataset (s, a) with the mean Monte-Carlo return of its rows (Q-estimate reference)."""

    obs: torch.Tensor
    act: torch.Tensor
    mc_return: float


class RunLoop:
    def __init__(self, spec, task, algo, env, eval_env, buffer, config: dict, run_dir: str, diag: Diagnostics,
                 faults: Faults | None = None):
        self.spec, self.task, self.algo, self.env, self.eval_env, self.buffer = spec, task, algo, env, eval_env, buffer
        self.config, self.run_dir, self.diag = config, run_dir, diag
        self.faults = faults or Faults()
        self.ckpt_dir = os.path.join(run_dir, checkpoint.CKPT_DIR)
        self.pos = Position(next_eval=spec.eval_every)
        self.ck = _Checkpoints(since=buffer.added)
        self.elapsed0 = 0.0
        self.writer: RunWriter | None = None
        self.base = {"run_id": spec.run_id, "algo": config["algo_label"], "task": task.name, "seed": spec.seed}
        self.total = spec.offline_steps + spec.online_steps
        self.every_s = spec.checkpoint_every_min * 60.0 if spec.checkpoint_every_min > 0 else math.inf

    # -- state ----------------------------------------------------------------------------------
    def steps_done(self) -> int:
        p = self.pos
        return p.offline_step if p.stage == "offline" else self.spec.offline_steps + p.env_step

    def restore(self, state: dict, code_changes: list[dict]) -> None:
        """Put algorithm, buffer, training env, RNGs and position back as they were when ``state`` was written."""
        try:
            self._restore(state)
            self.writer = RunWriter(self.run_dir, self.config, resume=state["rows"],
                                    meta_extra={"code_changes": code_changes} if code_changes else None)
        except files.WriteError:
            raise  # a full disk is not a checkpoint that does not fit: the run stays resumable
        except Exception as e:
            raise RestoreFailed(f"its checkpoint does not fit ({type(e).__name__}: {e})") from e
        print(f"{self.spec.run_id}: resumed from its checkpoint ({self.pos.stage}, {self.steps_done()} of "
              f"{self.total} steps)", file=sys.stderr, flush=True)

    def _restore(self, state: dict) -> None:
        algo, buffer = self.algo, self.buffer
        algo.load_state_dict(state["algo"])
        for rows in state["_chunks"]:
            buffer.apply_rows(rows)
        buffer.load_state_dict(state["buffer"])
        algo.on_resume(buffer)
        p = Position(stage=state["stage"], offline_step=int(state["offline_step"]), next_eval=self.spec.eval_every)
        if p.stage == "online":  # an offline checkpoint: the online counters as they start
            checkpoint.set_env_state(self.env, state["env"])
            e = state["episode"]
            p.episode = Episode(checkpoint.decode(e["obs"]), float(e["ret"]), float(e["last_ret"]),
                                int(e.get("steps", 0)), int(e.get("goal_steps", 0)))
            p.env_step, p.next_eval, p.last_eval = (int(state["online"][k]) for k in ("env_step", "next_eval",
                                                                                     "last_eval"))
        self.pos = p
        self.ck.chunks = list(state["chunks"])
        self.ck.since = buffer.added
        self.elapsed0 = float(state["elapsed_s"])
        checkpoint.drop_chunks_after(self.ckpt_dir, max(self.ck.chunks, default=0))
        checkpoint.set_rng_state(state["rng"])  # last: nothing above draws from them

    def checkpoint(self) -> None:
        """Write the run's complete state (algorithm, buffer rows since the last checkpoint, RNGs, position)."""
        t = time.perf_counter()
        ck, p = self.ck, self.pos
        buf_state, rows = self.buffer.state_dict(ck.since)
        nbytes = 0
        if len(rows["pos"]):
            k = max(ck.chunks, default=0) + 1
            nbytes += checkpoint.atomic_save(rows, checkpoint.chunk_path(self.ckpt_dir, k))
            ck.chunks.append(k)
        st = {"format": checkpoint.FORMAT, "run_id": self.spec.run_id, "stage": p.stage,
              "offline_step": p.offline_step if p.stage == "offline" else self.spec.offline_steps,
              "algo": self.algo.state_dict(), "buffer": buf_state, "chunks": list(ck.chunks),
              "rng": checkpoint.rng_state(), "rows": self.writer.rows(), "elapsed_s": time.perf_counter() - self.t0,
              "code": code_identity()}
        if p.stage == "online":
            ep = p.episode
            st["online"] = {"env_step": p.env_step, "next_eval": p.next_eval, "last_eval": p.last_eval}
            st["episode"] = {"obs": checkpoint.encode(np.asarray(ep.obs)), "ret": ep.ret, "last_ret": ep.last_ret,
                             "steps": ep.steps, "goal_steps": ep.goal_steps}
            st["env"] = checkpoint.env_state(self.env)
        nbytes += checkpoint.atomic_save(st, os.path.join(self.ckpt_dir, checkpoint.STATE_FILE))
        ck.since, ck.last = self.buffer.added, time.monotonic()
        ck.written += 1
        ck.seconds.append(time.perf_counter() - t)
        ck.nbytes.append(nbytes)
        self.save_progress(last_ckpt=time.time())
        self.faults.after_checkpoint(ck.written)

    def save_progress(self, last_ckpt: float | None = None, phase: str | None = None) -> None:
        info = {"run_id": self.spec.run_id, "steps_done": self.steps_done() if phase != "done" else self.total,
                "steps_total": self.total, "wall_s": round(time.perf_counter() - self.t0, 3),
                "updated": time.time(), "pid": os.getpid(), "host": socket.gethostname(),
                "phase": phase or self.pos.stage}
        if last_ckpt is not None:
            info["last_checkpoint"] = last_ckpt
        write_progress(self.run_dir, info)
        self.ck.progress_at = time.monotonic()

    def tick(self, evaluated: bool) -> None:
        """After each offline step / online block: checkpoint if due, else progress.json now and then."""
        self.faults.at(self.pos.stage, self.pos.offline_step if self.pos.stage == "offline" else self.pos.env_step)
        now = time.monotonic()
        if (evaluated and self.spec.checkpoint_at_eval) or now - self.ck.last >= self.every_s:
            self.checkpoint()
        elif now - self.ck.progress_at >= PROGRESS_EVERY_S:
            self.save_progress()

    # -- the protocol ---------------------------------------------------------------------------
    def evaluation(self, phase: str, env_step: int) -> dict[str, float]:
        """Evaluation episodes (the same seeds every time: common random numbers, less noise) and diagnostics."""
        spec, algo, d = self.spec, self.algo, self.diag
        check_finite({}, algo)  # no evaluation with a broken policy
        res = evaluate(algo, self.eval_env, self.task, spec.eval_episodes, seed=10_000 * (spec.seed + 1))
        self.writer.eval_row({**self.base, "phase": phase, "grad_step": algo.grad_steps, "env_step": env_step, **res,
                              "wall_s": round(time.perf_counter() - self.t0, 3)})
        with torch.inference_mode():
            ll = algo.log_likelihood(d.obs, d.act)
            q = algo.q_value(d.obs, d.act)
        self.writer.train_rows(spec.run_id, algo.grad_steps, phase, {
            "offline_loglik": float(ll.mean()) if ll is not None else float("nan"),
            "q_estimate": float(q.mean()) if q is not None else float("nan"),
            "mc_return": d.mc_return})
        self.bar.update(0, score=f"{res['normalized_score']:.1f}")
        return res

    def _update(self, batch_size: int, phase: str, step: int | None = None) -> None:
        """One gradient step; a row of its metrics every ``log_every`` steps (offline: the phase's step count,
        online: the algorithm's gradient steps), on ``minibatch``'s batch."""
        batch = minibatch(self.buffer, self.algo, batch_size, phase)
        with autocast(self.buffer.device, self.spec.bf16):
            metrics = self.algo.update(batch)
        if (self.algo.grad_steps if step is None else step) % self.spec.log_every == 0:
            check_finite(metrics, self.algo)
            self.writer.train_rows(self.spec.run_id, self.algo.grad_steps, phase, metrics)

    def offline_phase(self) -> None:
        """Gradient steps on the prior data, evaluating every ``eval_every_offline`` steps and at the switch. An
        algorithm that does not pretrain (``pretrains = False``, RLPD) takes none: only the switch is evaluated."""
        spec, algo, p = self.spec, self.algo, self.pos
        if not algo.pretrains:
            self.bar.update(spec.offline_steps - p.offline_step)
            p.offline_step = spec.offline_steps
        bs = algo.batch_size("offline")
        block = max(1, algo.online_rhythm().updates)
        for g in range(p.offline_step, spec.offline_steps):
            if g % block == 0:
                algo.prepare_updates(self.buffer)
            self._update(bs, "offline", step=g + 1)
            p.offline_step = g + 1
            evaluated = bool(spec.eval_every_offline) and p.offline_step % spec.eval_every_offline == 0 \
                and p.offline_step != spec.offline_steps
            if evaluated:
                self.evaluation("offline", 0)
            self.bar.update(1)
            self.tick(evaluated)
        self.evaluation("offline", 0)  # the switch point

    def switch(self) -> None:
        """The one place where the phase changes: the algorithm's hook, the online episode starts, a checkpoint."""
        self.algo.on_phase_switch(self.buffer)
        self.pos.episode = Episode(self.env.reset(seed=self.spec.seed)[0])
        # random_steps' actions: a stream of their own (the same seed would repeat the reset noise's numbers)
        self.env.action_space.seed(action_seed(self.spec.seed))
        self.pos.stage = "online"
        self.bar.update(0, phase="online")
        self.tick(True)

    def _training_success(self, goal_steps: int) -> float | None:
        """A training episode's success: the task's rule (steps at the goal), or, where the run ends episodes at
        the goal (``Algorithm.ends_at_goal``), reaching it (Cal-QL's ``exploration/goal_achieved_rate``)."""
        if self.task.success_min_steps is None:
            return None
        if self.algo.ends_at_goal:
            return float(goal_steps > 0)
        return float(goal_steps > self.task.success_min_steps)

    def online_phase(self) -> None:
        """Blocks of (collect ``n_collect`` steps with the sampled policy, then ``n_update`` updates), evaluating
        after the block that crosses each ``eval_every``; the budget's last step is always evaluated. The first
        ``Algorithm.random_steps`` steps are collected with uniformly random actions and run no update."""
        spec, algo, p = self.spec, self.algo, self.pos
        bs = algo.batch_size("online")
        n_collect, n_update = online_blocks(algo.online_rhythm(), spec.utd)
        warm = min(algo.random_steps, spec.online_steps)  # RLPD's start_training: random actions, no update
        explore = RandomPolicy(self.env.action_space)  # seeded at the switch, its state in every checkpoint
        ended: list[tuple[float, int, int]] = []
        while p.env_step < spec.online_steps:
            warming = p.env_step < warm
            n = min(warm - p.env_step, n_collect) if warming else min(n_collect, spec.online_steps - p.env_step)
            collect(self.env, explore if warming else algo, self.buffer, p.episode, n, ended)
            p.env_step += n
            fill_online(self.buffer, algo, [length for _, length, _ in ended], p.episode.steps)
            if ended:  # the training episodes that ended in this block (regret: mean failure over them)
                self.writer.episode_rows([{**self.base, "env_step": p.env_step, "return": r, "length": length,
                                           "success": self._training_success(goal)} for r, length, goal in ended])
                ended.clear()
            if algo.learns_online and not warming:
                algo.prepare_updates(self.buffer)
                for _ in range(n_update):
                    self._update(bs, "online")
            self.bar.update(n)
            evaluated = p.env_step >= p.next_eval
            if evaluated:
                self.evaluation("online", p.env_step)
                self.bar.update(0, train_ret=f"{p.episode.last_ret:.0f}")
                p.last_eval = p.env_step
                while p.next_eval <= p.env_step:
                    p.next_eval += spec.eval_every
            self.tick(evaluated)
        if p.env_step != p.last_eval:
            self.evaluation("online", p.env_step)

    # -- the whole run --------------------------------------------------------------------------
    def run(self, progress: bool) -> str:
        """Run (or go on with) the run to its end; returns the run directory."""
        resumed = self.writer is not None
        if not resumed:
            self.writer = RunWriter(self.run_dir, self.config)
        os.makedirs(self.ckpt_dir, exist_ok=True)
        self.t0 = time.perf_counter() - self.elapsed0
        self.bar = _Progress(self.total, f"{self.spec.run_id}", progress)
        self.bar.update(self.steps_done())
        try:
            if self.pos.stage == "offline":
                self.offline_phase()
                self.switch()
            self.online_phase()
        except Diverged as e:
            self.bar.close()
            self.writer.fail(str(e))
            self.save_progress(phase="failed")
            raise RunFailed(self.spec.run_id, str(e)) from None
        except BaseException as e:
            self.writer.close()  # rows written so far stay on disk; no DONE marker
            self.bar.close()
            if isinstance(e, UserError) and not resumed and not self.ck.written:
                shutil.rmtree(self.run_dir, ignore_errors=True)  # bad input found late: nothing of this run is kept
            raise
        self.bar.close()
        self.finish()
        return self.run_dir

    def finish(self) -> None:
        cs, cb = self.ck.seconds, self.ck.nbytes
        self.writer.finish({"wall_s": round(time.perf_counter() - self.t0, 3), "grad_steps": self.algo.grad_steps,
                            "buffer_bytes": self.buffer.nbytes(),
                            "checkpoints": {"count": len(cs),
                                            "seconds_mean": round(float(np.mean(cs)), 4) if cs else None,
                                            "seconds_max": round(max(cs), 4) if cs else None,
                                            "bytes_mean": int(np.mean(cb)) if cb else None,
                                            "bytes_total": int(sum(cb))}})
        self.save_progress(phase="done")
        shutil.rmtree(self.ckpt_dir, ignore_errors=True)  # a finished run needs no checkpoint
        if self.spec.save_model:
            self.algo.save(os.path.join(self.run_dir, "final.pt"))
