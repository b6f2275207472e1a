"""D4RL names and Minari ids on local disk, real-minari round trips, export, and env-unit actions."""

import json
import os
import warnings

import gymnasium as gym
import h5py
import numpy as np
import pytest

from algorithms.base import UserError
from benchmarks.commands import cli
from benchmarks.common.scores import family_of
from benchmarks.data.dataset import load_dataset
from benchmarks.tasks import catalog
from benchmarks.tasks.registry import get_task

minari = pytest.importorskip("minari")  # dev extra (pyproject.toml); everything here runs offline

# D4RL names -> the file D4RL saves (basename of the URL in d4rl/infos.py), env, observation size in D4RL
D4RL_CASES = [
    ("hopper-medium-v2", "hopper_medium-v2.hdf5", "Hopper-v5", 11, 3),
    ("halfcheetah-medium-replay-v2", "halfcheetah_medium_replay-v2.hdf5", "HalfCheetah-v5", 17, 6),
    ("walker2d-medium-expert-v2", "walker2d_medium_expert-v2.hdf5", "Walker2d-v5", 17, 6),
    ("ant-medium-v2", "ant_medium-v2.hdf5", "Ant-v4", 111, 8),
    ("walker2d-medium-replay-v0", "walker_mixed.hdf5", "Walker2d-v5", 17, 6),
    ("pen-human-v1", "pen-human-v1.hdf5", "AdroitHandPen-v1", 45, 24),
    ("door-cloned-v1", "door-cloned-v1.hdf5", "AdroitHandDoor-v1", 39, 28),
    ("hammer-expert-v1", "hammer-expert-v1.hdf5", "AdroitHandHammer-v1", 46, 26),
    ("relocate-human-v0", "relocate-v0_demos_clipped.hdf5", "AdroitHandRelocate-v1", 39, 30),
]


def write_d4rl(path, obs_dim, act_dim, n=30):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["observations"] = rng.standard_normal((n, obs_dim)).astype(np.float32)
        f["actions"] = rng.uniform(-1, 1, (n, act_dim)).astype(np.float32)
        f["rewards"] = np.ones(n, np.float32)
        f["terminals"] = np.zeros(n, bool)
        f["timeouts"] = np.arange(n) % 10 == 9


@pytest.mark.parametrize("name,fname,env_id,obs_dim,act_dim", D4RL_CASES)
def test_d4rl_name_finds_the_file_and_a_fitting_env(tmp_path, monkeypatch, name, fname, env_id, obs_dim, act_dim):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    write_d4rl(tmp_path / fname, obs_dim, act_dim)
    task = get_task(name)
    assert (task.name, task.env_id, task.dataset_path) == (name, env_id, str(tmp_path / fname))
    assert task.score_family == name.split("-")[0]
    assert task.family == ("hand" if env_id.startswith("AdroitHand") else "mujoco")
    assert task.max_episode_steps == {"pen": 100, "door": 200, "hammer": 200, "relocate": 200}.get(
        task.score_family, 1000)
    env = task.make_env()
    assert env.observation_space.shape == (obs_dim,) and env.action_space.shape == (act_dim,)
    ds = task.load_dataset(obs_dim, act_dim, env.unwrapped.action_space)
    assert len(ds) == 27 and ds.action_scale is None  # 3 time-limit rows dropped; bounds are +-1: no mapping
    env.close()


def test_d4rl_default_folder_and_missing_file(tmp_path, monkeypatch):
    monkeypatch.delenv("D4RL_DATASET_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert catalog.d4rl_dir() == str(tmp_path / ".d4rl" / "datasets")
    with pytest.raises(UserError) as e:
        get_task("hopper-medium-v2")
    msg = str(e.value)
    assert "\n" not in msg and "hopper_medium-v2.hdf5" in msg and str(tmp_path / ".d4rl" / "datasets") in msg
    assert "D4RL_DATASET_DIR" in msg and "get_dataset()" in msg


@pytest.mark.parametrize("name,msg", [("antmaze-umaze-v2", "dict"), ("hopper-mediumm-v2", "D4RL has no dataset"),
                                      ("hopper-full-replay-v0", "D4RL has no dataset"),
                                      ("foo-medium-v2", "unknown task 'foo-medium-v2'"),
                                      ("mujoco/hopper", "unknown task")])
def test_unsupported_or_unknown_names(name, msg):
    with pytest.raises(UserError, match=msg):
        get_task(name)


def test_family_is_matched_on_whole_words():
    assert family_of("Pendulum-v1") is None and family_of("antmaze-umaze-v2") is None
    assert family_of("AdroitHandPen-v1") == "pen" and family_of("mujoco/hopper/medium-v0") == "hopper"
    assert family_of("halfcheetah_medium_replay-v2.hdf5") == "halfcheetah"


def pendulum_episodes(n_eps=2, steps=25, seed=0, act_fn=None):
    """Random Pendulum-v1 episodes as minari EpisodeBuffers (actions in the env's units, [-2, 2])."""
    from minari.data_collector import EpisodeBuffer

    env = gym.make("Pendulum-v1", max_episode_steps=steps)
    env.action_space.seed(seed)
    out = []
    for ep in range(n_eps):
        o, _ = env.reset(seed=seed + ep)
        obs, acts, rews, terms, truncs = [o], [], [], [], []
        done = False
        while not done:
            a = env.action_space.sample()
            o, r, te, tr, _ = env.step(a)
            obs.append(o)
            acts.append(a if act_fn is None else act_fn(a, len(acts)))
            rews.append(r)
            terms.append(te)
            truncs.append(tr)
            done = te or tr
        out.append(EpisodeBuffer(id=ep, observations=np.array(obs), actions=np.array(acts, np.float32),
                                 rewards=np.array(rews), terminations=np.array(terms), truncations=np.array(truncs)))
    return env, out


def write_pendulum(dataset_id="test/pendulum/random-v0", data_format=None, **kw):
    """A dataset written by the real minari package (default: its default storage, HDF5 in minari 0.5.4)
    under $MINARI_DATASETS_PATH."""
    env, buffers = pendulum_episodes(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # minari's "author_email is None"-style notices
        minari.create_dataset_from_buffers(dataset_id, buffers, env=env, algorithm_name="random",
                                           data_format=data_format)
    return buffers


def test_real_minari_dataset_loads_by_id_and_by_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    buffers = write_pendulum()
    task = get_task("test/pendulum/random-v0")
    folder = tmp_path / "test" / "pendulum" / "random-v0"
    assert (task.env_id, task.max_episode_steps, task.dataset_path) == ("Pendulum-v1", 25, str(folder))
    assert task.score_family is None  # Pendulum has no D4RL reference
    ds = task.load_dataset(3, 1)
    # minari's own reader gives the same transitions
    eps = list(minari.load_dataset("test/pendulum/random-v0").iterate_episodes())
    np.testing.assert_allclose(ds.obs, np.concatenate([e.observations[:-1] for e in eps]), rtol=1e-6)
    np.testing.assert_allclose(ds.next_obs, np.concatenate([e.observations[1:] for e in eps]), rtol=1e-6)
    np.testing.assert_allclose(ds.act, np.concatenate([e.actions for e in eps]), rtol=1e-6)
    np.testing.assert_allclose(ds.rew, np.concatenate([e.rewards for e in eps]), rtol=1e-6)
    assert len(ds) == 50 and ds.timeout.sum() == 2 and ds.done.sum() == 0  # two 25-step time-limited episodes
    np.testing.assert_array_equal(ds.act, np.concatenate([b.actions for b in buffers]))
    by_folder = get_task("custom", str(folder), "Pendulum-v1").load_dataset(3, 1)
    assert by_folder.checksum() == ds.checksum() == load_dataset(str(folder), 3, 1).checksum()


def test_arrow_storage_reads_through_minari(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    write_pendulum("test/pendulum/arrow-v0", data_format="arrow")
    write_pendulum("test/pendulum/hdf5-v0", data_format="hdf5")
    assert not (tmp_path / "test" / "pendulum" / "arrow-v0" / "data" / "main_data.hdf5").exists()
    arrow = get_task("test/pendulum/arrow-v0").load_dataset(3, 1)
    assert len(arrow) == 50 and arrow.checksum() == get_task("test/pendulum/hdf5-v0").load_dataset(3, 1).checksum()


def test_missing_minari_dataset_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with pytest.raises(UserError) as e:
        get_task("mujoco/hopper/medium-v0")
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path) in msg and "minari download mujoco/hopper/medium-v0" in msg


def test_minari_id_without_env_spec_uses_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    data = tmp_path / "mujoco" / "hopper" / "medium-v0" / "data"
    data.mkdir(parents=True)
    (data / "metadata.json").write_text(json.dumps({"dataset_id": "mujoco/hopper/medium-v0"}))
    task = get_task("mujoco/hopper/medium-v0")
    assert (task.env_id, task.score_family, task.family) == ("Hopper-v5", "hopper", "mujoco")


def test_export_is_read_back_by_real_minari(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)
    root = tmp_path / "minari"
    assert cli.main(["data", "export", "--minari", "pen-binary-human", "--out", str(root)]) == 0
    assert "awac-bench/pen-binary-human-v0" in capsys.readouterr().out
    assert "MINARI_DATASETS_PATH" not in os.environ  # restored
    task = get_task("pen-binary-human")
    ds = task.load_dataset(45, 24)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    m = minari.load_dataset("awac-bench/pen-binary-human-v0")
    assert m.spec.env_spec.id == "AdroitHandPen-v1" and m.spec.env_spec.max_episode_steps == 200
    eps = list(m.iterate_episodes())
    assert len(eps) == len(ds.episode_returns()) == 25 and m.total_steps == len(ds)
    np.testing.assert_array_equal(np.concatenate([e.observations[:-1] for e in eps]), ds.obs)
    np.testing.assert_array_equal(np.concatenate([e.observations[1:] for e in eps]), ds.next_obs)
    np.testing.assert_array_equal(np.concatenate([e.actions for e in eps]), ds.act)
    np.testing.assert_array_equal(np.concatenate([e.rewards for e in eps]), ds.rew)
    np.testing.assert_array_equal(np.concatenate([e.terminations for e in eps]), ds.done.astype(bool))
    # and it comes back through the suite's own reader under its id
    back = get_task("awac-bench/pen-binary-human-v0")
    assert back.env_id == "AdroitHandPen-v1"
    assert back.load_dataset(45, 24).checksum() == ds.checksum()
    # a second export does not overwrite: one line, exit code 2
    assert cli.main(["data", "export", "--minari", "pen-binary-human", "--out", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "already exists" in err


def test_list_mentions_both_name_forms(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "hopper-medium-v2" in out and "mujoco/hopper/medium-v0" in out and "D4RL_DATASET_DIR" in out


# ---- item 8: datasets recorded in the env's action units --------------------------------------------------

def test_pendulum_actions_are_mapped_to_the_rescaled_env(tmp_path, monkeypatch):
    from benchmarks.data.buffer import ReplayBuffer
    from benchmarks.run import harness
    from benchmarks.run.harness import RunSpec

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    buffers = write_pendulum()
    folder = str(tmp_path / "test" / "pendulum" / "random-v0")
    raw = np.concatenate([b.actions for b in buffers])
    assert np.abs(raw).max() > 1.5  # really in [-2, 2]
    seen = []
    add_many = ReplayBuffer.add_many

    def spy(self, obs, act, *rest):
        seen.append(np.array(act))
        return add_many(self, obs, act, *rest)

    monkeypatch.setattr(ReplayBuffer, "add_many", spy)
    spec = RunSpec(algo="awac", task="custom", dataset=folder, env="Pendulum-v1", offline_steps=20,
                   online_steps=20, eval_every=10, eval_episodes=1, log_every=10, overrides={"batch_size": 16})
    run_dir = harness.run(spec, str(tmp_path / "out"), progress=False)
    assert os.path.isfile(os.path.join(run_dir, "DONE"))
    buf_act = seen[0]
    assert buf_act.min() >= -1.0 and buf_act.max() <= 1.0
    np.testing.assert_allclose(buf_act, raw / 2.0, rtol=1e-6)  # a_norm = 2 (a + 2) / 4 - 1 = a / 2
    cfg = json.load(open(os.path.join(run_dir, "config.json")))
    assert cfg["action_scale"] == {"low": [-2.0], "high": [2.0]}
    for key in ("dataset", "dataset_path"):
        assert not os.path.isabs(cfg[key]) and os.path.realpath(os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__))), cfg[key])) == os.path.realpath(folder)


def test_registered_task_config_records_a_relative_path_and_no_scale(tmp_path):
    from benchmarks.run.harness import RunSpec, run

    spec = RunSpec(algo="bc", task="pen-binary-human", offline_steps=2, online_steps=0, eval_episodes=1,
                   log_every=1, overrides={"batch_size": 8})
    cfg = json.load(open(os.path.join(run(spec, str(tmp_path), progress=False), "config.json")))
    assert cfg["dataset_path"] == "benchmarks/datasets/pen-binary-human-awac.hdf5" and cfg["dataset"] is None
    assert cfg["action_scale"] is None


@pytest.mark.parametrize("bad,ok", [(2.5, False), (2.0 + 1e-5, True)])
def test_out_of_bound_actions(tmp_path, monkeypatch, capsys, bad, ok):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    write_pendulum(act_fn=lambda a, i: np.array([bad], np.float32) if i == 7 else a)
    from benchmarks.run.harness import RunSpec, prepare

    spec = RunSpec(algo="awac", task="test/pendulum/random-v0")
    if ok:  # within 1e-5 of the range (4): clipped to the bound
        ds = prepare(spec)[-1]
        assert ds.act[7, 0] == 1.0
        return
    with pytest.raises(UserError, match=r"2 action value\(s\) outside the env's bounds \(first: row 7, dim 0: 2.5 "
                                        r"not in \[-2, 2\]\)"):
        prepare(spec)
    code = cli.main(["run", "--algo", "awac", "--task", "custom", "--env", "Pendulum-v1", "--out", str(tmp_path / "o"),
                     "--dataset", str(tmp_path / "test" / "pendulum" / "random-v0"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "outside the env's bounds" in err
    assert not (tmp_path / "o").exists()
