"""``awac-bench``: run, sweep, data, plots (and speed). Bad input: one line on stderr, exit code 2."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing
import warnings

from algorithms.base import UserError
from benchmarks.common.files import WriteError


def _parse_sets(items: list[str] | None) -> dict[str, str]:
    out = {}
    for it in items or []:
        if "=" not in it:
            raise UserError(f"--set expects KEY=VALUE, got '{it}'")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _csv_list(s: str | None, cast=str):
    return [cast(x) for x in s.split(",") if x.strip()] if s else None


# -- options derived from a dataclass (RunSpec): its fields are the one place of their types, defaults and help
def add_dataclass_options(parser: argparse.ArgumentParser, cls, only: tuple[str, ...] | None = None) -> None:
    """One option per field of the dataclass ``cls`` (or per field named in ``only``): ``--field-name`` (or the
    field's ``metadata["flag"]``), typed by its annotation, with its default and ``metadata["help"]``. A ``bool``
    is a switch (with ``--no-...`` where it defaults to True), a ``dict`` a repeatable KEY=VALUE option, a field
    without a default a required option. ``dataclass_values`` reads the parsed values back."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in only or fields:
        f, kind = fields[name], hints[name]
        if type(None) in typing.get_args(kind):  # X | None: an X that may stay unset
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        kw: dict = {"dest": name, "help": f.metadata.get("help")}
        if kind is bool:
            kw.update(action=argparse.BooleanOptionalAction if f.default else "store_true", default=f.default)
        elif typing.get_origin(kind) is dict:
            kw.update(action="append", metavar="KEY=VALUE")
        elif f.default is dataclasses.MISSING:
            kw.update(type=kind, required=True)
        else:
            kw.update(type=kind, default=f.default)
            if f.default is not None:
                kw["help"] += f" (default: {f.default})"
        parser.add_argument(f.metadata.get("flag", "--" + name.replace("_", "-")), **kw)


def dataclass_values(cls, args: argparse.Namespace, only: tuple[str, ...] | None = None) -> dict:
    """Field name -> the value of its option (see ``add_dataclass_options``; KEY=VALUE options as a dict)."""
    hints = typing.get_type_hints(cls)
    return {f.name: _parse_sets(getattr(args, f.name)) if typing.get_origin(hints[f.name]) is dict
            else getattr(args, f.name) for f in dataclasses.fields(cls) if only is None or f.name in only}


# the RunSpec fields that are options of `sweep` (the rest come from the preset) and of `speed`
SWEEP_FIELDS = ("overrides", "device", "bf16", "checkpoint_every_min")
SPEED_FIELDS = ("algo", "overrides", "device", "threads", "bf16")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="awac-bench", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    _add_run_commands(sub)
    _add_data_commands(sub)
    _add_other_commands(sub)
    return p


_ALLOW_CODE_CHANGE = ("resume checkpoints written by other code (the change is recorded in meta.json and the report; "
                      "without it such a resume is refused)")


def _add_run_commands(sub) -> None:
    """``run``, ``sweep`` and ``status``."""
    from benchmarks.run.harness import RunSpec

    r = sub.add_parser("run", help="one offline->online run")
    add_dataclass_options(r, RunSpec)  # every field of the run's spec
    r.add_argument("--out", required=True)
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--resume", action="store_true",
                   help="continue an unfinished run from its last checkpoint (without it, an unfinished run is "
                        "kept aside in OUT/old/ and started again)")
    r.add_argument("--force", action="store_true",
                   help="start again even if the run finished or failed (the old directory is kept in OUT/old/)")
    r.add_argument("--allow-code-change", action="store_true", help=_ALLOW_CODE_CHANGE)

    s = sub.add_parser("sweep", help="the algorithm x task x seed grid of a preset, one process per core")
    # the names of benchmarks/sweeps/presets.py, written out: importing it (torch) would slow --help
    s.add_argument("--preset", required=True,
                   help="smoke | quick | standard | check | pilot | main | paper (benchmarks/sweeps/presets.py)")
    s.add_argument("--out", required=True)
    s.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    s.add_argument("--algos", help="comma-separated subset of algorithms")
    s.add_argument("--tasks", help="comma-separated subset of tasks")
    s.add_argument("--seeds", help="comma-separated seeds")
    s.add_argument("--backend", choices=["process", "ray"], default="process",
                   help="process: local worker processes; ray: a Ray cluster (pip install '.[ray]')")
    s.add_argument("--force", "--fresh", dest="force", action="store_true",
                   help="start every run again, finished and failed ones too (old directories kept in OUT/old/)")
    s.add_argument("--allow-code-change", action="store_true", help=_ALLOW_CODE_CHANGE)
    s.add_argument("--no-progress", action="store_true")
    add_dataclass_options(s, RunSpec, SWEEP_FIELDS)  # for every run of the grid

    st = sub.add_parser("status", help="finished, running, failed and remaining runs of a sweep directory")
    st.add_argument("dir")



def _add_data_commands(sub) -> None:
    """``data generate | prepare | expert | quality | info | export``."""
    d = sub.add_parser("data", help="generate or inspect datasets")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    g = dsub.add_parser("generate", help="regenerate an embedded dataset (fixed seed, checksum recorded)")
    g.add_argument("--task", default="halfcheetah-sac-replay",
                   help="a generated task: a paper-recipe task (pen-binary, halfcheetah-awac, ...) or "
                        "halfcheetah-sac-replay")
    g.add_argument("--env", help="any gymnasium MuJoCo env with a suite expert (data expert --env): the paper's "
                              "MuJoCo recipe into generated/<env>-awac.hdf5 (use it with --task custom --dataset)")
    g.add_argument("--steps", type=int)
    g.add_argument("--random-steps", type=int)
    g.add_argument("--seed", type=int)
    g.add_argument("--out", help="output file (default: the task's dataset path, and the manifest is updated)")
    pr = dsub.add_parser("prepare", help="generate the missing datasets of a preset's tasks, in parallel")
    pr.add_argument("--preset", required=True)
    pr.add_argument("--workers", type=int, default=1)
    e = dsub.add_parser("expert", help="train the suite's SAC on a gymnasium MuJoCo env as a data-generating expert")
    e.add_argument("--env", required=True, help="gymnasium env id, e.g. HalfCheetah-v5")
    e.add_argument("--steps", type=int, default=2_000_000,
                   help="environment steps at most (may be raised when resuming)")
    e.add_argument("--random-steps", type=int, default=5_000)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--until", type=float, help="stop at the first evaluation with at least this return "
                                               "(default: the env's bar, 90%% of the AWAC paper's expert)")
    e.add_argument("--eval-every", type=int, default=20_000)
    e.add_argument("--checkpoint-every-min", type=float, default=10.0)
    e.add_argument("--workdir", help="training directory with its checkpoints (default: runs/experts/<env>-s<seed>)")
    e.add_argument("--allow-code-change", action="store_true",
                   help="resume a checkpoint written by other code (the change is recorded in the expert file)")
    e.add_argument("--warm-start", metavar="FILE",
                   help="continue another machine's training from its portable.pt (networks, no buffer; recorded)")
    e.add_argument("--export-portable", metavar="FILE",
                   help="write the portable state of the training's latest checkpoint to FILE and exit")
    e.add_argument("--out", help="output file (default: benchmarks/datasets/experts/<env>-sac.pt)")
    e.add_argument("--no-progress", action="store_true")
    q = dsub.add_parser("quality", help="BC (2), the AWAC paper's prior-data quality: BC trained on the whole prior "
                                       "data, 100 evaluation episodes; recorded in MANIFEST.json")
    q.add_argument("task", help="a generated task (pen-binary, door-binary, halfcheetah-awac, ...)")
    q.add_argument("--ladder", action="store_true",
                   help="walk the task's declared ladder until BC (2) lands in its band (docs/TASKS.md)")
    q.add_argument("--no-progress", action="store_true")
    i = dsub.add_parser("info", help="summary and checksum of a dataset file or task")
    i.add_argument("target", help="task name or HDF5 path")
    x = dsub.add_parser("export", help="write a task's dataset as a Minari dataset (id awac-bench/<task>-v0)")
    x.add_argument("--minari", required=True, metavar="TASK", help="a registered task with a dataset")
    x.add_argument("--out", metavar="ROOT", help="Minari datasets root (default: $MINARI_DATASETS_PATH or "
                                                 "~/.minari/datasets)")



def _add_other_commands(sub) -> None:
    """``plots``, ``speed``, ``list`` and ``check``."""
    from benchmarks.run.harness import RunSpec

    pl = sub.add_parser("plots", help="figures and report.md from stored results (trains nothing)")
    pl.add_argument("dir")

    sp = sub.add_parser("speed", help="training steps per second of one algorithm (batch sampling included)")
    add_dataclass_options(sp, RunSpec, SPEED_FIELDS)
    sp.add_argument("--batch", type=int, help="batch size (default: the algorithm's online batch)")
    sp.add_argument("--obs-dim", type=int, default=17, help="default: HalfCheetah sizes")
    sp.add_argument("--act-dim", type=int, default=6)
    sp.add_argument("--seconds", type=float, default=5.0, help="measurement time per quantity")
    sp.add_argument("--buffer-rows", type=int, default=100_000, help="synthetic transitions to sample from")
    sp.add_argument("--no-env", action="store_true", help="skip the online-loop (HalfCheetah-v5) measurement")
    sp.add_argument("--json", action="store_true")

    sub.add_parser("list", help="registered algorithms (with presets) and tasks")

    c = sub.add_parser("check", help="regression check: scores, speed and determinism against stored references")
    c.add_argument("--out", default="results/check", help="where check.md and check_scores.csv go")
    c.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    c.add_argument("--seed-offset", type=int, default=1000, help="seeds offset+0..2 (the reference uses 0..5)")
    c.add_argument("--update-reference", action="store_true",
                   help="rerun the reference seeds and speed and rewrite benchmarks/check_reference.json")
    c.add_argument("--add-algos", help="comma-separated algorithms to add to the reference (not in it yet; every "
                                       "other entry stays), then check them")
    c.add_argument("--redo-algos", help="comma-separated algorithms of the reference to rerun on purpose (their "
                                        "entries are replaced, every other stays), then check them")
    c.add_argument("--why", help="with --update-reference, --add-algos or --redo-algos: the reason, recorded in the "
                                 "reference")
    c.add_argument("--algos", help="comma-separated subset of algorithms to check (default: all)")
    c.add_argument("--no-progress", action="store_true")


def cmd_check(a) -> int:
    from benchmarks.commands.check import run_check

    return run_check(a.out, a.workers, a.seed_offset, a.update_reference, a.why, progress=not a.no_progress,
                     algos=_csv_list(a.algos), add_algos=_csv_list(a.add_algos),
                     redo_algos=_csv_list(a.redo_algos)).exit_code


def cmd_run(a) -> int:
    from benchmarks.generation.prepare import ensure_specs
    from benchmarks.run.harness import RunSpec, check_spec, run

    spec = RunSpec(**dataclass_values(RunSpec, a))
    check_spec(spec)  # bad input fails before anything is generated
    if spec.dataset is None:
        ensure_specs([spec.task])
    run_dir = run(spec, a.out, progress=not a.no_progress, resume=a.resume, force=a.force,
                  allow_code_change=a.allow_code_change)
    from benchmarks.run.results import collect_sweep

    collect_sweep(a.out)
    print(f"results: {run_dir}")
    return 0


def cmd_sweep(a) -> int:
    from benchmarks.run.harness import RunSpec
    from benchmarks.sweeps.local import run_sweep
    from benchmarks.sweeps.presets import grid

    options = dataclass_values(RunSpec, a, SWEEP_FIELDS)
    specs = grid(a.preset, _csv_list(a.algos), _csv_list(a.tasks), _csv_list(a.seeds, int), options.pop("device"),
                 options.pop("overrides"))
    specs = [dataclasses.replace(spec, **options) for spec in specs]
    return run_sweep(specs, a.out, workers=a.workers, backend=a.backend, fresh=a.force,
                     progress=not a.no_progress, allow_code_change=a.allow_code_change)


def cmd_status(a) -> int:
    from benchmarks.sweeps.local import sweep_status

    print("\n".join(sweep_status(a.dir)))
    return 0


def cmd_data(a) -> int:
    """``awac-bench data <subcommand>``: one function per subcommand."""
    return {"export": _data_export, "expert": _data_expert, "quality": _data_quality, "prepare": _data_prepare,
            "generate": _data_generate, "info": _data_info}[a.data_cmd](a)


def _data_export(a) -> int:
    from benchmarks.generation.prepare import ensure_generated
    from benchmarks.tasks.catalog import export_minari
    from benchmarks.tasks.registry import TASKS

    if a.minari not in TASKS:
        raise UserError(f"unknown task '{a.minari}' for export (registered: {', '.join(sorted(TASKS))})")
    ensure_generated(TASKS[a.minari])
    dataset_id, folder, rows = export_minari(TASKS[a.minari], a.out)
    print(f"wrote Minari dataset {dataset_id}: {rows} transitions in {folder} "
          f"(read it with minari.load_dataset('{dataset_id}') or --task {dataset_id})")
    return 0


def _data_expert(a) -> int:
    from benchmarks.generation.expert import (
        ExpertSpec,
        default_workdir,
        expert_summary_line,
        export_portable,
        train_expert,
    )

    spec = ExpertSpec(a.env, a.steps, a.random_steps, a.seed, a.until, a.eval_every,
                      checkpoint_every_min=a.checkpoint_every_min)
    if a.export_portable:
        p = export_portable(a.workdir or default_workdir(spec), a.export_portable)
        print(f"wrote {a.export_portable}: step {p['t']}, last evaluation "
              f"{p['curve'][-1]['eval_return_mean'] if p['curve'] else float('nan'):.0f}")
        return 0
    info = train_expert(spec, a.out, a.workdir, progress=not a.no_progress,
                        allow_code_change=a.allow_code_change, warm_start=a.warm_start)
    print(expert_summary_line(info))
    return 0


def _data_quality(a) -> int:
    from benchmarks.commands.quality import quality, quality_line

    print(quality_line(a.task, quality(a.task, ladder=a.ladder, progress=not a.no_progress)))
    return 0


def _data_prepare(a) -> int:
    from benchmarks.generation.prepare import ensure_generated_many
    from benchmarks.sweeps.presets import PRESETS

    if a.preset not in PRESETS:
        raise UserError(f"unknown preset '{a.preset}' (known: {', '.join(PRESETS)})")
    ensure_generated_many(PRESETS[a.preset]["tasks"], a.workers)
    return 0


def _data_generate(a) -> int:
    from benchmarks.generation import generate
    from benchmarks.tasks.registry import TASKS

    if a.env or (a.task in TASKS and TASKS[a.task].recipe is not None):
        return _generate_recipe(a)
    if a.task not in generate.DEFAULTS:
        raise UserError(f"no generator for task '{a.task}' (generated: {', '.join(generate.DEFAULTS)})")
    d = dict(generate.DEFAULTS[a.task])
    for k in ("steps", "random_steps", "seed"):
        if getattr(a, k) is not None:
            d[k] = getattr(a, k)
    if d["steps"] < 2 or d["random_steps"] < 0:
        raise UserError("--steps must be >= 2 and --random-steps >= 0")
    path = a.out or TASKS[a.task].dataset_path
    ds, info = generate.generate_sac_replay(a.task, path, progress=True, **d)
    if a.out is None:
        generate.record_manifest(a.task, info)
    print(f"wrote {path}: {info['rows']} rows, sha256 {info['sha256']}, "
          f"mean episode return {info['episode_return_mean']}")
    return 0


def _generate_recipe(a) -> int:
    """A paper-recipe task's prior data (benchmarks/generation/priordata.py), or the MuJoCo recipe on any env with
    an expert."""
    from benchmarks.generation import generate, priordata
    from benchmarks.tasks.registry import TASKS, mujoco_recipe_task

    task = mujoco_recipe_task(a.env) if a.env else TASKS[a.task]
    if a.env and task.name in TASKS and TASKS[task.name].env_id == a.env:
        task = TASKS[task.name]
    path = a.out or task.dataset_path
    ds, info = priordata.generate(task, path, progress=True)
    if a.out is None:
        generate.record_manifest(task.name, info)
    random = f", {info['random_rows']} random-policy" if info.get("random_rows") else ""
    print(f"wrote {path}: {info['rows']} rows ({info['demo_rows']} demonstration, {info['bc_rows']} BC-rollout"
          f"{random}), sha256 {info['sha256']}, BC rollout return {info['bc_return_mean']:.1f}"
          + (f", success {100 * info['bc_success_rate']:.0f}%" if info["bc_success_rate"] is not None else ""))
    return 0


def _data_info(a) -> int:
    import numpy as np

    from benchmarks.data.dataset import load_dataset
    from benchmarks.generation import generate
    from benchmarks.tasks.registry import TASKS

    target = a.target
    path = TASKS[target].dataset_path if target in TASKS else target
    if target in TASKS and not os.path.exists(path) and TASKS[target].recipe is not None:
        raise UserError(f"'{target}' has not been generated yet: run `awac-bench data generate --task {target}`")
    ds = load_dataset(path)
    rets = ds.episode_returns()
    print(f"file        {path}")
    print(f"rows        {len(ds)}  (obs {ds.obs_dim}, act {ds.act_dim})")
    print(f"episodes    {len(rets)}  return mean {rets.mean():.2f}  min {rets.min():.2f}  max {rets.max():.2f}")
    print(f"terminals   {int(ds.done.sum())}   timeouts {int(ds.timeout.sum())}")
    print(f"reward      mean {ds.rew.mean():.4f}  min {ds.rew.min():.4f}  max {ds.rew.max():.4f}")
    print(f"actions     min {ds.act.min():.3f}  max {ds.act.max():.3f}  |a|>1: {int((np.abs(ds.act) > 1).sum())}")
    print(f"sha256      {ds.checksum()}")
    entry = generate.manifest_entry(target) if target in TASKS else None
    if entry:
        if entry["sha256"] != ds.checksum():
            raise UserError(f"{path} fails its recorded checksum (sha256 {ds.checksum()[:12]}, MANIFEST.json "
                            f"{entry['sha256'][:12]}): regenerate it with `{entry['command']}`")
        print(f"manifest    matches the recorded checksum ({entry['command']})")
    return 0


def cmd_plots(a) -> int:
    if not os.path.isdir(a.dir):
        raise UserError(f"results directory not found: {a.dir}")
    from analysis.report import make_report

    path = make_report(a.dir)
    print(f"report: {path}")
    return 0


def cmd_speed(a) -> int:
    import json

    from benchmarks.commands.speed import measure
    from benchmarks.run.harness import RunSpec

    res = measure(**dataclass_values(RunSpec, a, SPEED_FIELDS), batch=a.batch, obs_dim=a.obs_dim,
                  act_dim=a.act_dim, seconds=a.seconds, buffer_rows=a.buffer_rows, env=not a.no_env)
    if a.json:
        print(json.dumps(res, indent=2, sort_keys=True))
    else:
        for k, v in res.items():
            print(f"{k:24s} {v}")
    return 0


def cmd_list(a) -> int:
    import algorithms
    from benchmarks.tasks.registry import TASKS

    print("algorithms:")
    for n in algorithms.names():
        cls = algorithms.get(n)
        print(f"  {n:10s} presets: {', '.join(cls.presets) or '-'}")
    print("tasks:")
    for t in TASKS.values():
        print(f"  {t.name:24s} {t.description}")
    print("  custom                   --dataset PATH --env GYM_ID")
    print("  <env>-<dataset>-v<k>     a D4RL dataset in $D4RL_DATASET_DIR (default ~/.d4rl/datasets), e.g. "
          "hopper-medium-v2, pen-human-v1")
    print("  <namespace>/<name>-v<k>  a Minari dataset in $MINARI_DATASETS_PATH (default ~/.minari/datasets), "
          "e.g. mujoco/hopper/medium-v0")
    return 0


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message=".*reward functions were updated.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    parser = build_parser()
    a = parser.parse_args(argv)
    handler = {"run": cmd_run, "sweep": cmd_sweep, "data": cmd_data, "plots": cmd_plots, "speed": cmd_speed,
               "list": cmd_list, "status": cmd_status, "check": cmd_check}[a.cmd]
    try:
        return handler(a)
    except UserError as e:
        print(f"awac-bench: error: {e}", file=sys.stderr)
        return 2
    except WriteError as e:  # a full disk or another write error: what was written before it is intact
        print(f"awac-bench: error: {e}; what was written before is intact (rerun to resume)", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `awac-bench status DIR | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's documented recipe (signal docs)
        return 1
    except Exception as e:
        from benchmarks.run.harness import RunFailed

        if not isinstance(e, RunFailed):
            raise
        print(f"awac-bench: run failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("awac-bench: interrupted (finished rows are on disk)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
