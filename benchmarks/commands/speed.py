"""``awac-bench speed``: training steps per second of any registered algorithm (it knows none by name).

A *training step* is what the harness does per gradient step: ``columns.minibatch`` (``buffer.sample(B)``, with a
demonstration batch where the algorithm draws one) and ``algo.update(batch)``,
with ``algo.prepare_updates(buffer)`` before every block of ``algo.online_rhythm().updates`` updates (AWR: 1500,
the others: 1), past any warm-up (``Algorithm.past_warmup``). FLOPs per update: ``FlopCounterMode`` over one
block on an eager float32 copy. Ceiling: the rate of a hot float32 B x 256 x 256 ``torch.mm`` over those FLOPs
(strict: small and skinny products do not reach it). Steps and products run in alternating chunks of ~0.25 s so
that load hits both alike; rates are medians over chunks. The online phase (``env_steps_per_s*``) is the
harness's ``collect`` loop on HalfCheetah-v5, with and without updates, against the raw ``env.step``.
``synthetic_data`` and the timing helpers are shared with ``scripts/compare_speed.py`` (numpy-only imports).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

ENV_ID = "HalfCheetah-v5"


# -- data and timing, shared with scripts/compare_speed.py ------------------------------------------------
def synthetic_data(obs_dim: int, act_dim: int, rows: int, seed: int = 0):
    """(obs, act, rew, next_obs, done, timeout) numpy arrays: Gaussian observations, uniform actions in [-1, 1],
    Gaussian rewards, 1% terminals, 1000-step episodes (s' is the next row's s inside an episode)."""
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((rows, obs_dim)).astype(np.float32)
    act = rng.uniform(-1, 1, (rows, act_dim)).astype(np.float32)
    rew = rng.standard_normal(rows).astype(np.float32)
    done = (rng.random(rows) < 0.01).astype(np.float32)
    timeout = np.zeros(rows, bool)
    timeout[999::1000] = True
    timeout[-1] = True
    timeout &= done == 0
    return obs, act, rew, np.roll(obs, -1, axis=0), done, timeout


def timed(fn: Callable[[], Any], calls: int, sync: Callable[[], None] | None = None) -> float:
    """Seconds for ``calls`` calls of ``fn`` (``sync`` waits for a device before and after)."""
    if sync:
        sync()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    if sync:
        sync()
    return time.perf_counter() - t0


def calls_for(fn: Callable[[], Any], seconds: float, sync=None, minimum: int = 1) -> int:
    """How many calls of ``fn`` take about ``seconds`` (one timed probe call first)."""
    return max(minimum, int(seconds / max(timed(fn, 1, sync), 1e-7)))


def interleave(fns: dict[str, tuple[Callable[[], Any], int]], seconds: float, sync=None) -> dict[str, list[float]]:
    """Alternate chunks (function, calls per chunk) until each has run ``seconds`` and at least 3 chunks;
    returns name -> seconds per call of each chunk."""
    out: dict[str, list[float]] = {k: [] for k in fns}
    spent = dict.fromkeys(fns, 0.0)
    while min(spent.values()) < seconds or min(len(v) for v in out.values()) < 3:
        for k, (fn, n) in fns.items():
            dt = timed(fn, n, sync)
            out[k].append(dt / n)
            spent[k] += dt
    return out


# -- the measured step -------------------------------------------------------------------------------------
def synthetic_buffer(obs_dim: int, act_dim: int, rows: int, device="cpu", algo=None,
                     capacity: int | None = None, seed: int = 0):
    """A buffer of ``synthetic_data`` for ``algo`` (with the columns it declares; none without an algorithm)."""
    from benchmarks.data.buffer import ReplayBuffer
    from benchmarks.data.dataset import Dataset
    from benchmarks.run.columns import prior_buffer

    ds = Dataset(*synthetic_data(obs_dim, act_dim, rows, seed), "synthetic")
    if algo is not None:
        return prior_buffer(algo, ds, capacity or rows, device, seed)
    buf = ReplayBuffer(obs_dim, act_dim, capacity or rows, device, seed=seed)
    buf.add_many(ds.obs, ds.act, ds.rew, ds.next_obs, ds.done, ds.timeout)
    return buf


def make_algo(name: str, obs_dim: int, act_dim: int, batch: int | None, device="cpu", overrides: dict | None = None):
    """The algorithm with its default config (plus overrides, batch_size = ``batch`` if given), past its warm-up."""
    import torch

    import algorithms

    overrides = dict(overrides or {})
    if batch is not None:
        overrides["batch_size"] = batch
    torch.manual_seed(0)
    algo = algorithms.make(name, obs_dim, act_dim, overrides=overrides, device=str(device))
    algo.past_warmup()
    return algo


def training_step(algo, buffer, batch: int, bf16: bool = False) -> tuple[Callable[[], None], int]:
    """(one training step as the harness runs it, the block length: prepare_updates starts every block)."""
    from benchmarks.common.precision import autocast
    from benchmarks.run.columns import minibatch

    block = max(1, algo.online_rhythm().updates)
    count = [0]

    def step() -> None:
        if count[0] % block == 0:
            algo.prepare_updates(buffer)
        count[0] += 1
        with autocast(buffer.device, bf16):
            algo.update(minibatch(buffer, algo, batch, "offline"))

    return step, block


def network_widths(algo) -> dict[str, list[int]]:
    """[in, hidden..., out] of every ReLU MLP of the algorithm's trained networks (targets left out)."""
    from torch import nn

    from algorithms.networks import ReLUMLP

    out = {}
    for name, module in algo.modules().items():
        if isinstance(module, nn.Module) and "target" not in name:
            for sub, net in module.named_modules():
                if isinstance(net, ReLUMLP):
                    out[f"{name}.{sub}" if sub else name] = [net.linears[0].in_features] + [
                        layer.out_features for layer in net.linears]
    return out


def flops_per_update(name: str, obs_dim: int, act_dim: int, batch: int, device, overrides, buffer) -> float:
    """FlopCounterMode over one block of training steps of a fresh eager float32 copy, per update."""
    from torch.utils.flop_counter import FlopCounterMode

    algo = make_algo(name, obs_dim, act_dim, batch, device, overrides)
    step, block = training_step(algo, buffer, batch)
    step()  # lazy initialisation (optimizer state) outside the count
    with FlopCounterMode(display=False) as counter:
        for _ in range(block):  # any `block` consecutive steps hold one prepare_updates and one block's mix
            step()
    return counter.get_total_flops() / block


def measure(algo: str, batch: int | None = None, threads: int = 1, device: str = "cpu", obs_dim: int = 17,
            act_dim: int = 6, seconds: float = 5.0, bf16: bool = False,
            overrides: dict | None = None, buffer_rows: int = 100_000, env: bool = True) -> dict[str, Any]:
    """Training steps per second of ``algo`` and its matmul ceiling, measured side by side (module docstring)."""
    import torch

    from algorithms.base import UserError

    if (device.startswith("cuda") and not torch.cuda.is_available()) or seconds <= 0 or threads < 1:
        raise UserError(f"speed: needs --seconds > 0, --threads >= 1 and, for '{device}', a CUDA device")
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    torch.set_num_threads(threads)
    load_before = os.getloadavg()

    timed_algo = make_algo(algo, obs_dim, act_dim, batch, dev, overrides)
    B = batch or timed_algo.batch_size("online")
    buffer = synthetic_buffer(obs_dim, act_dim, buffer_rows, dev, timed_algo,
                              timed_algo.buffer_capacity(buffer_rows, 0))
    step, block = training_step(timed_algo, buffer, B, bf16)
    for _ in range(max(block, 3)):  # warm-up
        step()
    flops = flops_per_update(algo, obs_dim, act_dim, B, dev, overrides, buffer)

    a, w = torch.randn(B, 256, device=dev), torch.randn(256, 256, device=dev)
    matmul = lambda: torch.mm(a, w)  # noqa: E731

    step_calls = block if block > 1 else calls_for(step, 0.25, sync, minimum=2)  # AWR: whole blocks per chunk
    chunks = interleave({"step": (step, step_calls), "mm": (matmul, calls_for(matmul, 0.25, sync, 3))}, seconds,
                        sync)
    mm_flops = 2 * B * 256 * 256
    rate = statistics.median(mm_flops / t for t in chunks["mm"])
    updates_per_s = 1.0 / statistics.median(chunks["step"])
    res: dict[str, Any] = {
        "algo": algo, "batch": B, "threads": threads, "device": str(dev), "bf16": bf16,
        "updates_per_s": round(updates_per_s, 2),
        "updates_per_s_chunks": [round(1.0 / s, 2) for s in chunks["step"]],
        "gflop_per_update": round(flops / 1e9, 6),
        "matmul_gflops": round(rate / 1e9, 2),
        "ceiling_updates_per_s": round(rate / flops, 2) if flops else None,
        # per chunk: (updates/s) / (matmul FLOP/s / FLOPs per update)
        "efficiency": round(statistics.median(flops * m / (t * mm_flops) for t, m in zip(
            chunks["step"], chunks["mm"], strict=True)), 3) if flops else None,
        "networks": network_widths(timed_algo),
        "buffer_bytes_per_transition": round(buffer.nbytes() / buffer.capacity, 2),
        "torch": torch.__version__,
    }
    if env:
        res.update(online_rates(algo, B, dev, seconds, overrides, bf16=bf16))
    res["loadavg_1min"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    res["cpus"] = os.cpu_count()
    return res


# -- the online phase ---------------------------------------------------------------------------------------
def online_rates(name: str, batch: int, device, seconds: float, overrides: dict | None = None,
                 bf16: bool = False) -> dict[str, Any]:
    """Environment steps/s on HalfCheetah-v5: raw env.step, the harness's collect loop, and the loop with
    the algorithm's online updates (its rhythm, utd 1; batch sampling included)."""
    try:
        import gymnasium as gym

        env = gym.make(ENV_ID)
    except Exception as e:  # no MuJoCo: report why instead of failing the whole measurement
        return {"env_steps_per_s": None, "env_error": f"{type(e).__name__}: {e}"}
    from benchmarks.common.precision import autocast
    from benchmarks.rollouts import Episode, collect
    from benchmarks.run.columns import minibatch

    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    actions = np.random.default_rng(0).uniform(-1, 1, (1000, act_dim)).astype(np.float32)
    env.reset(seed=0)
    count = [0]

    def raw() -> None:
        count[0] += 1
        if any(env.step(actions[count[0] % 1000])[2:4]):
            env.reset()

    algo = make_algo(name, obs_dim, act_dim, batch, device, overrides)
    buffer = synthetic_buffer(obs_dim, act_dim, 10_000, device, algo,
                              algo.buffer_capacity(10_000, 200_000))
    ep = Episode(env.reset(seed=0)[0])
    n_collect, n_update = algo.online_rhythm()

    def iteration() -> None:  # one online iteration: collect, then the updates (AWR: 2048 steps, 1500 updates)
        collect(env, algo, buffer, ep, n_collect)
        if algo.learns_online:
            algo.prepare_updates(buffer)
            with autocast(buffer.device, bf16):
                for _ in range(n_update):
                    algo.update(minibatch(buffer, algo, batch, "offline"))

    iteration()
    chunks = interleave({"raw": (raw, calls_for(raw, 0.25, minimum=100)),
                         "loop": (lambda: collect(env, algo, buffer, ep, 1), 100),
                         "updates": (iteration, 1 if n_collect > 1 else calls_for(iteration, 0.25))}, seconds)
    env.close()
    rate = {k: 1.0 / statistics.median(v) for k, v in chunks.items()}
    return {"env_steps_per_s": round(rate["updates"] * n_collect, 1),
            "env_steps_per_s_no_updates": round(rate["loop"], 1), "env_steps_per_s_raw": round(rate["raw"], 1),
            "env_loop_overhead_us_per_step": round(1e6 * (1 / rate["loop"] - 1 / rate["raw"]), 1),
            "env_id": ENV_ID, "online_rhythm": [n_collect, n_update]}
