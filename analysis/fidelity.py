"""The AWAC paper's claims (a)-(g) and their verdicts, exactly as declared in ``docs/FIDELITY.md``.

Small pure functions on the per-run metrics of :func:`analysis.metrics.run_metrics` (``offline_final``,
``online_final``, ``drop_abs``, ``auc``) and the logged ``q_estimate`` / ``mc_return`` training rows. Each
claim returns a :class:`Verdict`; :func:`fidelity_markdown` renders them for ``report.md``.

A comparison C(X > Y; m) is the probability of improvement with its 95% stratified-bootstrap CI
(:func:`analysis.stats.probability_of_improvement`); its outcome is ">" when the CI lies above 0.5, "<" when
it lies below, "≈" otherwise, "n/a" when either side lacks finished runs on a task it covers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.stats import Estimate, mean_ci, probability_of_improvement, stratified_mean_ci

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
PAPER_BASELINES = ("sacfd", "bear", "awr", "bc")  # the paper's baselines that this suite implements
OFF_POLICY_BASELINES = ("sacfd", "sacfd-prior")  # claim (g): SACfD and SACfD's ``prior`` preset (declared "SAC+BC")
# (f) and (g) were declared for the main grid (docs/FIDELITY.md); on other results they are computed, not declared
MAIN_ONLY = " [declared for the `main` grid]"
# the shortest online budget a declared test was declared for: the main grid's 80k (its second declared cut;
# the standard grid's tests (a)-(e) were declared for 100k). Shorter runs get a note in the report.
DECLARED_ONLINE_STEPS = 80_000


@dataclass(frozen=True)
class Comparison:
    label: str
    estimate: Estimate
    tasks: int = 1  # tasks asked for; the estimate's n says on how many both sides had finished runs

    @property
    def outcome(self) -> str:
        e = self.estimate
        if e.n < self.tasks or not np.isfinite(e.point):
            return "n/a"
        if np.isfinite(e.low) and e.low > 0.5:
            return ">"
        if np.isfinite(e.high) and e.high < 0.5:
            return "<"
        return "≈"

    def text(self) -> str:
        e = self.estimate
        if self.outcome == "n/a":
            return (f"{self.label}: n/a (finished runs on both sides for {e.n} of {self.tasks} task"
                    f"{'s' if self.tasks > 1 else ''})")
        return f"{self.label} = {e.point:.2f} [{e.low:.2f}, {e.high:.2f}] → {self.outcome}"


@dataclass
class Verdict:
    claim: str
    verdict: str
    evidence: list[str] = field(default_factory=list)


def per_run_table(metrics: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """Finished runs with the declared quantities: off, fin, gain, auc_gain, drop, qgap."""
    done = metrics[metrics["complete"].astype(bool)].copy()
    done["off"] = done["offline_final"]
    done["fin"] = done["online_final"]
    done["gain"] = done["fin"] - done["off"]
    done["auc_gain"] = done["auc"] - done["off"]
    done["drop"] = done["drop_abs"]
    done["qgap"] = done["run_id"].map(q_gaps(train))
    return done


def q_gaps(train: pd.DataFrame) -> pd.Series:
    """Per run: mean of (Q estimate - Monte-Carlo return) over its evaluations from the switch on (the last
    offline evaluation and every online one). Empty when the runs logged no Q estimates."""
    cols = {"run_id", "phase", "grad_step", "metric", "value"}
    if train.empty or not cols <= set(train.columns):
        return pd.Series(dtype=float)
    rows = train[train["metric"].isin(["q_estimate", "mc_return"])]
    if rows.empty:
        return pd.Series(dtype=float)
    wide = rows.pivot_table(index=["run_id", "phase", "grad_step"], columns="metric", values="value",
                            aggfunc="last").reset_index()
    if not {"q_estimate", "mc_return"} <= set(wide.columns):
        return pd.Series(dtype=float)
    wide["gap"] = wide["q_estimate"] - wide["mc_return"]
    out = {}
    for rid, g in wide.groupby("run_id"):
        off = g[g["phase"] == "offline"].sort_values("grad_step")
        keep = pd.concat([off.tail(1), g[g["phase"] == "online"]])
        out[rid] = float(keep["gap"].mean()) if len(keep) else float("nan")
    return pd.Series(out, dtype=float)


def _by_task(table: pd.DataFrame, algo: str, metric: str, tasks: Iterable[str]) -> dict[str, np.ndarray]:
    mine = table[table["algo"] == algo]
    return {t: mine.loc[mine["task"] == t, metric].to_numpy(dtype=float) for t in tasks}


def compare(table: pd.DataFrame, x: str, y: str, metric: str, tasks: Iterable[str]) -> Comparison:
    """C(x > y; metric) over ``tasks`` (one task: per task; several: the tasks are strata)."""
    tasks = list(tasks)
    where = tasks[0] if len(tasks) == 1 else "all tasks"
    est = probability_of_improvement(_by_task(table, x, metric, tasks), _by_task(table, y, metric, tasks))
    return Comparison(f"P({x} > {y}; {metric}; {where})", est, len(tasks))


def _above(table: pd.DataFrame, algo: str, metric: str, task: str, level: float) -> tuple[bool, str]:
    est = mean_ci(table.loc[(table["algo"] == algo) & (table["task"] == task), metric])
    ok = est.n >= 2 and np.isfinite(est.low) and est.low > level
    return ok, f"mean {metric} of {algo} on {task} = {est.point:.2f} [{est.low:.2f}, {est.high:.2f}] (n={est.n})"


def _majority_rule(comps: list[Comparison], need: int) -> str:
    outcomes = [c.outcome for c in comps]
    if "<" in outcomes:
        return NOT_REPRODUCED
    if "n/a" in outcomes:
        return INCONCLUSIVE
    return REPRODUCED if outcomes.count(">") >= need else INCONCLUSIVE


def claim_a(table: pd.DataFrame, tasks: list[str]) -> list[Verdict]:
    """(a) AWAC's final online score is at least each baseline's, per task (and over all tasks)."""
    out, every = [], []
    for t in tasks:
        comps = [compare(table, "awac", b, "fin", [t]) for b in PAPER_BASELINES]
        every += comps
        out.append(Verdict(f"(a) on {t}", _majority_rule(comps, 2), [c.text() for c in comps]))
    overall = Verdict("(a) AWAC's final online score >= each baseline's", _majority_rule(every, -(-len(every) // 2)),
                      [f"{v.claim}: {v.verdict}" for v in out])
    return [overall, *out]


def _has_runs(table: pd.DataFrame, algos: Iterable[str], task: str) -> bool:
    return all(((table["algo"] == a) & (table["task"] == task)).any() for a in algos)


def claim_b(table: pd.DataFrame, tasks: list[str]) -> Verdict:
    """(b) SACfD drops at the switch and/or overestimates Q, on at least 2 tasks. A task where SACfD or AWAC has
    no finished run counts for neither side: with one, "not reproduced" (or the 1-task "inconclusive") cannot be
    established, so the claim is inconclusive unless 2 tasks already hold (FIDELITY.md: lacking runs)."""
    holds, missing, evidence = 0, [], []
    for t in tasks:
        if not _has_runs(table, ("sacfd", "awac"), t):
            missing.append(t)
        drops, drop_text = _above(table, "sacfd", "drop", t, 0.0)
        over, q_text = _above(table, "sacfd", "qgap", t, 0.0)
        vs_awac = compare(table, "sacfd", "awac", "qgap", [t])
        over = over and vs_awac.outcome == ">"
        holds += drops or over
        evidence.append(f"{t}: drop {'yes' if drops else 'no'} ({drop_text}); overestimates "
                        f"{'yes' if over else 'no'} ({q_text}; {vs_awac.text()})")
    if holds >= 2:
        verdict = REPRODUCED
    elif missing:
        verdict = INCONCLUSIVE
        evidence.append(f"no finished SACfD or AWAC runs on {', '.join(missing)}")
    else:
        verdict = NOT_REPRODUCED if holds == 0 else INCONCLUSIVE
    return Verdict(f"(b) SACfD drops at the switch and/or overestimates Q (holds on {holds}/{len(tasks)} tasks)",
                   verdict, evidence)


def claim_c(table: pd.DataFrame, tasks: list[str]) -> Verdict:
    """(c) BEAR learns offline (>= half of BC's offline score) but improves least online. Without finished BEAR
    and BC runs on every task, or with a comparison lacking runs, only a "<" decides (not reproduced); otherwise
    the claim is inconclusive (FIDELITY.md: lacking runs)."""
    learns, evidence = 0, []
    missing = [t for t in tasks if not _has_runs(table, ("bear", "bc"), t)]
    for t in tasks:
        bc_off = table.loc[(table["algo"] == "bc") & (table["task"] == t), "off"].mean()
        ok, text = _above(table, "bear", "off", t, 0.5 * bc_off if np.isfinite(bc_off) else np.inf)
        learns += ok
        evidence.append(f"learns offline on {t}: {'yes' if ok else 'no'} ({text}; half of BC's = {0.5 * bc_off:.2f})")
    comps = [compare(table, x, "bear", "gain", tasks) for x in ("awac", "sacfd", "awr")]
    evidence += [c.text() for c in comps]
    outcomes = [c.outcome for c in comps]
    if "<" in outcomes:
        verdict = NOT_REPRODUCED
    elif missing or "n/a" in outcomes:
        verdict = INCONCLUSIVE
        if missing:
            evidence.append(f"no finished BEAR or BC runs on {', '.join(missing)}")
    elif learns == 0:
        verdict = NOT_REPRODUCED
    elif learns >= 2 and outcomes.count(">") >= 2:
        verdict = REPRODUCED
    else:
        verdict = INCONCLUSIVE
    return Verdict(f"(c) BEAR learns offline (on {learns}/{len(tasks)} tasks) but improves least online",
                   verdict, evidence)


def claim_d(table: pd.DataFrame, tasks: list[str]) -> Verdict:
    """(d) AWR improves slowest per environment step (time-averaged online gain)."""
    comps = [compare(table, x, "awr", "auc_gain", tasks) for x in ("awac", "sacfd", "bear")]
    return Verdict("(d) AWR improves slowest per environment step", _majority_rule(comps, 2), [c.text() for c in comps])


def claim_e(table: pd.DataFrame, tasks: list[str]) -> Verdict:
    """(e) BC stays flat online: the CI of its mean gain (tasks as strata) contains 0."""
    est = stratified_mean_ci({t: table.loc[(table["algo"] == "bc") & (table["task"] == t), "gain"] for t in tasks})
    text = f"mean gain of bc over tasks = {est.point:.2f} [{est.low:.2f}, {est.high:.2f}] (n={est.n})"
    if est.n < 2 or not np.isfinite(est.low):
        verdict = INCONCLUSIVE
    else:
        verdict = REPRODUCED if est.low <= 0 <= est.high else NOT_REPRODUCED
    return Verdict("(e) BC stays flat online", verdict, [text])


def claim_f(table: pd.DataFrame, tasks: list[str]) -> Verdict:
    """(f) AWAC improves online: the 95% CI of its mean gain lies above 0 on at least 2 tasks, and
    C(AWAC > BC; gain) across tasks is ">". Both: reproduced; neither: not reproduced; otherwise (or a
    comparison lacking runs) inconclusive."""
    improves, evidence = 0, []
    for t in tasks:
        ok, text = _above(table, "awac", "gain", t, 0.0)
        improves += ok
        evidence.append(f"gain above 0 on {t}: {'yes' if ok else 'no'} ({text})")
    vs_bc = compare(table, "awac", "bc", "gain", tasks)
    evidence.append(vs_bc.text())
    first, second = improves >= min(2, len(tasks)), vs_bc.outcome == ">"
    if vs_bc.outcome == "n/a":
        verdict = INCONCLUSIVE
    elif first and second:
        verdict = REPRODUCED
    elif not first and not second:
        verdict = NOT_REPRODUCED
    else:
        verdict = INCONCLUSIVE
    return Verdict(f"(f) AWAC improves online (gain above 0 on {improves}/{len(tasks)} tasks){MAIN_ONLY}", verdict,
                   evidence)


def claim_g(table: pd.DataFrame, tasks: list[str]) -> Verdict:
    """(g) AWAC's online curve lies above the off-policy baselines': C(AWAC > X; auc) across tasks is ">" for X
    in {SACfD, SACfD-pretrain (sacfd-prior; declared as "SAC+BC")}. Both ">": reproduced; any "<": not
    reproduced; otherwise inconclusive."""
    comps = [compare(table, "awac", x, "auc", tasks) for x in OFF_POLICY_BASELINES]
    return Verdict(f"(g) AWAC's online curve lies above SACfD's and SACfD-pretrain's{MAIN_ONLY}",
                   _majority_rule(comps, len(comps)), [c.text() for c in comps])


def verdicts(metrics: pd.DataFrame, train: pd.DataFrame) -> list[Verdict]:
    """Every claim's verdict on the finished runs of ``metrics``."""
    if metrics.empty:
        return []
    table = per_run_table(metrics, train)
    tasks = sorted(metrics["task"].unique())  # unfinished runs' tasks too: a claim lacking their runs is inconclusive
    if not tasks:
        return []
    return [*claim_a(table, tasks), claim_b(table, tasks), claim_c(table, tasks), claim_d(table, tasks),
            claim_e(table, tasks), claim_f(table, tasks), claim_g(table, tasks)]


def fidelity_markdown(metrics: pd.DataFrame, train: pd.DataFrame) -> list[str]:
    """The report's section: one line per verdict, its evidence below it."""
    found = verdicts(metrics, train)
    lines = ["## Fidelity: the AWAC paper's claims", "",
             "Tests declared in `docs/FIDELITY.md` before the results existed; finished runs only. "
             "C(X > Y) = probability of improvement with a 95% bootstrap CI: '>' when the CI lies above 0.5, "
             "'<' below, '≈' otherwise.", ""]
    if not found:
        return [*lines, "No finished runs.", ""]
    for v in found:
        lines.append(f"- **{v.claim}: {v.verdict}**")
        lines += [f"  - {e}" for e in v.evidence]
    return [*lines, ""]
