"""The sweep's Ray backend against real Ray: a local instance (2 CPUs) and a two-node cluster
(``ray.cluster_utils.Cluster``) where a worker process is killed mid-run, Ray retries the task and the run
resumes from the driver's copy of its checkpoint.

Storage without a shared filesystem (benchmarks/sweeps/ray_backend.py): the tasks get their own TMPDIR
(``runtime_env``) and must leave nothing there; the driver's OUT must end up with complete run directories and
the table of an uninterrupted local sweep, row for row."""

import glob
import json
import os
import shutil
import signal
import threading
import time

import pandas as pd
import pytest
import ray
from ray.cluster_utils import Cluster
from test_resume import killed_run

from benchmarks.run.harness import RunSpec
from benchmarks.sweeps.local import run_sweep
from benchmarks.sweeps.ray_backend import SCRATCH_PREFIX

MB = 1024**2
SMALL = {"batch_size": 32, "actor_hidden": [32, 32], "critic_hidden": [32, 32]}
# a few seconds per run on the 2-core machine: time to kill one after its first checkpoint (offline step 50)
BASE = dict(task="pen-binary-human", offline_steps=300, online_steps=300, eval_every=100, eval_every_offline=50,
            eval_episodes=1, log_every=25)


def spec(algo="awac", seed=0) -> RunSpec:
    ov = dict(SMALL) if algo == "awac" else {"batch_size": 32, "actor_hidden": [32, 32]}
    return RunSpec(algo=algo, seed=seed, overrides=ov, **BASE)


SPECS = [spec("awac", 0), spec("awac", 1), spec("bc", 0)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted sweep of SPECS with local processes: its evals table and each run's train.csv."""
    out = tmp_path_factory.mktemp("ref")
    assert run_sweep(SPECS, str(out), workers=1, progress=False) == 0
    return out


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
    """OUT with SPECS[1] killed online (SIGKILL at env step 150, last checkpoint at 100), made before Ray starts
    in this process (killed_run forks it)."""
    out = tmp_path_factory.mktemp("partial")
    sig, err = killed_run(SPECS[1], out, "online:150")
    assert sig == signal.SIGKILL, err
    assert (out / "runs" / SPECS[1].run_id / "ckpt" / "state.pt").is_file()
    return out


@pytest.fixture(scope="module", autouse=True)
def workers_not_niced():
    """Ray starts its workers at niceness 15; here they would wait behind anything else on the machine while the
    test waits for them (the raylet reads this when it starts)."""
    old = os.environ.get("RAY_worker_niceness")
    os.environ["RAY_worker_niceness"] = "0"
    yield
    if old is None:
        del os.environ["RAY_worker_niceness"]
    else:
        os.environ["RAY_worker_niceness"] = old


@pytest.fixture(scope="class")
def local_ray(tmp_path_factory):
    """A local Ray instance with 2 CPUs; returns the workers' TMPDIR (where each task keeps its own copy of its
    run: never the driver's OUT)."""
    scratch = tmp_path_factory.mktemp("worker-tmp")
    ray.init(address="local", num_cpus=2, object_store_memory=80 * MB, include_dashboard=False,
             runtime_env={"env_vars": {"TMPDIR": str(scratch)}})
    yield scratch
    ray.shutdown()


@pytest.fixture(scope="class")
def ray_cluster(tmp_path_factory):
    """Two nodes of one CPU each (ray.cluster_utils.Cluster); returns the workers' TMPDIR."""
    scratch = tmp_path_factory.mktemp("worker-tmp")
    node = {"num_cpus": 1, "object_store_memory": 80 * MB}
    for attempt in (1, 2):  # Ray gives a node 30 s to register: on a busy machine, once more
        cluster = Cluster()
        try:
            cluster.add_node(**node, include_dashboard=False)  # the head
            cluster.add_node(**node)
            break
        except Exception:
            cluster.shutdown()
            if attempt == 2:
                raise
    ray.init(address=cluster.address, runtime_env={"env_vars": {"TMPDIR": str(scratch)}})
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    yield scratch
    ray.shutdown()
    cluster.shutdown()


def assert_same_results(out, ref, specs) -> None:
    """OUT's sweep table (collect_sweep) equals the reference's over the same runs, row for row (every column but
    wall_s), and so does every run's train.csv; every run directory is complete, without checkpoint files."""
    ids = [s.run_id for s in specs]
    a = pd.read_csv(out / "evals.csv").drop(columns="wall_s")
    b = pd.read_csv(ref / "evals.csv").drop(columns="wall_s")
    b = b[b.run_id.isin(ids)].reset_index(drop=True)
    assert sorted(set(a.run_id)) == sorted(ids)
    pd.testing.assert_frame_equal(a, b)
    for rid in ids:
        run_dir = out / "runs" / rid
        assert (run_dir / "DONE").is_file() and not (run_dir / "ckpt").exists()
        assert {p.name for p in run_dir.iterdir()} >= {"config.json", "meta.json", "evals.csv", "train.csv",
                                                       "progress.json"}
        pd.testing.assert_frame_equal(pd.read_csv(run_dir / "train.csv"),
                                      pd.read_csv(ref / "runs" / rid / "train.csv"))


def meta(out, rid) -> dict:
    return json.loads((out / "runs" / rid / "meta.json").read_text())


class TestLocalInstance:
    def test_a_ray_sweep_resumes_a_partial_run_and_gives_the_local_table(self, tmp_path, local_ray, reference,
                                                                        partial, capsys):
        scratch, out = local_ray, tmp_path / "out"
        specs = [SPECS[1], SPECS[2]]
        shutil.copytree(partial, out)  # a partial run in the driver's OUT: the task gets it and resumes it
        assert run_sweep(specs, str(out), workers=1, backend="ray", progress=False) == 0
        assert_same_results(out, reference, specs)
        assert len(meta(out, specs[0].run_id)["resumed"]) == 1 and "resumed" not in meta(out, specs[1].run_id)
        assert json.loads((out / "sweep.json").read_text())["workers"] == 2  # the cluster's CPUs
        assert os.listdir(scratch) == []  # the tasks' own directories are gone: OUT has everything

        # again: finished runs are skipped; --force keeps the old directory aside (on the driver) and reruns
        done = out / "runs" / specs[1].run_id / "DONE"
        mtime = done.stat().st_mtime_ns
        capsys.readouterr()
        assert run_sweep(specs, str(out), backend="ray", progress=False) == 0
        assert "2 already finished" in capsys.readouterr().err and done.stat().st_mtime_ns == mtime
        assert run_sweep(specs[1:], str(out), backend="ray", fresh=True, progress=False) == 0
        assert "finished, --force: kept aside" in capsys.readouterr().err
        [old] = (out / "old").iterdir()
        assert old.name.startswith(f"{specs[1].run_id}.old-") and (old / "DONE").is_file()
        assert done.is_file() and done.stat().st_mtime_ns != mtime
        assert_same_results(out, reference, specs)
        assert os.listdir(scratch) == []


class TestTwoNodeCluster:
    def test_a_killed_worker_is_retried_and_its_run_resumes_from_the_drivers_copy(self, tmp_path, ray_cluster,
                                                                                  reference):
        scratch, out = ray_cluster, tmp_path / "out"
        specs = SPECS[:2]  # one run per node
        victim = specs[0].run_id
        result = {}
        sweep = threading.Thread(target=lambda: result.update(
            code=run_sweep(specs, str(out), backend="ray", progress=False)))
        sweep.start()
        try:
            # the first checkpoint reaches the driver's OUT, sent by the task (which writes elsewhere)
            run_dir = out / "runs" / victim
            deadline = time.monotonic() + 600
            while not ((run_dir / "ckpt" / "state.pt").is_file() and (run_dir / "progress.json").is_file()):
                assert time.monotonic() < deadline and sweep.is_alive(), "no checkpoint reached the driver"
                time.sleep(0.05)
            progress = json.loads((run_dir / "progress.json").read_text())
            pid = progress["pid"]
            assert progress["steps_done"] < progress["steps_total"] and not (run_dir / "DONE").exists()
            # the task's own copy of the run, in its node's TMPDIR
            [own] = glob.glob(str(scratch / f"{SCRATCH_PREFIX}{pid}-*"))
            assert os.path.isfile(os.path.join(own, "runs", victim, "ckpt", "state.pt"))
            assert not own.startswith(str(out))

            os.kill(pid, signal.SIGKILL)  # the worker process dies mid-run ...
            shutil.rmtree(own)  # ... and its disk is lost: only the driver's copy is left
        finally:
            sweep.join(timeout=600)
        assert not sweep.is_alive() and result["code"] == 0

        assert_same_results(out, reference, specs)
        assert len(meta(out, victim)["resumed"]) == 1  # Ray's retry continued from the checkpoint
        assert json.loads((out / "runs" / victim / "progress.json").read_text())["pid"] != pid
        assert "resumed" not in meta(out, specs[1].run_id)
        assert os.listdir(scratch) == []
