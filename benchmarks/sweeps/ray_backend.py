"""The Ray backend of ``awac-bench sweep``: one Ray task per run, no shared filesystem needed.

Storage model. Only the driver (the process that runs ``awac-bench sweep``) holds results: ``OUT`` is a
directory on the driver's machine, and no worker ever sees its path.

* A run's task works in a temporary directory of its own on the node that runs it (``tempfile``, so
  ``TMPDIR`` chooses the disk) and deletes it when it ends.
* While the run goes, a thread of the task sends every new checkpoint to a *store*: a Ray actor pinned to the
  driver's node (``NodeAffinitySchedulingStrategy``, no CPU of its own) that writes it into
  ``OUT/runs/<run_id>/``: ``ckpt/state.pt`` with its new ``rows-NNNNN.pt`` chunks (chunks are append-only, so
  each is sent once), the CSVs and JSON files as they were at that checkpoint, and ``progress.json`` every few
  seconds for the sweep's bar and ``awac-bench status``. A checkpoint is sent whole or not at all: the files are
  read between two looks at ``state.pt`` that must agree, and the store writes each file atomically, the
  chunks before ``state.pt``.
* The finished run directory (rows, ``meta.json``, ``DONE`` or ``FAILED``, ``final.pt``) comes back to the
  driver as the task's return value; the driver writes it into ``OUT`` and drops the checkpoint files that the
  finished run no longer has, as a local run does.
* A task whose worker process or node dies is retried by Ray (``max_retries``). The new attempt, on whichever
  node, first asks the store for the driver's copy of the run, so it continues from the last checkpoint that
  reached the driver; rows written after it are cut, as in any resume. A run directory that a worker moved
  aside (its config changed, ``OUT/old/``) is sent to the driver's ``OUT/old/`` too.

So the driver's ``OUT`` is always a directory that the process backend could continue (rerunning the sweep with
either backend resumes it), and a worker's disk can be lost at any time. ``--force`` moves old run
directories aside on the driver before any task starts.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time

from algorithms.base import UserError
from benchmarks.common import checkpoint, files
from benchmarks.run.harness import PROGRESS_EVERY_S, SKIPPED, RunLocked, RunSpec, keep_aside, lock_run

SCRATCH_PREFIX = "awac-bench-ray-"  # a task's directory: <TMPDIR>/awac-bench-ray-<pid>-XXXX
POLL_S = 0.25                      # seconds between a task's looks for a new checkpoint
MARKERS = ("DONE", "FAILED")       # sent with the finished directory only: never before its rows
GPUS_ENV = "AWAC_BENCH_RAY_GPUS_PER_RUN"  # GPUs a CUDA run asks Ray for (default 1; 0.25: four runs per GPU)


# -- files <-> snapshots ------------------------------------------------------------------------------------
# A snapshot is {"files": {relpath: bytes}, "listing": [relpath, ...] | None}; relpaths are relative to an OUT
# directory and lie under runs/<run_id>/ or old/<run_id>.old-*/. "listing" names every file the run directory
# has; a receiver drops the files of runs/<run_id>/ that it does not name (None: drop nothing).
def _allowed(rel: str, run_id: str) -> bool:
    parts = rel.split("/")
    if os.path.isabs(rel) or ".." in parts or "" in parts or "\\" in rel:
        return False
    return (parts[0] == "runs" and len(parts) > 2 and parts[1] == run_id) or \
        (parts[0] == "old" and len(parts) > 2 and parts[1].startswith(f"{run_id}.old-"))


def _walk(root: str, run_id: str) -> dict[str, tuple]:
    """{relpath: (inode, size, mtime_ns)} of the files of ``run_id`` under ``root`` (temporary files left out)."""
    found = {}
    tops = [os.path.join("runs", run_id)]
    old = os.path.join(root, "old")
    if os.path.isdir(old):
        tops += [os.path.join("old", n) for n in sorted(os.listdir(old)) if n.startswith(f"{run_id}.old-")]
    for top in tops:
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for n in names:
                if n.endswith(".tmp"):
                    continue
                p = os.path.join(dirpath, n)
                try:
                    st = os.stat(p)
                except FileNotFoundError:
                    continue
                found[os.path.relpath(p, root).replace(os.sep, "/")] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return found


def _stat_key(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def read_run(root: str, run_id: str) -> dict:
    """Every file of ``runs/<run_id>`` under ``root`` as a snapshot (the driver's copy, for a new attempt)."""
    files = {}
    for rel in _walk(root, run_id):
        if rel.startswith("runs/"):
            data = _read(os.path.join(root, rel))
            if data is not None:
                files[rel] = data
    return {"files": files, "listing": None}


def apply_snapshot(root: str, run_id: str, snap: dict) -> None:
    """Write a snapshot into ``root``: row chunks and other files first, then ``state.pt`` (a checkpoint never
    refers to chunks that are not there yet), then ``DONE``/``FAILED``, then drop what ``listing`` leaves out."""
    received = snap["files"]
    bad = [rel for rel in received if not _allowed(rel, run_id)]
    if bad or not all(_allowed(rel, run_id) for rel in snap.get("listing") or []):
        raise ValueError(f"snapshot of {run_id} names files outside its run directory: {bad[:3]}")

    def order(rel: str) -> int:
        name = rel.rsplit("/", 1)[-1]
        return 2 if name in MARKERS else 1 if name == checkpoint.STATE_FILE else 0

    for rel in sorted(received, key=order):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        files.atomic_write_bytes(path, received[rel])  # fsyncs the file and its directory
    if snap.get("listing") is not None:
        keep = set(snap["listing"])
        run_dir = os.path.join(root, "runs", run_id)
        for rel in _walk(root, run_id):
            if rel.startswith("runs/") and rel not in keep:
                os.remove(os.path.join(root, rel))
        for dirpath, _, _ in sorted(os.walk(run_dir), reverse=True):  # e.g. ckpt/ of a finished run
            if dirpath != run_dir and not os.listdir(dirpath):
                os.rmdir(dirpath)


# -- the driver's side --------------------------------------------------------------------------------------
class Store:
    """The driver's copy of every run (a Ray actor on the driver's node): the latest checkpoint a task sent,
    and the copy a new attempt of a task starts from."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def fetch(self, run_id: str) -> dict:
        return read_run(self.out_dir, run_id)

    def put(self, run_id: str, snap: dict) -> None:
        apply_snapshot(self.out_dir, run_id, snap)


def connect() -> tuple[bool, int]:
    """Connect to Ray (``RAY_ADDRESS``, or a new local instance); returns (started here, CPUs in the cluster)."""
    try:
        import ray
    except ImportError:
        raise UserError("backend 'ray' needs Ray: pip install -e '.[ray]'") from None
    address = os.environ.get("RAY_ADDRESS")
    if address and address.startswith("ray://"):
        raise UserError("backend 'ray' writes results on the driver's node: run the sweep on a node of the "
                        "cluster with RAY_ADDRESS=<head>:6379, not through Ray Client (ray://)")
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=address or None)
        except ConnectionError as e:
            raise UserError(f"cannot connect to the Ray cluster at {address} ({e}); a cluster whose `ray start` "
                            "said that token authentication is enabled needs RAY_AUTH_MODE=token and its token "
                            "(~/.ray/auth_token or RAY_AUTH_TOKEN) here too") from None
        started = True
    return started, max(1, int(ray.cluster_resources().get("CPU", 1)))


def run_tasks(dicts: list[dict], out_dir: str, force: bool, record, max_retries: int,
              allow_code_change: bool = False) -> None:
    """One Ray task per run dict; ``record((run_id, seconds, error or None))`` once each run's directory is in
    ``out_dir``. A task whose worker died is retried by Ray up to ``max_retries`` times and resumes.

    The driver holds each run's lock (``harness.run_lock_path`` in ``out_dir``) from before its task is submitted
    until its finished directory is written: the workers write only in directories of their own."""
    out_dir = os.path.abspath(out_dir)
    locks = {}
    for d in list(dicts):
        rid = RunSpec(**d).run_id
        try:
            locks[rid] = lock_run(out_dir, rid)
        except RunLocked as e:
            dicts.remove(d)
            record((rid, 0.0, f"{SKIPPED}{e}"))
    try:
        _run_tasks_locked(dicts, out_dir, force, record, max_retries, allow_code_change, locks)
    finally:
        for lock in locks.values():
            lock.release()


def _run_tasks_locked(dicts: list[dict], out_dir: str, force: bool, record, max_retries: int,
                      allow_code_change: bool, locks: dict) -> None:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if force:  # --force: old directories go aside here, so that every attempt of a task is a plain resume
        for d in dicts:
            rid = RunSpec(**d).run_id
            run_dir = os.path.join(out_dir, "runs", rid)
            if os.path.isdir(run_dir):
                why = "finished" if os.path.isfile(os.path.join(run_dir, "DONE")) else \
                    "failed" if os.path.isfile(os.path.join(run_dir, "FAILED")) else "unfinished"
                dest = keep_aside(run_dir)
                print(f"{rid}: {why}, --force: kept aside in {dest}; starting it again", file=sys.stderr, flush=True)
    here = ray.get_runtime_context().get_node_id()
    store = ray.remote(Store).options(
        num_cpus=0, max_restarts=-1, max_task_retries=-1,  # it keeps nothing in memory: a restart loses nothing
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False)).remote(out_dir)
    task = ray.remote(_task)
    refs = {}
    for d in dicts:
        gpus = float(os.environ.get(GPUS_ENV, "1")) if str(d.get("device", "cpu")).startswith("cuda") else 0
        ref = task.options(num_cpus=int(d.get("threads", 1)), num_gpus=gpus, max_retries=max_retries,
                           retry_exceptions=False).remote(d, store, allow_code_change)
        refs[ref] = RunSpec(**d).run_id
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            rid = refs[ready[0]]
            try:
                rid, secs, err, snap = ray.get(ready[0])
                apply_snapshot(out_dir, rid, snap)
            except Exception as e:  # retries used up (the worker or its node died each time), or a bug
                lines = str(e).strip().splitlines()
                record((rid, 0.0, f"Ray task failed ({type(e).__name__}: {lines[-1] if lines else ''})"))
                continue
            finally:
                locks.pop(rid).release()
            record((rid, secs, err))
    finally:
        ray.kill(store)


# -- the worker's side ----------------------------------------------------------------------------------------
def _clean_stale_scratch() -> None:
    """Remove the directories of earlier tasks on this node whose worker process died (SIGKILL, OOM)."""
    tmp = tempfile.gettempdir()
    for n in os.listdir(tmp):
        if n.startswith(SCRATCH_PREFIX):
            pid = n[len(SCRATCH_PREFIX):].split("-", 1)[0]
            if pid.isdigit() and not files.pid_alive(int(pid)):
                shutil.rmtree(os.path.join(tmp, n), ignore_errors=True)


class _Mirror:
    """A task's thread that sends each new checkpoint (and progress.json now and then) to the driver's store."""

    def __init__(self, root: str, run_id: str, store):
        self.root, self.run_id, self.store = root, run_id, store
        self.state_path = os.path.join(root, "runs", run_id, checkpoint.CKPT_DIR, checkpoint.STATE_FILE)
        self.progress_rel = f"runs/{run_id}/progress.json"
        self.state_rel = f"runs/{run_id}/{checkpoint.CKPT_DIR}/{checkpoint.STATE_FILE}"
        self.sent = _walk(root, run_id)  # what the driver has: the copy this attempt started from
        self.sent_state = _stat_key(self.state_path)
        self.progress_at = 0.0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"mirror-{run_id}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join()

    def snapshot(self, final: bool = False) -> tuple[dict, dict] | None:
        """(snapshot, the files' keys) of what changed since the last one sent, read between two looks at
        state.pt that agree; ``final``: every file but the checkpoint's is sent again, DONE/FAILED with them."""
        for _ in range(20):
            before = _stat_key(self.state_path)
            if before is None and not final:  # the run just ended (its ckpt/ is gone): the final one sends it
                return None
            now = _walk(self.root, self.run_id)
            files = {}
            for rel, key in now.items():
                name = rel.rsplit("/", 1)[-1]
                if name in MARKERS and not final:
                    continue
                if self.sent.get(rel) == key and (f"/{checkpoint.CKPT_DIR}/" in rel or not final):
                    continue
                data = _read(os.path.join(self.root, rel))
                if data is not None:
                    files[rel] = data
            if _stat_key(self.state_path) == before:
                return {"files": files, "listing": sorted(now)}, now
            time.sleep(0.01)  # a checkpoint was being written: look again
        return None

    def _send(self, snap: dict, keys: dict) -> None:
        import ray

        ray.get(self.store.put.remote(self.run_id, snap))
        if snap["listing"] is not None:
            self.sent = {rel: k for rel, k in self.sent.items() if rel in keys}
        self.sent.update({rel: keys[rel] for rel in snap["files"] if rel in keys})

    def _loop(self) -> None:
        while not self.stop_event.wait(POLL_S):
            try:
                state = _stat_key(self.state_path)
                if state is not None and state != self.sent_state:
                    got = self.snapshot()
                    if got is not None:
                        self._send(*got)
                        self.sent_state = got[1].get(self.state_rel)
                        self.progress_at = time.monotonic()
                elif time.monotonic() - self.progress_at >= PROGRESS_EVERY_S:
                    key = _stat_key(os.path.join(self.root, self.progress_rel))
                    if key is not None and self.sent.get(self.progress_rel) != key:
                        data = _read(os.path.join(self.root, self.progress_rel))
                        if data is not None:
                            self._send({"files": {self.progress_rel: data}, "listing": None},
                                       {self.progress_rel: key})
                    self.progress_at = time.monotonic()
            except Exception as e:  # the driver is busy or restarting its store: send everything next time
                print(f"{self.run_id}: could not send a checkpoint to the driver ({type(e).__name__}: {e}); "
                      "trying again", file=sys.stderr, flush=True)
                self.sent, self.sent_state = {}, None


def _task(spec_dict: dict, store, allow_code_change: bool = False) -> tuple[str, float, str | None, dict]:
    """One run in a directory of this node's own, from the driver's copy; returns run_one's result and the
    finished run directory as a snapshot."""
    import ray

    from benchmarks.sweeps.worker import run_one

    run_id = RunSpec(**spec_dict).run_id
    _clean_stale_scratch()
    root = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")
    try:
        apply_snapshot(root, run_id, ray.get(store.fetch.remote(run_id)))  # a partial run resumes from it
        mirror = _Mirror(root, run_id, store)
        mirror.start()
        try:
            result = run_one(spec_dict, root, False, allow_code_change)
        finally:
            mirror.stop()
        got = mirror.snapshot(final=True)
        if got is None:
            raise RuntimeError(f"{run_id}: its checkpoint kept changing after the run ended")
        return (*result, got[0])
    finally:
        shutil.rmtree(root, ignore_errors=True)
