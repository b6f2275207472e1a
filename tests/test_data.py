"""D4RL-layout reader: derivation of next observations, and every bad input."""

import numpy as np
import pytest

from algorithms.base import UserError, episode_ends
from benchmarks.data.dataset import from_arrays, load_d4rl_hdf5
from benchmarks.tasks.registry import get_task


def test_reads_a_valid_file(tiny_d4rl):
    path, arrays = tiny_d4rl()
    ds = load_d4rl_hdf5(path, 45, 24)
    # no next_observations: D4RL's qlearning_dataset drops the 5 timeout rows and the last row (49 is one)
    assert len(ds) == 50 - 5
    assert ds.obs.dtype == np.float32 and ds.next_obs.shape == (45, 45)


def test_next_observations_derived_like_qlearning_dataset():
    # 6 rows, two episodes: rows 0-2 end with a terminal at 2, rows 3-5 end with a timeout at 5.
    obs = np.arange(6, dtype=np.float32).reshape(6, 1)
    raw = {"observations": obs, "actions": np.zeros((6, 1), np.float32), "rewards": np.arange(6, dtype=np.float32),
           "terminals": np.array([0, 0, 1, 0, 0, 0], bool), "timeouts": np.array([0, 0, 0, 0, 1, 0], bool)}
    ds = from_arrays(raw, "mem")
    # kept rows: 0,1,2 (terminal kept), 3 (4 is a timeout: dropped), 5 is the last row: dropped
    np.testing.assert_array_equal(ds.obs[:, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(ds.next_obs[:, 0], [1, 2, 3, 4])  # never across the timeout row
    np.testing.assert_array_equal(ds.done, [0, 0, 1, 0])
    np.testing.assert_array_equal(ds.timeout, [0, 0, 0, 0])
    np.testing.assert_array_equal(ds.episode_ends(), [0, 0, 1, 1])


def test_episode_ends_is_one_rule_for_arrays_and_tensors():
    """The dataset (numpy) and the buffer-wide returns of AWR (torch) cut episodes by the same rule."""
    import torch

    obs = np.array([[0], [1], [2], [9], [4], [5]], np.float32)
    next_obs = np.array([[1], [2], [3], [4], [5], [6]], np.float32)  # row 2 -> 3 breaks: 3 != 9
    done = np.array([1, 0, 0, 0, 0, 0], np.float32)                  # a terminal at row 0
    timeout = np.array([0, 0, 0, 0, 1, 0], bool)                      # a time limit at row 4; row 5 is the last
    want = [1, 0, 1, 0, 1, 1]
    np.testing.assert_array_equal(episode_ends(obs, next_obs, done, timeout), want)
    t = episode_ends(*(torch.as_tensor(x) for x in (obs, next_obs, done, timeout)))
    assert t.dtype == torch.bool and t.tolist() == [bool(w) for w in want]
    assert episode_ends(obs[:0], next_obs[:0], done[:0], timeout[:0]).shape == (0,)


def test_timeout_gap_marks_the_previous_row_as_episode_end():
    obs = np.arange(8, dtype=np.float32).reshape(8, 1)
    tout = np.zeros(8, bool)
    tout[3] = True
    raw = {"observations": obs, "actions": np.zeros((8, 1), np.float32), "rewards": np.ones(8, np.float32),
           "terminals": np.zeros(8, bool), "timeouts": tout}
    ds = from_arrays(raw, "mem")
    np.testing.assert_array_equal(ds.obs[:, 0], [0, 1, 2, 4, 5, 6])
    np.testing.assert_array_equal(ds.timeout, [0, 0, 1, 0, 0, 0])
    # Monte-Carlo returns with gamma 0.5 inside episodes [0,1,2] and [4,5,6]: 1 + .5 + .25 = 1.75, 1.5, 1
    np.testing.assert_allclose(ds.mc_returns(0.5), [1.75, 1.5, 1.0, 1.75, 1.5, 1.0])


@pytest.mark.parametrize("drop,msg", [(("actions",), "missing key.*actions"),
                                      (("rewards", "terminals"), "missing key.*rewards, terminals")])
def test_missing_keys(tiny_d4rl, drop, msg):
    path, _ = tiny_d4rl(drop=drop)
    with pytest.raises(UserError, match=msg):
        load_d4rl_hdf5(path)


def test_mismatched_lengths(tiny_d4rl):
    path, _ = tiny_d4rl(rewards=np.zeros(49, np.float32))
    with pytest.raises(UserError, match="'rewards' has 49 rows but 'observations' has 50"):
        load_d4rl_hdf5(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf(tiny_d4rl, bad):
    obs = np.zeros((50, 45), np.float32)
    obs[7, 3] = bad
    path, _ = tiny_d4rl(observations=obs)
    with pytest.raises(UserError, match=r"'observations' has 1 NaN/inf value\(s\) \(first at row 7\)"):
        load_d4rl_hdf5(path)


def test_size_mismatch_with_the_environment(tiny_d4rl):
    path, _ = tiny_d4rl(obs_dim=44)
    with pytest.raises(UserError, match="observations have size 44 but the environment's is 45"):
        load_d4rl_hdf5(path, 45, 24)
    path, _ = tiny_d4rl(name="a.hdf5", act_dim=2)
    with pytest.raises(UserError, match="actions have size 2 but the environment's is 24"):
        load_d4rl_hdf5(path, 45, 24)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(UserError, match="dataset file not found"):
        load_d4rl_hdf5(str(tmp_path / "nope.hdf5"))
    junk = tmp_path / "junk.hdf5"
    junk.write_text("not hdf5")
    with pytest.raises(UserError, match="cannot read dataset"):
        load_d4rl_hdf5(str(junk))


def test_shipped_pen_demonstrations_are_the_awac_ones():
    task = get_task("pen-binary-human")
    ds = task.load_dataset(45, 24)
    assert len(ds) == 4975
    assert set(np.unique(ds.rew)) == {-1.0, 0.0}
    assert ds.episode_returns().mean() == pytest.approx(-101.08)  # datasets/README.md: -101.1
    assert len(ds.episode_returns()) == 25


def test_door_rewards_are_relabelled_binary_from_the_hinge_angle():
    ds = get_task("door-binary-human").load_dataset(39, 28)
    assert len(ds) == 6704
    expected = np.where(ds.next_obs[:, 28] >= 1.35, 0.0, -1.0)  # the env's goal test (mj_envs door_v0.py)
    np.testing.assert_array_equal(ds.rew, expected)
    assert 0 < (ds.rew == 0).mean() < 0.2


def write_minari(root, episodes=((5, True), (4, False)), obs_dim=3, act_dim=2):
    """A Minari-style HDF5 dataset folder: root/data/main_data.hdf5 with episode_<i> groups."""
    import h5py

    (root / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    with h5py.File(root / "data" / "main_data.hdf5", "w") as f:
        for i, (n, terminated) in enumerate(episodes):
            g = f.create_group(f"episode_{i}")
            g["observations"] = rng.standard_normal((n + 1, obs_dim)).astype(np.float32)
            g["actions"] = rng.uniform(-1, 1, (n, act_dim)).astype(np.float32)
            g["rewards"] = np.arange(n, dtype=np.float32)
            term = np.zeros(n, bool)
            trunc = np.zeros(n, bool)
            (term if terminated else trunc)[-1] = True
            g["terminations"], g["truncations"] = term, trunc
    return root


def test_minari_dataset_on_disk(tmp_path):
    from benchmarks.data.dataset import load_dataset

    ds = load_dataset(str(write_minari(tmp_path / "minari-ds")), 3, 2)
    assert len(ds) == 9
    np.testing.assert_array_equal(ds.done, [0, 0, 0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(ds.timeout, [0, 0, 0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(ds.next_obs[:4], ds.obs[1:5])
    assert list(ds.episode_returns()) == [10.0, 6.0]
    with pytest.raises(UserError, match="actions have size 2 but the environment's is 5"):
        load_dataset(str(tmp_path / "minari-ds"), 3, 5)
    with pytest.raises(UserError, match="Minari dataset file not found"):
        load_dataset(str(tmp_path))


def test_rescale_actions_maps_env_units_to_the_unit_box():
    from benchmarks.data.dataset import rescale_actions

    raw = {"observations": np.zeros((4, 1), np.float32), "next_observations": np.zeros((4, 1), np.float32),
           "rewards": np.zeros(4, np.float32), "terminals": np.zeros(4, bool),
           "actions": np.array([[0, -2], [10, 2], [5, 0], [10 + 5e-5, -2 - 3e-5]], np.float32)}
    ds = rescale_actions(from_arrays(raw, "mem"), np.array([0, -2]), np.array([10, 2]))
    # a_norm = 2 (a - low) / (high - low) - 1; the last row is within 1e-5 of the range (10, 4): clipped
    np.testing.assert_allclose(ds.act, [[-1, -1], [1, 1], [0, 0], [1, -1]], atol=1e-6)
    assert ds.action_scale == {"low": [0.0, -2.0], "high": [10.0, 2.0]}
    raw["actions"][1, 1] = 2.1
    with pytest.raises(UserError, match=r"1 action value\(s\) outside the env's bounds \(first: row 1, dim 1"):
        rescale_actions(from_arrays(raw, "mem"), np.array([0, -2]), np.array([10, 2]))


def test_portable_path(monkeypatch, tmp_path):
    import os

    from benchmarks.data.dataset import PROJECT_ROOT, portable_path

    assert portable_path(os.path.join(PROJECT_ROOT, "benchmarks", "datasets", "x.hdf5")) == "benchmarks/datasets/x.hdf5"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert portable_path(str(tmp_path / ".d4rl" / "datasets" / "a.hdf5")) == "~/.d4rl/datasets/a.hdf5"
    assert portable_path("~/b.hdf5") == "~/b.hdf5"
    assert portable_path(None) is None
