"""Results that stay trustworthy across sittings: one writer per run and per sweep folder, one code version per
run, a provenance check over a results folder, and clean failures on a full disk."""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from algorithms.base import UserError
from benchmarks.common import files, provenance
from benchmarks.run import harness
from benchmarks.run.harness import RunLocked, RunSpec, run, run_lock_path
from benchmarks.sweeps.local import run_sweep, sweep_lock_path, sweep_status

BASE = dict(algo="bc", task="pen-binary-human", offline_steps=60, online_steps=0, eval_every_offline=20,
            eval_episodes=1, log_every=10, checkpoint_every_min=0.0)


def spec(**kw) -> RunSpec:
    return RunSpec(**{**BASE, **kw})


def evals(run_dir) -> pd.DataFrame:
    return pd.read_csv(os.path.join(run_dir, "evals.csv")).drop(columns="wall_s")


def train(run_dir) -> pd.DataFrame:
    return pd.read_csv(os.path.join(run_dir, "train.csv"))


def _fork(fn) -> int:
    """Run ``fn`` in a forked child (everything is imported already); returns its PID."""
    pid = os.fork()
    if pid == 0:
        try:
            fn()
        finally:
            os._exit(0)
    return pid


def _wait_for_lock(path: str, child: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = files.lock_holder(path)
        if holder is not None:
            return holder
        done, _ = os.waitpid(child, os.WNOHANG)
        assert done == 0, "the first writer ended before it was seen holding its lock"
        time.sleep(0.01)
    raise AssertionError("the first writer never took its lock")


# -- one writer ----------------------------------------------------------------------------------------------
def test_a_second_writer_of_a_run_is_refused_and_the_first_completes(tmp_path):
    """The issue's scenario: two `run`s of one run into one folder, a moment apart. The second gets one line
    naming the run and the first one's PID before it touches anything; the first finishes with every row."""
    out = str(tmp_path / "out")
    long = spec(offline_steps=3000, eval_every_offline=1000)
    child = _fork(lambda: run(long, out, progress=False))
    holder = _wait_for_lock(run_lock_path(out, long.run_id), child)
    assert holder == child
    with pytest.raises(RunLocked, match=rf"{long.run_id} is being written by another process \(PID {child}\)"):
        run(long, out, progress=False)
    assert not os.path.exists(os.path.join(out, "old"))  # nothing moved aside
    _, status = os.waitpid(child, 0)
    assert status == 0
    run_dir = os.path.join(out, "runs", long.run_id)
    assert os.path.isfile(os.path.join(run_dir, "DONE"))
    assert evals(run_dir)["grad_step"].tolist() == [1000, 2000, 3000]  # the final evaluation is there
    assert files.lock_holder(run_lock_path(out, long.run_id)) is None  # released when the process ended


def test_the_cli_refusal_is_one_line_with_exit_code_2(tmp_path):
    out = tmp_path / "out"
    s = spec()
    lock = files.FileLock(run_lock_path(str(out), s.run_id))
    try:
        res = subprocess.run([sys.executable, "-m", "benchmarks", "run", "--algo", "bc", "--task", "pen-binary-human",
                              "--offline-steps", "60", "--online-steps", "0", "--out", str(out), "--no-progress"],
                             capture_output=True, text=True, timeout=300)
    finally:
        lock.release()
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().count("\n") == 0 and f"PID {os.getpid()}" in res.stderr
    assert not (out / "runs").exists()


def test_a_killed_writer_leaves_no_stale_lock(tmp_path):
    out = str(tmp_path / "out")
    s = spec(offline_steps=100_000, eval_every_offline=0)
    child = _fork(lambda: run(s, out, progress=False))
    _wait_for_lock(run_lock_path(out, s.run_id), child)
    os.kill(child, 9)
    os.waitpid(child, 0)
    assert files.lock_holder(run_lock_path(out, s.run_id)) is None
    lock = files.FileLock(run_lock_path(out, s.run_id))  # free for the next writer at once
    lock.release()


def test_a_second_sweep_on_a_folder_is_refused(tmp_path):
    out = str(tmp_path / "out")
    held = files.FileLock(sweep_lock_path(out))
    try:
        with pytest.raises(UserError, match=rf"another sweep \(PID {os.getpid()}\)"):
            run_sweep([spec()], out, workers=1, progress=False)
    finally:
        held.release()
    assert not os.path.exists(os.path.join(out, "sweep.json")) and not os.path.exists(os.path.join(out, "runs"))


def test_a_sweep_skips_runs_another_process_writes_and_status_shows_them_running(tmp_path, capsys):
    out = str(tmp_path / "out")
    specs = [spec(seed=0), spec(seed=1)]
    held = files.FileLock(run_lock_path(out, specs[1].run_id))
    try:
        assert run_sweep(specs, out, workers=1, progress=False) == 0
        err = capsys.readouterr().err
        assert f"skipped: {specs[1].run_id}: being written by another process (PID {os.getpid()})" in err
        status = "\n".join(sweep_status(out))
        assert f"running     {specs[1].run_id}: " in status and f"(PID {os.getpid()})" in status
    finally:
        held.release()
    assert os.path.isfile(os.path.join(out, "runs", specs[0].run_id, "DONE"))
    assert not os.path.exists(os.path.join(out, "runs", specs[1].run_id))


# -- one code version per run --------------------------------------------------------------------------------
def test_resume_across_a_code_change_is_refused_unless_allowed(tmp_path, monkeypatch, interrupt_after_checkpoint):
    out = str(tmp_path / "out")
    s = spec()
    ref = run(s, str(tmp_path / "ref"), progress=False)
    interrupt_after_checkpoint(lambda: run(s, out, progress=False), 2)
    run_dir = os.path.join(out, "runs", s.run_id)
    state = harness.checkpoint.load(os.path.join(run_dir, "ckpt", "state.pt"))
    assert state["code"] == provenance.code_identity()  # every checkpoint records the code that wrote it
    before = sorted(os.listdir(run_dir)), open(os.path.join(run_dir, "evals.csv")).read()
    other = {"commit": "0" * 40, "code_hash": "f" * 64}
    monkeypatch.setattr(harness, "code_identity", lambda: other)
    with pytest.raises(UserError, match=r"written by other code .*--allow-code-change"):
        run(s, out, progress=False)
    assert (sorted(os.listdir(run_dir)), open(os.path.join(run_dir, "evals.csv")).read()) == before  # untouched
    run(s, out, progress=False, allow_code_change=True)
    meta = json.load(open(os.path.join(run_dir, "meta.json")))
    (change,) = meta["code_changes"]
    assert change["at_step"] == 40 and change["to"] == other and change["from"] == provenance.code_identity()
    pd.testing.assert_frame_equal(evals(run_dir), evals(ref))  # the same code really: the same rows
    summary = provenance.summarize([run_dir])
    assert provenance.has_warning(summary)
    assert any("Resumed across a code change" in line and s.run_id in line
               for line in provenance.provenance_lines(summary))


def test_a_mixed_results_folder_is_a_visible_warning(tmp_path):
    out = str(tmp_path / "out")
    dirs = [run(spec(seed=k), out, progress=False) for k in range(3)]
    clean = provenance.summarize(dirs)
    assert not provenance.has_warning(clean)
    assert provenance.provenance_lines(clean)[0].endswith("(all 3 runs)")
    meta_path = os.path.join(dirs[2], "meta.json")
    meta = json.load(open(meta_path))
    json.dump({**meta, "git_commit": "abcdef0123456789"}, open(meta_path, "w"))
    cfg_path = os.path.join(dirs[1], "config.json")
    json.dump({**json.load(open(cfg_path)), "dataset_sha256": "d" * 64}, open(cfg_path, "w"))
    mixed = provenance.summarize(dirs)
    text = "\n".join(provenance.provenance_lines(mixed))
    assert provenance.has_warning(mixed)
    assert "Warning: 2 different commits" in text and f"abcdef012345: 1 run: `{os.path.basename(dirs[2])}`" in text
    assert "Warning: 2 different datasets of `pen-binary-human`" in text and os.path.basename(dirs[1]) in text
    from analysis.report import make_report

    report = make_report(out).read_text()
    assert "Warning: 2 different commits" in report and os.path.basename(dirs[2]) in report
    assert "(WARNING: mixed)" in "\n".join(sweep_status(out))


# -- a full disk -------------------------------------------------------------------------------------------
def _enospc_at(monkeypatch, suffix: str, nth: int) -> None:
    """os.write fails with ENOSPC on the ``nth`` write into a file whose name ends with ``suffix``."""
    real, count = os.write, {"k": 0}

    def write(fd, data):
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            name = ""
        if name.endswith(suffix):
            count["k"] += 1
            if count["k"] == nth:
                if len(data) > 1:
                    real(fd, bytes(data)[: len(data) // 2])  # half of it reached the disk first
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(files.os, "write", write)


@pytest.mark.parametrize("where", ["checkpoint", "csv row"])
def test_a_full_disk_stops_the_run_cleanly_and_resume_continues(tmp_path, monkeypatch, where):
    s = spec()
    ref = run(s, str(tmp_path / "ref"), progress=False)
    out = str(tmp_path / "out")
    if where == "checkpoint":
        _enospc_at(monkeypatch, "state.pt.tmp", 2)  # the second checkpoint (step 40) does not fit
    else:
        _enospc_at(monkeypatch, "evals.csv", 3)  # the second evaluation row (step 40) does not fit
    with pytest.raises(files.WriteError) as e:
        run(s, out, progress=False)
    monkeypatch.undo()
    msg = str(e.value)
    assert "\n" not in msg and "No space left on device" in msg and "MiB free" in msg
    assert msg.startswith("cannot write ") and (("state.pt" in msg) if where == "checkpoint" else ("evals.csv" in msg))
    run_dir = os.path.join(out, "runs", s.run_id)
    assert not glob.glob(os.path.join(out, "**", "*.tmp"), recursive=True)  # no temporary file left
    state = harness.checkpoint.load(os.path.join(run_dir, "ckpt", "state.pt"))  # the last good one
    assert state["offline_step"] == 20
    rows = open(os.path.join(run_dir, "evals.csv")).read()
    assert rows.endswith("\n") and len(evals(run_dir)) == (2 if where == "checkpoint" else 1)  # whole rows only
    pd.testing.assert_frame_equal(evals(run_dir), evals(ref).iloc[: len(evals(run_dir))])
    assert not os.path.exists(os.path.join(run_dir, "DONE"))
    run(s, out, progress=False)  # resumes from step 20
    pd.testing.assert_frame_equal(evals(run_dir), evals(ref))
    pd.testing.assert_frame_equal(train(run_dir), train(ref))


def _mount_tmpfs(path: str, size: str) -> bool:
    os.makedirs(path, exist_ok=True)
    if shutil.which("mount") is None:
        return False
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], capture_output=True)
    return res.returncode == 0


def test_a_real_full_filesystem_at_the_first_checkpoint(tmp_path):
    """On a 400 KiB tmpfs BC's first checkpoint (about 1 MiB) does not fit: one line and exit code 1 from the
    CLI, no temporary file; after the filesystem grows, the rerun starts the run again and completes it. Needs
    a tmpfs mount (root); the ENOSPC-injection test above covers the same paths everywhere else."""
    mnt = str(tmp_path / "small")
    if not _mount_tmpfs(mnt, "400k"):
        pytest.skip("cannot mount a tmpfs here (not root); ENOSPC is injected in the test above instead")
    try:
        cmd = [sys.executable, "-m", "benchmarks", "run", "--algo", "bc", "--task", "pen-binary-human",
               "--offline-steps", "60", "--online-steps", "0", "--eval-every-offline", "20", "--eval-episodes", "1",
               "--out", mnt, "--no-progress", "--resume"]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert res.returncode == 1, res.stderr
        assert res.stderr.strip().count("\n") == 0 and "No space left on device" in res.stderr, res.stderr
        assert "state.pt" in res.stderr or "rows-" in res.stderr
        assert not glob.glob(os.path.join(mnt, "**", "*.tmp"), recursive=True)
        subprocess.run(["mount", "-o", "remount,size=64m", mnt], check=True)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        run_dir = os.path.join(mnt, "runs", "bc__pen-binary-human__s0")
        assert os.path.isfile(os.path.join(run_dir, "DONE")) and len(evals(run_dir)) == 3
    finally:
        subprocess.run(["umount", mnt], capture_output=True)


def test_runs_of_data_other_than_the_reference_generation_are_named(tmp_path):
    summary = {"datasets": {"pen-binary": {"a" * 64: ["r1"], "b" * 64: ["r2"]}, "door-binary": {"c" * 64: ["r3"]},
                            "custom-x": {"d" * 64: ["r4"]}}}
    manifest = tmp_path / "MANIFEST.json"
    manifest.write_text(json.dumps({"pen-binary": {"sha256": "a" * 64}, "door-binary": {"sha256": "c" * 64}}))
    assert provenance.stale_datasets(summary, str(manifest)) == {"pen-binary": ["b" * 64]}


# -- training episodes (regret) ---------------------------------------------------------------------------------
def test_training_episodes_are_recorded_and_survive_a_resume(tmp_path, interrupt_after_checkpoint):
    """episodes.csv: one row per online training episode (pen: 200 steps each), the same rows after a resume
    from a checkpoint taken in the middle of an episode."""
    s = spec(offline_steps=20, online_steps=450, eval_every=150, eval_every_offline=0, utd=0.1)
    ref = run(s, str(tmp_path / "ref"), progress=False)
    eps = pd.read_csv(os.path.join(ref, "episodes.csv"))
    assert eps["length"].tolist() == [200, 200] and eps["env_step"].tolist() == [200, 400]
    assert set(eps["success"]) <= {0.0, 1.0} and (eps["run_id"] == s.run_id).all()
    out = str(tmp_path / "out")
    # the switch, then 150 and 300 online steps: stopped in the middle of the second episode
    interrupt_after_checkpoint(lambda: run(s, out, progress=False), 3)
    run(s, out, progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(os.path.join(out, "runs", s.run_id, "episodes.csv")), eps)


def test_regret_known_answers():
    from analysis.metrics import regret

    assert regret([1.0, 0.0, 0.0, 1.0]) == 0.5
    assert regret([0.0, 0.0, float("nan")]) == 1.0
    assert regret([1.0]) == 0.0
    assert np.isnan(regret([])) and np.isnan(regret([float("nan")]))


# -- the main grid's labels ----------------------------------------------------------------------------------
def test_an_explicit_preset_is_its_own_algorithm_in_the_results(tmp_path):
    """SACfD with its ``prior`` preset (SACfD-pretrain) is named ``sacfd-prior`` in every row, so that the
    analysis keeps it apart from plain SACfD; a family preset (AWAC's ``hand``) is not appended."""
    from analysis.load import load_results
    from analysis.style import display_name

    out = str(tmp_path / "out")
    small = {"batch_size": 16, "actor_hidden": [16], "critic_hidden": [16], "bc_init_steps": 10}
    run(spec(algo="sacfd", algo_preset="prior", overrides=small, offline_steps=20, online_steps=20,
             eval_every=20, utd=0.5), out, progress=False)
    run(spec(algo="sacfd", overrides=dict(small, bc_init_steps=0), offline_steps=20, online_steps=20,
             eval_every=20, utd=0.5), out, progress=False)
    res = load_results(out)
    assert sorted(res.runs["algo"]) == ["sacfd", "sacfd-prior"] and display_name("sacfd-prior") == "SACfD-pretrain"
    assert set(res.evals["algo"]) == {"sacfd", "sacfd-prior"}
    assert spec(algo="awac").label("hand") == "awac" and spec(algo="awac", algo_preset="hand").label("hand") == "awac"
    assert spec(algo="awac", algo_preset="hand").label("mujoco") == "awac-hand"  # a real variant there


def test_a_task_picks_its_environments_preset_then_its_familys():
    """AWR's per-environment settings (awr_configs.py) on its environments, its shared MuJoCo settings elsewhere;
    ReBRAC's per-task BC coefficients on door and relocate; AWAC's hand variant on every hand task; none for
    SACfD. Naming that preset explicitly is the same algorithm in the results."""
    import algorithms
    from benchmarks.run.harness import check_spec, task_preset
    from benchmarks.tasks.registry import get_task

    def picked(algo, task):
        return task_preset(get_task(task), algorithms.get(algo))

    assert picked("awr", "halfcheetah-awac") == "halfcheetah" and picked("awr", "walker2d-awac") == "walker2d"
    assert picked("awr", "pen-binary") == "hand" and picked("awac", "door-binary") == "hand"
    assert picked("rebrac", "door-binary") == "door" and picked("rebrac", "relocate-binary") == "relocate"
    assert picked("sacfd", "pen-binary") is None
    _, _, preset, cfg = check_spec(spec(algo="awr", task="walker2d-awac"))
    assert (preset, cfg.actor_lr, cfg.action_std) == ("walker2d", 2.5e-5, 0.4)
    _, _, preset, cfg = check_spec(spec(algo="rebrac", task="door-binary"))
    assert (preset, cfg.actor_bc_coef, cfg.critic_bc_coef) == ("door", 0.01, 0.1)
    assert spec(algo="awr", algo_preset="walker2d").label(picked("awr", "walker2d-awac")) == "awr"


def test_the_main_grid():
    from benchmarks.sweeps.presets import grid, split_algo

    g = grid("main")
    assert len(g) == 84 and {s.label() for s in g} == {"awac", "sacfd", "sacfd-prior", "bear", "awr", "bc", "iql"}
    assert all(s.utd == 1 and s.online_steps == 80_000 and s.eval_episodes == 20 for s in g)  # both cuts
    assert all(s.overrides["actor_hidden"] == (256, 256) for s in g if s.algo == "bear")
    assert {(s.task, s.offline_steps) for s in g} == {("pen-binary", 25_000), ("door-binary", 25_000),
                                                      ("halfcheetah-awac", 50_000), ("walker2d-awac", 50_000)}
    with pytest.raises(UserError, match="no preset 'nope'"):
        split_algo("sacfd:nope")


def test_collect_counts_steps_at_the_goal_per_training_episode():
    """Known answer on a stub env: episodes of 3 steps, at the goal on steps 2 and 3 of the second one."""
    from benchmarks.data.buffer import ReplayBuffer
    from benchmarks.rollouts import Episode, collect

    class Stub:
        def __init__(self):
            self.t, self.ep = 0, 0

        def reset(self):
            self.t, self.ep = 0, self.ep + 1
            return np.zeros(2, np.float32), {}

        def step(self, act):
            self.t += 1
            goal = self.ep == 1 and self.t >= 2  # the second episode (ep counts resets after the first)
            return np.full(2, self.t, np.float32), 0.0 if goal else -1.0, False, self.t == 3, {"success": goal}

    class Zero:
        def act(self, obs, deterministic):
            return np.zeros((1, 1), np.float32)

    env, ended = Stub(), []
    ep = Episode(np.zeros(2, np.float32))
    returns = collect(env, Zero(), ReplayBuffer(2, 1, 16), ep, 7, ended)
    assert returns == [-3.0, -1.0] and ended == [(-3.0, 3, 0), (-1.0, 3, 2)]
    assert (ep.steps, ep.goal_steps) == (1, 0)  # the third episode is one step in


def test_a_full_disk_at_the_resume_keeps_the_checkpoint(tmp_path, monkeypatch, interrupt_after_checkpoint):
    """Still full when the user reruns: the resume fails with the same one line and the run stays resumable
    (not moved aside and started again)."""
    s = spec()
    out = str(tmp_path / "out")
    interrupt_after_checkpoint(lambda: run(s, out, progress=False), 2)
    _enospc_at(monkeypatch, "meta.json.tmp", 1)  # the resume's first write
    with pytest.raises(files.WriteError, match="meta.json"):
        run(s, out, progress=False)
    monkeypatch.undo()
    assert not os.path.exists(os.path.join(out, "old"))
    run(s, out, progress=False)
    assert len(evals(os.path.join(out, "runs", s.run_id))) == 3


def test_a_checkpoint_from_before_code_identity_and_episodes_csv(tmp_path, interrupt_after_checkpoint):
    """A checkpoint without code identity or episodes bookkeeping (an older version) is refused like any code
    change; with --allow-code-change it resumes, and the run has no episodes.csv rather than a partial one."""
    s = spec(offline_steps=20, online_steps=450, eval_every=150, eval_every_offline=0, utd=0.1)
    out = str(tmp_path / "out")
    interrupt_after_checkpoint(lambda: run(s, out, progress=False), 3)
    run_dir = os.path.join(out, "runs", s.run_id)
    path = os.path.join(run_dir, "ckpt", "state.pt")
    state = harness.checkpoint.load(path)
    del state["code"], state["rows"]["episodes_bytes"], state["rows"]["episodes_rows"]
    harness.checkpoint.atomic_save(state, path)
    os.remove(os.path.join(run_dir, "episodes.csv"))
    with pytest.raises(UserError, match="no code identity"):
        run(s, out, progress=False)
    run(s, out, progress=False, allow_code_change=True)
    assert os.path.isfile(os.path.join(run_dir, "DONE")) and not os.path.exists(os.path.join(run_dir, "episodes.csv"))
