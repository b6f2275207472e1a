"""Known-answer tests of BEAR (aviralkumar2907/BEAR algos.py semantics): MMD, ensemble target, dual step."""

import math

import numpy as np
import pytest
import torch

import algorithms
from algorithms.base import Batch
from algorithms.bear import (
    BEAR,
    critic_target,
    ensemble_target,
    lagrange_loss,
    mmd_gaussian,
    mmd_laplacian,
)
from algorithms.ensembles import EnsembleQ

SMALL = {"actor_hidden": (32, 32), "critic_hidden": (32, 32), "vae_hidden": (32, 32)}


def _t(rows):
    return torch.tensor(rows, dtype=torch.float32)


# -- MMD estimator ------------------------------------------------------------------------------
# For x = {0, 1} and y = {0, 2} (1-D, n = m = 2) with k(d) the kernel at distance d, k(0) = 1:
#   mean k_xx = (1 + k(1) + k(1) + 1) / 4 = (1 + k(1)) / 2
#   mean k_yy = (1 + k(2)) / 2
#   mean k_xy = (k(0) + k(2) + k(1) + k(1)) / 4 = (1 + 2 k(1) + k(2)) / 4
#   MMD^2 = (1 + k(1))/2 + (1 + k(2))/2 - (1 + 2 k(1) + k(2))/2 = (1 - k(1)) / 2
# and the code returns sqrt(MMD^2 + 1e-6).
X1 = _t([[[0.0], [1.0]]])
Y1 = _t([[[0.0], [2.0]]])


def test_mmd_laplacian_two_points_in_1d():
    # sigma = 0.5: k(d) = exp(-|d| / (2 * 0.5)) = exp(-|d|) -> k(1) = e^-1 = 0.367879
    # MMD^2 = (1 - 0.367879) / 2 = 0.316060 -> sqrt(0.316061) = 0.562193
    got = mmd_laplacian(X1, Y1, sigma=0.5)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(math.sqrt((1 - math.exp(-1)) / 2 + 1e-6), abs=1e-6)
    assert got.item() == pytest.approx(0.562193, abs=1e-5)


def test_mmd_gaussian_two_points_in_1d_divides_by_two_sigma_not_two_sigma_squared():
    # sigma = 2: the code's k(d) = exp(-d^2 / (2 * 2)) = exp(-d^2 / 4) -> k(1) = e^-0.25 = 0.778801
    # MMD^2 = (1 - 0.778801) / 2 = 0.110600 -> sqrt(0.110601) = 0.332567
    # (a textbook 2 sigma^2 = 8 would give k(1) = e^-0.125 and sqrt((1 - 0.882497)/2) = 0.242389)
    got = mmd_gaussian(X1, Y1, sigma=2.0).item()
    assert got == pytest.approx(math.sqrt((1 - math.exp(-0.25)) / 2 + 1e-6), abs=1e-6)
    assert got == pytest.approx(0.332567, abs=1e-5)


def test_mmd_laplacian_2d_unequal_sample_counts():
    # x = {(0,0), (1,1)}, y = {(0,0)}; sigma = 0.5 -> k = exp(-|a - b|_1), |(1,1)|_1 = 2 -> k = e^-2
    #   mean k_xx = (1 + e^-2 + e^-2 + 1) / 4 = (1 + e^-2) / 2
    #   mean k_yy = 1
    #   mean k_xy = (1 + e^-2) / 2
    #   MMD^2 = (1 + e^-2)/2 + 1 - (1 + e^-2) = (1 - e^-2) / 2 = 0.432332 -> sqrt(0.432333) = 0.657521
    x = _t([[[0.0, 0.0], [1.0, 1.0]]])
    y = _t([[[0.0, 0.0]]])
    assert mmd_laplacian(x, y, 0.5).item() == pytest.approx(0.657521, abs=1e-5)
    # Gaussian, sigma = 1: |(1,1)|^2 = 2 -> k = exp(-2 / 2) = e^-1; same algebra: sqrt((1 - e^-1)/2 + 1e-6)
    assert mmd_gaussian(x, y, 1.0).item() == pytest.approx(0.562193, abs=1e-5)


def test_mmd_is_batched_per_state_and_symmetric():
    # row 0: the 1-D case above; row 1: identical sets -> MMD^2 = 0 -> sqrt(1e-6) = 1e-3
    x = torch.cat([X1, _t([[[3.0], [5.0]]])])
    y = torch.cat([Y1, _t([[[3.0], [5.0]]])])
    # Laplacian, sigma = 0.5: k(1) = exp(-1 / 1) = e^-1; Gaussian, sigma = 1: k(1) = exp(-1 / 2) = e^-0.5
    for f, sigma, k1 in ((mmd_laplacian, 0.5, math.exp(-1)), (mmd_gaussian, 1.0, math.exp(-0.5))):
        got = f(x, y, sigma)
        assert got.shape == (2,)
        assert got[0].item() == pytest.approx(math.sqrt((1 - k1) / 2 + 1e-6), abs=1e-6)
        assert got[1].item() == pytest.approx(1e-3, abs=1e-7)
        torch.testing.assert_close(f(y, x, sigma), got)


# -- critic target ------------------------------------------------------------------------------
def test_ensemble_target_mixes_min_and_max():
    # K = 2 members, B = 3: min = [1, 4, -2], max = [3, 5, 0]
    # 0.75 * min + 0.25 * max = [0.75 + 0.75, 3 + 1.25, -1.5 + 0] = [1.5, 4.25, -1.5]
    q = _t([[1.0, 5.0, -2.0], [3.0, 4.0, 0.0]])
    torch.testing.assert_close(ensemble_target(q, 0.75), _t([1.5, 4.25, -1.5]))
    # K = 3: column [2, -4, 6] -> 0.75 * (-4) + 0.25 * 6 = -3 + 1.5 = -1.5; lambda = 1 is the plain min
    q3 = _t([[2.0], [-4.0], [6.0]])
    torch.testing.assert_close(ensemble_target(q3, 0.75), _t([-1.5]))
    torch.testing.assert_close(ensemble_target(q3, 1.0), _t([-4.0]))


def test_critic_target_maximises_over_sampled_actions():
    # q_next [K=2, B=2, p=3]
    # state 0: Q1 = [1, 4, 2], Q2 = [3, 0, 2] -> min [1, 0, 2], max [3, 4, 2]
    #          mix = [0.75+0.75, 0+1, 1.5+0.5] = [1.5, 1.0, 2.0] -> max 2.0; r = 1, d = 0, gamma = 0.9
    #          y = 1 + 0.9 * 2.0 = 2.8
    # state 1: Q1 = [-1, -2, -3], Q2 = [-1, -2, -5] -> mix = [-1, -2, -0.75*5 - 0.25*3 = -4.5] -> max -1
    #          terminal (d = 1): y = r = 0.5
    q_next = _t([[[1.0, 4.0, 2.0], [-1.0, -2.0, -3.0]],
                 [[3.0, 0.0, 2.0], [-1.0, -2.0, -5.0]]])
    y = critic_target(q_next, _t([1.0, 0.5]), _t([0.0, 1.0]), gamma=0.9, lmbda=0.75)
    torch.testing.assert_close(y, _t([2.8, 0.5]))


def test_ensemble_q_matches_separate_mlps():
    torch.manual_seed(0)
    net = EnsembleQ(3, 2, (5, 4), num=3)  # BEAR's critics: the shared ensemble, no LayerNorm
    obs, act = torch.randn(6, 3), torch.randn(6, 2)
    out = net(obs, act)
    assert out.shape == (3, 6)
    x = torch.cat([obs, act], -1)
    for k in range(3):
        h = x
        for i, (w, b) in enumerate(zip(net.net.weights, net.net.biases, strict=True)):
            h = h @ w[k] + b[k, 0]
            if i < 2:
                h = torch.relu(h)
        torch.testing.assert_close(out[k], h.squeeze(-1))
    torch.testing.assert_close(net(obs, act, members=slice(0, 1))[0], out[0])
    torch.testing.assert_close(net(obs, act, members=torch.tensor([2, 0])), out[[2, 0]])
    # leading batch axes are kept: [2, 3] states -> [K, 2, 3]
    assert net(obs.view(2, 3, 3), act.view(2, 3, 2)).shape == (3, 2, 3)


# -- Lagrange multiplier -------------------------------------------------------------------------
def test_lagrange_loss_gradient_sign():
    # log alpha = 0 (alpha = 1), MMD = [0.25, 0.15], eps = 0.05:
    #   d/d(log alpha) -mean(alpha * (MMD - eps)) = -alpha * (0.20 - 0.05) = -0.15  (descent raises log alpha)
    la = torch.zeros((), requires_grad=True)
    lagrange_loss(la, _t([0.25, 0.15]), 0.05).backward()
    assert la.grad.item() == pytest.approx(-0.15, abs=1e-6)
    # log alpha = ln 2 (alpha = 2), MMD = [0.01, 0.03], eps = 0.05: -2 * (0.02 - 0.05) = +0.06
    la = torch.tensor(math.log(2.0), requires_grad=True)
    lagrange_loss(la, _t([0.01, 0.03]), 0.05).backward()
    assert la.grad.item() == pytest.approx(0.06, abs=1e-6)


@pytest.mark.parametrize("mmd, direction", [(0.30, +1.0), (0.01, -1.0)])
def test_dual_step_raises_alpha_when_violated_and_lowers_it_when_satisfied(mmd, direction):
    # Adam's first step is lr * m_hat / (sqrt(v_hat) + 1e-8) = lr * g / |g| = lr * sign(g) (up to 1e-8):
    # g < 0 when MMD > eps, so log alpha goes 0 -> +1e-3; g > 0 when MMD < eps, so 0 -> -1e-3.
    algo = algorithms.make("bear", 3, 2, overrides={**SMALL, "log_alpha_init": 0.0, "mmd_eps": 0.05})
    algo.dual_step(torch.full((4,), mmd))
    assert algo.log_alpha.item() == pytest.approx(direction * 1e-3, abs=1e-6)


def test_dual_step_clamps_log_alpha_to_code_range():
    # algos.py: log_lagrange2.clamp_(min=-5.0, max=lagrange_thresh=10.0)
    hi = algorithms.make("bear", 3, 2, overrides={**SMALL, "log_alpha_init": 10.0})
    hi.dual_step(torch.full((4,), 1.0))  # violated: would go to 10.001
    assert hi.log_alpha.item() == 10.0
    lo = algorithms.make("bear", 3, 2, overrides={**SMALL, "log_alpha_init": -5.0})
    lo.dual_step(torch.full((4,), 0.0))  # satisfied: would go to -5.001
    assert lo.log_alpha.item() == -5.0


# -- defaults, presets, the update -------------------------------------------------------------
def test_defaults_follow_the_authors_code():
    cfg = algorithms.resolve_config("bear")
    assert (cfg.num_qs, cfg.lmbda, cfg.num_target_samples) == (2, 0.75, 10)
    # the BEAR readme's gaussian setting, also the AWAC authors' launcher of this code (bear/sweep1.py)
    assert (cfg.kernel, cfg.mmd_sigma, cfg.num_mmd_samples) == ("gaussian", 20.0, 5)
    assert (cfg.mmd_eps, cfg.batch_size) == (0.05, 100)
    assert (cfg.log_alpha_min, cfg.log_alpha_max, cfg.alpha_lr) == (-5.0, 10.0, 1e-3)
    assert cfg.warmup_steps == 20_000
    assert (cfg.latent_clip, cfg.vae_kl_weight, cfg.num_act_samples) == (0.5, 0.5, 10)
    loose = algorithms.resolve_config("bear", "loose")
    assert loose.mmd_eps > cfg.mmd_eps
    assert algorithms.get("bear") is BEAR


def test_budget_inside_the_warmup_is_flagged():
    algo = algorithms.make("bear", 3, 2, overrides={**SMALL, "warmup_steps": 2_000})
    assert algo.budget_warnings(2_001) == []          # the last step (index 2000) maximises Q
    (msg,) = algo.budget_warnings(2_000)              # steps 0..1999: all warm-up
    assert "warm-up" in msg and "warmup_steps=2000" in msg and "2000 gradient steps" in msg
    assert algorithms.make("bear", 3, 2, overrides={**SMALL, "warmup_steps": 0}).budget_warnings(0) == []
    assert algorithms.make("awac", 3, 2).budget_warnings(0) == []  # the base class: nothing to flag


def _batch(n=16, obs=3, act=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, obs, generator=g), torch.rand(n, act, generator=g) * 1.8 - 0.9,
                 torch.randn(n, generator=g), torch.randn(n, obs, generator=g), torch.zeros(n))


@pytest.mark.parametrize("kernel", ["laplacian", "gaussian"])
def test_warmup_actor_loss_is_alpha_times_mmd_then_q_enters(kernel):
    torch.manual_seed(0)
    algo = algorithms.make("bear", 3, 2, overrides={**SMALL, "log_alpha_init": 0.0, "warmup_steps": 1,
                                                    "kernel": kernel})
    m = algo.update(_batch())
    # step 0 is in the warm-up: actor loss = mean(alpha * MMD) with alpha = e^0 = 1 -> equals the MMD metric
    assert m["warmup"] == 1.0
    assert m["actor_loss"] == pytest.approx(m["mmd"], rel=1e-6)
    alpha_before = algo.log_alpha.exp().item()  # the actor uses alpha from before this step's dual update
    m = algo.update(_batch(seed=1))
    assert m["warmup"] == 0.0
    # after it: loss = mean(-Q_pi + alpha * MMD)
    assert m["actor_loss"] == pytest.approx(-m["q_pi_mean"] + alpha_before * m["mmd"], rel=1e-5, abs=1e-6)


def test_update_metrics_state_and_acting():
    torch.manual_seed(0)
    algo = algorithms.make("bear", 3, 2, overrides={**SMALL, "warmup_steps": 2})
    for i in range(4):
        m = algo.update(_batch(seed=i))
        for k in ("critic_loss", "actor_loss", "vae_loss", "mmd", "alpha", "q_mean"):
            assert isinstance(m[k], float) and math.isfinite(m[k]), k
    mods = algo.modules()
    assert {"vae", "actor", "actor_target", "critic", "critic_target",
            "vae_opt", "actor_opt", "critic_opt", "alpha_opt"} <= set(mods)
    assert any(p is algo.log_alpha for g in mods["alpha_opt"].param_groups for p in g["params"])
    b = _batch()
    torch.testing.assert_close(algo.q_value(b.obs, b.act), algo.critic(b.obs, b.act).amin(0))
    assert algo.log_likelihood(b.obs, b.act).shape == (16,)
    a = algo.act(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32), deterministic=True)
    assert a.shape == (5, 2) and np.all(np.abs(a) <= 1.0)
    # log alpha is not a module parameter: it travels in extra_state
    state = algo.state_dict()
    other = algorithms.make("bear", 3, 2, overrides={**SMALL, "log_alpha_init": 3.0})
    other.load_state_dict(state)
    assert other.log_alpha.item() == algo.log_alpha.item()
    assert other.alpha_opt.param_groups[0]["params"][0] is other.log_alpha


def test_act_takes_the_argmax_of_the_first_q_over_samples():
    torch.manual_seed(0)
    algo = algorithms.make("bear", 3, 2, overrides={**SMALL, "num_act_samples": 50})
    obs = np.zeros((1, 3), np.float32)
    torch.manual_seed(5)
    a = algo.act(obs, deterministic=True)
    # regenerate the same 50 candidates with the same noise and check the pick is their Q_1 argmax
    torch.manual_seed(5)
    o = torch.zeros(1, 3)
    mean, log_std = algo.actor(o)
    cand = torch.tanh(BEAR._sample_raw(mean, log_std, 50, None))[0]
    q1 = algo.critic(o.expand(50, -1), cand)[0]
    np.testing.assert_allclose(a[0], cand[q1.argmax()].detach().numpy(), atol=1e-6)


def test_vae_loss_goes_down_on_a_small_synthetic_dataset():
    from benchmarks.data.buffer import ReplayBuffer

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n, obs_dim, act_dim = 2000, 4, 2
    obs = rng.standard_normal((n, obs_dim)).astype(np.float32)
    act = np.tanh(obs @ rng.standard_normal((obs_dim, act_dim)) * 0.7).astype(np.float32)  # a = f(s)
    buf = ReplayBuffer(obs_dim, act_dim, n, seed=0)
    buf.add_many(obs, act, rng.standard_normal(n), rng.standard_normal((n, obs_dim)), np.zeros(n),
                 np.zeros(n, bool))
    algo = algorithms.make("bear", obs_dim, act_dim, overrides={**SMALL, "vae_hidden": (64, 64)})
    losses = [algo.update(buf.sample(100))["vae_loss"] for _ in range(300)]
    first, last = np.mean(losses[:20]), np.mean(losses[-20:])
    assert last < 0.5 * first, (first, last)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda():
    torch.manual_seed(0)
    algo = algorithms.make("bear", 3, 2, overrides={**SMALL, "warmup_steps": 1}, device="cuda")
    b = Batch(*(t.cuda() for t in _batch()[:5]))
    for _ in range(3):
        m = algo.update(b)
    assert all(math.isfinite(v) for v in m.values())
    a = algo.act(np.zeros((2, 3), np.float32), deterministic=False)
    assert a.shape == (2, 2)
