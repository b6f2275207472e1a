"""Cal-QL: the Monte-Carlo lower bound by hand (binding and not), its place in the update, and whole updates
against the straightforward rule of tests/test_cql.py with the bound."""

from __future__ import annotations

import pytest
import torch
from test_cql import ACT, OBS, SMALL, check_against_straightforward_rule, check_learns_and_round_trips, random_batch

import algorithms
from algorithms.cql import CQLNoise, cql_logsumexp


def with_mc(g: torch.Generator):
    return random_batch(g, {"mc_return": torch.randn(16, generator=g)})


def test_bound_by_hand():
    algo = algorithms.make("calql", OBS, ACT, overrides=SMALL)
    q = torch.tensor([[-3.0, 2.0], [0.5, 4.0]])
    lb = torch.tensor([1.0, -1.0])
    # row 0: -3 < 1 binds (-> 1), 2 > 1 does not; row 1: the bound -1 is below both values
    torch.testing.assert_close(algo.calibrate(q, lb), torch.tensor([[1.0, 2.0], [0.5, 4.0]]))
    # CQL leaves them as they are
    assert torch.equal(algorithms.make("cql", OBS, ACT, overrides=SMALL).calibrate(q, lb), q)


def test_bound_in_the_conservative_term_by_hand():
    """|A| = 1, N = 1, importance sampling (the uniform's log-density is log 0.5 = -0.693147), zero log-densities."""
    algo = algorithms.make("calql", OBS, 1, overrides=SMALL)
    q_data = torch.tensor([0.0, 0.0])
    q_rand = torch.tensor([[-5.0], [0.0]])
    q_cur, q_next = torch.tensor([[-3.0], [2.0]]), torch.tensor([[-2.0], [3.0]])
    zero = torch.zeros(2, 1)
    mc = torch.tensor([1.0, -1.0])
    lse = cql_logsumexp(q_data, q_rand, algo.calibrate(q_cur, mc), algo.calibrate(q_next, mc), zero, zero, 1, 1.0,
                        True)
    # row 0, the bound binds for both policy actions (-3, -2 -> 1, 1) but not for the uniform one (-5 stays):
    #   log(e^(-5 + 0.693147) + e^1 + e^1) = 1.695623   (unbounded: log(e^-4.306853 + e^-2 + e^-3) = -1.616471;
    #   the uniform action bounded too would give log(e^1.693147 + 2 e) = 2.386294)
    # row 1, the bound -1 is below 3 and 2: log(e^0.693147 + e^3 + e^2) = 3.383529, as without it
    torch.testing.assert_close(lse, torch.tensor([1.695623, 3.383529]), rtol=0, atol=1e-5)
    unbounded = cql_logsumexp(q_data, q_rand, q_cur, q_next, zero, zero, 1, 1.0, True)
    torch.testing.assert_close(unbounded, torch.tensor([-1.616471, 3.383529]), rtol=0, atol=1e-5)


def test_the_bound_is_the_only_difference_from_cql():
    """Same networks and noise: a bound that never binds gives CQL's losses; one that binds raises the CQL gap."""
    same = {**SMALL, "mixing_ratio": None}
    torch.manual_seed(0)
    calql = algorithms.make("calql", OBS, ACT, overrides=same)
    cql = algorithms.make("cql", OBS, ACT, overrides={**same, **{k: getattr(calql.cfg, k) for k in (
        "cql_min_q_weight", "reward_scale", "reward_bias")}})
    cql.load_state_dict(calql.state_dict())
    g = torch.Generator().manual_seed(3)
    noise = CQLNoise(torch.randn(16, ACT, generator=g), torch.randn(16, 4, ACT, generator=g),
                     torch.rand(16, 4, ACT, generator=g) * 2 - 1, torch.randn(16, 4, ACT, generator=g),
                     torch.randn(16, 4, ACT, generator=g))
    b = random_batch(g)
    low, high = torch.full((16,), -1e6), torch.full((16,), 1e3)
    results = []
    for algo, mc in ((cql, low), (calql, low), (calql, high)):
        b2 = b._replace(extras={"mc_return": mc})
        rew = algo.reward_transform(b.rew)
        results.append(algo.critic_losses(b.obs, b.act, rew, b.next_obs, b.done, algo.policy_q_lower_bound(b2),
                                          algo.alpha(), algo.cql_weight(), noise)[2])
    assert results[1]["cql_gap"] == pytest.approx(results[0]["cql_gap"].item(), rel=1e-6)
    assert results[1]["bound_rate"] == 0.0
    assert results[2]["bound_rate"] == 1.0
    # every policy value raised to 1000: the logsumexp is about 1000 + log(2N) minus a log-density
    assert results[2]["cql_gap"] > 900.0


def test_update_learns_and_round_trips(tmp_path):
    check_learns_and_round_trips("calql", SMALL, with_mc, tmp_path)


def test_missing_mc_return_is_named():
    algo = algorithms.make("calql", OBS, ACT, overrides=SMALL)
    with pytest.raises(RuntimeError, match="mc_return"):
        algo.update(random_batch(torch.Generator().manual_seed(0)))


def test_defaults_and_declarations():
    algo = algorithms.make("calql", OBS, ACT)
    c = algo.cfg  # scripts/run_adroit.sh
    assert (c.actor_hidden, c.critic_hidden, c.cql_min_q_weight) == ((512, 512), (512, 512, 512), 1.0)
    assert (c.reward_scale, c.reward_bias, c.cql_n_actions, c.cql_max_target_backup) == (10.0, 5.0, 10, True)
    assert algo.batch_extras == ("mc_return",) and algo.online_mix() == 0.5 and algo.pretrains
    assert algo.reward_transform(torch.tensor([-1.0, 0.0])).tolist() == [-5.0, 5.0]


def test_updates_match_the_straightforward_rule():
    check_against_straightforward_rule("calql", {})
