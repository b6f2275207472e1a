"""The speed machinery: flat parameter buffers, bf16 autocast, and ``awac-bench speed``
(algorithm-agnostic: FLOPs from FlopCounterMode, any registered algorithm). No timing is asserted."""

from __future__ import annotations

import copy
import math

import torch

import algorithms
from algorithms.base import Batch
from benchmarks.commands import speed

OBS, ACT = 5, 3


def batch(seed=0, n=32):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, OBS, generator=g), torch.rand(n, ACT, generator=g) * 1.8 - 0.9,
                 torch.randn(n, generator=g), torch.randn(n, OBS, generator=g),
                 (torch.rand(n, generator=g) < 0.2).float())


def params(*mods):
    return [p.detach().clone() for m in mods for p in m.parameters()]


def close(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def test_flat_buffers_survive_updates_and_state_loading():
    torch.manual_seed(0)
    sizes = {"actor_hidden": (16,), "critic_hidden": (16,)}
    algo = algorithms.make("awac", OBS, ACT, overrides=sizes)

    def inside(module):
        flat = module.__dict__["_flat_parameters"]
        lo, hi = flat.data_ptr(), flat.data_ptr() + flat.numel() * flat.element_size()
        return all(lo <= p.data_ptr() < hi for p in module.parameters())

    for _ in range(2):
        algo.update(batch())
    other = algorithms.make("awac", OBS, ACT, overrides=sizes)
    other.load_state_dict(copy.deepcopy(algo.state_dict()))  # (torch.optim state_dicts hold references)
    for a in (algo, other):
        assert inside(a.actor) and inside(a.critic) and inside(a.critic_target)
    close(params(other.critic, other.critic_target, other.actor), params(algo.critic, algo.critic_target, algo.actor))
    # the loaded optimizer state (flat moments) is used by the next step: both stay identical
    b = batch(5)
    for a in (algo, other):
        torch.manual_seed(3)
        a.update(b)
    close(params(other.critic, other.actor), params(algo.critic, algo.actor))
    # a parameter without a gradient is skipped by the step, as torch.optim does
    before = params(algo.critic)
    algo.critic_opt.zero_grad()
    algo.critic.q1(torch.randn(4, OBS + ACT)).sum().backward()
    algo.critic_opt.step()
    after = params(algo.critic)
    n1 = len(list(algo.critic.q1.parameters()))
    assert all(not torch.equal(x, y) for x, y in zip(before[:n1], after[:n1], strict=True))
    assert all(torch.equal(x, y) for x, y in zip(before[n1:], after[n1:], strict=True))


def test_bf16_autocast_is_applied_from_outside_and_returns_float32():
    from benchmarks.common.precision import autocast

    torch.manual_seed(0)
    algo = algorithms.make("awac", OBS, ACT, overrides={"actor_hidden": (16,), "critic_hidden": (16,)})
    b = batch()
    with autocast("cpu", True):
        assert torch.is_autocast_enabled("cpu")
        q1, _ = algo.critic(b.obs, b.act)
        mean, _ = algo.actor(b.obs)
        m = algo.update(b)
    assert q1.dtype == torch.float32 and mean.dtype == torch.float32
    assert all(math.isfinite(v) for v in m.values())
    with autocast("cpu", False):
        assert not torch.is_autocast_enabled("cpu")


def test_flops_are_counted_through_the_one_node_mlp_by_hand():
    """BC [5 -> 16 -> 8 -> 3] at batch 16: forward 2*16*(5*16 + 16*8 + 8*3) = 7424, weight gradients 7424 again,
    input gradients of every layer but the first (the observations need none) 2*16*(16*8 + 8*3) = 4864."""
    buf = speed.synthetic_buffer(5, 3, 200)
    assert speed.flops_per_update("bc", 5, 3, 16, "cpu", {"actor_hidden": (16, 8)}, buf) == 7424 * 2 + 4864


def test_speed_measures_any_registered_algorithm(monkeypatch):
    """A newly registered algorithm needs nothing from benchmarks/commands/speed.py (no branch on names)."""
    from algorithms.bc import BC

    class Clone(BC):
        name = "clone-for-speed-test"

    monkeypatch.setitem(algorithms.REGISTRY, Clone.name, Clone)
    res = speed.measure(Clone.name, batch=8, obs_dim=5, act_dim=3, seconds=0.01, buffer_rows=100, env=False,
                        overrides={"actor_hidden": (8,)})
    assert res["updates_per_s"] > 0 and res["gflop_per_update"] > 0 and res["networks"] == {"actor.net": [5, 8, 3]}
