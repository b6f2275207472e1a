"""Networks and small pieces shared by every algorithm: MLPs, twin Q, Gaussian policies, optimizers.

Two policy families are used in the AWAC paper's comparison:

* ``GaussianPolicy`` (AWAC, BC, IQL; AWR keeps its own fixed-std variant): rlkit's ``GaussianPolicy`` with
  ``std_architecture="values"``: mean = tanh(f(s)); a state-independent log-std
  ``min + sigmoid(w) * (max - min)``; the density is a plain diagonal Gaussian (no tanh change of
  variables), so dataset actions have exact likelihoods.
* ``TanhGaussianPolicy`` (SAC, BEAR): SAC's squashed Gaussian, a = tanh(u), u ~ N(mu(s), sigma(s)),
  with the log-det-Jacobian correction (Haarnoja et al. 2018, Appendix C).

What makes the updates fast lives here and nowhere else, so an algorithm writes its losses with autograd
and gets it without writing a derivative:

* ``mlp`` builds a ``ReLUMLP``: in float32 eager mode its whole Linear-ReLU stack is one autograd node
  (``_ReLUMLPFunction``) whose backward is ``mlp_backward``, the matmuls autograd would run (bit for bit,
  ``tests/test_networks.py``) without a graph node, saved tensor and dispatch per layer. Autograd still
  walks the small loss head on top (tanh, log-density, weights), so a loss is written once, as an
  ordinary function of the networks' outputs.
* ``make_adam`` / ``make_sgd`` keep a network's parameters in one flat buffer and step them with one fused
  kernel; ``soft_update`` is one ``lerp_`` over two such buffers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

LOG_2PI = math.log(2.0 * math.pi)


# -- ReLU MLPs: one autograd node for the whole stack ----------------------------------------------------
def mlp(in_dim: int, hidden: Sequence[int], out_dim: int) -> ReLUMLP:
    """Linear-ReLU stack with a linear output layer (PyTorch's default init)."""
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden:
        layers += [nn.Linear(last, h), nn.ReLU(inplace=True)]
        last = h
    layers.append(nn.Linear(last, out_dim))
    return ReLUMLP(*layers)


class ReLUMLP(nn.Sequential):
    """Linear, ReLU, ..., Linear (an ``nn.Sequential``: same children, same state_dict keys).

    ``forward`` is the Sequential's in every case that matters to autograd's extensions: under autocast,
    inside ``torch.compile`` or with ``fused_backward = False`` (e.g. to debug with hooks on the inner
    layers, which the fast path does not call). Otherwise it runs the layers directly (``addmm`` then an
    in-place ReLU: a Linear's backward needs its input, never its output) and, where a gradient is
    needed, as one autograd node whose backward is ``mlp_backward``.
    """

    fused_backward: bool = True

    def __init__(self, *layers: nn.Module):
        super().__init__(*layers)
        kinds = [nn.Linear if i % 2 == 0 else nn.ReLU for i in range(len(layers))]
        if len(layers) % 2 == 0 or any(type(m) is not k for m, k in zip(layers, kinds, strict=True)):
            raise ValueError("ReLUMLP needs Linear, ReLU, ..., Linear")
        self.__dict__["linears"] = list(layers[0::2])  # (not a second registration of the same modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (not self.fused_backward or x.dtype != self.linears[0].weight.dtype or torch.compiler.is_compiling()
                or torch.is_autocast_enabled(x.device.type)):
            return super().forward(x)
        params = [p for layer in self.linears for p in (layer.weight, layer.bias)]
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1]) if x.dim() != 2 else x
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
            out = _ReLUMLPFunction.apply(x2, *params)
        else:
            out = _relu_mlp_forward(params, x2)[0]
        return out if x.dim() == 2 else out.reshape(*lead, out.shape[-1])


def _relu_mlp_forward(params: list[torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Output of the stack and the input of each layer (what its weight gradient needs)."""
    inputs = []
    h = x
    last = len(params) // 2 - 1
    for i in range(last + 1):
        inputs.append(h)
        h = torch.addmm(params[2 * i + 1], h, params[2 * i].t())
        if i < last:
            h = h.relu_()
    return h, inputs


def mlp_backward(weights: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor], grad_out: torch.Tensor,
                 need: Sequence[bool]) -> list[torch.Tensor | None]:
    """Gradients of a ReLU MLP for g = dL/d(output): [dL/dx, dL/dW_1, dL/db_1, ...], last layer first:

        dL/dW = g^T h,   dL/db = sum_rows g,   g <- (g W) * [h > 0]

    where h is the layer's input (a ReLU output, so h > 0 exactly where the ReLU passed its input). ``need``
    says which of them to compute (autograd's ``needs_input_grad``); the others are None.
    """
    out: list[torch.Tensor | None] = [None] * (1 + 2 * len(weights))
    g = grad_out
    for i in range(len(weights) - 1, -1, -1):
        if need[1 + 2 * i]:
            out[1 + 2 * i] = torch.mm(g.t(), inputs[i])
        if need[2 + 2 * i]:
            out[2 + 2 * i] = g.sum(0)
        if i:
            g = torch.ops.aten.threshold_backward(torch.mm(g, weights[i]), inputs[i], 0)
        elif need[0]:
            out[0] = torch.mm(g, weights[0])
    return out


class _ReLUMLPFunction(torch.autograd.Function):
    """The whole stack as one autograd node: inputs (x, W_1, b_1, W_2, b_2, ...), backward ``mlp_backward``."""

    @staticmethod
    def forward(ctx, x, *params):
        out, inputs = _relu_mlp_forward(list(params), x)
        ctx.save_for_backward(x, *params[0::2])
        ctx.hidden = inputs[1:]  # intermediates (ReLU outputs), neither inputs nor outputs of the node
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, *weights = ctx.saved_tensors
        return tuple(mlp_backward(weights, [x, *ctx.hidden], grad_out, ctx.needs_input_grad))


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


def _torch_minor() -> tuple[int, int]:
    major, minor = torch.__version__.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


# ``torch._fused_adam_`` / ``torch._fused_sgd_`` are private: their signatures were read (torch/optim/adam.py
# ``_fused_adam``, sgd.py ``_fused_sgd``) for the pinned torch only. On any other version, or with
# ``USE_FUSED_KERNELS = False`` (tests run both), ``make_adam``/``make_sgd`` return the public
# ``torch.optim.Adam``/``SGD(fused=True)`` over the individual parameters: the same numbers, ~160 us slower
# per Adam step on a 2 x 256 network (docs/PERFORMANCE.md).
FUSED_KERNELS_CHECKED = {(2, 13)}
USE_FUSED_KERNELS = (_torch_minor() in FUSED_KERNELS_CHECKED and hasattr(torch, "_fused_adam_")
                     and hasattr(torch, "_fused_sgd_"))


class _FlatOptimizer:
    """A fused optimizer for a flattened network (see ``flatten_parameters``), by composition.

    ``inner`` is an ordinary ``torch.optim`` optimizer over one parameter, the flat buffer: it holds the
    hyperparameters (``param_groups``, which an lr schedule may change) and the flat state tensors
    (moments, momentum), so ``state_dict`` is exactly ``torch.optim``'s. ``step`` runs the library's fused
    kernel once over the network's parameters (views of the buffer), their gradients (autograd's own
    tensors: nothing copied or accumulated) and the matching views of the state: the same element-wise
    update as ``torch.optim`` over the individual parameters, including skipping a parameter that has no
    gradient, without its per-step Python bookkeeping (``inner.step`` is never called, so optimizer step
    hooks do not fire).
    """

    def __init__(self, inner: torch.optim.Optimizer, params: list[torch.Tensor], flat: torch.Tensor):
        self.inner = inner
        self._params = params  # views of ``flat`` (or ``flat`` itself: a single tensor, e.g. a temperature)
        self._flat = flat
        self._views_of: tuple = (None, [])

    @property
    def param_groups(self) -> list[dict]:
        return self.inner.param_groups

    @property
    def state(self):
        return self.inner.state

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.inner.load_state_dict(state_dict)

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
    def step(self) -> None:
        """One fused update of every parameter that has a gradient."""
        have = [i for i, p in enumerate(self._params) if p.grad is not None]
        if have:
            state = self.state[self._flat]
            if not state:
                self._init_state(state)
            self._fused_step(self.param_groups[0], state, have)


class FlatAdam(_FlatOptimizer):
    """Adam over a flattened network: ``torch._fused_adam_`` once per step, as ``torch.optim.Adam(fused=True)``
    calls it (step += 1, then the kernel over every parameter that has a gradient)."""

    def __init__(self, params, flat, **kw):
        super().__init__(torch.optim.Adam([flat], fused=True, **kw), params, flat)

    def _init_state(self, state) -> None:  # exactly what torch.optim.Adam(fused=True) creates
        state["step"] = torch.zeros((), dtype=torch.float32, device=self._flat.device)
        state["exp_avg"] = torch.zeros_like(self._flat, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(self._flat, memory_format=torch.preserve_format)

    def _fused_step(self, group, state, have) -> None:
        exp_avgs, exp_avg_sqs = self._state_views(("exp_avg", "exp_avg_sq"))
        params = [self._params[i] for i in have]
        step = state["step"]
        step.add_(1)
        kernel = torch._fused_adamw_ if group.get("decoupled_weight_decay") else torch._fused_adam_
        kernel(params, [p.grad for p in params], [exp_avgs[i] for i in have], [exp_avg_sqs[i] for i in have], [],
               [step] * len(params), amsgrad=False, lr=group["lr"], beta1=group["betas"][0],
               beta2=group["betas"][1], weight_decay=group["weight_decay"], eps=group["eps"],
               maximize=group["maximize"], grad_scale=None, found_inf=None)


class FlatSGD(_FlatOptimizer):
    """SGD over a flattened network: ``torch._fused_sgd_`` once per step, as ``torch.optim.SGD(fused=True)``
    calls it. (The momentum buffer starts at zero, so a parameter's first step, whenever it comes, is
    m * 0 + g = g, as in torch.optim; hence no dampening here.)"""

    def __init__(self, params, flat, **kw):
        super().__init__(torch.optim.SGD([flat], fused=True, **kw), params, flat)

    def _init_state(self, state) -> None:
        if self.param_groups[0]["momentum"] != 0:
            state["momentum_buffer"] = torch.zeros_like(self._flat, memory_format=torch.preserve_format)

    def _fused_step(self, group, state, have) -> None:
        params = [self._params[i] for i in have]
        bufs = [] if group["momentum"] == 0 else [self._state_views(("momentum_buffer",))[0][i] for i in have]
        torch._fused_sgd_(params, [p.grad for p in params], bufs, weight_decay=group["weight_decay"],
                          momentum=group["momentum"], lr=group["lr"], dampening=0.0, nesterov=group["nesterov"],
                          maximize=group["maximize"], is_first_step=False, grad_scale=None, found_inf=None)


def _make(kind: str, params, **kw):
    plain, flat_cls = {"adam": (torch.optim.Adam, FlatAdam), "sgd": (torch.optim.SGD, FlatSGD)}[kind]
    if isinstance(params, nn.Module):
        flat = flatten_parameters(params)
        params = list(params.parameters())
    else:
        params = list(params)
        flat = params[0] if len(params) == 1 else None  # one tensor is its own flat buffer
    if USE_FUSED_KERNELS and flat is not None and not kw.get("dampening") and not kw.get("amsgrad"):
        try:
            return flat_cls(params, flat, **kw)
        except (RuntimeError, TypeError):  # fused unsupported for this device/dtype
            pass
    try:
        return plain(params, fused=True, **kw)
    except (RuntimeError, TypeError):  # fused unsupported for this device/dtype: multi-tensor fallback
        return plain(params, foreach=True, **kw)


def make_adam(params: Iterable[torch.nn.Parameter] | nn.Module, lr: float, weight_decay: float = 0.0):
    """Adam with PyTorch's coupled L2 weight decay (as rlkit uses it), one fused kernel per step.

    Given a module, its parameters are flattened into one buffer first (``FlatAdam``): one kernel and
    almost no Python per step; so is a single tensor (e.g. a temperature), which is its own buffer.
    Other lists of tensors get a plain fused ``torch.optim.Adam``.
    """
    return _make("adam", params, lr=lr, weight_decay=weight_decay)


def make_sgd(params: Iterable[torch.nn.Parameter] | nn.Module, lr: float, momentum: float):
    """SGD with (heavy-ball) momentum: v <- m v + g; theta <- theta - lr v (= tf MomentumOptimizer).

    Flattened like ``make_adam`` when given a module."""
    return _make("sgd", params, lr=lr, momentum=momentum)


class GaussianActing:
    """``act`` and ``log_likelihood`` of an algorithm whose ``actor`` is a ``GaussianPolicy`` (AWAC, BC, IQL, SAC+BC):
    the mean action when deterministic, else one sample, clipped to [-1, 1] (``gaussian_action``; jaxrl's
    ``sample_actions`` clips too); log pi(a|s) of the Gaussian. A mixin listed before ``Algorithm``."""

    @torch.inference_mode()
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        mean, log_std = self.actor(self._obs_tensor(obs))
        return gaussian_action(mean, log_std, deterministic)

    def log_likelihood(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.actor.log_prob(obs, act)


class TanhGaussianActing:
    """``act`` and ``log_likelihood`` of an algorithm whose ``actor`` is a ``TanhGaussianPolicy`` (SAC, CQL, RLPD): the
    mean action tanh(mu(s)) when deterministic, else a sample of the squashed Gaussian; log pi(a|s) of that density.
    A mixin listed before ``Algorithm``."""

    @torch.inference_mode()
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        o = self._obs_tensor(obs)
        a = self.actor.deterministic(o) if deterministic else self.actor.rsample(o)[0]
        return a.cpu().numpy()

    def log_likelihood(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.actor.log_prob(obs, act)


@torch.no_grad()
def target_network(source: nn.Module, target: nn.Module) -> nn.Module:
    """``target`` (a freshly built network of ``source``'s shape) as ``source``'s target network: the same
    parameters, no gradients, flattened so that ``soft_update`` is one ``lerp_``. Building ``target`` before this
    call (rather than copying ``source``) keeps its initialisation's draws from the RNG, as the reference codes'
    constructors do."""
    target.load_state_dict(source.state_dict())
    target.requires_grad_(False)
    flatten_parameters(target)
    return target


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging: target <- (1 - tau) * target + tau * source.

    One ``lerp_`` over the flat buffers when both networks are flattened (``flatten_parameters``),
    otherwise one per parameter.
    """
    t_flat, s_flat = target.__dict__.get(_FLAT), source.__dict__.get(_FLAT)
    if t_flat is not None and s_flat is not None and t_flat.shape == s_flat.shape:
        t_flat.detach().lerp_(s_flat.detach(), tau)
        return
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        t.lerp_(s, tau)


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


# -- the diagonal Gaussian log-density, written once ----------------------------------------------------
def standard_gaussian_log_prob(z: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """sum_j log N(x_j; mu_j, sigma_j^2) = sum_j [-z_j^2 / 2 - log sigma_j - log(2 pi) / 2] for the standardised
    residual z = (x - mu) / sigma. SAC passes its noise eps as z: exact, where forming (u - mu) / sigma in
    float32 would cancel terms of size 1 / sigma once the policy is nearly deterministic."""
    return (-0.5 * z.square() - log_std - 0.5 * LOG_2PI).sum(-1)


def diag_gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Sum over the last axis of log N(x; mean, exp(log_std)^2).

    In float32 eager mode with a gradient to compute this is one autograd node (``_DiagGaussianLogProb``, the
    same formula, tested against autograd's graph of it) instead of about ten."""
    if (torch.is_grad_enabled() and not torch.compiler.is_compiling() and not torch.is_autocast_enabled(x.device.type)
            and (x.requires_grad or mean.requires_grad or log_std.requires_grad)):
        return _DiagGaussianLogProb.apply(x, mean, log_std)
    return standard_gaussian_log_prob((x - mean) * torch.exp(-log_std), log_std)


class _DiagGaussianLogProb(torch.autograd.Function):
    """log N(x; mu, sigma^2) summed over the last axis; with z = (x - mu) / sigma and g = dL/dlogp:
    dL/dmu = g z / sigma = -dL/dx,  dL/dlog sigma = g (z^2 - 1) (each summed back to its input's shape)."""

    @staticmethod
    def forward(ctx, x, mean, log_std):
        inv_std = torch.exp(-log_std)
        z = (x - mean) * inv_std
        ctx.save_for_backward(z, inv_std)
        ctx.shapes = (x.shape, mean.shape, log_std.shape)
        return standard_gaussian_log_prob(z, log_std)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        z, inv_std = ctx.saved_tensors
        g = grad.unsqueeze(-1)
        d_mean = g * z * inv_std
        need, (x_shape, mean_shape, log_std_shape) = ctx.needs_input_grad, ctx.shapes
        return (d_mean.neg().sum_to_size(x_shape) if need[0] else None,
                d_mean.sum_to_size(mean_shape) if need[1] else None,
                (g * (z.square() - 1.0)).sum_to_size(log_std_shape) if need[2] else None)


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
        if rlkit_init:
            for q in (self.q1, self.q2):
                rlkit_init_(q.linears, RLKIT_Q_INIT_W)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, act], dim=-1)
        q1, q2 = f32(self.q1(x).squeeze(-1)), f32(self.q2(x).squeeze(-1))
        if self.q_max is not None:
            q1, q2 = q1.clamp(max=self.q_max), q2.clamp(max=self.q_max)
        return q1, q2

    def min_q(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        q1, q2 = self(obs, act)
        return torch.minimum(q1, q2)


class GaussianPolicy(nn.Module):
    """Tanh mean, learned state-independent log-std in [min, max]: rlkit's AWAC policy (``log_std_map="sigmoid"``:
    log_std = min + sigmoid(w) (max - min)) or jaxrl's IQL policy (``"clip"``: log_std = clip(w, min, max),
    ``policy.py`` NormalTanhPolicy with state_dependent_std=False, tanh_squash_distribution=False). w starts at 0
    in both (rlkit ``ptu.zeros(action_dim)``, jaxrl ``nn.initializers.zeros``)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int],
                 min_log_std: float = -6.0, max_log_std: float = 0.0, rlkit_init: bool = False,
                 log_std_map: str = "sigmoid"):
        super().__init__()
        if log_std_map not in ("sigmoid", "clip"):
            raise ValueError(f"log_std_map must be 'sigmoid' or 'clip', got {log_std_map!r}")
        self.net = mlp(obs_dim, hidden, act_dim)
        self.log_std_logits = nn.Parameter(torch.zeros(act_dim))
        self.min_log_std, self.max_log_std = min_log_std, max_log_std
        self.log_std_map = log_std_map
        if rlkit_init:
            rlkit_init_(self.net.linears, RLKIT_POLICY_INIT_W)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (mean, log_std); log_std broadcasts against mean."""
        if self.log_std_map == "clip":
            log_std = self.log_std_logits.clamp(self.min_log_std, self.max_log_std)
        else:
            log_std = self.min_log_std + torch.sigmoid(self.log_std_logits) * (self.max_log_std - self.min_log_std)
        return torch.tanh(f32(self.net(obs))), log_std

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        mean, log_std = self(obs)
        return diag_gaussian_log_prob(act, mean, log_std)

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        mean, log_std = self(obs)
        return mean + torch.exp(log_std) * torch.randn_like(mean)


class TanhGaussianPolicy(nn.Module):
    """SAC's policy: a = tanh(u), u ~ N(mu(s), sigma(s)); log-std clamped to [-20, 2] (rlkit/SAC code).

    One MLP whose last layer has 2 |A| outputs: rows mean | log-std (rlkit's last_fc | last_fc_log_std)."""

    LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], rlkit_init: bool = False):
        super().__init__()
        self.net = mlp(obs_dim, hidden, 2 * act_dim)
        if rlkit_init:
            rlkit_init_(self.net.linears, RLKIT_POLICY_INIT_W, uniform_bias_rows=slice(act_dim, 2 * act_dim))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = f32(self.net(obs)).chunk(2, dim=-1)
        return mean, log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)

    @staticmethod
    def _squash_correction(u: torch.Tensor) -> torch.Tensor:
        # log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u)), numerically stable
        return (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)

    def rsample(self, obs: torch.Tensor, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample a = tanh(mu + sigma eps) and its log-density under the squashed distribution.

        ``noise`` is the standard normal draw eps (drawn here if None; passing it keeps the caller pure). The
        Gaussian term takes z = eps itself (``standard_gaussian_log_prob``)."""
        mean, log_std = self(obs)
        eps = torch.randn_like(mean) if noise is None else noise
        u = mean + torch.exp(log_std) * eps
        return torch.tanh(u), standard_gaussian_log_prob(eps, log_std) - self._squash_correction(u)

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        mean, log_std = self(obs)
        u = torch.atanh(act.clamp(-1.0 + eps, 1.0 - eps))
        return diag_gaussian_log_prob(u, mean, log_std) - self._squash_correction(u)

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        mean, _ = self(obs)
        return torch.tanh(mean)
