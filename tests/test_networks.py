"""Shared network pieces: backpropagation by hand through a ReLU MLP equals autograd's, bit for bit."""

from __future__ import annotations

import torch
from torch import nn

from algorithms.awr import FixedStdGaussianPolicy
from algorithms.networks import GaussianPolicy, mlp, mlp_backward, mlp_forward_keep, relu_mlp_layers


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
