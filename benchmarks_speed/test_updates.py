"""One training step (batch sampling included) of every registered algorithm, HalfCheetah sizes, float32, one
thread, at its default batch size and at 256."""

import pytest

import algorithms
from benchmarks.commands import speed

from .conftest import ACT, OBS

CASES = [(name, batch) for name in algorithms.names() for batch in (None, 256)]


@pytest.mark.parametrize("name, batch", CASES, ids=[f"{n}-b{b or 'default'}" for n, b in CASES])
def test_training_step(benchmark, name, batch):
    algo = speed.make_algo(name, OBS, ACT, batch, "cpu")
    batch = batch or algo.batch_size("online")
    buffer = speed.synthetic_buffer(OBS, ACT, 50_000, "cpu", algo, algo.buffer_capacity(50_000, 0))
    step, block = speed.training_step(algo, buffer, batch)
    for _ in range(max(3, block)):
        step()
    benchmark.extra_info["networks"] = speed.network_widths(algo)
    # whole blocks where an algorithm has them (AWR: value and policy steps differ)
    benchmark.pedantic(step, rounds=3 if block > 1 else 20, iterations=block if block > 1 else 5, warmup_rounds=1)
