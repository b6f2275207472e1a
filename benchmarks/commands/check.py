"""``awac-bench check``: has a change moved the results? Scores, speed and determinism against stored references.

Three parts, one verdict each, summarised in markdown (printed and written to ``OUT/check.md``):

1. **Scores.** The ``check`` preset (every registered algorithm on hopper-check and pen-binary-human, 500 offline
   + 500 online steps; ``benchmarks/sweeps/presets.py``) with seeds ``offset + 0, 1, 2``, against reference runs with
   seeds ``REFERENCE_SEEDS``. Per algorithm and task, two declared tests:

   * **score**: each run's mean score over all its evaluations (offline and online: 4 evaluations of 5-10
     episodes; success % or D4RL-normalised return). **Fail** when a one-sided Welch t-test says the new mean
     is below the reference's at level ``ALPHA`` (0.001) *and* it is more than ``MIN_EFFECT`` (5) points
     lower. A new mean above the reference's by the same test is reported as "moved up", not failed.
   * **Q**: each run's last Q estimate on the fixed batch of dataset samples (algorithms with a critic).
     **Fail** when a two-sided Welch t-test rejects equal means at ``ALPHA`` *and* the means differ by more
     than ``Q_EFFECT`` (10%) of the reference's magnitude. A critic that moves either way is a changed result.
     (On unchanged code with other seeds the final Q estimates moved by at most 7%, and the significant
     shifts by 2-3%: its seed-to-seed spread is a few tenths of a unit.)
   * **diagnostics**: each run's mean, over a phase (offline, online), of every training metric the algorithm
     logs (losses, Q and V means, advantage and weight statistics, temperature, Lagrange multiplier, data
     log-likelihood, ...). **Fail** when Student's two-sample t-test (pooled variance) rejects equal means at
     ``DIAG_ALPHA`` (1e-4; a check runs about 210 of them) *and* the means differ by more than
     ``DIAG_EFFECT`` (10%) of the reference's magnitude. A metric positive in every run (a loss, a weight, a
     temperature) is tested on the log scale, where a change of scale is a shift. The pooled test is the exact
     test of the hypothesis the check asks about, "same code, same distribution" (equal variances included);
     Welch's correction leaves 3 seeds about 2 degrees of freedom, too few to reach 1e-4 on any change.
     Scores are too noisy after 500 + 500 steps to see a wrong weighting or a wrong bootstrap (every algorithm
     still behaves much like BC there); the statistics an update logs are nearly deterministic across seeds
     and move at once (rlkit's ``tests/regression/awac`` compares logged diagnostics for the same reason).

   Why this rule: three-seed bootstrap CIs are too narrow (on unchanged code two of 24 score CIs fell wholly
   below the reference's); at 0.001 per test the 12 + 10 score and Q tests of a check, and at 1e-4 its ~210
   diagnostics tests, have a family-wise false-alarm rate near 2% each under the t-test's assumptions (on two
   unchanged checks, no diagnostic came below p = 0.007). Other seeds than the reference's are the point: the check
   must pass on unchanged code with any seed offset, not only reproduce stored numbers. The final scores of
   each phase are reported beside, without a verdict.
2. **Speed.** Each algorithm's update rate as a fraction of the matrix-multiply ceiling measured in the same
   process (``benchmarks.commands.speed.measure``'s ``efficiency``, a ratio, so machines of different speed agree);
   fail when it falls more than ``SPEED_TOLERANCE`` (15%) below the stored fraction (the median of three
   measurements) in five measurements in a row (an algorithm below it is measured up to four more times, for
   twice as long, and the best fraction counts: a burst of load from another process must not fail CI; on the
   CI machine BC once measured 0.283 and 0.280 against a stored 0.340, then 0.367).
3. **Determinism.** One short run twice into two directories: every evaluation and training row identical.

``awac-bench check --update-reference --why "..."`` runs the reference seeds and the speed measurement and
rewrites ``benchmarks/check_reference.json`` with the reason, date, commit and machine.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from algorithms.base import UserError
from benchmarks.common import files
from benchmarks.common.provenance import git_commit

REFERENCE_PATH = Path(__file__).parents[1] / "check_reference.json"
REFERENCE_SEEDS = list(range(6))
CHECK_SEEDS = [0, 1, 2]
DEFAULT_OFFSET = 1000
ALPHA = 0.001             # level of each Welch t-test
MIN_EFFECT = 5.0          # score points: smaller differences never fail the check
Q_EFFECT = 0.10           # relative: smaller changes of the Q estimate never fail the check
DIAG_ALPHA = 1e-4         # level of each diagnostics test (many per check)
DIAG_EFFECT = 0.10        # relative: smaller changes of a diagnostic never fail the check
DIAG_PREFIX = "diag:"     # reference columns "diag:<phase>:<metric>"
NOT_DIAGNOSTICS = ("q_estimate",)  # tested as Q (its last value)
SPEED_TOLERANCE = 0.15    # fail when the efficiency falls below (1 - 0.15) x the stored one
SPEED_SECONDS = 1.5       # measurement time per algorithm (and as long again for the matmul ceiling)
SPEED_RETRIES = 4         # re-measurements (2 x SPEED_SECONDS each) of an algorithm below the tolerance
REFERENCE_SPEED_REPEATS = 3  # the stored fraction is the median of this many measurements
RECORDED = ("run_mean", "offline_final", "online_final", "q_final")  # per run, stored in the reference
TESTED = {"run_mean": "score", "q_final": "Q"}  # the metrics with a verdict, and their test (+ every diag: column)
DETERMINISM = dict(algo="sacfd", task="hopper-check", offline_steps=150, online_steps=150, eval_every=75,
                   eval_every_offline=75, eval_episodes=2, log_every=25)


# -- the three measurements -----------------------------------------------------------------------------
def score_table(seeds: list[int], out_dir: str, workers: int, progress: bool = True,
                algos: list[str] | None = None) -> pd.DataFrame:
    """Run the check preset with ``seeds`` into ``out_dir``; one row per run: algo, task, seed and RECORDED."""
    from analysis.load import load_results
    from analysis.metrics import run_metrics
    from benchmarks.generation.prepare import ensure_generated_many
    from benchmarks.sweeps.local import run_sweep
    from benchmarks.sweeps.presets import grid
    from benchmarks.tasks.registry import TASKS

    specs = grid("check", algos=algos, seeds=seeds)
    ensure_generated_many([s.task for s in specs if s.task in TASKS], workers)
    if run_sweep(specs, out_dir, workers=workers, progress=progress) != 0:
        raise UserError(f"check: some runs failed (see {out_dir}/runs/*/FAILED)")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = load_results(out_dir)
    table = run_metrics(results.evals, results.runs).set_index("run_id")
    table["run_mean"] = results.evals.groupby("run_id")["score"].mean()
    q = results.train[results.train["metric"] == "q_estimate"].sort_values("t")
    table["q_final"] = q.groupby("run_id")["value"].last()
    diag = diagnostics(results.train)
    table = table.join(diag)
    return table.reset_index()[["algo", "task", "seed", *RECORDED, *diag.columns]].sort_values(
        ["algo", "task", "seed"], ignore_index=True)


def diagnostics(train: pd.DataFrame) -> pd.DataFrame:
    """One row per run, one column ``diag:<phase>:<metric>`` per logged training metric: its mean over the
    phase's logged values (wide; NaN where a run does not log it)."""
    rows = train[~train["metric"].isin(NOT_DIAGNOSTICS)]
    wide = rows.groupby(["run_id", "phase", "metric"])["value"].mean().unstack(["phase", "metric"])
    wide.columns = [f"{DIAG_PREFIX}{phase}:{metric}" for phase, metric in wide.columns]
    return wide[sorted(wide.columns)]


def speed_fractions(algos: list[str], seconds: float = SPEED_SECONDS,
                    reference: dict[str, float] | None = None, repeats: int = 1) -> dict[str, float]:
    """Per algorithm: updates/s over the matmul ceiling (hopper-check sizes, the algorithm's batch, 1 thread),
    the median of ``repeats`` measurements (the reference takes ``REFERENCE_SPEED_REPEATS``). With
    ``reference``, an algorithm below the tolerance is measured up to ``SPEED_RETRIES`` more times for twice as
    long, and the best measurement counts (load from another process only ever slows a measurement)."""
    from benchmarks.commands.speed import measure

    def one(algo: str, secs: float) -> float:
        res = measure(algo, obs_dim=11, act_dim=3, seconds=secs, env=False, buffer_rows=20_000)
        print(f"check: speed {algo}: {res['updates_per_s']:.1f} updates/s, {res['efficiency']:.3f} of the matmul "
              "ceiling", file=sys.stderr)
        return float(res["efficiency"])

    out = {}
    for algo in algos:
        out[algo] = float(np.median([one(algo, seconds) for _ in range(repeats)]))
        ref = (reference or {}).get(algo)
        for _ in range(SPEED_RETRIES if ref is not None else 0):
            if out[algo] >= (1 - SPEED_TOLERANCE) * ref:
                break
            out[algo] = max(out[algo], one(algo, 2 * seconds))
    return out


def determinism(work_dir: str) -> tuple[bool, str]:
    """One short run twice; True if every evaluation and training row is identical (wall-clock columns aside)."""
    from benchmarks.run.harness import RunSpec, run

    spec = RunSpec(seed=7, checkpoint_at_eval=False, checkpoint_every_min=0, **DETERMINISM)
    frames = []
    for k in (1, 2):
        d = run(spec, os.path.join(work_dir, f"determinism{k}"), progress=False, resume=False, force=True)
        frames.append({f: pd.read_csv(os.path.join(d, f)).drop(columns=["wall_s"], errors="ignore")
                       for f in ("evals.csv", "train.csv")})
    for f in ("evals.csv", "train.csv"):
        a, b = frames[0][f], frames[1][f]
        if a.shape != b.shape or not a.equals(b):
            return False, f"{spec.run_id} twice: {f} differs ({len(a)} vs {len(b)} rows)"
    n = sum(len(v) for v in frames[0].values())
    return True, f"{spec.run_id} twice: all {n} rows identical"


# -- the rules (pure) -----------------------------------------------------------------------------------
def t_test_p(reference: np.ndarray, now: np.ndarray, alternative: str, pooled: bool = False) -> float:
    """p-value of a two-sample t-test of mean(now) vs mean(reference) (``alternative``: "less" or "two-sided"):
    Welch's (unequal variances), or Student's with ``pooled`` (equal variances); 1.0 when either side has fewer
    than 2 values or both are constant and equal, 0.0 when both are constant and differ."""
    from scipy import stats

    reference, now = reference[np.isfinite(reference)], now[np.isfinite(now)]
    if len(reference) < 2 or len(now) < 2:
        return 1.0
    if np.ptp(reference) == 0 and np.ptp(now) == 0:  # no spread at all: equal means pass, unequal fail
        return 1.0 if reference[0] == now[0] else 0.0
    return float(stats.ttest_ind(now, reference, equal_var=pooled, alternative=alternative).pvalue)


def verdict(test: str, reference: np.ndarray, now: np.ndarray) -> tuple[str, float]:
    """("fail" | "ok" | "moved up", p-value) for one metric of one algorithm and task (module docstring)."""
    reference = np.asarray(reference, float)
    now = np.asarray(now, float)
    reference, now = reference[np.isfinite(reference)], now[np.isfinite(now)]
    if len(now) == 0:
        return ("ok", 1.0) if len(reference) == 0 else ("fail", 0.0)  # a metric that vanished is a change
    if len(reference) == 0:
        return "no reference", 1.0
    diff = now.mean() - reference.mean()
    if test == "score":
        p = t_test_p(reference, now, "less")
        if p < ALPHA and -diff > MIN_EFFECT:
            return "fail", p
        if t_test_p(-reference, -now, "less") < ALPHA and diff > MIN_EFFECT:
            return "moved up", p
        return "ok", p
    moved = abs(diff) > (Q_EFFECT if test == "Q" else DIAG_EFFECT) * max(abs(reference.mean()), 1e-6)
    if test == "Q":
        p = t_test_p(reference, now, "two-sided")
        return ("fail" if p < ALPHA and moved else "ok"), p
    positive = (reference > 0).all() and (now > 0).all()
    p = t_test_p(np.log(reference), np.log(now), "two-sided", pooled=True) if positive else \
        t_test_p(reference, now, "two-sided", pooled=True)
    return ("fail" if p < DIAG_ALPHA and moved else "ok"), p


def compare_scores(reference: pd.DataFrame, now: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (algo, task), ref in reference.groupby(["algo", "task"]):
        mine = now[(now["algo"] == algo) & (now["task"] == task)]
        tests = {**TESTED, **{c: "diagnostic" for c in ref.columns if c.startswith(DIAG_PREFIX)}}
        tests.update({c: "diagnostic" for c in mine.columns if c.startswith(DIAG_PREFIX) and c not in tests})
        for metric, test in tests.items():
            r = ref[metric].to_numpy(float) if metric in ref else np.full(len(ref), np.nan)
            n = mine[metric].to_numpy(float) if metric in mine else np.full(len(mine), np.nan)
            if not np.isfinite(r).any() and not np.isfinite(n).any():
                continue  # e.g. no critic: no Q estimate on either side
            v, p = verdict(test, r, n)
            rows.append(dict(algo=algo, task=task, metric=metric, test=test, ref_mean=np.nanmean(r),
                             ref_sd=np.nanstd(r, ddof=1),
                             now_mean=np.nanmean(n) if np.isfinite(n).any() else np.nan,
                             now_sd=np.nanstd(n, ddof=1) if np.isfinite(n).sum() > 1 else np.nan, p=p, verdict=v))
    missing = set(map(tuple, now[["algo", "task"]].to_numpy())) - set(map(tuple, reference[["algo", "task"]]
                                                                            .to_numpy()))
    for algo, task in sorted(missing):
        rows.append(dict(algo=algo, task=task, metric="-", test="-", verdict="no reference"))
    return pd.DataFrame(rows)


def compare_speed(reference: dict[str, float], now: dict[str, float]) -> pd.DataFrame:
    rows = []
    for algo, frac in sorted(now.items()):
        ref = reference.get(algo)
        verdict = "no reference" if ref is None else "fail" if frac < (1 - SPEED_TOLERANCE) * ref else "ok"
        rows.append(dict(algo=algo, reference=ref, now=frac, ratio=frac / ref if ref else None, verdict=verdict))
    return pd.DataFrame(rows)


# -- reference file -------------------------------------------------------------------------------------
def machine() -> dict:
    import torch

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}


def read_reference(path: Path = REFERENCE_PATH) -> dict:
    if not path.is_file():
        raise UserError(f"no check reference at {path}: create one with "
                        "`awac-bench check --update-reference --why \"...\"`")
    with open(path) as f:
        return json.load(f)


def write_reference(path: Path, scores: pd.DataFrame, speed: dict[str, float], why: str, seeds: list[int]) -> None:
    from benchmarks.sweeps.presets import PRESETS

    ref = {"why": why, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "commit": git_commit(),
           "machine": machine(), "preset": "check", "spec": PRESETS["check"]["spec"], "seeds": seeds,
           "rule": {"alpha": ALPHA, "min_effect": MIN_EFFECT, "q_effect": Q_EFFECT, "diag_alpha": DIAG_ALPHA,
                    "diag_effect": DIAG_EFFECT, "speed_tolerance": SPEED_TOLERANCE},
           "scores": scores.round(6).to_dict(orient="records"), "speed": {k: round(v, 4) for k, v in speed.items()}}
    files.atomic_write_text(str(path), json.dumps(ref, indent=1) + "\n")


def add_to_reference(path: Path, scores: pd.DataFrame, speed: dict[str, float], why: str, seeds: list[int],
                     replace: bool = False) -> None:
    """Add algorithms that the reference does not hold yet (their reference-seed scores and speed), or with
    ``replace`` put new entries in place of those of algorithms it holds (a change to those algorithms on purpose),
    and record it under ``additions``; every other algorithm's entries stay as they were."""
    ref = read_reference(path)
    old = {r["algo"] for r in ref["scores"]}
    new = sorted(set(scores["algo"]))
    flag = "--redo-algos" if replace else "--add-algos"
    if replace and (set(new) - old or set(speed) - set(ref["speed"])):
        raise UserError(f"{flag}: {', '.join(sorted(set(new) - old))} not in the reference (--add-algos adds it)")
    if not replace and (old & set(new) or set(speed) & set(ref["speed"])):
        raise UserError(f"{flag}: {', '.join(sorted(old & set(new)))} already in the reference "
                        "(--redo-algos replaces its entries, --update-reference rewrites it whole)")
    if seeds != ref["seeds"]:
        raise UserError(f"{flag}: the reference was made with seeds {ref['seeds']}, not {seeds}")
    if replace:
        ref["scores"] = [r for r in ref["scores"] if r["algo"] not in new]
    ref["scores"] += scores.round(6).to_dict(orient="records")
    ref["speed"].update({k: round(v, 4) for k, v in speed.items()})
    ref.setdefault("additions", []).append({
        "algos": new, "why": why, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(), "machine": machine(), **({"replaced": True} if replace else {})})
    files.atomic_write_text(str(path), json.dumps(ref, indent=1) + "\n")


# -- summary --------------------------------------------------------------------------------------------
def _pm(m: float, sd: float) -> str:
    if m is None or not np.isfinite(m):
        return "-"
    digits = 1 if abs(m) >= 1 else 3
    return f"{m:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None and np.isfinite(sd) else "")


@dataclass
class Verdict:
    """A check's outcome: the score/Q/diagnostics table, the speed table (each with a ``verdict`` column) and
    determinism (identical?, what was compared). The exit code comes from here, never from the markdown."""

    scores: pd.DataFrame
    speed: pd.DataFrame
    determinism: tuple[bool, str]

    @property
    def failures(self) -> int:
        """Failed tests: scores, Q and diagnostics, speed, determinism."""
        return int((self.scores["verdict"] == "fail").sum() + (self.speed["verdict"] == "fail").sum()
                   + (not self.determinism[0]))

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0


def summary_markdown(ref: dict, verdict: Verdict, offset: int, seconds: float) -> str:
    scores, speed, det = verdict.scores, verdict.speed, verdict.determinism
    failed = verdict.failures
    lines = [f"# awac-bench check: {'FAIL' if failed else 'pass'}", "",
             f"Commit {git_commit() or '?'} on {machine()['cpu']} ({os.cpu_count()} cores), {seconds:.0f} s. "
             f"Reference: {ref.get('date')}, commit {str(ref.get('commit'))[:10]}, seeds {ref.get('seeds')}, "
             f"why: {ref.get('why')!r}.", "",
             f"## Scores (seeds {[offset + s for s in CHECK_SEEDS]}; mean ± sd over seeds)", "",
             f"score = a run's mean score over all its evaluations; Q = its last Q estimate. Fail: Welch t-test "
             f"p < {ALPHA:g} (score: one-sided, lower) and a difference above {MIN_EFFECT:g} points (score) or "
             f"{Q_EFFECT:.0%} (Q).", "",
             "| algorithm | task | metric | reference | now | p | verdict |", "|---|---|---|---|---|---|---|"]
    is_diag = scores["test"] == "diagnostic" if "test" in scores else pd.Series(False, index=scores.index)

    def row(r) -> str:
        return (f"| {r.algo} | {r.task} | {r.metric} | {_pm(r.ref_mean, r.ref_sd)} | {_pm(r.now_mean, r.now_sd)} "
                f"| {r.p:.2g} | {'**FAIL**' if r.verdict == 'fail' else r.verdict} |")

    lines += [row(r) for r in scores[~is_diag].itertuples(index=False)]
    diag = scores[is_diag]
    lines += ["", f"## Training diagnostics ({len(diag)} tests; mean over a phase, per seed)", "",
              f"Fail: two-sided Student t-test (log scale for positive metrics) p < {DIAG_ALPHA:g} and a change "
              f"above {DIAG_EFFECT:.0%} of the reference. Per algorithm and task:", ""]
    for (algo, task), g in diag.groupby(["algo", "task"]):
        bad = g[g["verdict"] == "fail"]
        lines.append(f"- {algo} on {task}: {len(g)} diagnostics, "
                     + (f"**{len(bad)} FAIL**" if len(bad) else "all ok"))
    if (diag["verdict"] == "fail").any():
        lines += ["", "| algorithm | task | diagnostic | reference | now | p | verdict |",
                  "|---|---|---|---|---|---|---|"]
        lines += [row(r) for r in diag[diag["verdict"] == "fail"].itertuples(index=False)]
    lines += ["", f"## Speed (fraction of the matmul ceiling; fail below {1 - SPEED_TOLERANCE:.0%} of the reference)",
              "", "| algorithm | reference | now | now / reference | verdict |", "|---|---|---|---|---|"]
    for r in speed.itertuples(index=False):
        ratio = "-" if r.ratio is None or not np.isfinite(r.ratio) else f"{r.ratio:.2f}"
        ref_s = "-" if r.reference is None or not np.isfinite(r.reference) else f"{r.reference:.3f}"
        lines.append(f"| {r.algo} | {ref_s} | {r.now:.3f} | {ratio} | "
                     f"{'**FAIL**' if r.verdict == 'fail' else r.verdict} |")
    lines += ["", "## Determinism", "", f"- {'identical' if det[0] else '**FAIL**'}: {det[1]}", ""]
    return "\n".join(lines)


# -- entry point ----------------------------------------------------------------------------------------
def run_check(out_dir: str = "results/check", workers: int | None = None, seed_offset: int = DEFAULT_OFFSET,
              update_reference: bool = False, why: str | None = None, reference_path: Path = REFERENCE_PATH,
              progress: bool = True, algos: list[str] | None = None, add_algos: list[str] | None = None,
              redo_algos: list[str] | None = None) -> Verdict:
    """The check's ``Verdict`` (``exit_code`` 0 if every part passes, 1 if any fails). The runs go to a scratch
    directory that is removed afterwards;
    ``OUT`` gets ``check.md`` and the per-run scores (``check_scores.csv``). ``algos``: check only these
    (the reference must then already exist; it is never rewritten from a subset). ``add_algos``: first add these
    algorithms, not in the reference yet, to it (``add_to_reference``), then check them. ``redo_algos``: the same for
    algorithms already in it, whose entries are replaced (a deliberate change to them)."""
    import algorithms

    if add_algos and redo_algos:
        raise UserError("--add-algos and --redo-algos cannot be combined")
    replace = bool(redo_algos)
    add_algos = add_algos or redo_algos
    if add_algos:
        if update_reference or algos:
            raise UserError(f"{'--redo-algos' if replace else '--add-algos'} cannot be combined with "
                            "--update-reference or --algos")
        algos = add_algos

    workers = workers or os.cpu_count() or 1
    if update_reference and algos:
        raise UserError("--update-reference rewrites the whole reference: it cannot be combined with --algos")
    for a in algos or []:
        algorithms.get(a)  # an unknown name fails here
    if (update_reference or add_algos) and not (why and why.strip()):
        raise UserError("--update-reference, --add-algos and --redo-algos need --why \"the reason the reference "
                        "changes\"")
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.perf_counter()
    scratch = tempfile.mkdtemp(prefix="awac-check-")
    try:
        if update_reference:
            scores = score_table(REFERENCE_SEEDS, os.path.join(scratch, "reference"), workers, progress)
            speed = speed_fractions(algorithms.names(), repeats=REFERENCE_SPEED_REPEATS)
            write_reference(Path(reference_path), scores, speed, why.strip(), REFERENCE_SEEDS)
            print(f"check: wrote {reference_path} ({len(scores)} runs, seeds {REFERENCE_SEEDS})", file=sys.stderr)
        elif add_algos:
            scores = score_table(REFERENCE_SEEDS, os.path.join(scratch, "reference"), workers, progress, add_algos)
            speed = speed_fractions(add_algos, repeats=REFERENCE_SPEED_REPEATS)
            add_to_reference(Path(reference_path), scores, speed, why.strip(), REFERENCE_SEEDS, replace=replace)
            print(f"check: {'replaced' if replace else 'added'} {', '.join(add_algos)} in {reference_path} "
                  f"({len(scores)} runs)", file=sys.stderr)
        ref = read_reference(Path(reference_path))
        seeds = [seed_offset + s for s in CHECK_SEEDS]
        names = algos or algorithms.names()
        scores = score_table(seeds, os.path.join(scratch, "check"), workers, progress, algos)
        scores.to_csv(os.path.join(out_dir, "check_scores.csv"), index=False)
        reference = pd.DataFrame(ref["scores"])
        verdict_scores = compare_scores(reference[reference["algo"].isin(names)], scores)
        verdict_speed = compare_speed(ref["speed"], speed_fractions(names, reference=ref["speed"]))
        det = determinism(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    verdict = Verdict(verdict_scores, verdict_speed, det)
    text = summary_markdown(ref, verdict, seed_offset, time.perf_counter() - t0)
    Path(out_dir, "check.md").write_text(text)
    print(text)
    return verdict
