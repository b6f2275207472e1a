"""``--compile``: each pure loss method's forward *and* backward, traced once and compiled, run as one call.

An algorithm's update stays as written (``loss, stats = self.some_loss(...)``, ``loss.backward()``,
``opt.step()``). With ``set_speed_options(compile=True)`` every method named in ``Algorithm.compilable`` is
replaced by a ``CompiledLossGrad``, which per call:

1. passes every parameter and buffer of the algorithm's modules, and every tensor attribute of the algorithm,
   as inputs (live values, never constants baked into a graph);
2. runs, for that input signature (shapes, dtypes, and which parameters currently require a gradient), a graph
   traced once by ``make_fx`` that computes the method's outputs and, for each scalar output that requires a
   gradient, ``torch.autograd.grad`` of it with respect to those parameters; the graph is compiled by
   ``torch.compile`` (inductor; on CPU with its C++ wrapper, so no Python runs between the kernels);
3. returns the method's outputs; its scalar losses hang on one autograd node whose backward accumulates the
   precomputed gradients (times the incoming gradient) into the parameters' ``.grad`` itself (no engine node
   and no gradient copy per parameter), so ``loss.backward()`` costs one node.

The rule is unchanged: the traced graph is autograd's own derivative of the same code, and the tests compare
every update against the eager one. Non-scalar outputs come back detached: an update must backpropagate only
through the scalar losses its loss methods return (true of every algorithm here; tests check the updates).
A method that reads a tensor the trace cannot see as an input (a tensor created outside any module or
attribute, e.g. a global), or whose tracing or compiling fails, runs eagerly from then on, with one warning.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from algorithms.base import warn_compile_failed


def _flatten(obj, leaves: list) -> Any:
    """Append the leaves of nested tuples, lists and dicts (what loss methods return) to ``leaves``; returns the
    structure for ``_unflatten``."""
    if isinstance(obj, tuple | list):
        return type(obj), [_flatten(o, leaves) for o in obj]
    if isinstance(obj, dict):
        return dict, {k: _flatten(v, leaves) for k, v in obj.items()}
    leaves.append(obj)
    return None


def _unflatten(spec: Any, leaves) -> Any:
    if spec is None:
        return next(leaves)
    kind, children = spec
    if kind is dict:
        return {k: _unflatten(c, leaves) for k, c in children.items()}
    return kind([_unflatten(c, leaves) for c in children])


class _Root(nn.Module):
    """The algorithm's modules under one root, so that ``functional_call`` can swap all their tensors."""

    def __init__(self, modules: dict[str, nn.Module]):
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)

    def forward(self, method, args: tuple):
        return method(*args)


class _Precomputed(torch.autograd.Function):
    """Outputs ``losses`` (computed already). Its one input is a scalar anchor, not the parameters: backward
    accumulates ``sum_i g_i * grads[i]`` into each parameter's ``.grad`` itself, as autograd's AccumulateGrad
    would, without one engine node (and one gradient copy, the grads being referenced here) per parameter."""

    @staticmethod
    def forward(ctx, payload, anchor):
        losses, grads, params = payload
        ctx.grads, ctx.params = grads, params
        return tuple(loss.detach() for loss in losses)

    @staticmethod
    def backward(ctx, *gouts):
        for g, grads in zip(gouts, ctx.grads, strict=True):
            # the usual loss.backward() on CPU: no multiply (on an accelerator float(g) would wait for the device)
            unit = g.device.type == "cpu" and g.numel() == 1 and float(g) == 1.0
            for p, gr in zip(ctx.params, grads, strict=True):
                if gr is not None:
                    term = gr if unit else gr * g
                    p.grad = term if p.grad is None else p.grad + term  # never in place: term may be ours
        return None, None


class CompiledLossGrad:
    """A loss method of ``algo`` whose outputs and gradients come from one compiled graph (module docstring)."""

    _tracing = False  # a loss method calling another one while traced runs the inner one as plain code

    def __init__(self, algo, name: str, cpp_wrapper: bool | None = None):
        self.algo, self.name = algo, name
        self.eager = getattr(algo, name)
        self.failed = False
        self.root = _Root({k: m for k, m in algo.modules().items() if isinstance(m, nn.Module)})
        named = [(f"p:{k}", v) for k, v in self.root.named_parameters(remove_duplicate=False)]
        named += [(f"b:{k}", v) for k, v in self.root.named_buffers(remove_duplicate=False)]
        self.keys = [k for k, _ in named]
        self.module_tensors = [v for _, v in named]
        self.attrs = [k for k, v in vars(algo).items() if isinstance(v, torch.Tensor)]
        self.keys += [f"a:{k}" for k in self.attrs]
        self.cpp_wrapper = cpp_wrapper
        self.graphs: dict[Any, tuple] = {}
        device = self.module_tensors[0].device if self.module_tensors else None
        self.anchor = torch.zeros((), device=device, requires_grad=True)  # losses require grad through it

    def _tensors(self) -> list[torch.Tensor]:
        """Every tensor the method may read, in ``self.keys`` order (the live objects: in-place updates show)."""
        return self.module_tensors + [getattr(self.algo, k) for k in self.attrs]

    @contextlib.contextmanager
    def _attributes(self, live: dict[str, torch.Tensor]):
        """The algorithm's tensor attributes swapped for the traced ones in ``live`` (others left as they are)."""
        old = {k: getattr(self.algo, k) for k in self.attrs}
        try:
            for k in self.attrs:
                object.__setattr__(self.algo, k, live.get(f"a:{k}", old[k]))
            yield
        finally:
            for k, v in old.items():
                object.__setattr__(self.algo, k, v)

    # -- tracing ----------------------------------------------------------------------------------------
    def _trace(self, keys: list[str], trainable: set[str], tensors: list[torch.Tensor], args: tuple, info: dict):
        from torch.fx.experimental.proxy_tensor import make_fx

        from algorithms import networks

        def outputs_and_grads(state: list[torch.Tensor], args: tuple):
            live = {k: (v.detach().requires_grad_() if k in trainable else v.detach())
                    for k, v in zip(keys, state, strict=True)}
            module_state = {k[2:]: v for k, v in live.items() if k[:2] in ("p:", "b:")}
            with torch.enable_grad():
                with self._attributes(live):
                    out = functional_call(self.root, module_state, (self.eager, args), tie_weights=False,
                                          strict=False)
                flat: list = []
                spec = _flatten(out, flat)
                diff = [i for i, t in enumerate(flat)
                        if isinstance(t, torch.Tensor) and t.requires_grad and t.numel() == 1]
                wrt = [live[k] for k in keys if k in trainable]
                grads = [torch.autograd.grad(flat[i].reshape(()), wrt, allow_unused=True, retain_graph=True)
                         if wrt else () for i in diff]
            info["spec"], info["diff"] = spec, diff
            return [t.detach() if isinstance(t, torch.Tensor) else t for t in flat], grads

        fused = networks.ReLUMLP.fused_backward
        networks.ReLUMLP.fused_backward = False  # trace plain layers
        CompiledLossGrad._tracing = True
        try:
            return make_fx(outputs_and_grads)([t.detach() for t in tensors], args)
        finally:
            networks.ReLUMLP.fused_backward = fused
            CompiledLossGrad._tracing = False

    def _build(self, args: tuple, trainable: set[str]):
        tensors, info = self._tensors(), {}
        graph = self._trace(self.keys, trainable, tensors, args, info)
        placeholders = [n for n in graph.graph.nodes if n.op == "placeholder"][:len(self.keys)]
        used = [i for i, n in enumerate(placeholders) if n.users or self.keys[i] in trainable]
        keys = [self.keys[i] for i in used]
        # trace again over the tensors the method reads: fewer inputs, fewer guards per call
        graph = self._trace(keys, trainable & set(keys), [tensors[i] for i in used], args, info)
        if any(n.op == "get_attr" for n in graph.graph.nodes):
            raise RuntimeError("it reads a tensor that is neither a module's nor an attribute of the algorithm")
        device = tensors[0].device if tensors else torch.device("cpu")
        cpp = device.type == "cpu" if self.cpp_wrapper is None else self.cpp_wrapper
        compiled = torch.compile(graph, dynamic=False, options={"cpp_wrapper": cpp})
        wrt = [i for i in used if self.keys[i] in trainable]
        return compiled, used, wrt, info["spec"], info["diff"]

    def __call__(self, *args):
        if self.failed or CompiledLossGrad._tracing or not torch.is_grad_enabled():
            return self.eager(*args)
        tensors = self._tensors()
        needs_grad = tuple(t.requires_grad for t in tensors)
        key = (tuple((tuple(a.shape), a.dtype, a.device) if isinstance(a, torch.Tensor) else a for a in args),
               needs_grad)
        try:
            if key not in self.graphs:
                trainable = {k for k, n in zip(self.keys, needs_grad, strict=True) if n}
                self.graphs[key] = self._build(args, trainable)
            compiled, used, wrt, spec, diff = self.graphs[key]
            with torch.no_grad():
                flat, grads = compiled([tensors[i] for i in used], args)
        except Exception as e:  # no compiler, untraceable code, ...: eager gives the same numbers
            self.failed = True
            warn_compile_failed(f"{self.algo.name}.{self.name}", e)
            return self.eager(*args)
        flat = list(flat)
        if diff and wrt:
            payload = ([flat[i] for i in diff], grads, [tensors[i] for i in wrt])
            losses = _Precomputed.apply(payload, self.anchor)
            for i, loss in zip(diff, losses, strict=True):
                flat[i] = loss.reshape(flat[i].shape)
        return _unflatten(spec, iter(flat))
