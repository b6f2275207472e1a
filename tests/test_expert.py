"""The data-generating experts (benchmarks/generation/expert.py): save/load, resume exactness, refusals."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from algorithms.base import UserError
from benchmarks.common import files
from benchmarks.generation import expert, priordata
from benchmarks.generation.expert import ExpertSpec, load_expert, train_expert


def _spec(**kw) -> ExpertSpec:
    base = dict(env_id="Hopper-v5", steps=900, random_steps=300, seed=0, until=1e9, eval_every=300, eval_episodes=1,
                buffer=2000, checkpoint_every_min=0)
    return ExpertSpec(**{**base, **kw})


def test_train_save_load_and_noisy_demos(tmp_path):
    path = str(tmp_path / "e.pt")
    info = train_expert(_spec(steps=320, eval_every=160), out=path, workdir=str(tmp_path / "w"), progress=False)
    actor, saved = load_expert("Hopper-v5", path)
    assert saved["steps_done"] == 320 and saved["eval_return_mean"] == info["eval_return_mean"]
    assert [r["env_step"] for r in saved["curve"]] == [160, 320]
    assert "--env Hopper-v5 --steps 320" in saved["command"] and saved["wall_s"] > 0
    assert saved["reached_bar"] is False and "plateau" in saved  # until=1e9 is never reached
    with open(tmp_path / "e.json") as f:
        assert json.load(f) == saved  # the summary beside the weights
    assert not os.listdir(tmp_path / "w" / "ckpt")  # a finished training keeps no checkpoint
    obs = np.zeros((1, 11), np.float32)
    rng = np.random.default_rng(0)
    clean = priordata.NoisyExpert(actor, 0.0, rng).act(obs)
    noisy = priordata.NoisyExpert(actor, 0.1, rng).act(obs)
    assert clean.shape == (1, 3) and np.all(np.abs(noisy) <= 1.0)
    assert 0.0 < np.abs(noisy - clean).max() < 0.6
    with torch.no_grad():
        np.testing.assert_allclose(clean, torch.tanh(actor(torch.as_tensor(obs))[0]).numpy(), rtol=1e-6)


def test_an_interrupted_training_resumes_to_the_uninterrupted_result(tmp_path, interrupt_after_checkpoint):
    """Killed after its second checkpoint (step 600 of 900, past the random steps) and rerun: the same curve
    and the same actor, bit for bit, as a training that was never interrupted."""
    a = train_expert(_spec(), out=str(tmp_path / "a.pt"), workdir=str(tmp_path / "a"), progress=False)
    interrupt_after_checkpoint(
        lambda: train_expert(_spec(), out=str(tmp_path / "b.pt"), workdir=str(tmp_path / "b"), progress=False), 2)
    assert not os.path.exists(tmp_path / "b.pt")
    b = train_expert(_spec(), out=str(tmp_path / "b.pt"), workdir=str(tmp_path / "b"), progress=False)
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in a["curve"]]
    assert strip == [{k: v for k, v in r.items() if k != "wall_s"} for r in b["curve"]]
    sa = torch.load(tmp_path / "a.pt", weights_only=True)["actor"]
    sb = torch.load(tmp_path / "b.pt", weights_only=True)["actor"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def _interrupted(interrupt, tmp_path, n: int = 1) -> str:
    """A training directory whose training stopped right after its n-th checkpoint."""
    wd = str(tmp_path / "w")
    interrupt(lambda: train_expert(_spec(), out=str(tmp_path / "e.pt"), workdir=wd, progress=False), n)
    return wd


def test_resume_with_other_settings_is_refused_and_steps_may_grow(tmp_path, interrupt_after_checkpoint):
    wd = _interrupted(interrupt_after_checkpoint, tmp_path)
    before = open(os.path.join(wd, "config.json")).read()
    with pytest.raises(UserError, match="other settings.*random_steps"):
        train_expert(_spec(random_steps=200), out=str(tmp_path / "e.pt"), workdir=wd, progress=False)
    assert open(os.path.join(wd, "config.json")).read() == before  # nothing overwritten
    info = train_expert(_spec(steps=1200), out=str(tmp_path / "e.pt"), workdir=wd, progress=False)
    assert info["steps_done"] == 1200  # a larger budget continues the same training


def test_until_stops_at_the_first_evaluation_at_the_bar(tmp_path):
    info = train_expert(_spec(until=-1e9), out=str(tmp_path / "e.pt"), workdir=str(tmp_path / "w"), progress=False)
    assert info["steps_done"] == 300 and info["reached_bar"] is True and "plateau" not in info


def test_a_second_trainer_of_the_same_directory_is_refused(tmp_path):
    wd = str(tmp_path / "w")
    held = files.FileLock(expert.lock_path(wd))
    try:
        with pytest.raises(UserError, match=rf"being written by another process \(PID {os.getpid()}\)"):
            train_expert(_spec(), out=str(tmp_path / "e.pt"), workdir=wd, progress=False)
    finally:
        held.release()
    assert not os.path.exists(os.path.join(wd, "config.json"))  # refused before touching anything


def test_bad_input_is_one_line(tmp_path):
    with pytest.raises(UserError, match="cannot make environment 'NoSuchEnv-v0'"):
        train_expert(_spec(env_id="NoSuchEnv-v0"), out=str(tmp_path / "e.pt"), workdir=str(tmp_path / "w"))
    with pytest.raises(UserError, match="must exceed"):
        train_expert(_spec(steps=100), out=str(tmp_path / "e.pt"), workdir=str(tmp_path / "w"))
    with pytest.raises(UserError, match="no expert policy"):
        load_expert("Hopper-v5", str(tmp_path / "missing.pt"))
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="cannot be read"):
        load_expert("Hopper-v5", str(bad))


def test_committed_experts_state_their_training():
    """Every committed expert file says how it was made (command, steps) and how good it is, in the file and in
    the JSON beside it."""
    for name in sorted(os.listdir(expert.EXPERT_DIR)):
        if name.endswith(".pt"):
            path = os.path.join(expert.EXPERT_DIR, name)
            info = json.loads(torch.load(path, weights_only=True)["info"])
            assert info["command"].startswith("awac-bench data expert") and info["steps_done"] > 0, name
            assert np.isfinite(info["eval_return_mean"]), name
            with open(os.path.splitext(path)[0] + ".json") as f:
                assert json.load(f) == info, name


def test_resume_across_a_code_change_is_refused_unless_allowed(tmp_path, monkeypatch, interrupt_after_checkpoint):
    wd = _interrupted(interrupt_after_checkpoint, tmp_path)
    other = {"commit": "0" * 40, "code_hash": "f" * 64}
    monkeypatch.setattr(expert, "code_identity", lambda: other)
    with pytest.raises(UserError, match="checkpointed by other code.*--allow-code-change"):
        train_expert(_spec(), out=str(tmp_path / "e.pt"), workdir=wd, progress=False)
    info = train_expert(_spec(), out=str(tmp_path / "e.pt"), workdir=wd, progress=False, allow_code_change=True)
    (change,) = info["code_changes"]
    assert change["at_step"] == 300 and change["to"] == other and info["code"] == other


def test_a_warm_start_continues_another_machines_training_and_says_so(tmp_path, monkeypatch,
                                                                     interrupt_after_checkpoint):
    """The portable state (networks, no buffer) of a training stopped at step 600 starts a new directory at
    step 600 with the old curve, refills its buffer before the next update, and the expert file records it."""
    monkeypatch.setattr(expert, "REFILL_STEPS", 100)
    wd = _interrupted(interrupt_after_checkpoint, tmp_path, 2)
    port = torch.load(os.path.join(wd, "portable.pt"), weights_only=True)
    exported = expert.export_portable(wd, str(tmp_path / "exported.pt"))
    assert port["t"] == exported["t"] == 600 and port["curve"] == exported["curve"]
    assert all(torch.equal(port["algo"]["actor"][k], exported["algo"]["actor"][k]) for k in port["algo"]["actor"])
    grads_before = port["algo"]["_grad_steps"]
    info = train_expert(_spec(), out=str(tmp_path / "b.pt"), workdir=str(tmp_path / "b"), progress=False,
                        warm_start=str(tmp_path / "exported.pt"))
    assert [r["env_step"] for r in info["curve"]] == [300, 600, 900]
    assert info["curve"][:2] == exported["curve"]
    assert info["warm_starts"] == [{"at_step": 600, "file": "exported.pt", "refill_steps": 100}]
    assert info["grad_steps"] == grads_before + 300 - 100  # no update while the new buffer refills
    with pytest.raises(UserError, match="other settings"):
        train_expert(_spec(random_steps=200), out=str(tmp_path / "c.pt"), workdir=str(tmp_path / "c"),
                     warm_start=str(tmp_path / "exported.pt"))


def test_a_warm_start_into_a_directory_with_its_own_training_is_refused(tmp_path, interrupt_after_checkpoint):
    wd = _interrupted(interrupt_after_checkpoint, tmp_path)
    with pytest.raises(UserError, match="already holds a training of its own"):
        train_expert(_spec(), out=str(tmp_path / "e.pt"), workdir=wd, warm_start=os.path.join(wd, "portable.pt"))
