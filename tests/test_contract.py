"""One contract, run over every registered algorithm (d3rlpy-style): update, act, save/load, config."""

import math

import numpy as np
import pytest
import torch

import algorithms
from algorithms.base import UserError
from benchmarks.data.dataset import Dataset
from benchmarks.run.columns import minibatch, prior_buffer

OBS, ACT = 7, 3


def filled_buffer(algo, n=600, seed=0):
    rng = np.random.default_rng(seed)
    done = np.zeros(n, np.float32)
    done[np.arange(49, n, 50)] = 1.0
    f32 = np.float32
    ds = Dataset(rng.standard_normal((n, OBS)).astype(f32), rng.uniform(-1, 1, (n, ACT)).astype(f32),
                 rng.standard_normal(n).astype(f32), rng.standard_normal((n, OBS)).astype(f32), done, np.zeros(n, bool),
                 demo=np.arange(n) < 100)  # the first two episodes are demonstrations (SAC+BC's batch)
    return prior_buffer(algo, ds, n, seed=seed)  # with the columns the algorithm declares, as the harness fills them


def params(algo):
    return {f"{k}.{n}": p.detach().clone() for k, m in algo.modules().items() if isinstance(m, torch.nn.Module)
            for n, p in m.named_parameters()}


@pytest.fixture(params=algorithms.names())
def algo(request):
    torch.manual_seed(0)
    return algorithms.make(request.param, OBS, ACT)


def test_registry_has_every_algorithm_of_the_suite():
    assert {"awac", "sacfd", "bear", "awr", "bc", "iql"} <= set(algorithms.names())


def test_update_returns_finite_floats_and_changes_parameters(algo):
    buf = filled_buffer(algo)
    before = params(algo)
    for _ in range(3):
        algo.prepare_updates(buf)
        metrics = algo.update(minibatch(buf, algo, min(algo.batch_size("offline"), 256), "offline"))
        assert metrics, "update must report at least one metric"
        for k, v in metrics.items():
            assert isinstance(v, float) and math.isfinite(v), (k, v)
    after = params(algo)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "no parameter changed after three updates"
    assert algo.grad_steps == 3


@pytest.mark.parametrize("deterministic", [True, False])
def test_actions_have_the_right_shape_and_bounds(algo, deterministic):
    obs = np.random.default_rng(1).standard_normal((5, OBS)).astype(np.float32) * 10
    a = algo.act(obs, deterministic=deterministic)
    assert isinstance(a, np.ndarray) and a.shape == (5, ACT)
    assert np.all(a >= -1.0) and np.all(a <= 1.0) and np.isfinite(a).all()


def test_save_load_gives_identical_actions(algo, tmp_path):
    buf = filled_buffer(algo)
    for _ in range(2):
        algo.prepare_updates(buf)
        algo.update(minibatch(buf, algo, 64, "offline"))
    path = tmp_path / "state.pt"
    algo.save(str(path))
    torch.manual_seed(123)
    other = algorithms.make(algo.name, OBS, ACT)
    other.load(str(path))
    obs = np.random.default_rng(2).standard_normal((4, OBS)).astype(np.float32)
    for det in (True, False):
        torch.manual_seed(7)
        a1 = algo.act(obs, deterministic=det)
        torch.manual_seed(7)
        a2 = other.act(obs, deterministic=det)
        np.testing.assert_array_equal(a1, a2)
    assert other.grad_steps == algo.grad_steps
    # the optimizer state came along too: one more identical update gives identical parameters
    torch.manual_seed(9)
    b = minibatch(buf, algo, 64, "offline")
    demo = None if b.demo is None else type(b)(*(t.clone() for t in b.demo[:5]))
    b = type(b)(*(t.clone() for t in b[:5]), {k: v.clone() for k, v in b.extras.items()}, demo)
    torch.manual_seed(9)
    algo.prepare_updates(buf)
    algo.update(b)
    torch.manual_seed(9)
    other.prepare_updates(buf)
    other.update(b)
    p1, p2 = params(algo), params(other)
    assert all(torch.equal(p1[k], p2[k]) for k in p1)


def test_discount_is_declared(algo):
    assert isinstance(algo.discount, float) and 0.0 < algo.discount <= 1.0


def test_unknown_config_key_is_an_error(algo):
    with pytest.raises(UserError, match="no_such_key"):
        algorithms.resolve_config(algo.name, overrides={"no_such_key": 1})


def test_every_preset_resolves(algo):
    for preset in type(algo).presets:
        algorithms.resolve_config(algo.name, preset)
    with pytest.raises(UserError, match="unknown preset"):
        algorithms.resolve_config(algo.name, "no-such-preset")


def test_config_values_are_coerced_from_strings():
    cfg = algorithms.resolve_config("awac", overrides={"beta": "0.5", "batch_size": "256",
                                                       "actor_hidden": "64,64", "adv_clip": "none"})
    assert cfg.beta == 0.5 and cfg.batch_size == 256 and cfg.actor_hidden == (64, 64) and cfg.adv_clip is None
    cfg = algorithms.resolve_config("awac", overrides={"actor_hidden": "(32, 16)", "v_from_mean": "true",
                                                       "adv_clip": "0.5", "beta": 2})
    assert cfg.actor_hidden == (32, 16) and cfg.v_from_mean is True and cfg.adv_clip == 0.5
    assert isinstance(cfg.beta, float)  # an int for a float field is stored as the float it means
    for bad in ({"batch_size": "lots"}, {"batch_size": 3.5}, {"actor_hidden": "64,x"}, {"v_from_mean": "maybe"}):
        with pytest.raises(UserError, match=f"config key '{next(iter(bad))}'"):
            algorithms.resolve_config("awac", overrides=bad)


def test_unknown_algorithm_is_a_user_error():
    with pytest.raises(UserError, match="unknown algorithm 'nope'"):
        algorithms.get("nope")
