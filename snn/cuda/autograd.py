"""The fused neuron kernels as two PyTorch custom operators, shared by every fused backend;
backends differ only in the :class:`Launcher` that runs the forward and backward kernels.

``snn::fused_neuron_forward`` and ``snn::fused_neuron_backward`` (``torch.library.custom_op``)
take flat tensors and plain scalars and name their launcher by a string key, so
``torch.compile`` (``fullgraph=True`` included) treats each as one opaque node: a whole
network compiles as one graph around the kernels, which run as they do in eager mode.
The forward operator's autograd formula is the backward operator.

Layout: the input ``[T, B, *feature]`` is viewed as ``[T, N]`` with ``N = B·prod(feature)``,
its dims in memory order (:func:`snn.cuda.params.memory_order`: row-major, channels-last, ...;
a copy in row-major order only for an input that is not dense with ``T`` outermost), so neuron
``n`` belongs to channel ``(n // S) % P`` with ``S`` the product of the dims laid out inside
the channel dim (see :func:`snn.cuda.params.channel_layout`). Saved for the backward pass,
besides the flat parameters: for a launcher with ``recomputes_h`` (the CPU one), the input
``x`` and the initial state ``v0`` only, from which its backward kernel recomputes the membranes;
otherwise the pre-reset membrane ``h`` as one ``[T, N]`` sequence in the state dtype, the
initial state only when the decay needs a gradient, and ``x`` only when that decay also
scales the input (``decay_input``). Spikes and post-reset membranes are recomputed from
``h`` in the backward kernels.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

import torch
from torch import Tensor

from snn.cuda.params import (CHARGE_DECAY_INPUT, KernelConfig, channel_layout, flat_param, kernel_config,
                             memory_order, supports)
from snn.custom_ops import call, eager_twin
from snn.neurons.base import NAN_MESSAGE, check_no_nan_membrane, nan_checks_enabled
from snn.neurons.functional import NeuronSpec, multistep

__all__ = ["Launcher", "FusedKernels", "FusedNeuron", "fused_neuron_forward", "fused_neuron_backward", "make_run",
           "state_dtype"]

log = logging.getLogger("snn")


class Launcher(Protocol):
    """Kernel launches of one backend. All tensors are contiguous, on one device; ``[T, N]``
    sequences, ``[N]`` per-neuron vectors, ``[P]`` parameters in :func:`state_dtype`. Optional
    sequences that are not wanted are passed as ``[1, N]`` scratch rows with a 0 flag."""

    def forward(self, x: Tensor, v0: Tensor, beta: Tensor, omb: Tensor, theta: Tensor, S: int,
                cfg: KernelConfig, spikes: Tensor, h: Tensor, store_h: bool, v_seq: Tensor,
                record_v: bool, v_last: Tensor) -> Optional[bool]:
        """Fill ``spikes`` (x dtype), ``h`` and ``v_seq`` if flagged, and ``v_last``; return
        whether ``v_last`` holds NaN if the kernels test that, else ``None``."""

    def backward(self, grad_s: Tensor, has_gs: bool, grad_vseq: Tensor, has_gvseq: bool,
                 grad_vlast: Tensor, h: Optional[Tensor], v0: Tensor, x: Tensor, beta: Tensor, omb: Tensor,
                 theta: Tensor, S: int, cfg: KernelConfig, grad_x: Tensor, grad_v0: Tensor,
                 dbeta: Tensor, need_dbeta: bool, dtheta: Tensor) -> None:
        """Fill ``grad_x`` (x dtype), ``grad_v0``, per-neuron ``dtheta [N]`` (for a launcher
        with ``recomputes_h`` only when it is ``[N]``; ``[1]`` when not wanted) and, if flagged,
        per-neuron ``dbeta [N]`` (without ``recomputes_h``, ``x`` is a real sequence only with
        decay_input and ``v0`` only with ``need_dbeta``)."""


@dataclass(frozen=True)
class FusedKernels:
    """A launcher as the operators know it, without loading it (nor Numba or CuPy).

    Attributes:
        key: the name the operators get; unique per launcher.
        load: makes the launcher; called once, inside the first operator call that needs it.
        dtypes: input dtypes the kernels take; others run the torch reference.
        recomputes_h: the backward kernel recomputes ``h`` from ``x`` and ``v0`` (the forward
            stores no ``h``; ``h`` is passed to the backward as ``None``).
        optional_state: the kernels take a ``[1]`` ``v0`` as one initial value for all neurons,
            a ``[1]`` ``grad_vlast`` as zero, and a ``[1]`` ``grad_v0`` as not wanted (else all
            are ``[N]``).
    """

    key: str
    load: Callable[[], Launcher]
    dtypes: tuple[torch.dtype, ...]
    recomputes_h: bool = False
    optional_state: bool = False


_KERNELS: dict[str, FusedKernels] = {}
_LOADED: dict[str, Launcher] = {}


def _launcher(key: str) -> tuple[FusedKernels, Launcher]:
    kernels = _KERNELS[key]
    if key not in _LOADED:
        _LOADED[key] = kernels.load()
    return kernels, _LOADED[key]


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """dtype of the membrane state for inputs of ``dtype``: float64 stays float64, every other
    dtype (float32, float16, bfloat16) integrates in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _config(c: list[float]) -> KernelConfig:
    return KernelConfig(charge_mode=int(c[0]), hard=c[1], v_reset=c[2], keep_reset=c[3], kind=int(c[4]),
                        sa=c[5], sb=c[6])


def _as_list(cfg: KernelConfig) -> list[float]:
    return [float(cfg.charge_mode), cfg.hard, cfg.v_reset, cfg.keep_reset, float(cfg.kind), cfg.sa, cfg.sb]


# -- forward operator --------------------------------------------------------------------------

def _forward_impl(x: Tensor, v0: Tensor, beta: Tensor, omb: Tensor, theta: Tensor, launcher: str,
                  S: int, config: list[float], store_h: bool, record_v: bool, check_nan: bool
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """All T steps of one layer: ``(spikes [T, N], h, v_seq, v_last [N])``; ``h`` and ``v_seq``
    are ``[T, N]`` when ``store_h``/``record_v``, else empty ``[0, N]``.

    Raises:
        ValueError: ``check_nan`` and the last membrane holds NaN, as any NaN input leaves it
            (:func:`snn.neurons.base.check_no_nan_membrane`; the CPU kernels test it themselves).
    """
    T, N = x.shape
    _, impl = _launcher(launcher)
    x = x.contiguous()
    spikes = torch.empty_like(x)
    h = x.new_empty((T if store_h else 1, N), dtype=beta.dtype)  # [1, N]: a scratch row, never read
    v_seq = x.new_empty((T if record_v else 1, N), dtype=beta.dtype)
    v_last = x.new_empty(N, dtype=beta.dtype)
    has_nan = impl.forward(x, v0.contiguous(), beta.contiguous(), omb.contiguous(), theta.contiguous(), S,
                           _config(config), spikes, h, store_h, v_seq, record_v, v_last)
    if check_nan:
        if has_nan is None:  # the launcher does not test: the layer's pass over the last state
            check_no_nan_membrane(v_last)
        elif has_nan:
            raise ValueError(NAN_MESSAGE.format("x"))
    return spikes, h if store_h else h[:0], v_seq if record_v else v_seq[:0], v_last


fused_neuron_forward = torch.library.custom_op("snn::fused_neuron_forward", _forward_impl, mutates_args=())


@fused_neuron_forward.register_fake
def _forward_fake(x, v0, beta, omb, theta, launcher, S, config, store_h, record_v, check_nan):
    T, N = x.shape
    return (torch.empty_like(x, memory_format=torch.contiguous_format),
            x.new_empty((T if store_h else 0, N), dtype=beta.dtype),
            x.new_empty((T if record_v else 0, N), dtype=beta.dtype), x.new_empty(N, dtype=beta.dtype))


# -- backward operator -------------------------------------------------------------------------

def _grad_sizes(kernels: FusedKernels, N: int, need_v0: bool, need_beta: bool, need_theta: bool
                ) -> tuple[int, int, int]:
    """Lengths of ``grad_v0``, ``dbeta``, ``dtheta`` (``[N]`` or an unwritten ``[1]``)."""
    # a recomputing launcher skips dθ when it is not wanted; the others always write [N]
    return (N if need_v0 or not kernels.optional_state else 1, N if need_beta else 1,
            N if need_theta or not kernels.recomputes_h else 1)


def _backward_impl(grad_s: Optional[Tensor], grad_vseq: Optional[Tensor], grad_vlast: Optional[Tensor],
                   h: Optional[Tensor], v0: Optional[Tensor], x: Optional[Tensor], beta: Tensor,
                   omb: Tensor, theta: Tensor, launcher: str, S: int, config: list[float],
                   x_dtype: torch.dtype, T: int, N: int, need_v0: bool, need_beta: bool,
                   need_theta: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """BPTT over all T steps: ``(grad_x [T, N], grad_v0, dbeta, dtheta)``, the last three per
    neuron (``[N]``, or ``[1]`` where not wanted; see :func:`_grad_sizes`). Missing output
    gradients (``None``) count as zero and are never read."""
    kernels, impl = _launcher(launcher)
    dev, sd = beta.device, beta.dtype

    def row(g: Optional[Tensor], dtype: torch.dtype) -> tuple[Tensor, bool]:
        if g is not None:
            return g.to(dtype).contiguous(), True
        return torch.empty((1, N), dtype=dtype, device=dev), False  # the flag says: never read

    gsf, has_gs = row(grad_s, x_dtype)
    gvsf, has_gvs = row(grad_vseq, sd)
    gvl = (torch.zeros(1 if kernels.optional_state else N, dtype=sd, device=dev) if grad_vlast is None
           else grad_vlast.to(sd).contiguous())
    v0f = v0.contiguous() if v0 is not None else torch.zeros(1, dtype=sd, device=dev)  # unread without dβ
    x_arg = x.contiguous() if x is not None else torch.zeros((1, N), dtype=x_dtype, device=dev)
    n_v0, n_beta, n_theta = _grad_sizes(kernels, N, need_v0, need_beta, need_theta)
    grad_x = torch.empty((T, N), dtype=x_dtype, device=dev)
    grad_v0 = torch.empty(n_v0, dtype=sd, device=dev)
    dbeta = torch.empty(n_beta, dtype=sd, device=dev)
    dtheta = torch.empty(n_theta, dtype=sd, device=dev)
    impl.backward(gsf, has_gs, gvsf, has_gvs, gvl, None if h is None else h.contiguous(), v0f, x_arg,
                  beta.contiguous(), omb.contiguous(), theta.contiguous(), S, _config(config), grad_x,
                  grad_v0, dbeta, need_beta, dtheta)
    return grad_x, grad_v0, dbeta, dtheta


fused_neuron_backward = torch.library.custom_op("snn::fused_neuron_backward", _backward_impl, mutates_args=())


@fused_neuron_backward.register_fake
def _backward_fake(grad_s, grad_vseq, grad_vlast, h, v0, x, beta, omb, theta, launcher, S, config, x_dtype,
                   T, N, need_v0, need_beta, need_theta):
    n_v0, n_beta, n_theta = _grad_sizes(_KERNELS[launcher], N, need_v0, need_beta, need_theta)
    return (beta.new_empty((T, N), dtype=x_dtype), beta.new_empty(n_v0), beta.new_empty(n_beta),
            beta.new_empty(n_theta))


# -- autograd formula of the forward operator --------------------------------------------------

def _setup_context(ctx, inputs, output) -> None:
    x, v0, beta, omb, theta, launcher, S, config, store_h, record_v, _ = inputs
    h, v_seq = output[1], output[2]
    ctx.mark_non_differentiable(h)
    if not record_v:
        ctx.mark_non_differentiable(v_seq)
    ctx.set_materialize_grads(False)
    kernels = _KERNELS[launcher]
    need_beta = ctx.needs_input_grad[2]
    recompute = kernels.recomputes_h
    keep_x = recompute or (need_beta and int(config[0]) == CHARGE_DECAY_INPUT)  # x feeds dβ only there
    keep_v0 = recompute or need_beta
    ctx.save_for_backward(h if store_h else None, v0 if keep_v0 else None, beta, omb, theta,
                          x if keep_x else None)
    ctx.args = (launcher, S, config, x.dtype, x.shape[0], x.shape[1])


def _backward(ctx, gs, gh, gvseq, gvlast):
    h, v0, beta, omb, theta, x = ctx.saved_tensors
    launcher, S, config, x_dtype, T, N = ctx.args
    need_x, need_v0, need_beta, _, need_theta = ctx.needs_input_grad[:5]
    if gvseq is not None and gvseq.shape[0] != T:  # the empty v_seq of a run without record_v
        gvseq = None
    backward = _backward_impl if ctx.eager else fused_neuron_backward
    grad_x, grad_v0, dbeta, dtheta = backward(
        gs, gvseq, gvlast, h, v0, x, beta, omb, theta, launcher, S, config, x_dtype, T, N,
        need_v0, need_beta, need_theta)
    P = beta.shape[0]
    gb = dbeta.view(-1, P, S).sum(dim=(0, 2)) if need_beta else None  # per neuron → per parameter
    gth = dtheta.view(-1, P, S).sum(dim=(0, 2)) if need_theta else None
    return (grad_x if need_x else None, grad_v0 if need_v0 else None, gb, None, gth,
            None, None, None, None, None, None)


FusedNeuron = eager_twin(
    fused_neuron_forward, _forward_impl, _setup_context, _backward, "FusedNeuron",
    """The forward operator's implementation and autograd formula without the operator's
    dispatch (:func:`snn.custom_ops.eager_twin`); eager calls take this path, ``torch.compile``
    traces the operators.""")


# -- the registry entry point ------------------------------------------------------------------

def _uniform(v: Tensor) -> bool:
    """Whether every element of ``v`` is one stored value (stride 0 along every dim of size > 1)."""
    return v.numel() > 0 and all(st == 0 for st, n in zip(v.stride(), v.shape) if n > 1)


def _inverse(order: tuple[int, ...]) -> tuple[int, ...]:
    back = [0] * len(order)
    for i, d in enumerate(order):
        back[d] = i
    return tuple(back)


def _requires_grad(*ts: object) -> bool:
    return torch.is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad for t in ts)


def make_run(kernels: FusedKernels
             ) -> Callable[[Tensor, Tensor, NeuronSpec, bool], tuple[Tensor, Tensor, Optional[Tensor]]]:
    """A registry ``run(x, v0, spec, record_v)`` over the fused operators with ``kernels``'
    launcher; returns ``(spikes, v_last, v_seq or None)``. Gradients flow to ``x``, ``v0`` and
    tensor ``beta``/``v_threshold`` of ``spec``; outputs and gradients keep ``x``'s layout.
    It tests the last membrane for NaN where :func:`snn.neurons.base.nan_checks_enabled` says
    (``ValueError``; register it with ``Backend(checks_nan=True)``).

    Inputs the kernels do not cover (a dtype outside ``kernels.dtypes``, parameters that are not
    scalar or per-channel along dim 2, ``T = 0``) run the torch reference instead, with a
    DEBUG log line. Registering a key again replaces its launcher.
    """
    _KERNELS[kernels.key] = kernels
    _LOADED.pop(kernels.key, None)

    def run(x: Tensor, v0: Tensor, spec: NeuronSpec, record_v: bool = False
            ) -> tuple[Tensor, Tensor, Optional[Tensor]]:
        order = memory_order(x)
        layout = channel_layout(x, spec.beta, spec.v_threshold, order=order)
        if x.dtype not in kernels.dtypes or layout is None or x.shape[0] == 0 or x[0].numel() == 0:
            if not torch.compiler.is_compiling():
                log.debug("fused kernels do not cover dtype=%s shape=%s; running the torch reference",
                          x.dtype, tuple(x.shape))
            out = multistep(x, v0, spec, record_v)
            check_no_nan_membrane(out[1])
            return out
        P, S = layout
        T = x.shape[0]
        xp = x.permute(order)
        xf = xp.contiguous().view(T, -1)  # free for a dense x: the walk is its memory order
        N = xf.shape[1]
        sd, dev = state_dtype(x.dtype), x.device
        beta = spec.beta
        b = flat_param(beta, 1.0, P, sd, dev)
        o = flat_param(None if beta is None else 1.0 - (beta.detach() if isinstance(beta, Tensor) else beta),
                        0.0, P, sd, dev)
        th = flat_param(spec.v_threshold, 0.0, P, sd, dev)
        step_order = tuple(d - 1 for d in order[1:])  # the same walk over one step [B, *feature]
        if kernels.optional_state and _uniform(v0) and not _requires_grad(v0):  # e.g. a broadcast rest state
            v0f = v0[(0,) * v0.dim()].reshape(1).to(sd)
        else:
            v0f = v0.permute(step_order).reshape(N).to(sd).contiguous()
        store_h = _requires_grad(x, v0, beta, spec.v_threshold) and not kernels.recomputes_h
        spikes, _, v_seq, v_last = call(fused_neuron_forward, FusedNeuron, xf, v0f, b, o, th, kernels.key, S, _as_list(kernel_config(spec)),
                                           store_h, record_v, nan_checks_enabled(x))
        back = _inverse(order)
        return (spikes.view(xp.shape).permute(back), v_last.view(xp.shape[1:]).permute(_inverse(step_order)),
                v_seq.view(xp.shape).permute(back) if record_v else None)

    run.supports = supports  # type: ignore[attr-defined]
    return run
