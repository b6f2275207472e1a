"""Shared network pieces: backpropagation by hand through a ReLU MLP equals autograd's, bit for bit."""

from __future__ import annotations

import math

import torch
from torch import nn

import algorithms
from algorithms import networks
from algorithms.awr import FixedStdGaussianPolicy
from algorithms.networks import (
    GaussianPolicy,
    TanhGaussianPolicy,
    mlp,
    mlp_backward,
    mlp_forward_keep,
    relu_mlp_layers,
)


def test_hand_backprop_gives_autograds_gradients_bit_for_bit():
    torch.manual_seed(0)
    net = mlp(5, (16, 8), 3)
    x, target = torch.randn(32, 5), torch.randn(32, 3)
    loss = 0.5 * (net(x) - target).pow(2).sum(-1).mean()
    loss.backward()
    ref = [p.grad.clone() for p in net.parameters()]
    layers = relu_mlp_layers(net)
    assert layers == [net[0], net[2], net[4]]
    with torch.no_grad():
        out, inputs = mlp_forward_keep(layers, x)
        torch.testing.assert_close(out, net(x), rtol=0, atol=0)
        mlp_backward(layers, inputs, (out - target) / x.shape[0])  # d(loss)/d(out), by hand
    for p, g in zip(net.parameters(), ref, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=0, atol=0)


def test_dead_relu_units_pass_no_gradient():
    # One hidden unit, pinned below zero for every input: its weights get exactly zero gradient.
    net = mlp(2, (2,), 1)
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
        net[0].bias.copy_(torch.tensor([0.0, -1.0]))
        net[2].weight.fill_(1.0)
    x = torch.tensor([[2.0, 3.0], [1.0, -1.0]])
    layers = relu_mlp_layers(net)
    with torch.no_grad():
        _, inputs = mlp_forward_keep(layers, x)
        mlp_backward(layers, inputs, torch.ones(2, 1))
    # h = [[2, 0], [1, 0]]; dL/dW2 = sum_rows h = [3, 0]; dL/dW1 row 0 = sum_rows x = [3, 2], row 1 = 0
    torch.testing.assert_close(net[2].weight.grad, torch.tensor([[3.0, 0.0]]))
    torch.testing.assert_close(net[0].weight.grad, torch.tensor([[3.0, 2.0], [0.0, 0.0]]))
    torch.testing.assert_close(net[0].bias.grad, torch.tensor([2.0, 0.0]))


def test_structures_the_hand_gradients_do_not_cover_are_refused():
    pi = FixedStdGaussianPolicy(3, 2, (8, 4), 0.2, 0.01)
    assert relu_mlp_layers(pi.trunk, pi.mean_head) == [pi.trunk[0], pi.trunk[2], pi.mean_head]
    assert relu_mlp_layers(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))) is None
    assert relu_mlp_layers(nn.Sequential(nn.Linear(3, 4), nn.ReLU())) is None  # ends in a ReLU
    assert relu_mlp_layers(pi.trunk, pi.trunk) is None  # two ReLUs in a row
    assert relu_mlp_layers(nn.Linear(3, 4, bias=False)) is None
    assert relu_mlp_layers(GaussianPolicy(3, 2, (8,))) is None  # a forward of its own (tanh mean, std)
    assert relu_mlp_layers(pi) is None


def test_tanh_gaussian_policy_with_one_hidden_layer():
    pi = TanhGaussianPolicy(5, 2, (16,))
    mean, log_std = pi(torch.randn(3, 5))
    assert mean.shape == log_std.shape == (3, 2)
    assert relu_mlp_layers(pi.net, pi.trunk_act, pi.head) == [pi.net[0], pi.head]
    sac = algorithms.make("sacfd", 5, 2, overrides={"actor_hidden": (16,), "critic_hidden": (16,)})
    assert sac.manual_gradients(sac.actor._layers, *sac.critic._layers)


def test_sac_reparameterised_gradient_keeps_float32_precision_at_small_sigma(monkeypatch):
    """At log sigma = -12 forming (u - mu) / sigma in float32 would cancel terms of size 1 / sigma; the closed
    form does not: compare the gradient at the policy head's output with float64 autograd on the same rule."""
    torch.manual_seed(0)
    pi = TanhGaussianPolicy(3, 2, (8, 8))
    with torch.no_grad():
        pi.head.bias[2:] = -12.0  # log sigma ~ -12 (inside the clamp)
    obs, noise = torch.randn(16, 3), torch.randn(16, 2)
    dl_da, dl_dlogp = torch.randn(16, 2), torch.full((16,), 0.3)
    captured = {}
    monkeypatch.setattr(networks, "mlp_backward", lambda layers, inputs, g: captured.update(g=g))
    with torch.no_grad():
        a, logp, kept = pi.rsample_keep(obs, noise)
        pi.rsample_backward(kept, a, dl_da, dl_dlogp)
        out = mlp_forward_keep(pi._layers, obs)[0]
    out64 = out.double().requires_grad_(True)
    mean, raw = out64.chunk(2, dim=-1)
    log_std = raw.clamp(-20.0, 2.0)
    u = mean + torch.exp(log_std) * noise.double()
    z = (u - mean) * torch.exp(-log_std)
    logp64 = (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1) - (
        2.0 * (math.log(2.0) - u - torch.nn.functional.softplus(-2.0 * u))).sum(-1)
    ((dl_da.double() * torch.tanh(u)).sum() + (dl_dlogp.double() * logp64).sum()).backward()
    torch.testing.assert_close(captured["g"].double(), out64.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logp.double(), logp64.detach(), rtol=1e-5, atol=1e-4)
