"""Shared network pieces: the one-node ReLU MLP equals autograd's layer-by-layer graph, bit for bit; the
optimizers give torch.optim's numbers with and without the private fused kernels."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import algorithms
from algorithms import networks
from algorithms.networks import ReLUMLP, TanhGaussianPolicy, mlp


def layerwise(net: ReLUMLP) -> ReLUMLP:
    """The same network through nn.Sequential's forward: one autograd node per layer."""
    ref = copy.deepcopy(net)
    ref.fused_backward = False
    return ref


@pytest.mark.parametrize("shape", [(32, 5), (4, 8, 5)], ids=["2-d", "3-d"])
def test_one_node_mlp_gives_autograds_gradients_bit_for_bit(shape):
    torch.manual_seed(0)
    net = mlp(5, (16, 8), 3)
    ref = layerwise(net)
    x = torch.randn(*shape, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    target = torch.randn(*shape[:-1], 3)
    out, out_ref = net(x), ref(x_ref)
    node = out.grad_fn if len(shape) == 2 else out.grad_fn.next_functions[0][0]  # (3-d: a reshape on top)
    assert node.name().endswith("_ReLUMLPFunctionBackward") and out.shape == out_ref.shape
    torch.testing.assert_close(out, out_ref, rtol=0, atol=0)
    (0.5 * (out - target).pow(2).sum(-1).mean()).backward()
    (0.5 * (out_ref - target).pow(2).sum(-1).mean()).backward()
    for p, q in zip(net.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=0, atol=0)


def test_dead_relu_units_pass_no_gradient():
    # One hidden unit, pinned below zero for every input: its weights get exactly zero gradient.
    net = mlp(2, (2,), 1)
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
        net[0].bias.copy_(torch.tensor([0.0, -1.0]))
        net[2].weight.fill_(1.0)
    x = torch.tensor([[2.0, 3.0], [1.0, -1.0]])
    net(x).sum().backward()
    # h = [[2, 0], [1, 0]]; dL/dW2 = sum_rows h = [3, 0]; dL/dW1 row 0 = sum_rows x = [3, 2], row 1 = 0
    torch.testing.assert_close(net[2].weight.grad, torch.tensor([[3.0, 0.0]]))
    torch.testing.assert_close(net[0].weight.grad, torch.tensor([[3.0, 2.0], [0.0, 0.0]]))
    torch.testing.assert_close(net[0].bias.grad, torch.tensor([2.0, 0.0]))


def test_frozen_network_passes_the_input_gradient_only():
    """SAC's actor loss through the frozen critic: dL/dx, no parameter gradient (and no matmul for it)."""
    torch.manual_seed(0)
    net = mlp(4, (8,), 1)
    ref = layerwise(net)
    net.requires_grad_(False)
    ref.requires_grad_(False)
    x = torch.randn(6, 4, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    net(x).sum().backward()
    ref(x_ref).sum().backward()
    assert all(p.grad is None for p in net.parameters())
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=0, atol=0)
    with torch.no_grad():  # no gradient needed: no autograd node
        assert net(x).grad_fn is None


def test_autocast_and_the_switch_use_the_layerwise_forward():
    net = mlp(3, (4,), 2)
    x = torch.randn(2, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert net(x).dtype == torch.bfloat16
    net.fused_backward = False
    assert net(x).grad_fn.name() == "AddmmBackward0"
    with pytest.raises(ValueError):
        ReLUMLP(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))


def test_sac_log_prob_keeps_float32_precision_at_small_sigma():
    """At log sigma = -12 forming (u - mu) / sigma in float32 would cancel terms of size 1 / sigma; taking the
    Gaussian term from eps does not: the gradient at the policy's output equals float64 autograd's."""
    torch.manual_seed(0)
    pi = TanhGaussianPolicy(3, 2, (8, 8))
    with torch.no_grad():
        pi.net[-1].bias[2:] = -12.0  # log sigma ~ -12 (inside the clamp)
    obs, noise = torch.randn(16, 3), torch.randn(16, 2)
    dl_da, dl_dlogp = torch.randn(16, 2), torch.full((16,), 0.3)
    captured = {}

    def keep(module, inputs, out):
        out.retain_grad()
        captured["out"] = out

    pi.net.register_forward_hook(keep)
    a, logp = pi.rsample(obs, noise)
    ((dl_da * a).sum() + (dl_dlogp * logp).sum()).backward()
    out64 = captured["out"].detach().double().requires_grad_(True)
    mean, raw = out64.chunk(2, dim=-1)
    log_std = raw.clamp(-20.0, 2.0)
    u = mean + torch.exp(log_std) * noise.double()
    z = (u - mean) * torch.exp(-log_std)
    logp64 = (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1) - (
        2.0 * (math.log(2.0) - u - torch.nn.functional.softplus(-2.0 * u))).sum(-1)
    ((dl_da.double() * torch.tanh(u)).sum() + (dl_dlogp.double() * logp64).sum()).backward()
    torch.testing.assert_close(captured["out"].grad.double(), out64.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logp.double(), logp64.detach(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ["awac", "awr"])  # Adam (with weight decay) and SGD with momentum
def test_private_fused_kernels_and_the_public_fallback_agree(name, monkeypatch):
    """``USE_FUSED_KERNELS`` gates torch's private fused kernels (checked versions only); the public
    ``torch.optim`` fallback gives the same parameters."""
    sizes = {"actor_hidden": (16,), "critic_hidden": (16,)}
    out = []
    for fused in (True, False):
        monkeypatch.setattr(networks, "USE_FUSED_KERNELS", fused)
        torch.manual_seed(0)
        algo = algorithms.make(name, 5, 3, overrides=sizes)
        opts = [m for m in algo.modules().values() if not isinstance(m, nn.Module)]
        assert all(isinstance(o, networks._FlatOptimizer) == fused for o in opts)
        g = torch.Generator().manual_seed(1)
        for _ in range(3):
            for net, opt in ((algo.actor, opts[0]), (algo.critic, opts[1])):
                opt.zero_grad()
                for p in net.parameters():
                    p.grad = torch.randn(p.shape, generator=g)
                opt.step()
        out.append([p.detach().clone() for m in (algo.actor, algo.critic) for p in m.parameters()])
    for x, y in zip(*out, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("log_std_shape", [(3,), (8, 3)], ids=["shared-std", "per-row-std"])
def test_one_node_gaussian_log_prob_matches_autograds_graph(log_std_shape):
    torch.manual_seed(0)
    x, mean, log_std = (torch.randn(8, 3, requires_grad=True), torch.randn(8, 3, requires_grad=True),
                        torch.randn(*log_std_shape, requires_grad=True))
    w = torch.randn(8)
    logp = networks.diag_gaussian_log_prob(x, mean, log_std)
    assert logp.grad_fn.name().endswith("_DiagGaussianLogProbBackward")
    grads = torch.autograd.grad((w * logp).sum(), (x, mean, log_std))
    leaves = [t.detach().clone().requires_grad_(True) for t in (x, mean, log_std)]
    z = (leaves[0] - leaves[1]) * torch.exp(-leaves[2])
    ref = (-0.5 * z.pow(2) - leaves[2] - 0.5 * math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(logp, ref, rtol=0, atol=0)
    for g, r in zip(grads, torch.autograd.grad((w * ref).sum(), leaves), strict=True):
        torch.testing.assert_close(g, r, rtol=1e-6, atol=1e-6)
    # by hand at one point: x = 1, mu = 0, log sigma = 0 -> z = 1: dlogp/dmu = 1, dlogp/dlog sigma = 0, dlogp/dx = -1
    one = [torch.tensor([[v]], requires_grad=True) for v in (1.0, 0.0, 0.0)]
    g = torch.autograd.grad(networks.diag_gaussian_log_prob(*one).sum(), one)
    assert [t.item() for t in g] == [-1.0, 1.0, 0.0]
