"""Prior-data quality (benchmarks/commands/quality.py): BC (2), its band, the ladder; the door human-data recipe."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from algorithms.base import UserError
from benchmarks.commands import quality
from benchmarks.generation import generate, priordata
from benchmarks.tasks import registry as tasks
from benchmarks.tasks.registry import TASKS
from benchmarks.tasks.task import DOOR_HINGE_INDEX


def _tiny(name, tmp_path, **kw):
    task = TASKS[name]
    recipe = dataclasses.replace(task.recipe, **{"n_bc_rollouts": 3, "bc_steps": 30, **kw})
    return dataclasses.replace(task, recipe=recipe, dataset_path=str(tmp_path / f"{name}.hdf5"))


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A private manifest, quality directory and generated-data folder; BC (2) shortened to seconds."""
    manifest = tmp_path / "MANIFEST.json"
    manifest.write_text("{}\n")
    monkeypatch.setattr(generate, "MANIFEST", str(manifest))
    monkeypatch.setattr(quality, "QUALITY_ROOT", str(tmp_path / "quality"))
    monkeypatch.setattr(priordata, "GENERATED_DIR", str(tmp_path / "generated"))
    monkeypatch.setattr(quality, "OFFLINE_STEPS", {"hand": 40, "mujoco": 40})
    monkeypatch.setattr(quality, "EPISODES", 2)
    orig = quality.measure
    monkeypatch.setattr(quality, "measure", lambda *a, **k: orig(*a, **{**k, "episodes": 2}))
    return tmp_path, manifest


def test_bands_are_fifteen_points_around_the_papers():
    assert quality.band("pen-binary") == (61.0, 91.0)
    assert quality.band("door-binary") == (0.0, 15.0)
    assert quality.band("relocate-binary") == (0.0, 16.0)
    lo, hi = quality.band("halfcheetah-awac")
    assert hi - lo == 30.0 and abs((lo + hi) / 2 - 100 * 4524 / 9962) < 1e-9
    assert quality.band("hopper-awac") is None


def test_quality_measures_bc2_and_records_it(sandbox, monkeypatch):
    tmp_path, manifest = sandbox
    task = _tiny("door-binary", tmp_path, n_demos=3)
    monkeypatch.setitem(TASKS, "door-binary", task)
    _, info = priordata.generate(task, task.dataset_path, progress=False)
    generate.record_manifest("door-binary", info)
    res = quality.quality("door-binary", progress=False)
    assert res["episodes"] == 2 and res["offline_steps"] == 40 and res["band"] == [0.0, 15.0]
    assert res["value"] == res["success_rate"] and 0.0 <= res["value"] <= 100.0
    assert res["in_band"] == (res["value"] <= 15.0)
    assert res["dataset_sha256"] == info["sha256"]
    rec = json.loads(manifest.read_text())["door-binary"]["bc2"]
    assert rec["success_rate"] == res["success_rate"] and rec["rung"] == {"bc_noise": 0.0}
    # regenerating the same data keeps the measurement; other data drops it
    generate.record_manifest("door-binary", info)
    assert "bc2" in json.loads(manifest.read_text())["door-binary"]
    generate.record_manifest("door-binary", {**info, "sha256": "0" * 64})
    assert "bc2" not in json.loads(manifest.read_text())["door-binary"]
    line = quality.quality_line("door-binary", res)
    assert line.startswith("door-binary: BC (2) success") and "band [0.0, 15.0]" in line


def test_quality_refuses_data_that_fails_its_checksum(sandbox, monkeypatch):
    tmp_path, manifest = sandbox
    task = _tiny("door-binary", tmp_path, n_demos=3)
    monkeypatch.setitem(TASKS, "door-binary", task)
    _, info = priordata.generate(task, task.dataset_path, progress=False)
    generate.record_manifest("door-binary", {**info, "sha256": "f" * 64})
    before = open(task.dataset_path, "rb").read()
    with pytest.raises(UserError, match="fails its recorded checksum"):
        quality.quality("door-binary", progress=False)
    assert open(task.dataset_path, "rb").read() == before  # nothing regenerated or overwritten
    with pytest.raises(UserError, match="unknown or non-generated task 'nope'"):
        quality.quality("nope", progress=False)


def test_ladder_walks_rungs_until_in_band(sandbox, monkeypatch):
    """The rungs are tried in order, each in its own file, and the walk stops at the first in band."""
    tmp_path, manifest = sandbox
    task = _tiny("relocate-binary", tmp_path, n_demos=2, ladder=(0.0, 0.3, 0.5))
    monkeypatch.setitem(TASKS, "relocate-binary", task)
    values = iter([40.0, 10.0, 5.0])  # BC (2) per rung: outside, inside, (never reached)

    def fake_measure(t, path, **kw):
        v = next(values)
        return {"value": v, "band": [0.0, 16.0], "in_band": v <= 16.0, "dataset_sha256": "x", "path": path,
                "noise": t.recipe.demo_noise}

    monkeypatch.setattr(quality, "measure", fake_measure)
    res = quality.quality("relocate-binary", ladder=True, progress=False)
    assert [r["demo_noise"] for r in res["walk"]] == [0.0, 0.3] and res["chosen"] == 0.3
    assert [r["noise"] for r in res["walk"]] == [0.0, 0.3]  # each rung's data made with its own noise
    assert len({r["path"] for r in res["walk"]}) == 2 and all(task.dataset_path != r["path"] for r in res["walk"])
    assert json.loads(manifest.read_text())["relocate-binary"]["ladder"]["chosen"] == 0.3
    assert "chosen demo_noise = 0.3" in quality.quality_line("relocate-binary", res)


def test_door_binary_is_built_from_the_human_demonstrations(tmp_path):
    """door-binary's demonstrations are the 25 DAPG human ones (first 22 loaded), relabelled with the env's
    threshold; door-binary-expert keeps the expert recipe."""
    task = _tiny("door-binary", tmp_path)
    assert task.recipe.demos == "human:door-human-dapg.hdf5" and TASKS["door-binary-expert"].recipe.demos.startswith(
        "dapg:")
    ds, info = priordata.generate(task, task.dataset_path, progress=False)
    human = tasks.get_task("door-binary-human").load_dataset(39, 28)
    n_demo = info["demo_rows"]
    src = priordata.read_source(task.dataset_path)
    assert (src == 0).sum() == n_demo == int(np.flatnonzero(human.episode_ends())[21]) + 1
    np.testing.assert_array_equal(ds.obs[:n_demo], human.obs[:n_demo])
    np.testing.assert_array_equal(ds.act[:n_demo], human.act[:n_demo])
    np.testing.assert_array_equal(ds.rew[:n_demo] == 0.0, ds.next_obs[:n_demo, DOOR_HINGE_INDEX] >= 1.35)
    assert info["demo_source"] == "door-human-dapg.hdf5" and info["bc_episodes"] == 2


def test_dapg_sampled_demonstrations_use_the_policys_own_gaussian():
    pol = priordata.DapgPolicy(f"{priordata.DAPG_DIR}/dapg-relocate-v0.npz", np.random.default_rng(0))
    obs = np.linspace(-0.5, 0.5, 39)[None]
    mean = pol.act(obs, deterministic=True)
    draws = np.stack([pol.act(obs, deterministic=False)[0] for _ in range(4000)])
    std = np.exp(pol.p["log_std"])
    inside = np.abs(mean[0]) < 0.5  # dimensions where clipping at +-1 barely matters
    np.testing.assert_allclose(draws.mean(0)[inside], mean[0][inside], atol=0.05)
    np.testing.assert_allclose(draws.std(0)[inside & (std < 0.2)], std[inside & (std < 0.2)], rtol=0.1)


def test_data_info_refuses_a_dataset_that_fails_its_recorded_checksum(sandbox, monkeypatch, capsys):
    from benchmarks.commands import cli

    tmp_path, manifest = sandbox
    task = _tiny("door-binary", tmp_path, n_demos=3)
    monkeypatch.setitem(TASKS, "door-binary", task)
    _, info = priordata.generate(task, task.dataset_path, progress=False)
    generate.record_manifest("door-binary", info)
    assert cli.main(["data", "info", "door-binary"]) == 0
    assert "matches the recorded checksum" in capsys.readouterr().out
    generate.record_manifest("door-binary", {**info, "sha256": "e" * 64})
    assert cli.main(["data", "info", "door-binary"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "fails its recorded checksum" in err and "awac-bench data generate" in err
