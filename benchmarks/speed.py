"""``awac-bench speed``: training steps per second against this machine's matrix-multiply ceiling.

One *training step* is what the harness does per gradient step: ``buffer.sample(B)`` and
``algo.update(batch)`` (for AWR also its ``prepare_updates`` and advantage refreshes, amortised over a
block). It is matrix-multiply bound, so its ceiling is

    ceiling_updates_per_s = matmul rate / matmul FLOPs per update

* FLOPs (``count_flops``) are counted analytically from the Linear layers each update touches:
  2*rows*in*out per forward matmul; the backward adds the weight gradient (2*rows*in*out) where the
  layer trains and the input gradient (2*rows*in*out) wherever a gradient flows through the layer (not
  into the first layer of a network whose input needs no gradient); no-grad and target passes have no
  backward. ``tests/test_speed_equivalence.py`` checks the count against the matmuls the update
  actually executes (``torch.utils.flop_counter``), so no pass is double counted or left out.
* The matmul rate is measured in the same run on the update's own matmuls: every mm/addmm/bmm/baddbmm
  one update executes (same shapes, strides, transposes; float32) is recorded once and replayed
  back to back on fresh inputs. ``peak_matmul_gflops`` is the best plain ``torch.mm`` rate (a hot
  B x 256 x 256 product), the stricter ceiling (``ceiling_updates_per_s_peak``).
* The update and the replay run in alternating chunks of about a quarter second, so a machine shared
  with other jobs slows both alike; the reported numbers are medians over the chunks, and
  ``efficiency`` is the median of the per-chunk ratios (load average reported alongside).

The online phase (``env_steps_per_s*``) is the harness's own loop (``harness.collect``: act, env.step,
buffer.add) on HalfCheetah-v5, against the raw ``env.step``.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import algorithms
from algorithms.base import UserError
from benchmarks.buffer import ReplayBuffer

ENV_ID = "HalfCheetah-v5"
HALFCHEETAH_DIMS = (17, 6)
_aten = torch.ops.aten
_MATMULS = {_aten.mm.default: 0, _aten.addmm.default: 1, _aten.bmm.default: 0, _aten.baddbmm.default: 1}


# -- FLOPs, counted from the networks ------------------------------------------------------------------
Layers = list[tuple[int, int, int]]  # (copies, in, out) per matmul layer of one network


def layers_of(net: nn.Module) -> Layers:
    """The matmul layers of a network in forward order: Linear modules, or a stacked ensemble."""
    if hasattr(net, "weights") and isinstance(net.weights, nn.ParameterList):  # bear.EnsembleQ
        return [tuple(w.shape) for w in net.weights]
    return [(1, m.in_features, m.out_features) for m in net.modules() if isinstance(m, nn.Linear)]


def pass_flops(layers: Layers, rows: int, train: bool = False, input_grad: bool = False) -> int:
    """Matmul FLOPs of one pass of ``rows`` rows through a network.

    train: its weights get gradients (weight-gradient matmul per layer, and the input-gradient matmul of
    every layer but the first). input_grad: the gradient continues into the network's input (e.g. into
    an action), which adds the input gradients of every layer, the first included.
    """
    fwd = [2 * rows * k * i * o for k, i, o in layers]
    total = sum(fwd)
    if train:
        total += sum(fwd)
    if train or input_grad:
        total += sum(fwd[1:]) + (fwd[0] if input_grad else 0)
    return total


def _twin(critic) -> list[Layers]:
    return [layers_of(critic.q1), layers_of(critic.q2)]


def count_flops(algo, batch: int, buffer: ReplayBuffer | None = None) -> int:
    """Matmul FLOPs of one training step (an average over AWR's block), from the algorithm's networks."""
    B = batch
    name = algo.name
    if name == "awac":
        A, Q = layers_of(algo.actor), _twin(algo.critic)
        return (pass_flops(A, B)                                   # a' ~ pi(.|s')
                + sum(pass_flops(q, B) for q in Q)                 # target twins at (s', a')
                + sum(pass_flops(q, B, train=True) for q in Q)     # Q_j(s, a), trained
                + pass_flops(A, B, train=True)                     # pi(.|s), trained
                + sum(pass_flops(q, B) for q in Q))                # V(s) = min_j Q_j(s, a_pi), no grad
    if name == "sacfd":
        A, Q = layers_of(algo.actor), _twin(algo.critic)
        if algo.grad_steps < algo.cfg.bc_init_steps:
            return pass_flops(A, B, train=True)
        return (pass_flops(A, B) + sum(pass_flops(q, B) for q in Q)          # target
                + sum(pass_flops(q, B, train=True) for q in Q)               # critic step
                + pass_flops(A, B, train=True)                               # actor through ...
                + sum(pass_flops(q, B, input_grad=True) for q in Q))         # ... the frozen critic
    if name == "bc":
        return pass_flops(layers_of(algo.actor), B, train=True)
    if name == "bear":
        c = algo.cfg
        A, Q = layers_of(algo.actor), layers_of(algo.critic)
        E, D = layers_of(algo.vae.encoder), layers_of(algo.vae.decoder)
        total = (pass_flops(E, B, train=True) + pass_flops(D, B, train=True, input_grad=True)  # VAE (z from E)
                 + pass_flops(A, B) + pass_flops(Q, B * c.num_target_samples)                   # target
                 + pass_flops(Q, B, train=True)                                                 # critic
                 + pass_flops(D, B * c.num_mmd_samples)                                         # VAE samples
                 + pass_flops(A, B, train=True))                                                # actor
        if algo.grad_steps >= c.warmup_steps:
            total += pass_flops(Q, B * c.num_mmd_samples, input_grad=True)                      # Q(s, a_pi)
        return total
    if name == "awr":
        c = algo.cfg
        A, V = layers_of(algo.actor), layers_of(algo.critic)
        block = c.critic_steps + c.actor_steps
        # policy steps read the advantages R - V(s) stored at the switch: no V pass of their own
        per_block = c.critic_steps * pass_flops(V, B, train=True) + c.actor_steps * pass_flops(A, B, train=True)
        if buffer is not None and buffer.size:
            # two refreshes per block (prepare_updates and the switch to the policy steps): V over the
            # buffer, and V(s') at the episode ends that bootstrap
            per_block += 2 * (pass_flops(V, buffer.size) + pass_flops(V, _awr_boot_rows(buffer)))
        return per_block // block
    raise UserError(f"speed: no FLOP count for algorithm '{name}'")


def _awr_boot_rows(buffer: ReplayBuffer) -> int:
    order = buffer.order()
    obs, next_obs = buffer.obs[order], buffer.next_obs[order]
    ends = buffer.timeout[order].clone()
    ends[:-1] |= (next_obs[:-1] != obs[1:]).any(-1)
    ends[-1] = True
    return int((ends & ~(buffer.done[order] > 0.5)).sum())


def network_layers(algo) -> dict[str, list[int]]:
    """Layer widths [in, hidden..., out] of the networks (for the report)."""
    def widths(net):
        ls = layers_of(net)
        return [ls[0][1]] + [o for _, _, o in ls]

    out = {"actor_layers": widths(algo.actor)}
    critic = getattr(algo, "critic", None)
    if critic is not None:
        out["critic_layers"] = widths(critic.q1 if hasattr(critic, "q1") else critic)
        out["critics"] = 2 if hasattr(critic, "q1") else getattr(critic, "num_qs", 1)
    if hasattr(algo, "vae"):
        out["vae_encoder_layers"] = widths(algo.vae.encoder)
        out["vae_decoder_layers"] = widths(algo.vae.decoder)
    return out


# -- the update's matmuls, recorded and replayed ----------------------------------------------------------
class MatmulRecorder(TorchDispatchMode):
    """Records (op, [(shape, stride)] of its matrix operands) of every matmul dispatched inside it."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[Any, list[tuple[tuple[int, ...], tuple[int, ...]]], dict]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _MATMULS:
            specs = [(tuple(a.shape), tuple(a.stride())) if isinstance(a, torch.Tensor) else a for a in args]
            self.calls.append((func, specs, {k: v for k, v in kwargs.items() if not isinstance(v, torch.Tensor)}))
        return func(*args, **kwargs)


def call_flops(func, specs) -> int:
    first = _MATMULS[func]
    a, b = specs[first][0], specs[first + 1][0]
    if len(a) == 2:
        return 2 * a[0] * a[1] * b[1]
    return 2 * a[0] * a[1] * a[2] * b[2]


def make_replay(calls, device: torch.device) -> Callable[[], None]:
    """A function that runs the recorded matmuls on fresh float32 tensors of the same layout."""
    prepared = []
    for func, specs, kwargs in calls:
        args = []
        for s in specs:
            if isinstance(s, tuple) and len(s) == 2 and isinstance(s[0], tuple):
                shape, stride = s
                size = 1 + sum((d - 1) * st for d, st in zip(shape, stride, strict=True) if d > 0)
                args.append(torch.randn(size, device=device).as_strided(shape, stride))
            else:
                args.append(s)
        prepared.append((func, args, kwargs))

    def replay() -> None:
        for func, args, kwargs in prepared:
            func(*args, **kwargs)

    return replay


# -- timing ------------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], None], calls: int, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    _sync(device)
    return time.perf_counter() - t0


def _calls_for(fn: Callable[[], None], seconds: float, device: torch.device, minimum: int = 1) -> int:
    """How many calls of ``fn`` take about ``seconds`` (one timed probe call first)."""
    dt = _timed(fn, 1, device)
    return max(minimum, int(seconds / max(dt, 1e-7)))


def interleave(fns: dict[str, tuple[Callable[[], None], int]], seconds: float,
               device: torch.device, chunk_s: float = 0.25) -> dict[str, list[float]]:
    """Alternate chunks of each function until every one has run ``seconds``; per-chunk seconds per call.

    ``fns`` maps a name to (function, calls per chunk); returns name -> [seconds per call, ...].
    """
    out: dict[str, list[float]] = {k: [] for k in fns}
    spent = dict.fromkeys(fns, 0.0)
    rounds = 0
    while min(spent.values()) < seconds or rounds < 3:
        for k, (fn, n) in fns.items():
            dt = _timed(fn, n, device)
            out[k].append(dt / n)
            spent[k] += dt
        rounds += 1
    return out


def peak_matmul_gflops(batch: int, device: torch.device, seconds: float = 0.5) -> float:
    """Best plain float32 ``torch.mm`` rate of a hot B x 256 x 256 product (repeated, best of 5)."""
    a = torch.randn(batch, 256, device=device)
    b = torch.randn(256, 256, device=device)
    fn = lambda: torch.mm(a, b)  # noqa: E731
    n = _calls_for(fn, seconds / 5, device, minimum=3)
    best = min(_timed(fn, n, device) / n for _ in range(5))
    return 2 * batch * 256 * 256 / best / 1e9


# -- the measured step ----------------------------------------------------------------------------------
def synthetic_buffer(obs_dim: int, act_dim: int, rows: int, device, seed: int = 0,
                     with_returns: bool = False, capacity: int | None = None) -> ReplayBuffer:
    """Gaussian observations, uniform actions in [-1, 1], Gaussian rewards, 1% terminals, 1000-step episodes."""
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(obs_dim, act_dim, capacity or rows, device, seed=seed, with_returns=with_returns)
    done = rng.random(rows) < 0.01
    timeout = np.zeros(rows, bool)
    timeout[999::1000] = True
    buf.add_many(rng.standard_normal((rows, obs_dim), np.float32), rng.uniform(-1, 1, (rows, act_dim)),
                 rng.standard_normal(rows), rng.standard_normal((rows, obs_dim), np.float32), done,
                 timeout & ~done)
    return buf


def make_algo(name: str, obs_dim: int, act_dim: int, batch: int | None, device, overrides: dict | None = None):
    """The algorithm with its default config (plus overrides) at batch size ``batch``."""
    algorithms.get(name)
    overrides = dict(overrides or {})
    if batch is not None:
        overrides["batch_size"] = batch
        if name == "awac":
            overrides.setdefault("offline_batch_size", None)
    torch.manual_seed(0)
    return algorithms.make(name, obs_dim, act_dim, overrides=overrides, device=str(device))


def _steady_state(algo) -> None:
    """Measure the update of the steady state: BEAR past its MMD-only warm-up, SACfD past its BC steps."""
    if algo.name == "bear":
        algo.grad_steps = max(algo.grad_steps, algo.cfg.warmup_steps)
    if algo.name == "sacfd":
        algo.grad_steps = max(algo.grad_steps, algo.cfg.bc_init_steps)


def training_step(algo, buffer: ReplayBuffer, batch: int) -> Callable[[], None]:
    """One gradient step as the harness runs it (``prepare_updates`` once per block, then sample + update)."""
    block = max(1, algo.online_rhythm()[1]) if algo.name == "awr" else 0
    state = {"i": 0}

    def step() -> None:
        if block and state["i"] % block == 0:
            algo.prepare_updates(buffer)
        state["i"] += 1
        algo.update(buffer.sample(batch))

    if not block:
        algo.prepare_updates(buffer)
    return step


def record_matmuls(name: str, obs_dim: int, act_dim: int, batch: int, device, overrides, buffer):
    """The matmuls of one (average) training step: [(calls, weight)] recorded on a fresh eager float32 copy."""
    algo = make_algo(name, obs_dim, act_dim, batch, device, overrides)
    _steady_state(algo)
    if name != "awr":
        algo.prepare_updates(buffer)
        algo.update(buffer.sample(batch))  # first step outside: lazy initialisation
        rec = MatmulRecorder()
        with rec:
            algo.update(buffer.sample(batch))
        return [(rec.calls, 1.0)]
    c = algo.cfg
    block = c.critic_steps + c.actor_steps
    parts = []
    rec = MatmulRecorder()
    with rec:
        algo.prepare_updates(buffer)  # one refresh (the switch's refresh costs the same)
    parts.append((rec.calls, 2.0 / block))
    for kind, weight in (("_value_step", c.critic_steps), ("_policy_step", c.actor_steps)):
        if weight:
            rec = MatmulRecorder()
            with rec:
                getattr(algo, kind)(buffer.sample(batch))
            parts.append((rec.calls, weight / block))
    return parts


def measure(algo: str, batch: int | None = None, threads: int = 1, device: str = "cpu", obs_dim: int = 17,
            act_dim: int = 6, seconds: float = 5.0, compile: bool = False, bf16: bool = False,
            overrides: dict | None = None, buffer_rows: int = 100_000, env: bool = True,
            cuda_graphs: bool = False) -> dict[str, Any]:
    """Training steps per second of ``algo`` and its matmul ceiling, measured side by side (see module doc)."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{device}' requested but CUDA is not available")
    if seconds <= 0 or threads < 1:
        raise UserError("--seconds must be > 0 and --threads >= 1")
    dev = torch.device(device)
    torch.set_num_threads(threads)
    load_before = os.getloadavg()

    timed = make_algo(algo, obs_dim, act_dim, batch, dev, overrides)
    B = batch or timed.batch_size("online")
    capacity = timed.buffer_capacity(buffer_rows, 0)
    buffer = synthetic_buffer(obs_dim, act_dim, buffer_rows, dev, with_returns=timed.needs_returns,
                              capacity=capacity)
    timed.set_speed_options(bf16=bf16, compile=compile, cuda_graphs=cuda_graphs)
    _steady_state(timed)
    step = training_step(timed, buffer, B)
    for _ in range(3 if not (compile or cuda_graphs) else 6):  # warm-up (and compilation)
        step()

    parts = record_matmuls(algo, obs_dim, act_dim, B, dev, overrides, buffer)
    replays = [(make_replay(calls, dev), w) for calls, w in parts]
    executed = sum(w * sum(call_flops(f, s) for f, s, _ in calls) for calls, w in parts)
    flops = count_flops(timed, B, buffer)

    if algo == "awr":  # whole blocks per chunk: value and policy steps differ
        step_calls = max(1, timed.online_rhythm()[1])
        for _ in range(step_calls):
            step()
    else:
        step_calls = _calls_for(step, 0.25, dev, minimum=2)

    def replay_step() -> None:
        for fn, _ in replays:  # one replay of each part (weighted below)
            fn()

    weights = [w for _, w in replays]
    replay_calls = _calls_for(replay_step, 0.25, dev, minimum=2)
    chunks = interleave({"step": (step, step_calls), "replay": (replay_step, replay_calls)}, seconds, dev)
    if len(replays) > 1:  # AWR: time each part alone once per chunk to weight them
        part_times = [[_timed(fn, 3, dev) / 3 for fn, _ in replays] for _ in chunks["replay"]]
        replay_per_update = [sum(w * t for w, t in zip(weights, ts, strict=True)) for ts in part_times]
    else:
        replay_per_update = chunks["replay"]
    step_s = chunks["step"]
    ratios = [r / s for r, s in zip(replay_per_update, step_s, strict=True)]

    peak = peak_matmul_gflops(B, dev)
    rate = statistics.median(executed / t for t in replay_per_update) / 1e9
    updates_per_s = 1.0 / statistics.median(step_s)
    res: dict[str, Any] = {
        "algo": algo, "batch": B, "threads": threads, "device": str(dev), "compile": compile, "bf16": bf16,
        "cuda_graphs": cuda_graphs,
        "updates_per_s": round(updates_per_s, 2),
        "updates_per_s_chunks": [round(1.0 / s, 2) for s in step_s],
        "gflop_per_update": round(flops / 1e9, 6),
        "gflop_per_update_executed": round(executed / 1e9, 6),
        "matmul_gflops": round(rate, 2),
        "ceiling_updates_per_s": round(rate * 1e9 / flops, 2),
        "efficiency": round(statistics.median(ratios), 3),
        "peak_matmul_gflops": round(peak, 2),
        "ceiling_updates_per_s_peak": round(peak * 1e9 / flops, 2),
        "efficiency_vs_peak": round(updates_per_s * flops / (peak * 1e9), 3),
        **network_layers(timed),
        "buffer_bytes_per_transition": round(buffer.nbytes() / buffer.capacity, 2),
        "torch": torch.__version__,
    }
    if env:
        res.update(online_rates(algo, B, dev, seconds, overrides, bf16=bf16, compile=compile))
    res["loadavg_1min"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    res["cpus"] = os.cpu_count()
    return res


# -- the online phase ---------------------------------------------------------------------------------------
def online_rates(name: str, batch: int, device, seconds: float, overrides: dict | None = None,
                 bf16: bool = False, compile: bool = False) -> dict[str, float | None]:
    """Environment steps/s on HalfCheetah-v5: raw env.step, the harness's collect loop, and the loop with
    the algorithm's online updates (its rhythm, utd 1; batch sampling included)."""
    try:
        import gymnasium as gym

        env = gym.make(ENV_ID)
    except Exception as e:  # no MuJoCo: report why instead of failing the whole measurement
        return {"env_steps_per_s": None, "env_error": f"{type(e).__name__}: {e}"}
    from benchmarks.harness import Episode, collect

    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    dev = torch.device(device)
    with contextlib.suppress(Exception):
        env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (1000, act_dim)).astype(np.float32)
    env.reset(seed=0)

    def raw(n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            _, _, term, trunc, _ = env.step(actions[i % 1000])
            if term or trunc:
                env.reset()
        return time.perf_counter() - t0

    algo = make_algo(name, obs_dim, act_dim, batch, dev, overrides)
    algo.set_speed_options(bf16=bf16, compile=compile)
    _steady_state(algo)
    buffer = synthetic_buffer(obs_dim, act_dim, 10_000, dev, with_returns=algo.needs_returns,
                              capacity=algo.buffer_capacity(10_000, 200_000))
    ep = Episode(env.reset(seed=0)[0])

    def loop(n: int) -> float:
        t0 = time.perf_counter()
        collect(env, algo, buffer, ep, n)
        return time.perf_counter() - t0

    n_collect, n_update = algo.online_rhythm()

    def loop_with_updates(iterations: int) -> tuple[int, float]:
        t0 = time.perf_counter()
        steps = 0
        for _ in range(iterations):
            collect(env, algo, buffer, ep, n_collect)
            steps += n_collect
            if algo.learns_online:
                algo.prepare_updates(buffer)
                for _ in range(n_update):
                    algo.update(buffer.sample(batch))
        _sync(dev)
        return steps, time.perf_counter() - t0

    loop(200)
    loop_with_updates(1 if n_collect > 1 else 5)
    raw_rates, loop_rates, upd_rates = [], [], []
    n_raw = max(100, int(0.25 / max(raw(50) / 50, 1e-7)))
    n_loop = max(100, int(0.25 / max(loop(50) / 50, 1e-7)))
    spent = 0.0
    while spent < seconds or len(upd_rates) < 3:
        raw_rates.append(n_raw / raw(n_raw))
        loop_rates.append(n_loop / loop(n_loop))
        iters = 1 if n_collect > 1 else max(1, int(0.25 * upd_rates[-1])) if upd_rates else 10
        steps, dt = loop_with_updates(iters)
        upd_rates.append(steps / dt)
        spent += dt
    env.close()
    med = statistics.median
    return {
        "env_steps_per_s": round(med(upd_rates), 1),
        "env_steps_per_s_no_updates": round(med(loop_rates), 1),
        "env_steps_per_s_raw": round(med(raw_rates), 1),
        "env_loop_overhead_us_per_step": round(1e6 * (1 / med(loop_rates) - 1 / med(raw_rates)), 1),
        "env_id": ENV_ID,
        "online_rhythm": [n_collect, n_update],
    }


def buffer_memory(obs_dim: int = 17, act_dim: int = 6, capacity: int = 1_000_000) -> dict[str, float]:
    """Replay-buffer bytes against the raw float32 bytes of the transitions (s, a, r, s', d)."""
    buf = ReplayBuffer(obs_dim, act_dim, capacity)
    raw = capacity * 4 * (2 * obs_dim + act_dim + 2)
    return {"capacity": capacity, "buffer_bytes": buf.nbytes(), "raw_float32_bytes": raw,
            "ratio": round(buf.nbytes() / raw, 4)}


def fmt_rate(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"
