#!/usr/bin/env python
"""Side-by-side training-step speed: awac-bench against d3rlpy 2.8.1, CORL's AWAC (a local copy) and, with
``--baseline ROOT``, another checkout of awac-bench (e.g. ``git worktree add /tmp/before OLD_COMMIT``).

    python scripts/compare_speed.py --d3rlpy-python /tmp/d3venv/bin/python --corl ~/CORL/algorithms/finetune/awac.py
    python scripts/compare_speed.py --baseline /tmp/before --no-other

Each contender is a worker process (one torch thread) on the same synthetic data (``benchmarks.commands.speed``),
network
sizes and batch size; a step is what its library's training loop does per gradient step, sampling included
(ours: ``benchmarks.commands.speed.training_step``; d3rlpy: ``sample_transition_batch`` + ``update``; CORL: ``sample`` +
``update``). Workers run in alternating ~0.25 s chunks, so load slows all alike; the table shows medians.
AWR and IQL have no d3rlpy counterpart (use ``--baseline``); ceilings are ``awac-bench speed``'s business.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OBS, ACT = 17, 6  # HalfCheetah sizes
ROWS = 100_000

# (algorithm, batch, our config overrides, extra)
CASES = [
    ("awac", 256, {"actor_hidden": (256, 256), "critic_hidden": (256, 256)}, {}),
    ("awac", 1024, {"actor_hidden": (256, 256), "critic_hidden": (256, 256)}, {}),
    ("sacfd", 256, {"actor_hidden": (256, 256), "critic_hidden": (256, 256)}, {}),
    ("bc", 256, {"actor_hidden": (256, 256)}, {}),
    ("bear", 256, {"actor_hidden": (256, 256), "critic_hidden": (256, 256), "vae_hidden": (750, 750),
                   "num_target_samples": 10, "num_mmd_samples": 4}, {}),
    ("awr", 256, {}, {}),
    ("iql", 256, {}, {}),
    # CQL and Cal-QL at d3rlpy's default sizes (256-256 encoders, 10 sampled actions; ours: its defaults otherwise)
    ("cql", 256, {"actor_hidden": (256, 256), "critic_hidden": (256, 256), "cql_n_actions": 10}, {}),
    ("calql", 256, {"actor_hidden": (256, 256), "critic_hidden": (256, 256), "cql_n_actions": 10}, {}),
]
CORL_SIZES = {"actor_hidden": (256, 256, 256), "critic_hidden": (256, 256, 256)}  # CORL AWAC: 3 x 256


# ============================================================================================================
# workers (run in their own interpreter; only numpy + torch + the library they measure)
# ============================================================================================================
def _speed():
    """This checkout's ``benchmarks/commands/speed.py`` loaded by path (numpy only at import): a baseline worker imports
    the *other* checkout's ``algorithms`` and ``benchmarks`` packages, a d3rlpy worker neither."""
    if "awac_bench_speed" not in sys.modules:
        path = os.path.join(ROOT, "benchmarks", "commands", "speed.py")
        spec = importlib.util.spec_from_file_location("awac_bench_speed", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["awac_bench_speed"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["awac_bench_speed"]


def synthetic():
    return _speed().synthetic_data(OBS, ACT, ROWS)


def _flops(fn, calls: int = 1) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        for _ in range(calls):
            fn()
    return fc.get_total_flops() / calls / 1e9


def build_ours(spec):
    """Our training step from this checkout or ``spec["root"]`` (the baseline), through the public interface
    only (``algorithms.make``, ``ReplayBuffer``, ``prepare_updates``/``update``/``sample``): an older checkout runs
    too."""
    root = spec.get("root") or ROOT
    sys.path.insert(0, root)
    import torch

    import algorithms

    try:
        from benchmarks.data.buffer import ReplayBuffer
    except ImportError:  # a baseline checkout from before benchmarks/ had sub-packages
        from benchmarks.buffer import ReplayBuffer

    assert os.path.samefile(os.path.dirname(os.path.dirname(algorithms.__file__)), root), algorithms.__file__
    torch.manual_seed(0)
    algo = algorithms.make(spec["algo"], OBS, ACT, overrides={**spec["overrides"], "batch_size": spec["batch"]})
    if hasattr(algo, "past_warmup"):
        algo.past_warmup()
    else:  # a checkout from before the hook: the same skip (BEAR's warm-up, SACfD-prior's BC steps)
        cfg = algo.cfg
        algo.grad_steps = max(int(getattr(cfg, "warmup_steps", 0)), int(getattr(cfg, "bc_init_steps", 0)))
    if hasattr(algo, "batch_extras"):
        buf = _speed().synthetic_buffer(OBS, ACT, ROWS, "cpu", algo, algo.buffer_capacity(ROWS, 0))
    else:  # a checkout from before named buffer columns
        buf = ReplayBuffer(OBS, ACT, algo.buffer_capacity(ROWS, 0), with_returns=algo.needs_returns)
        buf.add_many(*synthetic())
    step, block = _speed().training_step(algo, buf, spec["batch"])
    step()
    gflop = _flops(step, block)
    for _ in range(max(block, 3)):
        step()
    info = {"gflop_executed": gflop, "block": block,
            "networks": {} if spec.get("root") else _speed().network_widths(algo)}
    return {"step": step}, info


def build_d3rlpy(spec):
    import d3rlpy
    import numpy as np
    from d3rlpy.models.encoders import VectorEncoderFactory

    obs, act, rew, _, term, timeout = synthetic()
    ds = d3rlpy.dataset.MDPDataset(obs, act, rew, term, timeout.astype(np.float32))
    o = spec["overrides"]
    enc = lambda h: VectorEncoderFactory(list(h))  # noqa: E731
    name, batch = spec["algo"], spec["batch"]
    common = dict(batch_size=batch)
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
    elif name in ("cql", "calql"):  # d3rlpy CQLConfig / CalQLConfig: n_action_samples 10 by default, as ours
        kind = d3rlpy.algos.CQLConfig if name == "cql" else d3rlpy.algos.CalQLConfig
        cfg = kind(actor_encoder_factory=enc(o["actor_hidden"]), critic_encoder_factory=enc(o["critic_hidden"]),
                   n_action_samples=o["cql_n_actions"], **common)
    else:
        raise SystemExit(f"d3rlpy has no {name}")
    algo = cfg.create(device="cpu:0")
    algo.build_with_dataset(ds)

    def step():
        algo.update(ds.sample_transition_batch(batch))

    for _ in range(3):
        step()
    return {"step": step}, {"gflop_executed": _flops(step), "d3rlpy": d3rlpy.__version__}


def build_corl(spec):
    """CORL's algorithms/finetune/awac.py from a local checkout, imported by path and built as its ``train()``
    builds it with its ``TrainConfig`` defaults (set_seed, 3 x 256 networks, one Adam per network, state
    normalisation, its ReplayBuffer). A step is its loop's body: ``sample``, ``.to(device)``, ``update``; not
    measured: tqdm, wandb, evaluation, the online env step. Device "cpu" (CORL's default is "cuda")."""
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


BUILDERS = {"ours": build_ours, "d3rlpy": build_d3rlpy, "corl": build_corl}


def worker(spec_json: str) -> None:
    """Line protocol on stdin/stdout: 'run NAME CALLS' -> seconds; 'quit'."""
    proto = os.fdopen(os.dup(1), "w")  # the protocol keeps the real stdout; library prints go to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import warnings

    import torch

    spec = json.loads(spec_json)
    torch.set_num_threads(int(spec.get("threads", 1)))
    warnings.filterwarnings("ignore")
    fns, info = BUILDERS[spec["kind"]](spec)
    print("READY " + json.dumps(info), file=proto, flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        print(f"{_speed().timed(fns[parts[1]], int(parts[2])):.9f}", file=proto, flush=True)


# ============================================================================================================
# the orchestrator
# ============================================================================================================
class Worker:
    def __init__(self, python: str, spec: dict):
        n = str(spec.get("threads", 1))
        env = {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "PYTHONWARNINGS": "ignore"}
        if spec.get("root"):  # the baseline: its packages first, run from its directory
            env["PYTHONPATH"] = spec["root"]
        self.p = subprocess.Popen([python, os.path.abspath(__file__), "--worker", json.dumps(spec)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                  cwd=spec.get("root") or ROOT)
        line = self.p.stdout.readline()
        if not line.startswith("READY"):
            self.p.kill()
            raise RuntimeError(f"worker {spec['kind']} failed to start (see its stderr above)")
        self.info = json.loads(line[6:])

    def run(self, name: str, calls: int) -> float:
        self.p.stdin.write(f"run {name} {calls}\n")
        self.p.stdin.flush()
        return float(self.p.stdout.readline())

    def close(self) -> None:
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
            self.p.wait(timeout=30)
        except Exception:
            self.p.kill()


def side_by_side(workers: dict[str, Worker], seconds: float, chunk: float = 0.25) -> dict[str, float]:
    """Alternate chunks of every contender's step (whole blocks where it reports one); median seconds per step."""
    calls = {k: w.info.get("block", 1) if w.info.get("block", 1) > 1 else max(1, int(chunk / max(w.run("step", 1),
                                                                                                1e-6)))
             for k, w in workers.items()}
    per_call: dict[str, list[float]] = {k: [] for k in workers}
    spent = dict.fromkeys(workers, 0.0)
    while min(spent.values()) < seconds or min(len(v) for v in per_call.values()) < 3:
        for k, w in workers.items():
            dt = w.run("step", calls[k])
            per_call[k].append(dt / calls[k])
            spent[k] += dt
    return {k: statistics.median(v) for k, v in per_call.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--d3rlpy-python", default=sys.executable, help="interpreter with d3rlpy==2.8.1 (default: this)")
    ap.add_argument("--corl", help="path to CORL's algorithms/finetune/awac.py (a local checkout)")
    ap.add_argument("--baseline", metavar="ROOT", help="another awac-bench checkout to compare with (same python)")
    ap.add_argument("--no-other", action="store_true", help="skip d3rlpy, CORL and the straightforward AWR")
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per contender and case")
    ap.add_argument("--algos", help="comma-separated subset of the cases' algorithms")
    ap.add_argument("--json", help="also write the raw results here")
    a = ap.parse_args()
    if a.worker:
        worker(a.worker)
        return 0

    wanted = set(a.algos.split(",")) if a.algos else None
    cases = [c for c in CASES if wanted is None or c[0] in wanted]
    if not a.no_other and (a.corl or wanted is None or "awac" in wanted):
        cases.append(("awac", 256, CORL_SIZES, {"corl": True}))
    rows, load0, t_start = [], os.getloadavg()[0], time.time()
    for algo, batch, over, extra in cases:
        spec = {"algo": algo, "batch": batch, "overrides": over}
        workers, notes, other = {"ours": Worker(sys.executable, {**spec, "kind": "ours"})}, [], None
        starts = []
        if a.baseline:
            starts.append(("baseline", sys.executable, {**spec, "kind": "ours", "root": os.path.abspath(a.baseline)}))
        if a.no_other:
            pass
        elif extra.get("corl"):
            if a.corl:
                other = "CORL"
                starts.append((other, sys.executable, {**spec, "kind": "corl", "corl": a.corl}))
            else:
                notes.append("CORL not measured: pass --corl PATH to a local checkout of CORL's "
                             "algorithms/finetune/awac.py (its code is not vendored or fetched here)")
        elif algo not in ("awr", "iql"):  # d3rlpy has neither
            other = "d3rlpy"
            starts.append((other, a.d3rlpy_python, {**spec, "kind": "d3rlpy"}))
        for name, python, s in starts:
            try:
                workers[name] = Worker(python, s)
            except (RuntimeError, OSError) as e:
                notes.append(f"{name} not measured: {e}")
        med = side_by_side(workers, a.seconds)
        info = workers["ours"].info
        row = {"algo": algo, "batch": batch, "networks": info.get("networks"),
               "gflop_per_update": round(info["gflop_executed"], 4), "ours_updates_per_s": round(1 / med["ours"], 1),
               "notes": notes}
        for name in workers:
            if name != "ours":
                row[f"{name}_updates_per_s"] = round(1 / med[name], 1)
                row[f"ours_over_{name}"] = round(med[name] / med["ours"], 3)
                row[f"{name}_gflop_executed"] = round(workers[name].info.get("gflop_executed", float("nan")), 4)
        rows.append(row)
        for w in workers.values():
            w.close()
        print(f"  measured {algo} b{batch}: " + ", ".join(f"{k} {1 / v:.1f}/s" for k, v in med.items()),
              file=sys.stderr)

    print(f"\nTraining steps per second (batch sampling included), one thread each, HalfCheetah sizes (obs {OBS}, "
          f"act {ACT}), float32; {os.cpu_count()} CPUs, load average {load0:.1f} -> {os.getloadavg()[0]:.1f}, "
          f"{time.time() - t_start:.0f} s.\n")
    names = [n for n in ("baseline", "d3rlpy", "CORL") if any(f"{n}_updates_per_s" in r for r in rows)]
    head = ["algorithm", "batch", "GFLOP/step (ours)", "ours /s"]
    head += [h for n in names for h in (f"{n} /s", f"ours / {n}")]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        corl = len((r["networks"] or {}).get("actor.net", [])) == 5
        cells = [r["algo"] + (" (CORL sizes)" if corl else ""), str(r["batch"]), f"{r['gflop_per_update']:.3f}",
                 f"{r['ours_updates_per_s']:.1f}"]
        for n in names:
            if f"{n}_updates_per_s" in r:
                cells += [f"{r[f'{n}_updates_per_s']:.1f}", f"{r[f'ours_over_{n}']:.2f}x"]
            else:
                cells += ["-", "-"]
        print("| " + " | ".join(cells) + " |")
    for r in rows:
        for n in r["notes"]:
            print(f"\nnote ({r['algo']} b{r['batch']}): {n}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": rows, "cpus": os.cpu_count()}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
