"""Known-answer tests for AWR (algorithms/awr.py). Every expected number is worked out by hand below.

Most TD(lambda) cases use gamma = lambda = 0.5 so the arithmetic stays exact in binary floating point:
    end at t:  R_t = r_t + gamma * (0 if done else V(s'_t))
    inside:    R_t = r_t + gamma * ((1 - lambda) * V(s_{t+1}) + lambda * R_{t+1})
               = r_t + 0.25 * V(s_{t+1}) + 0.25 * R_{t+1}          (gamma = lambda = 0.5)
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import algorithms
from algorithms.awr import AWR, advantage_weights, td_lambda_returns
from algorithms.base import Batch
from benchmarks.data.buffer import ReplayBuffer

G = L = 0.5


def _t(*xs, dtype=torch.float32):
    return torch.tensor(xs, dtype=dtype)


# -- td_lambda_returns ---------------------------------------------------------------------------------
def test_td_lambda_terminal_end():
    # rewards 1, 2, 3; V(s_0..s_2) = 10, 20, 30; the episode ends in a true terminal at t = 2.
    # R_2 = 3 + 0.5 * 0                      = 3        (next_values[2] = 99 must be ignored)
    # R_1 = 2 + 0.25 * V(s_2) + 0.25 * R_2   = 2 + 7.5 + 0.75    = 10.25
    # R_0 = 1 + 0.25 * V(s_1) + 0.25 * R_1   = 1 + 5 + 2.5625    = 8.5625
    ret = td_lambda_returns(_t(1, 2, 3), _t(10, 20, 30), _t(99, 99, 99), _t(0, 0, 1),
                            _t(0, 0, 0, dtype=torch.bool), G, L)
    torch.testing.assert_close(ret, _t(8.5625, 10.25, 3.0))


def test_td_lambda_timeout_end_bootstraps():
    # Same rewards and values, but the episode is cut by a time limit at t = 2 with V(s'_2) = 40.
    # R_2 = 3 + 0.5 * 40                     = 23
    # R_1 = 2 + 0.25 * 30 + 0.25 * 23        = 2 + 7.5 + 5.75    = 15.25
    # R_0 = 1 + 0.25 * 20 + 0.25 * 15.25     = 1 + 5 + 3.8125    = 9.8125
    rew, val, nxt = _t(1, 2, 3), _t(10, 20, 30), _t(99, 99, 40)
    no_done = _t(0, 0, 0)
    ret = td_lambda_returns(rew, val, nxt, no_done, _t(0, 0, 1, dtype=torch.bool), G, L)
    torch.testing.assert_close(ret, _t(9.8125, 15.25, 23.0))
    # An unfinished episode (no flag on the newest row) bootstraps exactly like a timeout.
    ret = td_lambda_returns(rew, val, nxt, no_done, _t(0, 0, 0, dtype=torch.bool), G, L)
    torch.testing.assert_close(ret, _t(9.8125, 15.25, 23.0))
    # A terminal wins over a timeout flag on the same row: no bootstrap, same as the terminal case.
    ret = td_lambda_returns(rew, val, nxt, _t(0, 0, 1), _t(0, 0, 1, dtype=torch.bool), G, L)
    torch.testing.assert_close(ret, _t(8.5625, 10.25, 3.0))


def test_td_lambda_two_episodes_back_to_back():
    # Episode A = rows 0-1 (terminal at 1), episode B = rows 2-3 (timeout at 3, V(s'_3) = 50).
    # rewards 1, 2, 3, 4; V(s_t) = 10, 20, 30, 40.
    # R_1 = 2 + 0                            = 2        (V(s_2) = 30 belongs to episode B: must not leak)
    # R_0 = 1 + 0.25 * 20 + 0.25 * 2         = 1 + 5 + 0.5       = 6.5
    # R_3 = 4 + 0.5 * 50                     = 29
    # R_2 = 3 + 0.25 * 40 + 0.25 * 29        = 3 + 10 + 7.25     = 20.25
    ret = td_lambda_returns(_t(1, 2, 3, 4), _t(10, 20, 30, 40), _t(99, 99, 99, 50), _t(0, 1, 0, 0),
                            _t(0, 0, 0, 1, dtype=torch.bool), G, L)
    torch.testing.assert_close(ret, _t(6.5, 2.0, 20.25, 29.0))


def test_td_lambda_limits_and_defaults():
    rew, val, nxt = _t(1, 2, 3), _t(10, 20, 30), _t(99, 99, 40)
    no_done, to = _t(0, 0, 0), _t(0, 0, 1, dtype=torch.bool)
    # lambda = 0 is TD(0): R_t = r_t + gamma * V(s_{t+1}) -> 1 + 0.5*20 = 11, 2 + 0.5*30 = 17, 3 + 0.5*40 = 23
    torch.testing.assert_close(td_lambda_returns(rew, val, nxt, no_done, to, 0.5, 0.0), _t(11.0, 17.0, 23.0))
    # lambda = 1 is Monte Carlo with a bootstrap at the end: R_2 = 23, R_1 = 2 + 0.5*23 = 13.5,
    # R_0 = 1 + 0.5*13.5 = 7.75
    torch.testing.assert_close(td_lambda_returns(rew, val, nxt, no_done, to, 0.5, 1.0), _t(7.75, 13.5, 23.0))
    # The code's gamma = 0.99, lambda = 0.95 on two steps ending in a terminal, V(s_1) = 10:
    # R_1 = 2;  R_0 = 1 + 0.99 * (0.05 * 10 + 0.95 * 2) = 1 + 0.99 * 2.4 = 3.376
    ret = td_lambda_returns(_t(1, 2), _t(0, 10), _t(0, 0), _t(0, 1), _t(0, 0, dtype=torch.bool), 0.99, 0.95)
    torch.testing.assert_close(ret, _t(3.376, 2.0))


# -- weights -------------------------------------------------------------------------------------------
def test_weight_clipping_at_max_weight():
    # beta = 1: exp(-1) = 0.3679, exp(0) = 1, exp(1) = 2.7183, exp(ln 20) = 20 (exactly at the clip),
    # exp(5) = 148.4 -> 20.  beta = 0.5 doubles the exponent: exp(2) = 7.389, exp(4) = 54.6 -> 20.
    adv = _t(-1.0, 0.0, 1.0, math.log(20.0), 5.0)
    torch.testing.assert_close(advantage_weights(adv, 1.0, 20.0), _t(math.exp(-1), 1.0, math.e, 20.0, 20.0))
    torch.testing.assert_close(advantage_weights(_t(1.0, 2.0), 0.5, 20.0), _t(math.exp(2), 20.0))
    # Overflow still clips: exp(1000) = inf -> 20.
    torch.testing.assert_close(advantage_weights(_t(1000.0), 1.0, 20.0), _t(20.0))


# -- the algorithm on a hand-made buffer -------------------------------------------------------------------
def _constant_critic(alg: AWR, v: float) -> None:
    """Make V(s) = v everywhere: zero weights, output bias v / value_scale."""
    with torch.no_grad():
        for p in alg.critic.parameters():
            p.zero_()
        alg.critic[-1].bias.fill_(v / alg.value_scale)


def _hand_buffer(drop_timeout: bool = False) -> ReplayBuffer:
    """Three episodes with 1-D observations, written into a capacity-5 FIFO so it wraps.

    A: 0 -> 1 (r=1), 1 -> 2 (r=2, terminal)
    B: 10 -> 11 (r=1), 11 -> 12 (r=2), 12 -> 13 (r=3, timeout)
    C: 20 -> 21 (r=5)                      (still being collected: no flag)
    Six rows into five slots: A's first row is evicted; order() = A1, B0, B1, B2, C0.
    """
    buf = ReplayBuffer(1, 1, capacity=5, extras=("ret", "adv"))
    rows = [(0, 1, 1, 0, 0), (1, 2, 2, 1, 0), (10, 11, 1, 0, 0), (11, 12, 2, 0, 0),
            (12, 13, 3, 0, 0 if drop_timeout else 1), (20, 21, 5, 0, 0)]
    for s, s2, r, d, to in rows:
        buf.add(np.array([s], np.float32), np.array([0.1], np.float32), r, np.array([s2], np.float32),
                bool(d), bool(to))
    return buf


# Returns with V = 10 everywhere, gamma = lambda = 0.5 (rows in order A1, B0, B1, B2, C0):
# A1 = 2 + 0.5 * 0                        = 2       (terminal)
# B2 = 3 + 0.5 * 10                       = 8       (timeout: bootstrap)
# B1 = 2 + 0.25 * 10 + 0.25 * 8           = 6.5
# B0 = 1 + 0.25 * 10 + 0.25 * 6.5         = 5.125
# C0 = 5 + 0.5 * 10                       = 10      (unfinished: bootstrap)
HAND_RET = [2.0, 5.125, 6.5, 8.0, 10.0]


@pytest.mark.parametrize("drop_timeout", [False, True])
def test_prepare_updates_fills_buffer_returns(drop_timeout):
    # With B2's timeout flag dropped, the discontinuity next_obs = 13 != obs = 20 still ends episode B.
    alg = algorithms.make("awr", 1, 1, overrides={"gamma": G, "td_lambda": L})
    _constant_critic(alg, 10.0)
    buf = _hand_buffer(drop_timeout)
    alg.prepare_updates(buf)
    torch.testing.assert_close(buf.extras["ret"][buf.order()], _t(*HAND_RET))


def _protected_hand_buffer() -> ReplayBuffer:
    """Prior episode P (3 rows) protected, then 6 online rows of one episode into a 4-slot online FIFO.

    P: 10 -> 11 (r=1), 11 -> 12 (r=2), 12 -> 13 (r=3, terminal)         rows 0, 1, 2 (protected)
    O: k -> k + 1 (r = k + 1) for k = 0..5, no flag (still being collected)
    Online slots 3..6 hold k = 4, 5, 2, 3 (k = 0, 1 evicted, the prior rows untouched); ptr = 5, and
    order() = 0, 1, 2, 5, 6, 3, 4: P0, P1, P2, O2, O3, O4, O5.
    """
    buf = ReplayBuffer(1, 1, capacity=7, extras=("ret", "adv"))
    f = np.float32
    buf.add_many(np.array([[10], [11], [12]], f), np.full((3, 1), 0.1, f), np.array([1, 2, 3], f),
                 np.array([[11], [12], [13]], f), np.array([0, 0, 1], f), np.zeros(3, bool))
    buf.protect()
    for k in range(6):
        buf.add(np.array([k], f), np.array([0.2], f), float(k + 1), np.array([k + 1], f), False, False)
    return buf


# Returns with V = 2 everywhere, gamma = lambda = 0.5, inside an episode R_t = r_t + 0.5 * (0.5 * 2 + 0.5 * R_t+1):
# P2 = 3                         (terminal)    O5 = 6 + 0.5 * 2 = 7           (unfinished: bootstrap)
# P1 = 2 + 0.5 + 0.25 * 3 = 3.25               O4 = 5 + 0.5 + 0.25 * 7     = 7.25
# P0 = 1 + 0.5 + 0.25 * 3.25 = 2.3125          O3 = 4 + 0.5 + 0.25 * 7.25  = 6.3125
#                                              O2 = 3 + 0.5 + 0.25 * 6.3125 = 5.078125
PROTECTED_RET = [2.3125, 3.25, 3.0, 5.078125, 6.3125, 7.25, 7.0]


def test_prior_rows_survive_the_online_fifo_and_returns_stay_in_order():
    buf = _protected_hand_buffer()
    assert buf.protected == 3 and len(buf) == 7 and buf.ptr == 5
    assert buf.order().tolist() == [0, 1, 2, 5, 6, 3, 4]
    assert buf.obs[:3, 0].tolist() == [10, 11, 12] and buf.rew[:3].tolist() == [1, 2, 3]  # prior rows intact
    assert buf.obs[buf.order(), 0].tolist() == [10, 11, 12, 2, 3, 4, 5]
    alg = algorithms.make("awr", 1, 1, overrides={"gamma": G, "td_lambda": L})
    _constant_critic(alg, 2.0)
    alg.prepare_updates(buf)
    torch.testing.assert_close(buf.extras["ret"][buf.order()], _t(*PROTECTED_RET))
    # the same rows written as one block: only the newest 4 are kept (slots 3..6, ptr back at 3), same order
    blk = ReplayBuffer(1, 1, capacity=7, extras=("ret", "adv"))
    blk.add_many(buf.obs[:3], buf.act[:3], buf.rew[:3], buf.next_obs[:3], buf.done[:3], buf.timeout[:3])
    blk.protect()
    k = np.arange(6, dtype=np.float32)[:, None]
    blk.add_many(k, np.full((6, 1), 0.2, np.float32), k[:, 0] + 1, k + 1, np.zeros(6), np.zeros(6, bool))
    assert blk.ptr == 3 and torch.equal(blk.obs[blk.order()], buf.obs[buf.order()])


def test_new_rows_counted_modulo_the_online_region():
    # The normaliser records exactly the rows written since the last prepare_updates, also across the wrap.
    alg = algorithms.make("awr", 1, 1, overrides={"normalizer_samples": 100})
    buf = ReplayBuffer(1, 1, capacity=7, extras=("ret", "adv"))
    f = np.float32
    buf.add_many(np.zeros((3, 1), f), np.zeros((3, 1), f), np.zeros(3, f), np.zeros((3, 1), f), np.zeros(3, f),
                 np.zeros(3, bool))
    buf.protect()
    alg.prepare_updates(buf)
    counts = []
    # 3 rows (no wrap), 4 rows (exactly the region: ptr back in place, the size tells), 3 rows (wraps)
    for n in (3, 4, 3):
        for _ in range(n):
            buf.add(np.ones(1, f), np.zeros(1, f), 0.0, np.ones(1, f), False, False)
        alg.prepare_updates(buf)
        counts.append(float(alg.obs_norm.count))
    assert counts == [6, 10, 13]


def test_protect_rules():
    buf = ReplayBuffer(1, 1, capacity=2)
    one = (np.zeros((2, 1)), np.zeros((2, 1)), np.zeros(2), np.zeros((2, 1)), np.zeros(2), np.zeros(2, bool))
    buf.add_many(*one)
    buf.protect()
    with pytest.raises(RuntimeError, match="protected"):
        buf.add(np.zeros(1), np.zeros(1), 0.0, np.zeros(1), False, False)
    with pytest.raises(RuntimeError, match="protected"):
        buf.add_many(*one)
    with pytest.raises(RuntimeError, match="protect"):
        buf.protect()


def test_policy_step_normalises_over_buffer_and_clips():
    # critic_steps = 0: the advantage statistics are computed in prepare_updates from the whole buffer.
    # A = R - V = -8, -4.875, -3.5, -2, 0;  mean = -18.375 / 5 = -3.675
    # deviations -4.325, -1.2, 0.175, 1.675, 3.675; squares 18.705625, 1.44, 0.030625, 2.805625, 13.505625
    # var = 36.4875 / 5 = 7.2975 (ddof 0, as np.std), std = 2.701388...
    # beta = 0.25: w = min(exp(4 * (A - mean) / (std + 1e-5)), 20)
    #   C0: 4 * 3.675 / 2.70140 = 5.4416 -> exp = 230.8 -> clipped to 20; every other row stays below 20
    #   (B2: exp(4 * 1.675 / 2.70140) = exp(2.4802) = 11.94), so the clipped fraction is 1/5.
    alg = algorithms.make("awr", 1, 1, overrides={"gamma": G, "td_lambda": L, "critic_steps": 0,
                                                  "actor_steps": 5, "beta": 0.25})
    _constant_critic(alg, 10.0)
    buf = _hand_buffer()
    alg.prepare_updates(buf)
    adv = [r - 10.0 for r in HAND_RET]
    mean = sum(adv) / 5
    std = math.sqrt(sum((a - mean) ** 2 for a in adv) / 5)
    assert mean == pytest.approx(-3.675) and std ** 2 == pytest.approx(7.2975)
    w = [min(math.exp((a - mean) / (std + 1e-5) / 0.25), 20.0) for a in adv]
    assert w[3] == pytest.approx(11.94, abs=0.01) and w[4] == 20.0
    # Pin the policy mean at 1.5 (zero mean-head weights, bias 1.5); every dataset action is 0.1.
    # bound loss = 0.5 * (1.5 - 1)^2 = 0.125, times the code's weight 10 = 1.25
    # log pi(0.1) = -0.5 * ((0.1 - 1.5) / 0.2)^2 - ln 0.2 - 0.5 ln(2 pi)
    #             = -24.5 + 1.60944 - 0.91894 = -23.8095
    # actor loss = -mean(w * log pi) + 1.25 = 23.8095 * mean(w) + 1.25
    with torch.no_grad():
        alg.actor.net[-1].weight.zero_()
        alg.actor.net[-1].bias.fill_(1.5)
    order = buf.order()
    torch.testing.assert_close(buf.extras["adv"][order], torch.tensor(adv))  # A = R - V stored per row
    batch = Batch(buf.obs[order], buf.act[order], buf.rew[order], buf.next_obs[order], buf.done[order],
                  {"ret": buf.extras["ret"][order].clone(), "adv": buf.extras["adv"][order].clone()})
    m = alg.update(batch)
    logp = -0.5 * (1.4 / 0.2) ** 2 - math.log(0.2) - 0.5 * math.log(2 * math.pi)
    assert logp == pytest.approx(-23.8095, abs=1e-4)
    assert m["bound_loss"] == pytest.approx(0.125, rel=1e-5)
    assert m["actor_loss"] == pytest.approx(-logp * sum(w) / 5 + 1.25, rel=1e-5)
    assert m["clipped_fraction"] == pytest.approx(0.2)
    assert m["weight_max"] == pytest.approx(20.0)
    assert m["weight_mean"] == pytest.approx(sum(w) / 5, rel=1e-5)
    assert m["adv_mean"] == pytest.approx(mean, rel=1e-6)
    assert m["adv_std"] == pytest.approx(std, rel=1e-5)


def test_block_schedule_and_refresh_at_switch():
    # One block = 3 value steps then 2 policy steps; after the last value step the buffer's returns are
    # recomputed with the updated critic, so they differ from the ones prepare_updates wrote.
    torch.manual_seed(0)
    alg = algorithms.make("awr", 1, 1, overrides={"gamma": G, "td_lambda": L, "critic_steps": 3,
                                                  "actor_steps": 2, "batch_size": 4})
    assert alg.online_rhythm() == (2048, 5)
    buf = _hand_buffer()
    alg.prepare_updates(buf)
    before = buf.extras["ret"].clone()
    kinds = []
    for i in range(10):  # two blocks' worth without a new prepare_updates: the pattern repeats
        m = alg.update(buf.sample(alg.batch_size("offline")))
        kinds.append("V" if "critic_loss" in m else "P")
        assert all(math.isfinite(v) for v in m.values())
        if i == 2:
            after = buf.extras["ret"].clone()
            v = alg.value(buf.obs[buf.order()])
            # Re-derive the refreshed returns independently from the new critic's values.
            o = buf.order()
            nxt = torch.zeros(5)
            nxt[[3, 4]] = alg.value(buf.next_obs[o][[3, 4]])
            want = td_lambda_returns(buf.rew[o], v, nxt, buf.done[o], buf.timeout[o], G, L)
            torch.testing.assert_close(after[o], want)
            torch.testing.assert_close(buf.extras["adv"][o], want - v)  # the policy steps' advantages: new R - new V
            assert not torch.equal(before, after)
    assert "".join(kinds) == "VVVPPVVVPP"


def test_observation_normaliser_records_until_limit():
    alg = algorithms.make("awr", 2, 1, overrides={"normalizer_samples": 4})
    buf = ReplayBuffer(2, 1, capacity=10, extras=("ret", "adv"))
    x = np.array([[0, 1], [2, 1], [4, 1]], np.float32)  # mean (2, 1); std (sqrt(8/3), 0 -> floor 0.01)
    buf.add_many(x, np.zeros((3, 1)), np.zeros(3), x, np.zeros(3), np.zeros(3, bool))
    alg.prepare_updates(buf)
    torch.testing.assert_close(alg.obs_norm.mean, _t(2.0, 1.0))
    torch.testing.assert_close(alg.obs_norm.std, _t(math.sqrt(8 / 3), 0.01))
    alg.prepare_updates(buf)  # no new rows: unchanged
    assert float(alg.obs_norm.count) == 3
    # Two new rows (6, 1), (8, 1): 3 < 4 so they are recorded: mean x = (0+2+4+6+8)/5 = 4
    y = np.array([[6, 1], [8, 1]], np.float32)
    buf.add_many(y, np.zeros((2, 1)), np.zeros(2), y, np.zeros(2), np.zeros(2, bool))
    alg.prepare_updates(buf)
    torch.testing.assert_close(alg.obs_norm.mean, _t(4.0, 1.0))
    # Now 5 >= 4 samples: later rows are no longer recorded.
    buf.add_many(y * 100, np.zeros((2, 1)), np.zeros(2), y, np.zeros(2), np.zeros(2, bool))
    alg.prepare_updates(buf)
    torch.testing.assert_close(alg.obs_norm.mean, _t(4.0, 1.0))


def test_contract_defaults_and_policy_density():
    alg = algorithms.make("awr", 17, 6)
    assert "awr" in algorithms.names() and AWR.batch_extras == ("ret", "adv")
    assert alg.online_rhythm() == (2048, 1500)
    assert alg.batch_size("offline") == alg.batch_size("online") == 256
    # every offline row plus a FIFO of at most buffer_size = 50k online rows
    assert alg.buffer_capacity(1_000_000, 1_000_000) == 1_050_000
    assert alg.buffer_capacity(1_000, 300) == 1_300
    assert algorithms.make("awr", 17, 6, preset="halfcheetah").cfg.action_std == 0.4
    a = alg.act(np.random.default_rng(0).normal(size=(5, 17)) * 50, deterministic=False)
    assert a.shape == (5, 6) and a.dtype == np.float32 and np.all(np.abs(a) <= 1.0)
    # Fixed std 0.2: log N(a; mu, 0.2^2) summed over 6 dims at a = mu is 6 * (-ln 0.2 - 0.5 ln 2pi)
    obs = torch.zeros(1, 17)
    mu = torch.as_tensor(alg.act(obs.numpy(), deterministic=True))
    want = 6 * (-math.log(0.2) - 0.5 * math.log(2 * math.pi))
    assert alg.log_likelihood(obs, mu).item() == pytest.approx(want, rel=1e-5)
    assert alg.q_value(obs, mu) is None
    assert not any(p.requires_grad for n, p in alg.actor.named_buffers())  # std is not trained
    alg.load_state_dict(alg.state_dict())


# -- a tiny learning check ---------------------------------------------------------------------------------
def test_value_loss_decreases_on_synthetic_data():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    obs_dim, act_dim, ep_len, n_eps = 3, 2, 20, 10
    obs, nxt, act, rew, done, to = [], [], [], [], [], []
    for _ in range(n_eps):
        s = rng.normal(size=obs_dim).astype(np.float32)
        for t in range(ep_len):
            a = np.tanh(s[:act_dim] + 0.3 * rng.normal(size=act_dim)).astype(np.float32)
            s2 = (0.9 * s + 0.1 * np.concatenate([a, [0.0]])).astype(np.float32)
            obs.append(s), nxt.append(s2), act.append(a), rew.append(float(s[0] + a[0]))
            done.append(0.0), to.append(t == ep_len - 1)
            s = s2
    buf = ReplayBuffer(obs_dim, act_dim, capacity=1000, seed=0, extras=("ret", "adv"))
    buf.add_many(np.array(obs), np.array(act), np.array(rew), np.array(nxt), np.array(done), np.array(to))
    alg = algorithms.make("awr", obs_dim, act_dim, overrides={"critic_steps": 50, "actor_steps": 50,
                                                              "batch_size": 64, "actor_lr": 1e-2})

    def value_loss() -> float:  # the critic loss against the current targets, over the whole buffer
        o = buf.order()
        v_n = alg.value(buf.obs[o]) / alg.value_scale
        return (0.5 * (buf.extras["ret"][o] / alg.value_scale - v_n).pow(2).mean()).item()

    def data_loglik() -> float:
        with torch.no_grad():
            return alg.log_likelihood(buf.obs[:200], buf.act[:200]).mean().item()

    alg.prepare_updates(buf)
    loss0, ll0 = value_loss(), data_loglik()
    for _ in range(4):  # 4 blocks = 400 updates
        alg.prepare_updates(buf)
        for _ in range(100):
            m = alg.update(buf.sample(alg.batch_size("offline")))
            assert all(math.isfinite(v) for v in m.values())
    alg.prepare_updates(buf)
    loss1, ll1 = value_loss(), data_loglik()
    assert loss1 < 0.5 * loss0, (loss0, loss1)
    assert ll1 > ll0, (ll0, ll1)


def test_update_before_prepare_updates_is_an_error():
    alg = algorithms.make("awr", 1, 1, overrides={"critic_steps": 0, "actor_steps": 2})
    with pytest.raises(RuntimeError, match="prepare_updates"):
        alg.update(_hand_buffer().sample(2))
