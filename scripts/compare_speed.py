#!/usr/bin/env python
"""Side-by-side training-step speed: awac-bench vs d3rlpy 2.8.1 (and CORL's AWAC if you have it).

    python scripts/compare_speed.py                       # d3rlpy importable here (pip install -e '.[compare]')
    python scripts/compare_speed.py --d3rlpy-python /tmp/d3venv/bin/python   # d3rlpy in its own venv
    python scripts/compare_speed.py --corl ~/CORL/algorithms/finetune/awac.py

Every contender runs in its own worker process (one torch thread, OMP_NUM_THREADS=1) on identical
synthetic data (same numpy seed: Gaussian observations, uniform actions, 1% terminals, 1000-step episodes)
with identical network sizes and batch size. A *training step* is what each library's own training loop
does per gradient step, batch sampling included: ours ``buffer.sample`` + ``algo.update``; d3rlpy
``dataset.sample_transition_batch`` + ``algo.update`` (its ``fit`` loop); CORL ``buffer.sample`` +
``awac.update``. The workers run in alternating chunks of ~0.25 s (never at the same time), so a
machine shared with other jobs slows every contender alike; the table shows medians over the chunks.

The ceiling column is this machine's matmul rate on our update's own matmuls (replayed in the same run)
over our update's counted FLOPs (see ``benchmarks/speed.py``); ``GFLOP`` is the matmul work each
library's step really executes (``torch.utils.flop_counter``), so a library that repeats forward passes
shows it there. AWR has no d3rlpy counterpart; it is compared with a straightforward PyTorch version of
itself (defined in this file: plain modules and optimizers, numpy batch gathering with a host->tensor
copy per step, one ``.item()`` per metric, the authors' reverse Python loop for the TD(lambda) returns).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OBS, ACT = 17, 6  # HalfCheetah sizes
ROWS = 100_000

# (algorithm, batch, our config overrides, d3rlpy settings)
CASES = [
    ("awac", 256, {"actor_hidden": (256, 256), "critic_hidden": (256, 256)}, {}),
    ("awac", 1024, {"actor_hidden": (256, 256), "critic_hidden": (256, 256)}, {}),
    ("sacfd", 256, {"actor_hidden": (256, 256), "critic_hidden": (256, 256)}, {}),
    ("bc", 256, {"actor_hidden": (256, 256)}, {}),
    ("bear", 256, {"actor_hidden": (256, 256), "critic_hidden": (256, 256), "vae_hidden": (750, 750),
                   "num_target_samples": 10, "num_mmd_samples": 4}, {}),
    ("awr", 256, {}, {}),
]
CORL_SIZES = {"actor_hidden": (256, 256, 256), "critic_hidden": (256, 256, 256)}  # CORL AWAC: 3 x 256


# ============================================================================================================
# workers (run in their own interpreter; only numpy + torch + the library they measure)
# ============================================================================================================
def synthetic(seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((ROWS, OBS)).astype(np.float32)
    act = rng.uniform(-1, 1, (ROWS, ACT)).astype(np.float32)
    rew = rng.standard_normal(ROWS).astype(np.float32)
    terminals = (rng.random(ROWS) < 0.01).astype(np.float32)
    timeouts = np.zeros(ROWS, np.float32)
    timeouts[999::1000] = 1.0
    timeouts[terminals > 0] = 0.0
    timeouts[-1] = 1.0 - terminals[-1]
    next_obs = np.roll(obs, -1, axis=0)
    return obs, act, rew, next_obs, terminals, timeouts


def _flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops() / 1e9


def build_ours(spec):
    """Our training step (and, for the ceiling, the replay of its matmuls)."""
    sys.path.insert(0, ROOT)
    import torch

    from benchmarks import speed
    from benchmarks.buffer import ReplayBuffer

    algo_name, batch, over = spec["algo"], spec["batch"], spec["overrides"]
    algo = speed.make_algo(algo_name, OBS, ACT, batch, "cpu", over)
    obs, act, rew, next_obs, term, timeout = synthetic()
    buf = ReplayBuffer(OBS, ACT, algo.buffer_capacity(ROWS, 0), with_returns=algo.needs_returns)
    buf.add_many(obs, act, rew, next_obs, term, timeout > 0)
    algo.set_speed_options(compile=spec.get("compile", False))
    speed._steady_state(algo)
    step = speed.training_step(algo, buf, batch)
    for _ in range(6 if spec.get("compile") else 3):
        step()
    info = {"gflop": speed.count_flops(algo, batch, buf) / 1e9, **speed.network_layers(algo)}
    if spec.get("compile"):
        fns = [getattr(algo, n) for n in algo.compilable]
        info["compile_failed"] = any(getattr(f, "failed", True) for f in fns if hasattr(f, "compiled"))
    fns = {"step": step}
    if spec.get("ceiling"):
        parts = speed.record_matmuls(algo_name, OBS, ACT, batch, "cpu", over, buf)
        replays = [(speed.make_replay(calls, torch.device("cpu")), w) for calls, w in parts]
        executed = sum(w * sum(speed.call_flops(f, s) for f, s, _ in calls) for calls, w in parts)
        info["gflop_executed"] = executed / 1e9
        info["peak_matmul_gflops"] = speed.peak_matmul_gflops(batch, torch.device("cpu"))

        n_updates = 1 if len(replays) == 1 else algo.cfg.critic_steps + algo.cfg.actor_steps  # AWR: a block
        counts = [max(1, round(w * n_updates)) for _, w in replays]

        def replay():  # the matmuls of n_updates training steps
            for (fn, _), k in zip(replays, counts, strict=True):
                for _ in range(k):
                    fn()

        info["replay_updates"] = n_updates
        fns["replay"] = replay
    return fns, info


def build_d3rlpy(spec):
    import d3rlpy
    from d3rlpy.models.encoders import VectorEncoderFactory

    obs, act, rew, _, term, timeout = synthetic()
    ds = d3rlpy.dataset.MDPDataset(obs, act, rew, term, timeout)
    o = spec["overrides"]
    enc = lambda h: VectorEncoderFactory(list(h))  # noqa: E731
    name, batch = spec["algo"], spec["batch"]
    common = dict(batch_size=batch, compile_graph=bool(spec.get("compile")))
    if name == "awac":
        cfg = d3rlpy.algos.AWACConfig(actor_encoder_factory=enc(o["actor_hidden"]),
                                      critic_encoder_factory=enc(o["critic_hidden"]), **common)
    elif name == "sacfd":
        cfg = d3rlpy.algos.SACConfig(actor_encoder_factory=enc(o["actor_hidden"]),
                                     critic_encoder_factory=enc(o["critic_hidden"]), **common)
    elif name == "bc":  # stochastic: a Gaussian policy fitted by likelihood, like ours
        cfg = d3rlpy.algos.BCConfig(encoder_factory=enc(o["actor_hidden"]), policy_type="stochastic", **common)
    elif name == "bear":  # past the warm-up, like ours
        cfg = d3rlpy.algos.BEARConfig(actor_encoder_factory=enc(o["actor_hidden"]),
                                      critic_encoder_factory=enc(o["critic_hidden"]),
                                      imitator_encoder_factory=enc(o["vae_hidden"]),
                                      n_target_samples=o["num_target_samples"],
                                      n_mmd_action_samples=o["num_mmd_samples"], warmup_steps=0, **common)
    else:
        raise SystemExit(f"d3rlpy has no {name}")
    algo = cfg.create(device="cpu:0")
    algo.build_with_dataset(ds)

    def step():
        algo.update(ds.sample_transition_batch(batch))

    for _ in range(6 if spec.get("compile") else 3):
        step()
    return {"step": step}, {"gflop_executed": _flops(step), "d3rlpy": d3rlpy.__version__}


def build_corl(spec):
    """CORL's algorithms/finetune/awac.py (or offline/awac.py) from a local checkout, imported by path.

    Built the way CORL's ``train()`` builds it, with the defaults of CORL's own ``TrainConfig``: ``set_seed``
    (finetune: ``torch.use_deterministic_algorithms(True)``), ``Actor``/``Critic`` of ``hidden_dim`` (3 x 256),
    one Adam per network at ``learning_rate`` (3e-4), ``AdvantageWeightedActorCritic(gamma, tau, awac_lambda)``
    (0.99, 5e-3, 1.0; ``exp_adv_max`` its default 100), its ``ReplayBuffer`` loaded with ``load_d4rl_dataset``
    after CORL's state normalization. A step is the body of CORL's loop: ``replay_buffer.sample(batch_size)``,
    ``[b.to(device) for b in batch]``, ``awac.update(batch)``. Not measured (CORL's loop also does them):
    tqdm's ``trange``, the per-step ``update_result`` bookkeeping and ``wandb.log``, ``eval_actor`` every
    ``eval_frequency`` (1000) steps, and in finetune's online phase one env step + ``add_transition`` per step
    (what is measured is its offline phase). Differences: ``device`` is "cpu" here (CORL's default is "cuda"),
    the buffer holds the ``ROWS`` synthetic transitions instead of ``buffer_size`` (20M) rows (``sample`` only
    draws from the loaded rows, so a step costs the same)."""
    import importlib.util
    import types

    import numpy as np
    import torch

    for missing in ("d4rl", "wandb", "pyrallis", "gym"):  # imported at module top, unused by what is measured
        try:
            __import__(missing)
        except ImportError:
            stub = sys.modules[missing] = types.ModuleType(missing)
            if missing == "pyrallis":  # ``@pyrallis.wrap()`` on train()
                stub.wrap = lambda *a, **k: (lambda f: f)
            if missing == "gym":  # ``gym.Env`` in annotations evaluated at import
                stub.Env = type("Env", (), {})
    mod_spec = importlib.util.spec_from_file_location("corl_awac", spec["corl"])
    corl = importlib.util.module_from_spec(mod_spec)
    sys.modules["corl_awac"] = corl
    mod_spec.loader.exec_module(corl)
    cfg = corl.TrainConfig()  # CORL's defaults (what pyrallis gives without arguments)
    device = "cpu"

    corl.set_seed(cfg.seed, None, deterministic_torch=cfg.deterministic_torch)
    obs, act, rew, next_obs, term, _ = synthetic()
    mean, std = corl.compute_mean_std(obs, eps=1e-3)
    data = {"observations": corl.normalize_states(obs, mean, std), "actions": act, "rewards": rew,
            "next_observations": corl.normalize_states(next_obs, mean, std), "terminals": term.astype(np.float32)}
    buf = corl.ReplayBuffer(OBS, ACT, ROWS, device)
    buf.load_d4rl_dataset(data)

    kw = {"state_dim": OBS, "action_dim": ACT, "hidden_dim": cfg.hidden_dim}
    actor = corl.Actor(**kw).to(device)
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=cfg.learning_rate)
    critic_1, critic_2 = corl.Critic(**kw).to(device), corl.Critic(**kw).to(device)
    critic_1_optimizer = torch.optim.Adam(critic_1.parameters(), lr=cfg.learning_rate)
    critic_2_optimizer = torch.optim.Adam(critic_2.parameters(), lr=cfg.learning_rate)
    awac = corl.AdvantageWeightedActorCritic(
        actor=actor, actor_optimizer=actor_optimizer, critic_1=critic_1, critic_1_optimizer=critic_1_optimizer,
        critic_2=critic_2, critic_2_optimizer=critic_2_optimizer, gamma=cfg.gamma, tau=cfg.tau,
        awac_lambda=cfg.awac_lambda)
    batch_size = spec["batch"]  # CORL's default cfg.batch_size is 256, the batch of this case

    def step():
        batch = buf.sample(batch_size)
        batch = [b.to(device) for b in batch]
        awac.update(batch)

    for _ in range(3):
        step()
    return {"step": step}, {"gflop_executed": _flops(step)}


def build_plain_awr(spec):
    """A straightforward AWR (same rule, config and schedule as ours; see the module docstring)."""
    import numpy as np
    import torch
    from torch import nn

    sys.path.insert(0, ROOT)
    import algorithms

    c = algorithms.resolve_config("awr")
    obs, act, rew, next_obs, term, timeout = synthetic()
    n = min(ROWS, c.buffer_size)
    obs, act, rew, next_obs, term, timeout = (x[-n:] for x in (obs, act, rew, next_obs, term, timeout))

    def net(sizes, out):
        layers, last = [], OBS
        for h in sizes:
            layers += [nn.Linear(last, h), nn.ReLU()]
            last = h
        return nn.Sequential(*layers, nn.Linear(last, out))

    torch.manual_seed(0)
    actor, critic = net(c.actor_hidden, ACT), net(c.critic_hidden, 1)
    log_std = torch.full((ACT,), float(np.log(c.action_std)))
    a_opt = torch.optim.SGD(actor.parameters(), lr=c.actor_lr, momentum=c.actor_momentum)
    v_opt = torch.optim.SGD(critic.parameters(), lr=c.critic_lr, momentum=c.critic_momentum)
    mean_o, std_o = obs.mean(0), np.maximum(obs.std(0), c.normalizer_eps)
    scale = 1.0 / (1.0 - c.gamma)
    state = {"i": 0, "ret": np.zeros(n, np.float32), "adv_mean": 0.0, "adv_std": 1.0}
    rng = np.random.default_rng(0)

    def values(x):
        with torch.no_grad():
            return critic(torch.as_tensor((x - mean_o) / std_o)).squeeze(-1).numpy() * scale

    def refresh():  # rl_util.compute_return: a reverse loop per path, bootstrapping at cut episodes
        v, v_next = values(obs), values(next_obs)
        ret = state["ret"]
        nxt = 0.0
        for t in reversed(range(n)):
            end = t == n - 1 or timeout[t] > 0 or term[t] > 0
            if end:
                nxt = rew[t] + c.gamma * (0.0 if term[t] > 0 else v_next[t])
            else:
                nxt = rew[t] + c.gamma * ((1 - c.td_lambda) * v[t + 1] + c.td_lambda * nxt)
            ret[t] = nxt
        adv = ret - v
        state["adv_mean"], state["adv_std"] = float(adv.mean()), float(adv.std())

    def step():
        pos = state["i"] % (c.critic_steps + c.actor_steps)
        state["i"] += 1
        if pos == 0:
            refresh()
        idx = rng.integers(0, n, spec["batch"])
        o = torch.as_tensor((obs[idx] - mean_o) / std_o)
        r = torch.as_tensor(state["ret"][idx])
        if pos < c.critic_steps:
            loss = 0.5 * (r / scale - critic(o).squeeze(-1)).pow(2).mean()
            v_opt.zero_grad()
            loss.backward()
            v_opt.step()
            _ = (loss.item(), r.mean().item())
            if pos == c.critic_steps - 1:
                refresh()
            return
        with torch.no_grad():
            z = (r - critic(o).squeeze(-1) * scale - state["adv_mean"]) / (state["adv_std"] + c.adv_eps)
            w = torch.exp(z / c.beta).clamp(max=c.weight_clip)
        mean = actor(o)
        logp = (-0.5 * ((torch.as_tensor(act[idx]) - mean) / log_std.exp()).pow(2) - log_std
                - 0.5 * np.log(2 * np.pi)).sum(-1)
        bound = 0.5 * (mean.abs() - 1.0).clamp(min=0).pow(2).sum(-1).mean()
        loss = -(w * logp).mean() + c.action_bound_weight * bound
        a_opt.zero_grad()
        loss.backward()
        a_opt.step()
        _ = (loss.item(), bound.item(), w.mean().item(), w.max().item())

    for _ in range(c.critic_steps + c.actor_steps):
        step()
    return {"step": step}, {}


BUILDERS = {"ours": build_ours, "d3rlpy": build_d3rlpy, "corl": build_corl, "plain": build_plain_awr}


def worker(spec_json: str) -> None:
    """Line protocol on stdin/stdout: 'run NAME CALLS' -> seconds; 'quit'."""
    proto = os.fdopen(os.dup(1), "w")  # the protocol keeps the real stdout; library prints go to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import torch

    spec = json.loads(spec_json)
    torch.set_num_threads(int(spec.get("threads", 1)))
    import warnings

    warnings.filterwarnings("ignore")
    fns, info = BUILDERS[spec["kind"]](spec)
    print("READY " + json.dumps(info), file=proto, flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        fn, calls = fns[parts[1]], int(parts[2])
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        print(f"{time.perf_counter() - t0:.9f}", file=proto, flush=True)


# ============================================================================================================
# the orchestrator
# ============================================================================================================
class Worker:
    def __init__(self, python: str, spec: dict):
        n = str(spec.get("threads", 1))
        env = {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "PYTHONWARNINGS": "ignore"}
        self.p = subprocess.Popen([python, os.path.abspath(__file__), "--worker", json.dumps(spec)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        line = self.p.stdout.readline()
        if not line.startswith("READY"):
            self.p.kill()
            raise RuntimeError(f"worker {spec['kind']} failed to start (see its stderr above)")
        self.info = json.loads(line[6:])

    def start(self, name: str, calls: int) -> None:
        self.p.stdin.write(f"run {name} {calls}\n")
        self.p.stdin.flush()

    def result(self) -> float:
        return float(self.p.stdout.readline())

    def run(self, name: str, calls: int) -> float:
        self.start(name, calls)
        return self.result()

    def close(self) -> None:
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
            self.p.wait(timeout=30)
        except Exception:
            self.p.kill()


def side_by_side(contenders: dict[str, tuple[Worker, str]], seconds: float, chunk: float = 0.25,
                 whole: dict[str, int] | None = None) -> dict[str, float]:
    """Alternate chunks of every contender; median seconds per call of each.

    ``whole``: fixed calls per chunk for some contenders (AWR: one whole block of updates)."""
    calls = {}
    for k, (w, fn) in contenders.items():
        dt = w.run(fn, 1)
        calls[k] = (whole or {}).get(k) or max(1, int(chunk / max(dt, 1e-6)))
    per_call = {k: [] for k in contenders}
    spent = dict.fromkeys(contenders, 0.0)
    while min(spent.values()) < seconds or min(len(v) for v in per_call.values()) < 3:
        for k, (w, fn) in contenders.items():
            dt = w.run(fn, calls[k])
            per_call[k].append(dt / calls[k])
            spent[k] += dt
    return {k: statistics.median(v) for k, v in per_call.items()}


def throughput(seconds: float, batch: int = 256) -> dict[str, float]:
    """Whole-machine work: one 2-thread process vs two 1-thread processes running at the same time."""
    spec = {"algo": "awac", "batch": batch, "overrides": CASES[0][2], "kind": "ours"}
    one = Worker(sys.executable, {**spec, "threads": 2})
    n = max(1, int(seconds / one.run("step", 3) * 3))
    rate_one = n / one.run("step", n)
    one.close()
    pair = [Worker(sys.executable, {**spec, "threads": 1}) for _ in range(2)]
    m = max(1, int(seconds / pair[0].run("step", 3) * 3))
    for w in pair:
        w.start("step", m)
    times = [w.result() for w in pair]
    for w in pair:
        w.close()
    rate_pair = sum(m / t for t in times)
    return {"one_2thread_updates_per_s": rate_one, "two_1thread_updates_per_s": rate_pair,
            "ratio": rate_pair / rate_one}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--d3rlpy-python", default=sys.executable,
                    help="interpreter with d3rlpy==2.8.1 (default: this one)")
    ap.add_argument("--corl", help="path to CORL's algorithms/finetune/awac.py (a local checkout)")
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per contender and case")
    ap.add_argument("--algos", help="comma-separated subset of awac,sacfd,bc,bear,awr")
    ap.add_argument("--compile", action="store_true", help="also measure our opt-in torch.compile path")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--throughput", action="store_true",
                    help="only measure whole-machine throughput: 1 process x 2 threads vs 2 x 1 (AWAC, b256)")
    a = ap.parse_args()
    if a.worker:
        worker(a.worker)
        return 0

    if a.throughput:
        r = throughput(a.seconds * 4)
        print(f"AWAC b256 [256, 256] on {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}: one process x "
              f"2 threads {r['one_2thread_updates_per_s']:.1f} updates/s; two processes x 1 thread "
              f"{r['two_1thread_updates_per_s']:.1f} updates/s together ({r['ratio']:.2f}x)")
        return 0
    wanted = set(a.algos.split(",")) if a.algos else None
    rows = []
    load0 = os.getloadavg()[0]
    t_start = time.time()
    cases = [c for c in CASES if wanted is None or c[0] in wanted]
    if a.corl or wanted is None or "awac" in wanted:
        cases.append(("awac", 256, CORL_SIZES, {"corl": True}))
    for algo, batch, over, extra in cases:
        spec = {"algo": algo, "batch": batch, "overrides": over}
        workers: dict[str, tuple[Worker, str]] = {}
        ours = Worker(sys.executable, {**spec, "kind": "ours", "ceiling": True})
        workers["ours"] = (ours, "step")
        workers["ceiling"] = (ours, "replay")
        notes = []
        if a.compile:
            try:
                workers["ours_compiled"] = (Worker(sys.executable, {**spec, "kind": "ours", "compile": True}), "step")
            except RuntimeError as e:
                notes.append(str(e))
        other = None
        if extra.get("corl"):
            if a.corl:
                try:
                    other = ("CORL", Worker(sys.executable, {**spec, "kind": "corl", "corl": a.corl}))
                except RuntimeError as e:
                    notes.append(f"CORL not measured: {e}")
            else:
                notes.append("CORL not measured: pass --corl PATH to a local checkout of CORL's "
                             "algorithms/finetune/awac.py (its code is not vendored or fetched here)")
        elif algo == "awr":
            other = ("straightforward", Worker(sys.executable, {**spec, "kind": "plain"}))
        else:
            try:
                other = ("d3rlpy", Worker(a.d3rlpy_python, {**spec, "kind": "d3rlpy"}))
            except (RuntimeError, OSError) as e:
                notes.append(f"d3rlpy not measured: {e}")
        if other:
            workers[other[0]] = (other[1], "step")
        whole = {}
        if algo == "awr":  # whole blocks (value + policy steps, two refreshes) per chunk
            sys.path.insert(0, ROOT)
            import algorithms

            c = algorithms.resolve_config("awr")
            whole = {k: c.critic_steps + c.actor_steps for k in workers if k != "ceiling"}
        # the ceiling worker's "replay" is the matmuls of one update (AWR: of one whole block), interleaved
        # with the contenders like everything else
        med = side_by_side(workers, a.seconds, whole=whole)
        info = ours.info
        replay_updates = info["replay_updates"]
        ceiling = replay_updates / med["ceiling"]
        row = {"algo": algo, "batch": batch, "actor_layers": info.get("actor_layers"),
               "critic_layers": info.get("critic_layers"), "gflop_per_update": round(info["gflop"], 4),
               "ours_updates_per_s": round(1 / med["ours"], 1),
               "ceiling_updates_per_s": round(ceiling, 1),
               "ceiling_updates_per_s_peak": round(info["peak_matmul_gflops"] / info["gflop"], 1),
               "ours_pct_of_ceiling": round(100 * (1 / med["ours"]) / ceiling, 1),
               "notes": notes}
        if "ours_compiled" in med:
            row["ours_compiled_updates_per_s"] = round(1 / med["ours_compiled"], 1)
            row["ours_compiled_pct_of_ceiling"] = round(100 * (1 / med["ours_compiled"]) / ceiling, 1)
        if other and other[0] in med:
            row["other"] = other[0]
            row["other_updates_per_s"] = round(1 / med[other[0]], 1)
            row["speedup"] = round(med[other[0]] / med["ours"], 2)
            row["other_gflop_executed"] = round(other[1].info.get("gflop_executed", float("nan")), 4)
        rows.append(row)
        for w, _ in {id(w): (w, f) for w, f in workers.values()}.values():
            w.close()
        print(f"  measured {algo} b{batch} ({row.get('other', '-')}): ours {row['ours_updates_per_s']}/s",
              file=sys.stderr)

    load1 = os.getloadavg()[0]
    print(f"\nTraining steps per second (batch sampling included), one thread each, HalfCheetah sizes "
          f"(obs {OBS}, act {ACT}), float32; {os.cpu_count()} CPUs, load average {load0:.1f} -> {load1:.1f}, "
          f"{time.time() - t_start:.0f} s.\n")
    head = ["algorithm", "batch", "networks", "GFLOP/step (ours; other)", "ours /s"]
    if a.compile:
        head.append("ours compiled /s")
    head += ["other", "other /s", "ours / other", "ceiling /s (peak)", "ours % of ceiling"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        nets = f"actor {r['actor_layers']}, critic {r['critic_layers']}" if r["critic_layers"] else \
            f"actor {r['actor_layers']}"
        gf = f"{r['gflop_per_update']:.3f}"
        if "other_gflop_executed" in r:
            gf += f"; {r['other_gflop_executed']:.3f}"
        cells = [r["algo"], str(r["batch"]), nets, gf, f"{r['ours_updates_per_s']:.1f}"]
        if a.compile:
            cells.append(f"{r.get('ours_compiled_updates_per_s', float('nan')):.1f}")
        if "other" in r:
            cells += [r["other"], f"{r['other_updates_per_s']:.1f}", f"{r['speedup']:.2f}x"]
        else:
            cells += ["-", "-", "-"]
        cells += [f"{r['ceiling_updates_per_s']:.1f} ({r['ceiling_updates_per_s_peak']:.1f})",
                  f"{r['ours_pct_of_ceiling']:.0f}%"]
        print("| " + " | ".join(cells) + " |")
    for r in rows:
        for n in r["notes"]:
            print(f"\nnote ({r['algo']} b{r['batch']}): {n}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": rows, "load": [load0, load1], "cpus": os.cpu_count()}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
