"""One training step (batch sampling included) of every algorithm, HalfCheetah sizes, float32, one thread."""

import pytest

from benchmarks import speed

from .conftest import ACT, OBS

CASES = [("awac", 256), ("awac", 1024), ("sacfd", 256), ("bc", 256), ("bear", 256), ("awr", 256)]


@pytest.mark.parametrize("name, batch", CASES, ids=[f"{n}-b{b}" for n, b in CASES])
def test_training_step(benchmark, name, batch, halfcheetah_buffer, awr_buffer):
    buffer = awr_buffer if name == "awr" else halfcheetah_buffer
    algo = speed.make_algo(name, OBS, ACT, batch, "cpu")
    speed._steady_state(algo)  # BEAR past its warm-up
    step = speed.training_step(algo, buffer, batch)
    for _ in range(3):
        step()
    flops = speed.count_flops(algo, batch, buffer)
    benchmark.extra_info.update({"gflop_per_update": flops / 1e9, **speed.network_layers(algo)})
    rounds = 1 if name == "awr" else 20
    iterations = algo.online_rhythm()[1] if name == "awr" else 5  # AWR: whole blocks (value + policy steps)
    benchmark.pedantic(step, rounds=rounds if name != "awr" else 3, iterations=iterations, warmup_rounds=1)
    if benchmark.stats is not None:  # None under --benchmark-disable (a run-once smoke check)
        benchmark.extra_info["achieved_gflops"] = flops / benchmark.stats.stats.median / 1e9


@pytest.mark.parametrize("batch", [256, 1024])
def test_awac_compiled(benchmark, batch, halfcheetah_buffer):
    """The opt-in torch.compile path (falls back to eager, with a warning, where compiling fails)."""
    algo = speed.make_algo("awac", OBS, ACT, batch, "cpu")
    algo.set_speed_options(compile=True)
    step = speed.training_step(algo, halfcheetah_buffer, batch)
    for _ in range(6):
        step()
    benchmark.extra_info["compile_failed"] = bool(getattr(algo.losses, "failed", True))
    benchmark.pedantic(step, rounds=20, iterations=5, warmup_rounds=1)
