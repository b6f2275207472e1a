#!/usr/bin/env python
"""Where a small autograd step loses to hand-written gradients (docs/PERFORMANCE.md, "Where the small steps lose").

One regression step of a ReLU MLP, L = 0.5 mean_B (f(x) - y)^2, every parameter's gradient, timed five ways on
the same tensors in alternating chunks (medians, one torch thread): hand (``mlp_backward`` directly, no
autograd), autograd (the library's path), fx (the step traced once by ``make_fx`` into aten ops, replayed with no
autograd engine), compiled (that graph through inductor) and cpp_wrapper (the same, no Python between kernels).

    python scripts/autograd_overhead.py                       # AWR's critic: 17 -> 128 -> 64 -> 1, batch 256
    python scripts/autograd_overhead.py --hidden 256 256 --no-compile
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from torch.func import functional_call  # noqa: E402
from torch.fx.experimental.proxy_tensor import make_fx  # noqa: E402

from algorithms import networks  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--obs", type=int, default=17)
    ap.add_argument("--hidden", type=int, nargs="+", default=[128, 64])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=15)
    ap.add_argument("--no-compile", action="store_true", help="skip the compiled variants (~20 s each to compile)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = networks.mlp(args.obs, args.hidden, 1)
    names, params = zip(*net.named_parameters(), strict=True)
    x, y = torch.randn(args.batch, args.obs), torch.randn(args.batch)
    need = [False] + [True] * len(params)

    def hand():
        with torch.no_grad():
            out, inputs = networks._relu_mlp_forward(list(params), x)
            networks.mlp_backward(params[0::2], inputs, ((out.squeeze(-1) - y) / args.batch).unsqueeze(-1), need)

    def autograd():
        for p in params:
            p.grad = None
        (0.5 * torch.nn.functional.mse_loss(net(x).squeeze(-1), y)).backward()

    def loss_and_grads(ps, x, y):
        ps = [p.detach().requires_grad_() for p in ps]
        with torch.enable_grad():
            out = functional_call(net, dict(zip(names, ps, strict=True)), (x,))
            loss = 0.5 * torch.nn.functional.mse_loss(out.squeeze(-1), y)
            return loss.detach(), torch.autograd.grad(loss, ps)

    networks.ReLUMLP.fused_backward = False  # trace the plain layers (make_fx records aten ops either way)
    graph = make_fx(loss_and_grads)(list(params), x, y)
    networks.ReLUMLP.fused_backward = True
    contenders = {"hand": hand, "autograd": autograd, "fx": lambda: graph(list(params), x, y)}
    if not args.no_compile:
        compiled = torch.compile(graph, dynamic=False)
        contenders["compiled"] = lambda: compiled(list(params), x, y)
        wrapped = torch.compile(graph, dynamic=False, options={"cpp_wrapper": True})  # no Python between kernels
        contenders["cpp_wrapper"] = lambda: wrapped(list(params), x, y)
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for f in contenders.values():  # warm-up (and compile)
        for _ in range(50):
            f()
    for _ in range(args.chunks):
        for name, f in contenders.items():
            t = time.perf_counter()
            for _ in range(200):
                f()
            times[name].append((time.perf_counter() - t) / 200 * 1e6)
    hand_us = statistics.median(times["hand"])
    print(f"ReLU MLP {args.obs} -> {' -> '.join(map(str, args.hidden))} -> 1, batch {args.batch}, "
          f"load average {os.getloadavg()[0]:.1f}; us per step (median of {args.chunks} chunks):")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:11s} {med:7.1f} us   hand / this {hand_us / med:.2f}x")


if __name__ == "__main__":
    main()
