"""The embedded dataset generator: same seed -> same checksum; the output reads back as a valid dataset."""

import json

import numpy as np

from benchmarks.data.dataset import load_d4rl_hdf5
from benchmarks.generation.generate import generate_sac_replay, manifest_entry
from benchmarks.tasks.registry import get_task


def test_generation_is_deterministic_and_readable(tmp_path):
    a, info_a = generate_sac_replay("halfcheetah-sac-replay", str(tmp_path / "a.hdf5"), steps=260,
                                    random_steps=200, seed=3, progress=False)
    b, info_b = generate_sac_replay("halfcheetah-sac-replay", str(tmp_path / "b.hdf5"), steps=260,
                                    random_steps=200, seed=3, progress=False)
    assert info_a["sha256"] == info_b["sha256"]
    ds = load_d4rl_hdf5(str(tmp_path / "a.hdf5"), 17, 6)
    assert len(ds) == 260 and ds.checksum() == info_a["sha256"]
    assert ds.timeout[-1] and not ds.done.any()  # HalfCheetah never terminates; the budget's end is a cut
    np.testing.assert_array_equal(ds.next_obs[:-1], ds.obs[1:])  # one continuous episode (< 1000 steps)
    c, info_c = generate_sac_replay("halfcheetah-sac-replay", str(tmp_path / "c.hdf5"), steps=260,
                                    random_steps=200, seed=4, progress=False)
    assert info_c["sha256"] != info_a["sha256"]


def test_shipped_generated_dataset_matches_its_manifest():
    entry = manifest_entry("halfcheetah-sac-replay")
    assert entry is not None and entry["rows"] == 30_000
    ds = get_task("halfcheetah-sac-replay").load_dataset(17, 6)
    assert ds.checksum() == entry["sha256"]
    assert json.loads(json.dumps(entry))["command"].startswith("awac-bench data generate")


def test_generation_beside_a_manifest_entry_without_checksum(tmp_path, monkeypatch, capsys):
    """A ladder walk writes its MANIFEST entry before the task's data exists (no sha256 yet): generating the data
    then must not fail on the missing reference (it raised KeyError: 'sha256')."""
    from benchmarks.generation import prepare

    task = get_task("hopper-check", dataset=str(tmp_path / "x.hdf5"))
    monkeypatch.setattr(prepare.priordata, "generate", lambda t, path, progress=True: (path, {"sha256": "ab" * 32}))
    for ref in ({"ladder": {"chosen": 0.1}}, {"sha256": "cd" * 32}):
        monkeypatch.setattr(prepare.generate, "manifest_entry", lambda name, ref=ref: ref)
        assert prepare.ensure_generated(task, progress=False) == task.dataset_path
    assert capsys.readouterr().err.count("differs from the manifest") == 1
