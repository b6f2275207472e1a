"""Checkpoints and resume: a run killed with SIGKILL (offline, right after the switch, online mid-episode) and
resumed gives the same evaluation and train rows and the same final networks as an uninterrupted run."""

import dataclasses
import json
import os
import signal
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.common import checkpoint
from benchmarks.run.harness import RunSpec, run
from benchmarks.run.loop import Faults, action_seed

SMALL = {"batch_size": 32, "actor_hidden": [32, 32], "critic_hidden": [32, 32]}
# online budget past one 200-step pen episode, so a resumed run also crosses an env reset
BASE = dict(task="pen-binary-human", offline_steps=45, online_steps=230, eval_every=100, eval_every_offline=15,
            eval_episodes=1, log_every=5, save_model=True)
ALGOS = {
    "awac": SMALL,
    "sacfd": SMALL,
    # its own rhythm (collect 30, then 4 value + 6 policy steps) and a 100-row online FIFO that wraps online;
    # offline checkpoints at 15 and 30 fall inside a 10-step block
    "awr": {**SMALL, "critic_steps": 4, "actor_steps": 6, "samples_per_iter": 30, "buffer_size": 100},
    # a cosine learning-rate schedule and a value network: state beyond networks and Adam moments
    "iql": {**SMALL, "value_hidden": [32, 32]},
    # a second batch from the demonstration rows, drawn with the buffer's generator after every ordinary batch
    "sac-bc": {**SMALL, "offline_batch_size": 32, "demo_batch_size": 16},
}


class KillAt(Faults):
    """SIGKILL this process at "ckpt:N" (right after its N-th checkpoint), "offline:G" (after offline step G,
    before that step's checkpoint) or "online:E" (after the online block that reaches env step E)."""

    def __init__(self, where: str):
        kind, n = where.split(":")
        self.kind, self.n = kind, int(n)

    def after_checkpoint(self, n: int) -> None:
        if self.kind == "ckpt" and n == self.n:
            os.kill(os.getpid(), signal.SIGKILL)

    def at(self, stage: str, step: int) -> None:
        if self.kind == stage and step >= self.n:
            os.kill(os.getpid(), signal.SIGKILL)


def spec_for(algo: str) -> RunSpec:
    return RunSpec(algo=algo, overrides=dict(ALGOS[algo]), **BASE)


def killed_run(spec: RunSpec, out, kill: str) -> tuple[int | None, str]:
    """Run (or resume) ``spec`` in a child process that SIGKILLs itself at ``kill`` (``KillAt``, passed to the run).

    The child is forked from this interpreter, which has imported everything already: a fresh interpreter
    would spend seconds importing torch for every kill. Returns (the signal that ended it, its stderr)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.dup2(wfd, 2)
            sys.stderr = open(2, "w", closefd=False)  # pytest's capture object would keep it
            run(spec, str(out), progress=False, faults=KillAt(kill))
        finally:
            os._exit(1)
    os.close(wfd)
    with os.fdopen(rfd) as f:
        err = f.read()
    _, status = os.waitpid(pid, 0)
    return (os.WTERMSIG(status) if os.WIFSIGNALED(status) else None), err


def tables(run_dir):
    ev = pd.read_csv(os.path.join(run_dir, "evals.csv"))
    tr = pd.read_csv(os.path.join(run_dir, "train.csv"))
    return ev.drop(columns="wall_s"), tr


def assert_same_state(a: str, b: str) -> None:
    sa, sb = (torch.load(p, weights_only=True) for p in (a, b))

    def walk(x, y, key=""):
        assert type(x) is type(y), key
        if isinstance(x, dict):
            assert x.keys() == y.keys(), key
            for k in x:
                walk(x[k], y[k], f"{key}.{k}")
        elif isinstance(x, torch.Tensor):
            assert torch.equal(x, y), key
        elif isinstance(x, list | tuple):
            assert len(x) == len(y), key
            for i, (u, v) in enumerate(zip(x, y, strict=True)):
                walk(u, v, f"{key}[{i}]")
        else:
            assert x == y, key

    walk(sa, sb)


@pytest.mark.parametrize("algo", list(ALGOS))
def test_sigkill_offline_at_the_switch_and_online_then_resume_gives_identical_rows(tmp_path, algo):
    spec = spec_for(algo)
    ref_dir = run(spec, str(tmp_path / "ref"), progress=False)

    out = tmp_path / "killed"
    run_dir = out / "runs" / spec.run_id
    # 1. offline, at step 37: the checkpoint of step 30 is the last one; rows of steps 35 are written after it
    sig, err = killed_run(spec, out, "offline:37")
    assert sig == signal.SIGKILL, err
    state = checkpoint.load(str(run_dir / "ckpt" / "state.pt"))
    assert (state["stage"], state["offline_step"]) == ("offline", 30)
    assert not (run_dir / "DONE").exists()
    # 2. resumed, killed right after its first checkpoint: the switch
    sig, err = killed_run(spec, out, "ckpt:1")
    assert sig == signal.SIGKILL, err
    assert "resumed from its checkpoint (offline, 30 of 275 steps)" in err
    state = checkpoint.load(str(run_dir / "ckpt" / "state.pt"))
    assert (state["stage"], state["online"]["env_step"]) == ("online", 0)
    # 3. resumed, killed online at env step 130 (mid-episode; the last checkpoint is at 100, or 120 for AWR)
    sig, err = killed_run(spec, out, "online:130")
    assert sig == signal.SIGKILL, err
    state = checkpoint.load(str(run_dir / "ckpt" / "state.pt"))
    assert state["stage"] == "online" and 0 < state["online"]["env_step"] < 130
    assert 0 < state["env"]["layers"][1]["attrs"]["_elapsed_steps"] < 200  # TimeLimit: inside an episode
    # 4. resumed to the end, in this process
    run(spec, str(out), progress=False)
    assert (run_dir / "DONE").is_file() and not (run_dir / "ckpt").exists()

    ev_ref, tr_ref = tables(ref_dir)
    ev, tr = tables(run_dir)
    pd.testing.assert_frame_equal(ev, ev_ref)
    pd.testing.assert_frame_equal(tr, tr_ref)
    assert_same_state(os.path.join(ref_dir, "final.pt"), str(run_dir / "final.pt"))
    meta = json.loads((run_dir / "meta.json").read_text())
    assert len(meta["resumed"]) == 3


def test_random_steps_act_uniformly_from_the_seeded_space_update_nothing_and_resume_identically(tmp_path):
    """RLPD's ``--start_training`` (``random_steps``): the first online steps take the training env's action space's
    samples (seeded with the run's seed at the switch), run no update, and a run killed inside them resumes to the
    rows and networks of an uninterrupted run."""
    from benchmarks.tasks.registry import get_task

    spec = RunSpec(algo="rlpd", task="pen-binary-human", offline_steps=0, online_steps=90, eval_every=30,
                   eval_episodes=1, log_every=5, save_model=True,
                   overrides={"hidden_dims": [16, 16], "num_qs": 4, "utd": 3, "batch_size": 32, "random_steps": 40})
    ref_dir = run(spec, str(tmp_path / "ref"), progress=False)
    ev_ref, tr_ref = tables(ref_dir)
    assert ev_ref["grad_step"].tolist() == [0, 0, 3 * (60 - 40), 3 * (90 - 40)]  # updates start after step 40

    out = tmp_path / "killed"
    run_dir = out / "runs" / spec.run_id
    sig, err = killed_run(spec, out, "online:35")  # inside the random steps; the last checkpoint is at 30
    assert sig == signal.SIGKILL, err
    ckpt = run_dir / "ckpt"
    state = torch.load(ckpt / "state.pt", weights_only=True)
    assert (state["online"]["env_step"], state["algo"]["_grad_steps"]) == (30, 0)
    rows = torch.cat([torch.load(ckpt / f"rows-{k:05d}.pt", weights_only=True)["rows"] for k in state["chunks"]])
    space = get_task("pen-binary-human").make_env().action_space
    space.seed(action_seed(spec.seed))
    expected = torch.as_tensor(np.stack([space.sample() for _ in range(30)]))
    obs_dim, act_dim = 45, 24
    torch.testing.assert_close(rows[:, obs_dim:obs_dim + act_dim], expected, rtol=0, atol=0)

    run(spec, str(out), progress=False)
    ev, tr = tables(run_dir)
    pd.testing.assert_frame_equal(ev, ev_ref)
    pd.testing.assert_frame_equal(tr, tr_ref)
    assert_same_state(os.path.join(ref_dir, "final.pt"), str(run_dir / "final.pt"))


def test_a_budget_inside_the_random_steps_is_warned_about(tmp_path):
    spec = RunSpec(algo="rlpd", task="pen-binary-human", offline_steps=0, online_steps=10, eval_every=10,
                   eval_episodes=1, overrides={"hidden_dims": [16, 16], "num_qs": 2, "batch_size": 32})
    run_dir = run(spec, str(tmp_path), progress=False)
    config = json.loads(open(os.path.join(run_dir, "config.json")).read())
    assert config["algo_config"]["random_steps"] == 5000
    assert any("random_steps" in w for w in config["warnings"])
    assert pd.read_csv(os.path.join(run_dir, "evals.csv"))["grad_step"].tolist() == [0, 0]


def test_checkpoints_load_with_weights_only_and_hold_no_prior_rows(tmp_path):
    spec = dataclasses.replace(spec_for("awr"), online_steps=90, eval_every=30)
    out = tmp_path / "o"
    sig, err = killed_run(spec, out, "online:90")
    assert sig == signal.SIGKILL, err
    ckpt = out / "runs" / spec.run_id / "ckpt"
    state = torch.load(ckpt / "state.pt", weights_only=True)
    chunks = [torch.load(ckpt / f"rows-{k:05d}.pt", weights_only=True) for k in state["chunks"]]
    # online rows only, each chunk the rows since the checkpoint before (the last 30 came after the last one)
    assert [len(c["pos"]) for c in chunks] == [30, 30]
    assert all(int(c["pos"].min()) >= state["buffer"]["protected"] for c in chunks)


def test_checkpoints_also_come_on_the_clock(tmp_path):
    """checkpoint_every_min: with evaluations not checkpointing and a period of ~0 every step checkpoints."""
    spec = dataclasses.replace(spec_for("awac"), offline_steps=10, online_steps=10, checkpoint_at_eval=False,
                               checkpoint_every_min=1e-9)
    sig, err = killed_run(spec, tmp_path, "ckpt:3")
    assert sig == signal.SIGKILL, err
    state = checkpoint.load(str(tmp_path / "runs" / spec.run_id / "ckpt" / "state.pt"))
    assert (state["stage"], state["offline_step"]) == ("offline", 3)


@pytest.mark.parametrize("name", __import__("algorithms").names())
def test_every_algorithm_saves_and_loads_its_state_with_weights_only(tmp_path, name):
    import algorithms
    from benchmarks.data.dataset import Dataset
    from benchmarks.run.columns import minibatch, prior_buffer

    def trained(seed):
        torch.manual_seed(seed)
        algo = algorithms.make(name, 5, 3, overrides={"batch_size": 16})
        g = torch.Generator().manual_seed(seed)
        ds = Dataset(*(t.numpy() for t in (torch.randn(64, 5, generator=g), torch.rand(64, 3, generator=g) * 2 - 1,
                                           torch.randn(64, generator=g), torch.randn(64, 5, generator=g),
                                           torch.zeros(64), torch.arange(64) % 16 == 15)))
        buf = prior_buffer(algo, ds, 64, seed=seed)
        algo.prepare_updates(buf)
        for _ in range(3):
            algo.update(minibatch(buf, algo, 16, "offline"))
        return algo

    a, b = trained(0), trained(1)
    a.save(str(tmp_path / "a.pt"))
    b.load(str(tmp_path / "a.pt"))
    b.save(str(tmp_path / "b.pt"))
    assert_same_state(str(tmp_path / "a.pt"), str(tmp_path / "b.pt"))


class _NotATensor:
    pass


def test_algorithm_load_refuses_pickled_objects(tmp_path):
    import pickle

    import algorithms

    algo = algorithms.make("bc", 5, 3)
    state = algo.state_dict()
    state["_grad_steps"] = _NotATensor()  # any object that is not tensors, numbers, strings or containers
    torch.save(state, tmp_path / "evil.pt")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        algo.load(str(tmp_path / "evil.pt"))
