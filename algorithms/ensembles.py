"""Critic ensembles and layer-normalised MLPs: K independent MLPs run as one batched matmul per layer.

* ``EnsembleMLP``: K MLPs with weights stacked as [K, in, out]; each layer is one ``torch.baddbmm`` over the K
  members, optionally with a per-member LayerNorm either before the ReLU (RLPD: ``rlpd/networks/mlp.py`` ``MLP``
  applies ``nn.LayerNorm`` then the activation) or after it (ReBRAC: ``src/networks.py`` ``Critic``/``DetActor``
  stack Dense, ReLU, LayerNorm). K = 1 is a single (layer-normalised) MLP, e.g. ReBRAC's actor.
* ``EnsembleQ``: an ``EnsembleMLP`` on [s, a] with one output: Q_k(s, a) for k = 1..K as a [K, B] tensor, or for
  a chosen subset of members (RLPD's random target subset, ``rlpd/networks/ensemble.py`` ``subsample_ensemble``).
* Initialisers of the reference code bases: ``xavier_init_`` (flax ``xavier_uniform`` kernels, zero biases: RLPD)
  and ``edac_init_`` (PyTorch-default kernels, biases 0.1, a small uniform last layer: ReBRAC's "initialization as
  in the EDAC paper").

The LayerNorm is flax's ``nn.LayerNorm`` (``epsilon=1e-6``, learned scale 1 and bias 0 per member), not
``torch.nn.LayerNorm``'s default eps of 1e-5. These networks run through autograd layer by layer (no fused
backward as ``networks.mlp``), which ``awac-bench speed`` reports as such.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from algorithms.networks import f32

FLAX_LAYER_NORM_EPS = 1e-6  # flax.linen.LayerNorm(epsilon=1e-6), the default of both reference code bases
Members = torch.Tensor | slice | None  # a subset of the K members: indices, a slice (a view, no copy) or all


def _pick(p: torch.Tensor, members: Members) -> torch.Tensor:
    """The members' rows of a [K, ...] parameter."""
    if members is None:
        return p
    return p[members] if isinstance(members, slice) else p.index_select(0, members)


class EnsembleMLP(nn.Module):
    """K independent MLPs: Linear, [LayerNorm], ReLU, [LayerNorm], ..., Linear; input [..., in] (the same for
    every member, any leading shape); output [K, ..., out].

    ``layer_norm``: None, ``"before_relu"`` (Linear, LayerNorm, ReLU) or ``"after_relu"`` (Linear, ReLU, LayerNorm)
    on every hidden layer. Weights start as ``nn.Linear``'s (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and
    bias); the initialisers below reproduce the reference code bases'.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, num: int, layer_norm: str | None = None):
        super().__init__()
        if layer_norm not in (None, "before_relu", "after_relu"):
            raise ValueError(f"layer_norm must be None, 'before_relu' or 'after_relu', got {layer_norm!r}")
        sizes = [in_dim, *hidden, out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter(torch.empty(num, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(num, 1, fan_out).uniform_(-bound, bound)))
        self.norm_scales = nn.ParameterList()
        self.norm_biases = nn.ParameterList()
        if layer_norm is not None:
            for h in hidden:
                self.norm_scales.append(nn.Parameter(torch.ones(num, 1, h)))
                self.norm_biases.append(nn.Parameter(torch.zeros(num, 1, h)))
        self.num, self.layer_norm = num, layer_norm

    def _norm(self, h: torch.Tensor, i: int, members: Members) -> torch.Tensor:
        scale, bias = _pick(self.norm_scales[i], members), _pick(self.norm_biases[i], members)
        return torch.addcmul(bias, F.layer_norm(h, h.shape[-1:], eps=FLAX_LAYER_NORM_EPS), scale)

    def forward(self, x: torch.Tensor, members: Members = None) -> torch.Tensor:
        """[..., in] -> [K', ..., out]; ``members`` (indices, or a slice) runs only those members (K' of them)."""
        lead = x.shape[:-1]
        h = x.reshape(1, -1, x.shape[-1])
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            w, b = _pick(w, members), _pick(b, members)
            h = torch.baddbmm(b, h.expand(w.shape[0], -1, -1), w)
            if i == last:
                break
            if self.layer_norm == "before_relu":
                h = self._norm(h, i, members)
            h = torch.relu_(h)  # in place: neither baddbmm's nor addcmul's backward needs its output
            if self.layer_norm == "after_relu":
                h = self._norm(h, i, members)
        return f32(h.reshape(h.shape[0], *lead, h.shape[-1]))


class EnsembleQ(nn.Module):
    """K critics Q_k(s, a) = EnsembleMLP([s, a]); ``forward`` gives [K, ...] for inputs [..., dim] (or [K', ...]
    for ``members``). BEAR's K = 2 critics (``algos.py`` ``EnsembleCritic``: separate ``nn.Linear`` stacks, which
    the default ``nn.Linear``-like initialisation matches), RLPD's 10 and ReBRAC's 2 are all this class."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], num: int, layer_norm: str | None = None):
        super().__init__()
        self.net = EnsembleMLP(obs_dim + act_dim, hidden, 1, num, layer_norm)
        self.num = num

    def forward(self, obs: torch.Tensor, act: torch.Tensor, members: Members = None) -> torch.Tensor:
        return self.net(torch.cat([obs, act], dim=-1), members).squeeze(-1)


@torch.no_grad()
def xavier_init_(net: EnsembleMLP, split_last: int = 1) -> None:
    """flax ``nn.initializers.xavier_uniform()`` kernels, U(-sqrt(6 / (in + out)), +), and zero biases (flax's
    default), member by member: RLPD's ``default_init`` (``rlpd/networks/mlp.py``). ``split_last`` = n: the last
    layer is n separate Dense heads side by side (RLPD's policy has a mean head and a log-std head of |A| outputs
    each), so its bound uses each head's width."""
    for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        fan_in, fan_out = w.shape[1], w.shape[2]
        if i == len(net.weights) - 1:
            fan_out //= split_last
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        w.uniform_(-bound, bound)
        b.zero_()


@torch.no_grad()
def edac_init_(net: EnsembleMLP, last_bound: float, hidden_bias: float = 0.1) -> None:
    """ReBRAC's initialisation (``src/networks.py``, "Initialization as in the EDAC paper"; ``src/nn.py``
    ``pytorch_init``, ``uniform_init``): hidden kernels U(-1/sqrt(fan_in), +), hidden biases 0.1, the last
    layer's kernel and bias U(-last_bound, last_bound) (3e-3 for critics, 1e-3 for the actor)."""
    for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        if i < len(net.weights) - 1:
            bound = 1.0 / math.sqrt(w.shape[1])
            w.uniform_(-bound, bound)
            b.fill_(hidden_bias)
        else:
            w.uniform_(-last_bound, last_bound)
            b.uniform_(-last_bound, last_bound)
