"""Known answers for the declared fidelity tests (docs/FIDELITY.md, analysis/fidelity.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis import fidelity
from analysis.fidelity import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

TASKS = ["t1", "t2"]


def table(values: dict[str, dict[str, float]], seeds=(0, 1, 2), noise=0.1) -> pd.DataFrame:
    """Runs of every algorithm x task x seed; ``values[algo]`` gives off/fin/drop/qgap/auc_gain/auc means,
    each seed offset by ``noise * seed`` so that seeds are distinct but keep their order."""
    rows = []
    for algo, v in values.items():
        for task in TASKS:
            for s in seeds:
                row = dict(algo=algo, task=task, seed=s, run_id=f"{algo}__{task}__s{s}")
                for k in ("off", "fin", "drop", "qgap", "auc_gain", "auc"):
                    row[k] = v.get(k, 0.0) + noise * s
                row["gain"] = row["fin"] - row["off"]
                rows.append(row)
    return pd.DataFrame(rows)


BASE = {"awac": dict(off=50, fin=90, auc_gain=30), "sacfd": dict(off=0, fin=10, auc_gain=5),
        "bear": dict(off=50, fin=52, auc_gain=1), "awr": dict(off=20, fin=30, auc_gain=0),
        "bc": dict(off=50, fin=50)}


def test_comparison_outcomes_follow_the_ci():
    t = table(BASE)
    assert fidelity.compare(t, "awac", "sacfd", "fin", ["t1"]).outcome == ">"
    c = fidelity.compare(t, "sacfd", "awac", "fin", TASKS)
    assert c.outcome == "<" and c.estimate.point == 0.0 and c.estimate.n == 2
    tied = table({"awac": dict(fin=5), "bc": dict(fin=5)})
    assert fidelity.compare(tied, "awac", "bc", "fin", ["t1"]).estimate.point == 0.5
    assert fidelity.compare(tied, "awac", "bc", "fin", ["t1"]).outcome == "≈"
    assert fidelity.compare(t, "awac", "iql", "fin", ["t1"]).outcome == "n/a"


def test_claim_a_needs_no_loss_and_half_wins():
    overall, *per_task = fidelity.claim_a(table(BASE), TASKS)
    assert overall.verdict == REPRODUCED and [v.verdict for v in per_task] == [REPRODUCED, REPRODUCED]
    worse = {**BASE, "bear": dict(off=50, fin=95)}  # BEAR ends above AWAC on every seed of every task
    overall, *per_task = fidelity.claim_a(table(worse), TASKS)
    assert overall.verdict == NOT_REPRODUCED and per_task[0].verdict == NOT_REPRODUCED
    ties = {k: dict(fin=90) for k in BASE}  # everyone at the same final score: nothing shown either way
    assert fidelity.claim_a(table(ties, noise=0.0), TASKS)[0].verdict == INCONCLUSIVE


def test_claim_b_drop_or_overestimation_on_two_tasks():
    t = table({**BASE, "sacfd": dict(off=40, fin=10, drop=30)})
    assert fidelity.claim_b(t, TASKS).verdict == REPRODUCED
    t = table({**BASE, "sacfd": dict(drop=0, qgap=5), "awac": dict(qgap=9)}, noise=0.0)
    assert fidelity.claim_b(t, TASKS).verdict == NOT_REPRODUCED  # no drop; Q above the MC return but below AWAC's
    one = t.copy()
    one.loc[(one["algo"] == "sacfd") & (one["task"] == "t1"), "drop"] = [5.0, 6.0, 7.0]
    assert fidelity.claim_b(one, TASKS).verdict == INCONCLUSIVE  # holds on 1 of 2 tasks
    t = table({**BASE, "sacfd": dict(drop=-1, qgap=5), "awac": dict(qgap=-1)})
    assert fidelity.claim_b(t, TASKS).verdict == REPRODUCED  # overestimates, and more than AWAC


def test_claim_c_and_d_and_e():
    assert fidelity.claim_c(table(BASE), TASKS).verdict == REPRODUCED  # BEAR: off 50 >= 25, gain 2 is the least
    no_offline = {**BASE, "bear": dict(off=0, fin=2)}
    assert fidelity.claim_c(table(no_offline), TASKS).verdict == NOT_REPRODUCED
    assert fidelity.claim_d(table(BASE), TASKS).verdict == REPRODUCED  # AWR's auc_gain 0 is below all three
    faster = {**BASE, "awr": dict(auc_gain=50)}
    assert fidelity.claim_d(table(faster), TASKS).verdict == NOT_REPRODUCED
    assert fidelity.claim_e(table(BASE), TASKS).verdict == REPRODUCED  # BC's gain is 0 on every run
    moved = {**BASE, "bc": dict(off=50, fin=60)}
    assert fidelity.claim_e(table(moved), TASKS).verdict == NOT_REPRODUCED


def test_claim_f_awac_improves_on_two_tasks_and_more_than_bc():
    assert fidelity.claim_f(table(BASE), TASKS).verdict == REPRODUCED  # gain 40 on both tasks, BC's 0
    flat = {**BASE, "awac": dict(off=50, fin=50)}
    assert fidelity.claim_f(table(flat, noise=0.0), TASKS).verdict == NOT_REPRODUCED  # neither part holds
    both_learn = {**BASE, "bc": dict(off=50, fin=90)}  # AWAC improves, but no more than BC does: one part holds
    assert fidelity.claim_f(table(both_learn), TASKS).verdict == INCONCLUSIVE
    one = table(BASE)
    one.loc[(one["algo"] == "awac") & (one["task"] == "t2"), "gain"] = [-1.0, 0.0, 1.0]  # CI straddles 0 on t2
    assert "1/2 tasks" in fidelity.claim_f(one, TASKS).claim
    assert fidelity.claim_f(table({"awac": BASE["awac"]}), TASKS).verdict == INCONCLUSIVE  # no BC runs


def test_claim_g_awac_curve_above_sacfd_and_sac_bc():
    curves = {**BASE, "awac": dict(auc=70), "sacfd": dict(auc=10), "sacfd-prior": dict(auc=30)}
    assert fidelity.claim_g(table(curves), TASKS).verdict == REPRODUCED
    dip_but_ahead = {**curves, "sacfd-prior": dict(auc=80)}
    assert fidelity.claim_g(table(dip_but_ahead), TASKS).verdict == NOT_REPRODUCED
    assert fidelity.claim_g(table(BASE), TASKS).verdict == INCONCLUSIVE  # no SACfD-pretrain runs: n/a


def test_claims_lacking_runs_are_inconclusive_not_refuted():
    """FIDELITY.md: "a claim whose comparisons lack runs is inconclusive". A grid half run (AWAC and AWR only,
    as after the first hour of the standard preset) must not read as (b) or (c) not reproduced."""
    partial = table({"awac": BASE["awac"], "awr": BASE["awr"]})
    assert fidelity.claim_b(partial, TASKS).verdict == INCONCLUSIVE  # was "not reproduced" (0 of 2 tasks hold)
    assert fidelity.claim_c(partial, TASKS).verdict == INCONCLUSIVE  # was "not reproduced" (learns on 0 tasks)
    full = table(BASE)
    no_sacfd_t2 = full[~((full["algo"] == "sacfd") & (full["task"] == "t2"))]
    t = table({**BASE, "sacfd": dict(drop=0, qgap=5), "awac": dict(qgap=9)}, noise=0.0)
    assert fidelity.claim_b(t, TASKS).verdict == NOT_REPRODUCED  # every run there: refuted
    assert fidelity.claim_b(t[~((t["algo"] == "sacfd") & (t["task"] == "t2"))], TASKS).verdict == INCONCLUSIVE
    drops = table({**BASE, "sacfd": dict(off=40, fin=10, drop=30)})
    assert fidelity.claim_b(drops, TASKS).verdict == REPRODUCED
    assert fidelity.claim_c(no_sacfd_t2, TASKS).verdict == INCONCLUSIVE  # P(sacfd > bear) lacks a task's runs
    no_bc = full[full["algo"] != "bc"]
    assert fidelity.claim_c(no_bc, TASKS).verdict == INCONCLUSIVE
    worse = table({**BASE, "bear": dict(off=50, fin=95)})  # BEAR gains most: "<" decides even with runs missing
    assert fidelity.claim_c(worse[worse["algo"] != "bc"], TASKS).verdict == NOT_REPRODUCED


def test_q_gap_averages_the_switch_and_the_online_evaluations():
    rows = [("r", "offline", 1, "q_estimate", 1.0), ("r", "offline", 1, "mc_return", 0.0),  # gap 1: not the switch
            ("r", "offline", 2, "q_estimate", 4.0), ("r", "offline", 2, "mc_return", 0.0),  # gap 4: the switch
            ("r", "online", 3, "q_estimate", 3.0), ("r", "online", 3, "mc_return", 1.0),  # gap 2
            ("r", "online", 3, "critic_loss", 9.0)]
    train = pd.DataFrame(rows, columns=["run_id", "phase", "grad_step", "metric", "value"])
    assert fidelity.q_gaps(train)["r"] == pytest.approx(3.0)
    assert fidelity.q_gaps(train[train["metric"] == "critic_loss"]).empty
