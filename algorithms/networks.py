"""Networks and small pieces shared by every algorithm: MLPs, twin Q, Gaussian policies, Adam.

Two policy families are used in the AWAC paper's comparison:

* ``GaussianPolicy`` (AWAC, BC; AWR keeps its own fixed-std variant): rlkit's ``GaussianPolicy`` with
  ``std_architecture="values"``: mean = tanh(f(s)); a state-independent log-std
  ``min + sigmoid(w) * (max - min)``; the density is a plain diagonal Gaussian (no tanh change of
  variables), so dataset actions have exact likelihoods.
* ``TanhGaussianPolicy`` (SAC, BEAR): SAC's squashed Gaussian, a = tanh(u), u ~ N(mu(s), sigma(s)),
  with the log-det-Jacobian correction (Haarnoja et al. 2018, Appendix C).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

LOG_2PI = math.log(2.0 * math.pi)


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    """Linear-ReLU stack with a linear output layer (PyTorch's default init).

    The ReLUs work in place: a Linear's backward needs its input, never its output, so the
    activation can overwrite the pre-activation (one buffer per layer instead of two).
    """
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden:
        layers += [nn.Linear(last, h), nn.ReLU(inplace=True)]
        last = h
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


# -- one flat buffer per network: one fused optimizer kernel, one Polyak kernel ------------------------
_FLAT = "_flat_parameters"  # attribute of a module whose parameters live in one buffer


def flatten_parameters(module: nn.Module) -> torch.Tensor | None:
    """Move every parameter of ``module`` into one contiguous buffer; returns that buffer.

    Each parameter becomes a view of the returned tensor (values unchanged; gradients stay autograd's
    own tensors). An optimizer whose state is laid out the same way updates all of them with one fused
    kernel (``FlatAdam``, ``FlatSGD``), and a Polyak update between two flattened networks is a single
    ``lerp_`` (``soft_update``). Call it after the module is on its device (``.to()`` would copy the
    parameters out of the buffer). Returns None, leaving the module as it is, if the parameters do not
    share one device and dtype.
    """
    if _FLAT in module.__dict__:
        return module.__dict__[_FLAT]
    params = list(module.parameters())
    if not params or len({(p.device, p.dtype) for p in params}) != 1:
        return None
    flat = torch.empty(sum(p.numel() for p in params), device=params[0].device, dtype=params[0].dtype)
    offset = 0
    with torch.no_grad():
        for p in params:
            k = p.numel()
            flat[offset:offset + k].copy_(p.reshape(-1))
            p.data = flat[offset:offset + k].view_as(p)
            offset += k
    module.__dict__[_FLAT] = flat
    return flat


class _FlatOptimizer:
    """Mixin: a fused ``torch.optim`` optimizer for a flattened network (see ``flatten_parameters``).

    To ``torch.optim`` (``param_groups``, ``state``, ``state_dict``) the optimizer has one parameter, the
    flat buffer, whose state tensors (moments, momentum) are flat too. ``step`` runs the library's fused
    kernel once over the network's parameters (views of the buffer), their gradients (autograd's own
    tensors, so nothing is copied or accumulated) and the matching views of the state: the same
    element-wise update as ``torch.optim`` over the individual parameters, including skipping a
    parameter that has no gradient, without its per-step Python bookkeeping.
    """

    def __init__(self, params: list[torch.Tensor], flat: torch.Tensor, **kw):
        self._params = params  # views of ``flat`` (or ``flat`` itself: a single tensor, e.g. a temperature)
        self._flat = flat
        self._views_of: tuple = (None, [])
        super().__init__([flat], fused=True, **kw)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self._params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.detach_().zero_()

    def _split(self, t: torch.Tensor) -> list[torch.Tensor]:
        if len(self._params) == 1 and self._params[0] is self._flat:
            return [t]
        out, offset = [], 0
        for p in self._params:
            out.append(t[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        return out

    def _state_views(self, names: tuple[str, ...]) -> list[list[torch.Tensor]]:
        """Per-parameter views of the flat state tensors (rebuilt if ``load_state_dict`` replaced them)."""
        state = self.state[self._flat]
        key = tuple(id(state[n]) for n in names)
        if self._views_of[0] != key:
            self._views_of = (key, [self._split(state[n]) for n in names])
        return self._views_of[1]

    @torch.no_grad()
    def step(self, closure=None):
        """One fused update of every parameter that has a gradient. (``torch.optim`` would wrap this in
        its profiler label and step-hook dispatch, ~15-25 us a step; ``hooked`` below opts out, so
        step hooks, per-optimizer (``register_step_pre_hook``/``post_hook``) or global
        (``torch.optim.optimizer.register_optimizer_step_*_hook``), do not fire for these optimizers.)"""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        have = [i for i, p in enumerate(self._params) if p.grad is not None]
        if have:
            group = self.param_groups[0]
            state = self.state[self._flat]
            first = not state
            if first:
                self._init_state(group, state)
            self._fused_step(group, state, have, first)
        return loss

    step.hooked = True  # read by torch.optim.Optimizer._patch_step_function: leave ``step`` unwrapped


class FlatAdam(_FlatOptimizer, torch.optim.Adam):
    """Adam over a flattened network: ``torch._fused_adam_`` once per step, as ``torch.optim.Adam(fused=True)``
    calls it (step += 1, then the kernel over every parameter that has a gradient)."""

    def _init_state(self, group, state) -> None:  # exactly what torch.optim.Adam(fused=True) creates
        state["step"] = torch.zeros((), dtype=torch.float32, device=self._flat.device)
        state["exp_avg"] = torch.zeros_like(self._flat, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(self._flat, memory_format=torch.preserve_format)

    def _fused_step(self, group, state, have, first) -> None:
        exp_avgs, exp_avg_sqs = self._state_views(("exp_avg", "exp_avg_sq"))
        params = [self._params[i] for i in have]
        step = state["step"]
        step.add_(1)
        kernel = torch._fused_adamw_ if group.get("decoupled_weight_decay") else torch._fused_adam_
        kernel(params, [p.grad for p in params], [exp_avgs[i] for i in have], [exp_avg_sqs[i] for i in have], [],
               [step] * len(params), amsgrad=False, lr=group["lr"], beta1=group["betas"][0],
               beta2=group["betas"][1], weight_decay=group["weight_decay"], eps=group["eps"],
               maximize=group["maximize"], grad_scale=None, found_inf=None)


class FlatSGD(_FlatOptimizer, torch.optim.SGD):
    """SGD over a flattened network: ``torch._fused_sgd_`` once per step, as ``torch.optim.SGD(fused=True)``
    calls it. (The momentum buffer starts at zero, so a parameter's first step, whenever it comes, is
    m * 0 + g = g, as in torch.optim; hence no dampening here.)"""

    def _init_state(self, group, state) -> None:
        if group["momentum"] != 0:
            state["momentum_buffer"] = torch.zeros_like(self._flat, memory_format=torch.preserve_format)

    def _fused_step(self, group, state, have, first) -> None:
        params = [self._params[i] for i in have]
        bufs = [] if group["momentum"] == 0 else [self._state_views(("momentum_buffer",))[0][i] for i in have]
        torch._fused_sgd_(params, [p.grad for p in params], bufs, weight_decay=group["weight_decay"],
                          momentum=group["momentum"], lr=group["lr"], dampening=0.0, nesterov=group["nesterov"],
                          maximize=group["maximize"], is_first_step=False, grad_scale=None, found_inf=None)


def _make(kind: str, params, **kw) -> torch.optim.Optimizer:
    plain, flat_cls = {"adam": (torch.optim.Adam, FlatAdam), "sgd": (torch.optim.SGD, FlatSGD)}[kind]
    if isinstance(params, nn.Module):
        flat = flatten_parameters(params)
        params = list(params.parameters())
    else:
        params = list(params)
        flat = params[0] if len(params) == 1 else None  # one tensor is its own flat buffer
    if flat is not None and not kw.get("dampening") and not kw.get("amsgrad"):
        try:
            return flat_cls(params, flat, **kw)
        except (RuntimeError, TypeError):  # fused unsupported for this device/dtype
            pass
    try:
        return plain(params, fused=True, **kw)
    except (RuntimeError, TypeError):  # fused unsupported for this device/dtype: multi-tensor fallback
        return plain(params, foreach=True, **kw)


def make_adam(params: Iterable[torch.nn.Parameter] | nn.Module, lr: float,
              weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with PyTorch's coupled L2 weight decay (as rlkit uses it), one fused kernel per step.

    Given a module, its parameters are flattened into one buffer first (``FlatAdam``): one kernel and
    almost no Python per step; so is a single tensor (e.g. a temperature), which is its own buffer.
    Other lists of tensors get a plain fused ``torch.optim.Adam``.
    """
    return _make("adam", params, lr=lr, weight_decay=weight_decay)


def make_sgd(params: Iterable[torch.nn.Parameter] | nn.Module, lr: float, momentum: float) -> torch.optim.SGD:
    """SGD with (heavy-ball) momentum: v <- m v + g; theta <- theta - lr v (= tf MomentumOptimizer).

    Flattened like ``make_adam`` when given a module."""
    return _make("sgd", params, lr=lr, momentum=momentum)


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging: target <- (1 - tau) * target + tau * source.

    One ``lerp_`` over the flat buffers when both networks are flattened (``flatten_parameters``),
    otherwise a multi-tensor lerp over the parameter lists.
    """
    t_flat, s_flat = target.__dict__.get(_FLAT), source.__dict__.get(_FLAT)
    if t_flat is not None and s_flat is not None and t_flat.shape == s_flat.shape:
        t_flat.detach().lerp_(s_flat.detach(), tau)
        return
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


# -- backpropagation by hand through a small ReLU MLP ---------------------------------------------------
# For small networks an autograd step is mostly bookkeeping (AWR's value step: ~70 dispatched operations
# and a graph for three matmuls). Where the gradient of a loss with respect to a network's output has a
# closed form (AWAC, SAC, BC, AWR), the update writes it down and backpropagates it with the functions
# below: the matmuls autograd runs (bit for bit for a given output gradient, tests/test_networks.py),
# a third of the operations. The networks keep their Linear layers in ``_layers`` (set in ``__init__``, in
# ``__dict__`` so it is not a second registration of the same modules).
def relu_mlp_layers(*parts: nn.Module) -> list[nn.Linear] | None:
    """The Linear layers of the network ``parts[0]`` then ``parts[1]`` ... if each part is an
    ``nn.Sequential``, ``nn.Linear`` or ``nn.ReLU`` (whose forward is exactly its children in order) and together
    they run Linear, ReLU, ..., Linear (``mlp``; AWR's policy trunk then mean head). Else None: a
    structure the hand-written gradients do not cover (use autograd)."""
    if not all(type(p) in (nn.Sequential, nn.Linear, nn.ReLU) for p in parts):
        return None
    leaves = [m for p in parts for m in p.modules() if not isinstance(m, nn.Sequential)]
    expected = [nn.Linear if i % 2 == 0 else nn.ReLU for i in range(len(leaves))]
    if (len(leaves) % 2 == 0 or any(type(m) is not k for m, k in zip(leaves, expected, strict=True))
            or any(m.bias is None for m in leaves[0::2])):
        return None
    return leaves[0::2]


def mlp_forward_keep(layers: list[nn.Linear], x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Output of the MLP and the input of each layer (what its weight gradient needs). Run under no_grad."""
    inputs = []
    h = x
    for i, layer in enumerate(layers):
        inputs.append(h)
        h = torch.addmm(layer.bias, h, layer.weight.t())
        if i < len(layers) - 1:
            h = h.relu_()
    return h, inputs


def mlp_backward(layers: list[nn.Linear], inputs: list[torch.Tensor], grad_out: torch.Tensor) -> None:
    """Set each layer's ``.grad`` from g = dL/d(output) (replacing what was there), last layer first:

        dL/dW = g^T h,   dL/db = sum_rows g,   g <- (g W) * [h > 0]

    where h is the layer's input (a ReLU output, so h > 0 exactly where the ReLU passed its input).
    No gradient flows into the network's input. Run under no_grad.
    """
    g = grad_out
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        layer.weight.grad = torch.mm(g.t(), inputs[i])
        layer.bias.grad = g.sum(0)
        if i:
            g = torch.ops.aten.threshold_backward(torch.mm(g, layer.weight), inputs[i], 0)


def mlp_input_backward(layers: list[nn.Linear], inputs: list[torch.Tensor], grad_out: torch.Tensor) -> torch.Tensor:
    """dL/d(input) of the MLP for g = dL/d(output), touching no ``.grad`` (a frozen network, e.g. the
    critic under SAC's actor loss): g <- (g W) * [h > 0] down the layers, then g W_1. Run under no_grad."""
    g = grad_out
    for i in range(len(layers) - 1, -1, -1):
        g = torch.mm(g, layers[i].weight)
        if i:
            g = torch.ops.aten.threshold_backward(g, inputs[i], 0)
    return g


# -- rlkit's initialisation (the AWAC paper's code base: AWAC, SAC(fD), BC) ----------------------------
# rlkit/torch/networks/mlp.py ``Mlp``: hidden weights ``ptu.fanin_init``, hidden biases ``b_init_value=0.``,
# last layer weight U(-init_w, init_w) and bias 0; rlkit/torch/sac/policies/gaussian_policy.py: policies use
# init_w=1e-3 and the log-std head of ``TanhGaussianPolicy`` draws its bias from U(-init_w, init_w) too;
# Q-functions (``ConcatMlp``) keep Mlp's init_w=3e-3. ``fanin_init`` reads ``size[0]`` of the weight, which
# for ``nn.Linear``'s (out, in) layout is the layer's output width: U(-1/sqrt(out), 1/sqrt(out)), kept as is.
RLKIT_Q_INIT_W = 3e-3
RLKIT_POLICY_INIT_W = 1e-3


@torch.no_grad()
def rlkit_init_(layers: Sequence[nn.Linear], init_w: float, uniform_bias_rows: slice | None = None) -> None:
    """Initialise a Linear, ReLU, ..., Linear stack as rlkit's ``Mlp`` does (see the comment above).

    ``uniform_bias_rows``: rows of the last layer whose bias is drawn from U(-init_w, init_w) instead of 0
    (rlkit's separate log-std head, here fused into one output layer)."""
    for layer in layers[:-1]:
        bound = 1.0 / math.sqrt(layer.weight.shape[0])
        layer.weight.uniform_(-bound, bound)
        layer.bias.zero_()
    last = layers[-1]
    last.weight.uniform_(-init_w, init_w)
    last.bias.zero_()
    if uniform_bias_rows is not None:
        last.bias[uniform_bias_rows].uniform_(-init_w, init_w)


def f32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32: networks return float32 even under bfloat16 autocast (no op dispatched otherwise)."""
    return x if x.dtype == torch.float32 else x.float()


def diag_gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Sum over the last axis of log N(x; mean, exp(log_std)^2)."""
    z = (x - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


def gaussian_action(mean: torch.Tensor, log_std: torch.Tensor, deterministic: bool) -> np.ndarray:
    """Acting with a plain diagonal Gaussian policy: its mean, or one sample; clipped to [-1, 1]."""
    a = mean if deterministic else mean + torch.exp(log_std) * torch.randn_like(mean)
    return a.clamp(-1.0, 1.0).cpu().numpy()


class TwinQ(nn.Module):
    """Two independent Q(s, a) MLPs (clipped double Q, Fujimoto et al. 2018).

    ``q_max`` clamps the output from above (rlkit's ``Clamp(max=0)`` for the binary-reward hand tasks,
    where every return is <= 0).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], q_max: float | None = None,
                 rlkit_init: bool = False):
        super().__init__()
        self.q1 = mlp(obs_dim + act_dim, hidden, 1)
        self.q2 = mlp(obs_dim + act_dim, hidden, 1)
        self.q_max = q_max
        self.__dict__["_layers"] = (relu_mlp_layers(self.q1), relu_mlp_layers(self.q2))
        if rlkit_init:
            for layers in self._layers:
                rlkit_init_(layers, RLKIT_Q_INIT_W)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, act], dim=-1)
        q1, q2 = f32(self.q1(x).squeeze(-1)), f32(self.q2(x).squeeze(-1))
        if self.q_max is not None:
            q1, q2 = q1.clamp(max=self.q_max), q2.clamp(max=self.q_max)
        return q1, q2

    def min_q(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        q1, q2 = self(obs, act)
        return torch.minimum(q1, q2)

    # -- the regression's gradient by hand (AWAC; see mlp_backward) ------------------------------------
    def forward_keep(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """``forward`` plus what ``mse_backward`` needs. Run under no_grad."""
        x = torch.cat([obs, act], dim=-1)
        (q1, kept1), (q2, kept2) = (mlp_forward_keep(layers, x) for layers in self._layers)
        raw = (q1.squeeze(-1), q2.squeeze(-1))
        q1, q2 = raw
        if self.q_max is not None:
            q1, q2 = q1.clamp(max=self.q_max), q2.clamp(max=self.q_max)
        return q1, q2, (kept1, kept2, raw)

    def mse_backward(self, kept: tuple, q1: torch.Tensor, q2: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Set ``.grad`` of every parameter to the gradient of L = sum_j mean_B (Q_j(s, a) - y)^2 and return L:

            dL/dQ_j = 2 (Q_j - y) / B,   times [raw Q_j <= q_max] where the output is clamped
        """
        scale = 2.0 / y.shape[0]
        loss = y.new_zeros(())
        for layers, inputs, q, raw in zip(self._layers, kept[:2], (q1, q2), kept[2], strict=True):
            err = q - y
            loss = loss + err.square().mean()
            g = err * scale
            if self.q_max is not None:
                g = g * (raw <= self.q_max)
            mlp_backward(layers, inputs, g.unsqueeze(-1))
        return loss

    def min_q_action_grad(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(min_j Q_j(s, a), d min_j Q_j(s, a) / da) with no parameter gradients. Run under no_grad.
        As autograd's ``minimum``: the gradient goes to the smaller Q, half to each on a tie."""
        q1, q2, (kept1, kept2, raw) = self.forward_keep(obs, act)
        g1 = (q1 < q2).to(q1.dtype) + 0.5 * (q1 == q2).to(q1.dtype)
        grads = (g1, 1.0 - g1)
        if self.q_max is not None:
            grads = tuple(g * (r <= self.q_max) for g, r in zip(grads, raw, strict=True))
        dx = (mlp_input_backward(self._layers[0], kept1, grads[0].unsqueeze(-1))
              + mlp_input_backward(self._layers[1], kept2, grads[1].unsqueeze(-1)))
        return torch.minimum(q1, q2), dx[:, obs.shape[-1]:]


class GaussianPolicy(nn.Module):
    """rlkit's AWAC policy: tanh mean, learned state-independent log-std squashed into [min, max]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int],
                 min_log_std: float = -6.0, max_log_std: float = 0.0, rlkit_init: bool = False):
        super().__init__()
        self.net = mlp(obs_dim, hidden, act_dim)
        self.log_std_logits = nn.Parameter(torch.zeros(act_dim))  # rlkit: ptu.zeros(action_dim)
        self.min_log_std, self.max_log_std = min_log_std, max_log_std
        self.__dict__["_layers"] = relu_mlp_layers(self.net)  # (not a registered submodule list)
        if rlkit_init:
            rlkit_init_(self._layers, RLKIT_POLICY_INIT_W)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (mean, log_std); log_std broadcasts against mean."""
        return torch.tanh(f32(self.net(obs))), self.forward_log_std()

    # -- the weighted likelihood's gradient by hand (BC, AWAC; see mlp_backward) -------------------------
    def forward_keep(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``forward`` plus what ``weighted_nll_backward`` needs. Run under no_grad."""
        u, kept = mlp_forward_keep(self._layers, obs)
        return torch.tanh(u), self.forward_log_std(), kept

    def forward_log_std(self) -> torch.Tensor:
        return self.min_log_std + torch.sigmoid(self.log_std_logits) * (self.max_log_std - self.min_log_std)

    def weighted_nll_backward(self, kept: list[torch.Tensor], mean: torch.Tensor, log_std: torch.Tensor,
                              act: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        """Set ``.grad`` of every parameter to the gradient of L = -mean_B(w_i log pi(a_i|s_i)) (w = 1 if
        None; w carries no gradient) and return log pi(a|s). With z = (a - mu) / sigma, mu = tanh(u):

            dL/du_ij     = -(w_i / B) z_ij / sigma_j * (1 - mu_ij^2)
            dL/dlogit_j  = -(1 / B) sum_i w_i (z_ij^2 - 1) * s_j (1 - s_j) (max - min),  s = sigmoid(logit)
        """
        B = act.shape[0]
        inv_std = torch.exp(-log_std)
        z = (act - mean) * inv_std
        wz = z if weights is None else weights.unsqueeze(-1) * z
        mlp_backward(self._layers, kept, (wz * inv_std) * (mean.square() - 1.0) * (1.0 / B))
        z2 = z.square()
        wz2m1 = (z2 - 1.0) if weights is None else weights.unsqueeze(-1) * (z2 - 1.0)
        s = torch.sigmoid(self.log_std_logits)
        self.log_std_logits.grad = wz2m1.sum(0) * (s * (s - 1.0) * ((self.max_log_std - self.min_log_std) / B))
        return (-0.5 * z2 - log_std - 0.5 * LOG_2PI).sum(-1)

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        mean, log_std = self(obs)
        return diag_gaussian_log_prob(act, mean, log_std)

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        mean, log_std = self(obs)
        return mean + torch.exp(log_std) * torch.randn_like(mean)


class TanhGaussianPolicy(nn.Module):
    """SAC's policy: a = tanh(u), u ~ N(mu(s), sigma(s)); log-std clamped to [-20, 2] (rlkit/SAC code)."""

    LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], rlkit_init: bool = False):
        super().__init__()
        self.net = mlp(obs_dim, hidden[:-1], hidden[-1]) if hidden else nn.Identity()
        last = hidden[-1] if hidden else obs_dim
        self.trunk_act = nn.ReLU(inplace=True) if hidden else nn.Identity()  # acts on a Linear's output
        self.head = nn.Linear(last, 2 * act_dim)  # rows: mean | log-std (rlkit's last_fc | last_fc_log_std)
        self.__dict__["_layers"] = relu_mlp_layers(self.net, self.trunk_act, self.head)
        if rlkit_init:
            layers = self._layers or [self.head]
            rlkit_init_(layers, RLKIT_POLICY_INIT_W, uniform_bias_rows=slice(act_dim, 2 * act_dim))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = f32(self.head(self.trunk_act(self.net(obs)))).chunk(2, dim=-1)
        return mean, log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)

    @staticmethod
    def _squash_correction(u: torch.Tensor) -> torch.Tensor:
        # log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u)), numerically stable
        return (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)

    def rsample(self, obs: torch.Tensor, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample and its log-density under the squashed distribution.

        ``noise`` is the standard normal draw (drawn here if None; passing it keeps the caller pure)."""
        mean, log_std = self(obs)
        a, logp, _ = self._squashed_sample(mean, log_std, torch.randn_like(mean) if noise is None else noise)
        return a, logp

    def _squashed_sample(self, mean, log_std, noise) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(a, log pi(a|s), sigma) for u = mu + sigma eps, a = tanh(u). The Gaussian term uses
        (u - mu) / sigma = eps itself: exact, where forming it would cancel terms of size 1 / sigma."""
        std = torch.exp(log_std)
        u = mean + std * noise
        logp = (-0.5 * noise.square() - log_std - 0.5 * LOG_2PI).sum(-1) - self._squash_correction(u)
        return torch.tanh(u), logp, std

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        mean, log_std = self(obs)
        u = torch.atanh(act.clamp(-1.0 + eps, 1.0 - eps))
        return diag_gaussian_log_prob(u, mean, log_std) - self._squash_correction(u)

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        mean, _ = self(obs)
        return torch.tanh(mean)

    # -- the reparameterised loss's gradient by hand (SAC; see mlp_backward) ------------------------------
    def rsample_keep(self, obs: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """``rsample`` plus what ``rsample_backward`` needs. Run under no_grad."""
        out, kept = mlp_forward_keep(self._layers, obs)
        mean, raw_log_std = out.chunk(2, dim=-1)
        a, logp, std = self._squashed_sample(mean, raw_log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX), noise)
        inside = (raw_log_std >= self.LOG_STD_MIN) & (raw_log_std <= self.LOG_STD_MAX)  # the clamp's gradient
        return a, logp, (kept, std, noise, inside)

    def rsample_backward(self, kept: tuple, a: torch.Tensor, dL_da: torch.Tensor, dL_dlogp: torch.Tensor) -> None:
        """Set ``.grad`` of every parameter for a loss L(a, log pi(a|s)) of the reparameterised sample, given
        dL/da (per element) and dL/dlogp (per row). With a = tanh(u), u = mu + sigma eps and
        log pi = sum_j [-eps_j^2 / 2 - log sigma_j - log(2 pi) / 2 - log(1 - tanh(u_j)^2)]:

            dL/du_j        = dL/da_j (1 - a_j^2) + dL/dlogp * 2 a_j
            dL/dmu_j       = dL/du_j
            dL/dlog_std_j  = dL/du_j sigma_j eps_j - dL/dlogp     (zero where the clamp is active)
        """
        inputs, std, noise, inside = kept
        g_u = dL_da * (1.0 - a.square()) + dL_dlogp.unsqueeze(-1) * (2.0 * a)
        g_log_std = (g_u * std * noise - dL_dlogp.unsqueeze(-1)) * inside
        mlp_backward(self._layers, inputs, torch.cat([g_u, g_log_std], dim=-1))
