"""CUDA checks (skipped without a CUDA device; scripts/gpu_check.sh runs them on a GPU machine): every registered
algorithm updates on the device, and the one-node backward and the fused optimizers agree with autograd and
torch.optim there too."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import algorithms
from algorithms import networks
from benchmarks.commands.speed import synthetic_buffer
from benchmarks.run.columns import minibatch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("name", algorithms.names())
def test_every_algorithm_updates_on_cuda(name):
    torch.manual_seed(0)
    algo = algorithms.make(name, 7, 3, device="cuda")
    buf = synthetic_buffer(7, 3, 600, "cuda", algo, algo.buffer_capacity(600, 0))
    for _ in range(3):
        algo.prepare_updates(buf)
        metrics = algo.update(minibatch(buf, algo, 64, "offline"))
        assert all(math.isfinite(v) for v in metrics.values()), metrics
    assert algo.act(buf.obs[:4].cpu().numpy(), deterministic=False).shape == (4, 3)


def test_one_node_mlp_and_gaussian_match_autograd_on_cuda():
    torch.manual_seed(0)
    net = networks.mlp(5, (32, 16), 3).cuda()
    ref = copy.deepcopy(net)
    ref.fused_backward = False
    x = torch.randn(64, 5, device="cuda")
    log_std = torch.zeros(3, device="cuda", requires_grad=True)
    act = torch.randn(64, 3, device="cuda")
    for m in (net, ref):
        networks.diag_gaussian_log_prob(act, m(x), log_std).mean().backward()
    for p, q in zip(net.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6)


def test_flat_adam_matches_torch_optim_on_cuda():
    torch.manual_seed(0)
    net = networks.mlp(4, (8,), 2).cuda()
    ref = copy.deepcopy(net)
    opt, ref_opt = networks.make_adam(net, 1e-3, 1e-4), torch.optim.Adam(ref.parameters(), 1e-3, weight_decay=1e-4)
    for _ in range(3):
        for p, q in zip(net.parameters(), ref.parameters(), strict=True):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        opt.step()
        ref_opt.step()
    for p, q in zip(net.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
