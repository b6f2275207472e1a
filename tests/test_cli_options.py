"""The options of `run`, `sweep` and `speed` come from RunSpec's fields: one place for their types, defaults, help."""

import dataclasses

import pytest

from benchmarks.commands import cli
from benchmarks.run.harness import RunSpec

BASE = ["run", "--algo", "awac", "--task", "pen-binary", "--out", "o"]


def spec_of(*args: str) -> RunSpec:
    return RunSpec(**cli.dataclass_values(RunSpec, cli.build_parser().parse_args([*BASE, *args])))


def test_every_runspec_field_is_a_run_option_with_help():
    run = cli.build_parser()._subparsers._group_actions[0].choices["run"]
    dests = {a.dest: a for a in run._actions}
    for f in dataclasses.fields(RunSpec):
        assert f.name in dests, f.name
        assert f.metadata.get("help"), f"RunSpec.{f.name} has no help text"
        assert dests[f.name].help.startswith(f.metadata["help"])


def test_defaults_are_the_runspec_defaults():
    assert spec_of() == RunSpec(algo="awac", task="pen-binary")


def test_options_parse_to_the_field_types():
    spec = spec_of("--offline-steps", "7", "--utd", "0.5", "--set", "beta=1", "--set", "actor_hidden=16,16",
                   "--algo-preset", "hand", "--no-checkpoint-at-eval", "--bf16", "--checkpoint-every-min", "2.5")
    assert spec == RunSpec(algo="awac", task="pen-binary", offline_steps=7, utd=0.5, algo_preset="hand",
                           overrides={"beta": "1", "actor_hidden": "16,16"}, checkpoint_at_eval=False, bf16=True,
                           checkpoint_every_min=2.5)


def test_sweep_and_speed_take_the_shared_fields():
    p = cli.build_parser()
    a = p.parse_args(["sweep", "--preset", "smoke", "--out", "o", "--set", "batch_size=8", "--bf16",
                      "--device", "cpu", "--checkpoint-every-min", "1"])
    assert cli.dataclass_values(RunSpec, a, cli.SWEEP_FIELDS) == {
        "overrides": {"batch_size": "8"}, "device": "cpu", "bf16": True, "checkpoint_every_min": 1.0}
    a = p.parse_args(["speed", "--algo", "bc", "--threads", "2"])
    assert cli.dataclass_values(RunSpec, a, cli.SPEED_FIELDS) == {
        "algo": "bc", "overrides": {}, "device": "cpu", "threads": 2, "bf16": False}


def test_the_sweep_help_names_every_preset(capsys):
    from benchmarks.sweeps.presets import PRESETS

    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["sweep", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    assert " | ".join(PRESETS) in text


def test_a_bad_option_value_is_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli.build_parser().parse_args([*BASE, "--offline-steps", "many"])
    assert e.value.code == 2
    capsys.readouterr()
    assert cli.main([*BASE, "--set", "beta"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["awac-bench: error: --set expects KEY=VALUE, got 'beta'"]
