"""Results are never destroyed, bad output paths are one line, a diverging run fails alone, sweeps can be watched."""

import dataclasses
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from test_resume import killed_run

import algorithms
from algorithms.bc import BC
from benchmarks.commands import cli
from benchmarks.run.harness import RunSpec, config_diff, run
from benchmarks.run.results import RunWriter
from benchmarks.sweeps.local import algo_rates, estimate_eta, read_progress, run_sweep, sweep_status, write_sweep_json

TINY = dict(task="pen-binary-human", offline_steps=20, online_steps=20, eval_every=10, eval_every_offline=10,
            eval_episodes=1, log_every=5)
SMALL = {"batch_size": 16, "actor_hidden": [16, 16]}


def bc_spec(seed=0, algo="bc", **kw):
    return RunSpec(algo=algo, seed=seed, overrides=dict(SMALL), **{**TINY, **kw})


def old_dirs(out):
    return sorted(p.name for p in (out / "old").iterdir()) if (out / "old").is_dir() else []


# -- 2. never destroy results ------------------------------------------------------------------------------
def test_a_finished_run_is_skipped_and_force_keeps_the_old_one(tmp_path, capsys):
    out = tmp_path / "out"
    run_dir = run(bc_spec(), str(out), progress=False)
    before = open(os.path.join(run_dir, "evals.csv")).read()
    capsys.readouterr()
    assert run(bc_spec(), str(out), progress=False) == run_dir
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already finished" in err[0] and "--force" in err[0]
    assert open(os.path.join(run_dir, "evals.csv")).read() == before

    run(bc_spec(), str(out), progress=False, force=True)
    err = capsys.readouterr().err
    [old] = old_dirs(out)
    assert old.startswith("bc__pen-binary-human__s0.old-") and "kept aside" in err
    assert (out / "old" / old / "DONE").is_file() and (out / "old" / old / "evals.csv").read_text() == before
    assert os.path.isfile(os.path.join(run_dir, "DONE"))
    assert not (out / "runs" / old).exists()  # outside runs/: tables and reports never mix it in


def test_an_unfinished_run_that_cannot_resume_is_kept_aside(tmp_path, capsys):
    out = tmp_path / "out"
    spec = bc_spec()
    sig, err = killed_run(spec, out, "offline:15")  # checkpoint at 10
    assert sig == signal.SIGKILL, err
    # another evaluation setting changes results: kept aside, started again
    changed = bc_spec(eval_episodes=2)
    run(changed, str(out), progress=False)
    err = capsys.readouterr().err
    assert "cannot be resumed: its config differs (eval_episodes)" in err and "kept aside" in err
    [old] = old_dirs(out)
    assert (out / "old" / old / "ckpt" / "state.pt").is_file()  # the partial run, checkpoint and all
    # without --resume an unfinished run is not continued either, and not deleted
    sig, err = killed_run(spec, tmp_path / "b", "offline:15")
    assert sig == signal.SIGKILL, err
    run(spec, str(tmp_path / "b"), progress=False, resume=False)
    assert "unfinished (--resume continues it): kept aside" in capsys.readouterr().err
    assert len(old_dirs(tmp_path / "b")) == 1


@pytest.mark.parametrize("damage", ["unreadable", "does-not-fit"])
def test_a_damaged_checkpoint_means_start_again_with_the_old_run_kept(tmp_path, capsys, damage):
    out = tmp_path / "out"
    spec = bc_spec()
    sig, err = killed_run(spec, out, "offline:15")
    assert sig == signal.SIGKILL, err
    path = out / "runs" / spec.run_id / "ckpt" / "state.pt"
    if damage == "unreadable":
        path.write_bytes(b"not a checkpoint")
    else:  # reads, but its buffer is not this run's
        state = torch.load(path, weights_only=True)
        state["buffer"]["capacity"] += 1
        torch.save(state, path)
    run(spec, str(out), progress=False)
    err = capsys.readouterr().err
    why = {"unreadable": "its checkpoint cannot be read (UnpicklingError)",
           "does-not-fit": "its checkpoint does not fit (ValueError: checkpointed buffer does not match"}[damage]
    assert f"unfinished but cannot be resumed: {why}" in err and "kept aside" in err
    assert (out / "runs" / spec.run_id / "DONE").is_file() and len(old_dirs(out)) == 1


def test_keys_that_do_not_change_results_do_not_block_a_resume(tmp_path, capsys):
    out = tmp_path / "out"
    spec = bc_spec()
    sig, err = killed_run(spec, out, "offline:15")
    assert sig == signal.SIGKILL, err
    run(bc_spec(checkpoint_every_min=1.0, save_model=True), str(out), progress=False)
    assert "resumed from its checkpoint (offline, 10 of 40 steps)" in capsys.readouterr().err
    assert old_dirs(out) == []
    assert config_diff({"a": 1, "save_model": False}, {"a": 1, "save_model": True}) == []
    assert config_diff({"a": [1, 2]}, {"a": (1, 3)}) == ["a"]


def test_run_writer_never_writes_over_an_existing_directory(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "evals.csv").write_text("precious\n")
    with pytest.raises(FileExistsError):
        RunWriter(str(tmp_path / "r"), {"device": "cpu"})
    assert (tmp_path / "r" / "evals.csv").read_text() == "precious\n"


# -- 3. bad output paths -----------------------------------------------------------------------------------
def one_error_line(capsys) -> str:
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("awac-bench: error: cannot write results to"), lines
    return lines[0]


@pytest.mark.parametrize("cmd", ["run", "sweep"])
def test_an_output_path_below_a_file_is_one_line_and_exit_2(tmp_path, capsys, cmd):
    (tmp_path / "file").write_text("x")
    out = str(tmp_path / "file" / "sub")
    args = (["run", "--algo", "bc", "--task", "pen-binary-human", "--no-progress"] if cmd == "run"
            else ["sweep", "--preset", "smoke", "--algos", "bc", "--workers", "1", "--no-progress"])
    assert cli.main([*args, "--out", out]) == 2
    assert "is not a directory" in one_error_line(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
@pytest.mark.parametrize("cmd", ["run", "sweep"])
def test_a_read_only_output_directory_is_one_line_and_exit_2(tmp_path, capsys, cmd):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    args = (["run", "--algo", "bc", "--task", "pen-binary-human", "--no-progress"] if cmd == "run"
            else ["sweep", "--preset", "smoke", "--algos", "bc", "--workers", "1", "--no-progress"])
    try:
        assert cli.main([*args, "--out", str(ro / "out")]) == 2
        assert "is not writable" in one_error_line(capsys)
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


# -- 4. failure isolation ------------------------------------------------------------------------------------
class DivergingBC(BC):
    """BC whose parameters become NaN after 12 gradient steps (an injected divergence)."""

    name = "bc-nan"

    def update(self, batch):
        metrics = super().update(batch)
        if self.grad_steps >= 12:
            with torch.no_grad():
                next(self.actor.parameters()).fill_(math.nan)
        return metrics


@pytest.fixture
def diverging_algo(monkeypatch):
    algorithms.names()  # load the registry before adding to it
    monkeypatch.setitem(algorithms.REGISTRY, "bc-nan", DivergingBC)


def test_a_diverging_run_fails_alone_and_is_reported(tmp_path, capsys, diverging_algo):
    out = tmp_path / "out"
    specs = [bc_spec(algo="bc-nan"), bc_spec()]
    assert run_sweep(specs, str(out), workers=1, progress=False) == 1
    err = capsys.readouterr().err
    failed = out / "runs" / "bc-nan__pen-binary-human__s0" / "FAILED"
    reason = failed.read_text().strip()
    assert reason == "non-finite bc_loss (nan) at grad step 15"  # the first log step after step 12
    assert (out / "runs" / "bc__pen-binary-human__s0" / "DONE").is_file()
    assert not (failed.parent / "DONE").exists()
    assert f"failed: bc-nan__pen-binary-human__s0: {reason}" in err
    assert "1/2 runs finished" in err

    from analysis.report import make_report

    report = make_report(out).read_text()
    assert "## Failed runs" in report and f"- `bc-nan__pen-binary-human__s0`: {reason}" in report
    assert "1 of the unfinished runs failed" in report

    # a second sweep lists it again without rerunning it; `run` says why it will not start
    mtime = failed.stat().st_mtime_ns
    assert run_sweep(specs, str(out), workers=1, progress=False) == 1
    err = capsys.readouterr().err
    assert "1 already finished, 1 failed earlier" in err and f"failed earlier: {reason}" in err
    assert failed.stat().st_mtime_ns == mtime
    assert cli.main(["run", "--algo", "bc-nan", "--task", "pen-binary-human", "--offline-steps", "20",
                     "--online-steps", "20", "--eval-every", "10", "--eval-every-offline", "10",
                     "--eval-episodes", "1", "--set", "batch_size=16", "--set", "actor_hidden=16,16",
                     "--out", str(out), "--no-progress"]) == 1
    assert "run failed: bc-nan__pen-binary-human__s0: failed earlier: non-finite" in capsys.readouterr().err


def test_cli_run_reports_a_divergence_with_exit_1(tmp_path, capsys, diverging_algo):
    code = cli.main(["run", "--algo", "bc-nan", "--task", "pen-binary-human", "--offline-steps", "20",
                     "--online-steps", "0", "--eval-episodes", "1", "--set", "batch_size=16",
                     "--out", str(tmp_path), "--no-progress"])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("awac-bench")]
    # no log step before the switch (log_every 500): its evaluation finds the parameters first
    assert code == 1 and lines == ["awac-bench: run failed: bc-nan__pen-binary-human__s0: non-finite parameters in "
                                   "actor (sum nan) at grad step 20"], lines


def test_non_finite_parameters_are_caught_without_a_non_finite_loss():
    from benchmarks.run.loop import Diverged, check_finite

    algo = algorithms.make("bc", 3, 2, overrides={"actor_hidden": "4,4"})
    check_finite({"bc_loss": 1.0}, algo)
    with torch.no_grad():
        next(algo.actor.parameters()).view(-1)[0] = math.inf
    with pytest.raises(Diverged, match=r"^non-finite parameters in actor \(sum inf\) at grad step 0$"):
        check_finite({"bc_loss": 1.0}, algo)


# -- 7. a sweep you can watch ----------------------------------------------------------------------------------
def test_eta_uses_each_algorithms_measured_throughput():
    specs = [RunSpec(algo=a, task="t", seed=s, offline_steps=500, online_steps=500) for a in ("fast", "slow")
             for s in (0, 1)]
    ids = [s.run_id for s in specs]
    progress = {ids[0]: {"steps_done": 1000, "wall_s": 10.0},   # fast: 100 steps/s, finished
                ids[1]: {"steps_done": 0, "wall_s": 0.0},
                ids[2]: {"steps_done": 100, "wall_s": 10.0},    # slow: 10 steps/s
                ids[3]: None}
    # fast s1: 1000 / 100 = 10 s; slow s0: 900 / 10 = 90 s; slow s1: 1000 / 10 = 100 s; over 2 workers
    assert estimate_eta(specs, progress, {ids[0]}, workers=2) == pytest.approx(100.0)
    assert estimate_eta(specs, {}, set(), workers=2) is None
    assert estimate_eta(specs, progress, set(ids), workers=2) == 0.0


def test_algorithm_rates_prefer_whole_finished_runs():
    """A running run still in its offline phase (gradient steps, slower here) must not set its algorithm's pace
    once a whole run of that algorithm has finished; without one, progress so far is all there is."""
    specs = [RunSpec(algo=a, task="t", seed=s, offline_steps=500, online_steps=500) for a in ("x", "y")
             for s in (0, 1)]
    ids = [s.run_id for s in specs]
    progress = {ids[0]: {"steps_done": 1000, "wall_s": 10.0},   # x finished: 100 steps/s over a whole run
                ids[1]: {"steps_done": 100, "wall_s": 10.0},    # x running, offline: 10 steps/s
                ids[2]: {"steps_done": 100, "wall_s": 5.0},     # y running: 20 steps/s
                ids[3]: {"steps_done": 300, "wall_s": 5.0}}     # y running: 60 steps/s
    rates = algo_rates(specs, progress, {ids[0]})
    assert rates == {"x": pytest.approx(100.0), "y": pytest.approx(40.0)}
    # x s1: 900 / 100 = 9 s, y s0: 900 / 40 = 22.5 s, y s1: 700 / 40 = 17.5 s; one worker
    assert estimate_eta(specs, progress, {ids[0]}, workers=1) == pytest.approx(49.0)


def test_sweep_bar_counts_every_step_and_status_lists_every_run(tmp_path, capsys, diverging_algo):
    out = tmp_path / "out"
    specs = [bc_spec(), bc_spec(algo="bc-nan")]
    run_sweep(specs, str(out), workers=1)
    err = capsys.readouterr().err
    assert "80/80 steps" in err  # 2 runs x (20 + 20)
    planned = json.loads((out / "sweep.json").read_text())
    assert [r["run_id"] for r in planned["runs"]] == [s.run_id for s in specs]
    assert read_progress(str(out), specs[0].run_id)["steps_done"] == 40

    # the sweep grows by three runs: one never started, one running here, one whose process is gone
    more = [bc_spec(seed=1), bc_spec(seed=2), bc_spec(seed=3)]
    write_sweep_json(str(out), specs + more, 1, "process")
    dead = subprocess.Popen(["true"])
    dead.wait()
    now = time.time()
    for spec, pid in ((more[1], os.getpid()), (more[2], dead.pid)):
        d = out / "runs" / spec.run_id
        d.mkdir(parents=True)
        (d / "progress.json").write_text(json.dumps({"steps_done": 12, "steps_total": 40, "wall_s": 3.0,
                                                     "updated": now, "pid": pid, "host": socket.gethostname(),
                                                     "last_checkpoint": now - 125}))
    lines = sweep_status(str(out), now=now)
    assert lines[0] == f"{out}: 5 runs: 1 finished, 1 running, 1 interrupted, 1 failed, 1 remaining"
    body = "\n".join(lines[1:])
    # 28 steps left at the pace of bc's finished run (its measured wall time, so only the form is fixed)
    assert re.search(r"running     bc__pen-binary-human__s2: 12/40 steps \(about \d+m\d\ds left\), "
                     r"last checkpoint 2m05s ago", body), body
    assert lines[1].startswith("  eta         about ") and "left at 1 worker" in lines[1]
    assert "interrupted bc__pen-binary-human__s3: 12/40 steps" in body
    assert "failed      bc-nan__pen-binary-human__s0: non-finite bc_loss (nan) at grad step 15" in body
    assert "remaining   bc__pen-binary-human__s1" in body
    assert cli.main(["status", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == lines[0]
    assert cli.main(["status", str(tmp_path / "nope")]) == 2


def test_sweep_table_after_a_resume_equals_an_uninterrupted_one(tmp_path):
    """A sweep whose run was killed mid-way and that is run again gives the table of an uninterrupted sweep."""
    specs = [bc_spec(), bc_spec(seed=1)]
    assert run_sweep(specs, str(tmp_path / "ref"), workers=1, progress=False) == 0
    sig, err = killed_run(specs[1], tmp_path / "out", "online:10")
    assert sig == signal.SIGKILL, err
    assert run_sweep(specs, str(tmp_path / "out"), workers=1, progress=False) == 0
    a, b = (pd.read_csv(tmp_path / d / "evals.csv").drop(columns="wall_s") for d in ("ref", "out"))
    pd.testing.assert_frame_equal(a, b)


def test_runs_of_a_pool_whose_worker_died_continue_in_a_new_pool(monkeypatch):
    """A worker that dies breaks its pool; its runs (and the others in flight) go to a new pool and resume
    (not --force again), up to MAX_RETRIES times, then count as failed."""
    import concurrent.futures as cf
    from concurrent.futures.process import BrokenProcessPool

    import benchmarks.sweeps.local as sw

    calls = []

    class Pool:  # runs submissions at once; seed 1 kills "its worker" in the first pool, seed 2 in every pool
        pools = 0

        def __init__(self, max_workers, mp_context):
            Pool.pools += 1
            self.k = Pool.pools

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, d, out, force, **kw):
            calls.append((self.k, d["seed"], force))
            fut = cf.Future()
            if (d["seed"] == 1 and self.k == 1) or d["seed"] == 2:
                fut.set_exception(BrokenProcessPool("A process in the process pool was terminated abruptly"))
            else:
                fut.set_result((RunSpec(**d).run_id, 1.0, None))
            return fut

    monkeypatch.setattr(sw.cf, "ProcessPoolExecutor", Pool)
    results = []
    sw._run_pool([dataclasses.asdict(bc_spec(seed=s)) for s in (0, 1, 2)], "out", 2, True, results.append)
    assert sorted(c for c in calls if c[1] != 2) == [(1, 0, True), (1, 1, True), (2, 1, False)]
    assert [c for c in calls if c[1] == 2] == [(k, 2, k == 1) for k in range(1, sw.MAX_RETRIES + 2)]
    errors = {rid: err for rid, _, err in results}
    assert errors["bc__pen-binary-human__s0"] is None and errors["bc__pen-binary-human__s1"] is None
    assert errors["bc__pen-binary-human__s2"] == "worker process died 3 times (BrokenProcessPool)"


@pytest.mark.parametrize("cmd", ["run", "sweep"])
def test_an_unwritable_output_directory_is_one_line_and_exit_2_even_as_root(tmp_path, capsys, monkeypatch, cmd):
    """The read-only case where permissions cannot be tested (root writes anyway): access() says no."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(ro) else real_access(p, mode))
    args = (["run", "--algo", "bc", "--task", "pen-binary-human", "--no-progress"] if cmd == "run"
            else ["sweep", "--preset", "smoke", "--algos", "bc", "--workers", "1", "--no-progress"])
    assert cli.main([*args, "--out", str(ro / "out")]) == 2
    assert f"'{ro}' is not writable" in one_error_line(capsys)
    assert list(ro.iterdir()) == []


def test_status_into_a_closed_pipe_exits_quietly(tmp_path):
    """`awac-bench status DIR | head`: once the reader has gone, no BrokenPipeError traceback."""
    (tmp_path / "runs" / "bc__pen-binary-human__s0").mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks", "status", str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc.stdout.close()  # the reader leaves before anything is written
    err = proc.stderr.read().decode()
    assert proc.wait() == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
