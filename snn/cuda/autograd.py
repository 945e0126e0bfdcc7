"""One ``torch.autograd.Function`` for every fused backend; backends differ only in the
:class:`Launcher` that runs the forward and backward kernels on flat tensors.

Layout: the input ``[T, B, *feature]`` is viewed as ``[T, N]`` with ``N = B·prod(feature)``,
its dims in memory order (:func:`snn.cuda.params.memory_order`: row-major, channels-last, ...;
a copy in row-major order only for an input that is not dense with ``T`` outermost), so neuron
``n`` belongs to channel ``(n // S) % P`` with ``S`` the product of the dims laid out inside
the channel dim (see :func:`snn.cuda.params.channel_layout`). Saved for the backward pass,
besides the flat parameters: for a launcher with ``recomputes_h`` (the CPU one), the input
``x`` and the initial state ``v0 [N]`` only, from which its backward kernel recomputes the membranes;
otherwise the pre-reset membrane ``h`` as one ``[T, N]`` sequence in the state dtype, the
initial state only when the decay needs a gradient, and ``x`` only when that decay also
scales the input (``decay_input``). Spikes and post-reset membranes are recomputed from
``h`` in the backward kernels.
"""
from __future__ import annotations

import logging
from typing import Callable, Optional, Protocol

import torch
from torch import Tensor

from snn.cuda.params import KernelConfig, channel_layout, flat_param, kernel_config, memory_order, supports
from snn.neurons.functional import NeuronSpec, multistep

__all__ = ["Launcher", "FusedNeuron", "make_run"]

log = logging.getLogger("snn")


class Launcher(Protocol):
    """Kernel launches of one backend. All tensors are contiguous, on one device; ``[T, N]``
    sequences, ``[N]`` per-neuron vectors, ``[P]`` parameters in ``state_dtype``. Optional
    sequences that are not wanted are passed as ``[1, N]`` scratch rows with a 0 flag."""

    name: str
    #: the backward kernel recomputes ``h`` from ``x`` and ``v0`` (then ``h`` is passed as ``None``)
    recomputes_h: bool
    #: the kernels take a ``[1]`` ``v0`` as one initial value for all neurons, a ``[1]``
    #: ``grad_vlast`` as zero, and a ``[1]`` ``grad_v0`` as not wanted (else all are ``[N]``)
    optional_state: bool

    def state_dtype(self, x: Tensor) -> torch.dtype:
        """dtype of the membrane state and saved ``h`` for input ``x``."""

    def forward(self, x: Tensor, v0: Tensor, beta: Tensor, omb: Tensor, theta: Tensor, S: int,
                cfg: KernelConfig, spikes: Tensor, h: Tensor, store_h: bool, v_seq: Tensor,
                record_v: bool, v_last: Tensor) -> None:
        """Fill ``spikes`` (x dtype), ``h`` and ``v_seq`` if flagged, and ``v_last``."""

    def backward(self, grad_s: Tensor, has_gs: bool, grad_vseq: Tensor, has_gvseq: bool,
                 grad_vlast: Tensor, h: Optional[Tensor], v0: Tensor, x: Tensor, beta: Tensor, omb: Tensor,
                 theta: Tensor, S: int, cfg: KernelConfig, grad_x: Tensor, grad_v0: Tensor,
                 dbeta: Tensor, need_dbeta: bool, dtheta: Tensor) -> None:
        """Fill ``grad_x`` (x dtype), ``grad_v0``, per-neuron ``dtheta [N]`` (for a launcher
        with ``recomputes_h`` only when it is ``[N]``; ``[1]`` when not wanted) and, if flagged,
        per-neuron ``dbeta [N]`` (without ``recomputes_h``, ``x`` is a real sequence only with
        decay_input and ``v0`` only with ``need_dbeta``)."""


def _reduce(per_neuron: Tensor, shape: torch.Size, dtype: torch.dtype, P: int, S: int) -> Tensor:
    """Sum per-neuron parameter gradients ``[N]`` to the parameter's shape (0-d or [C,1,..])."""
    if shape.numel() == 1:
        g = per_neuron.sum()
    else:
        g = per_neuron.view(-1, P, S).sum(dim=(0, 2))
    return g.reshape(shape).to(dtype)


def _uniform(v: Tensor) -> bool:
    """Whether every element of ``v`` is one stored value (stride 0 along every dim of size > 1)."""
    return v.numel() > 0 and all(st == 0 for st, n in zip(v.stride(), v.shape) if n > 1)


def _inverse(order: tuple[int, ...]) -> tuple[int, ...]:
    back = [0] * len(order)
    for i, d in enumerate(order):
        back[d] = i
    return tuple(back)


def _meta(p: object) -> Optional[tuple[torch.Size, torch.dtype]]:
    return (p.shape, p.dtype) if isinstance(p, Tensor) else None


class FusedNeuron(torch.autograd.Function):
    """Whole-sequence IF/LIF/PLIF forward and BPTT backward in one kernel each.

    ``apply(launcher, cfg, P, S, record_v, order, x, v0, beta, theta)`` with ``beta``/``theta``
    tensors (0-d or ``[C, 1, ...]``) or Python floats/None; returns ``(spikes, v_last)`` or
    ``(spikes, v_last, v_seq)``. Gradients flow to ``x``, ``v0``, and tensor ``beta``/``theta``.
    ``order`` (:func:`snn.cuda.params.memory_order`) is the order in which the kernels walk the
    dims of ``x``: its memory order for a dense ``x``, so nothing is copied and the outputs and
    gradients come back in the input's layout (channels-last stays channels-last); ``S`` counts
    the neurons per channel in that order.
    """

    @staticmethod
    def forward(ctx, launcher: Launcher, cfg: KernelConfig, P: int, S: int, record_v: bool,
                order: tuple[int, ...], x: Tensor, v0: Tensor, beta, theta):  # type: ignore[override]
        T = x.shape[0]
        xp = x.permute(order)
        xf = xp.contiguous().view(T, -1)
        N = xf.shape[1]
        sd = launcher.state_dtype(x)
        dev = x.device
        b = flat_param(beta, 1.0, P, sd, dev)
        o = flat_param(None if beta is None else 1.0 - beta, 0.0, P, sd, dev)
        th = flat_param(theta, 0.0, P, sd, dev)
        step_order = tuple(d - 1 for d in order[1:])  # the same walk over one step [B, *feature]
        if launcher.optional_state and _uniform(v0):  # e.g. the rest state, a broadcast view
            v0f = v0.detach()[(0,) * v0.dim()].reshape(1).to(sd)
        else:
            v0f = v0.detach().permute(step_order).reshape(N).to(sd).contiguous()
        need_grad = any(ctx.needs_input_grad[6:])
        recompute = launcher.recomputes_h
        store_h = need_grad and not recompute
        spikes = torch.empty_like(xf)
        h = torch.empty((T if store_h else 1, N), dtype=sd, device=dev)
        v_seq = torch.empty((T if record_v else 1, N), dtype=sd, device=dev)
        v_last = torch.empty(N, dtype=sd, device=dev)
        launcher.forward(xf, v0f, b, o, th, S, cfg, spikes, h, store_h, v_seq, record_v, v_last)
        if need_grad:
            need_db = ctx.needs_input_grad[8]  # without recomputation, v0 and x only feed dβ
            keep_x = recompute or (need_db and cfg.charge_mode == 2)  # CHARGE_DECAY_INPUT
            ctx.save_for_backward(h if store_h else None, v0f if need_db or recompute else None, b, o, th,
                                  xf if keep_x else None)
        back, step_back = _inverse(order), _inverse(step_order)
        ctx.meta = (launcher, cfg, P, S, (order, step_order, back, step_back), xp.shape, x.dtype, v0.dtype,
                    _meta(beta), _meta(theta))
        ctx.set_materialize_grads(False)
        out = (spikes.view(xp.shape).permute(back), v_last.view(xp.shape[1:]).permute(step_back))
        return out + (v_seq.view(xp.shape).permute(back),) if record_v else out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gs, gvlast, gvseq=None):  # type: ignore[override]
        launcher, cfg, P, S, (order, step_order, back, step_back), pshape, xdtype, v0dtype, beta, theta = ctx.meta
        h, v0f, b, o, th, xf = ctx.saved_tensors
        T, N = (h if h is not None else xf).shape
        dev, sd = b.device, b.dtype
        if v0f is None:  # not read by the kernels without dβ
            v0f = torch.zeros(1, dtype=sd, device=dev)

        def row(g: Optional[Tensor], dtype: torch.dtype) -> tuple[Tensor, bool]:
            if g is not None:
                return g.permute(order).reshape(T, N).to(dtype).contiguous(), True
            return torch.empty((1, N), dtype=dtype, device=dev), False  # the flag says: never read

        gsf, has_gs = row(gs, xdtype)
        gvsf, has_gvs = row(gvseq, sd)
        optional = launcher.optional_state
        gvl = (torch.zeros(1 if optional else N, dtype=sd, device=dev) if gvlast is None
               else gvlast.permute(step_order).reshape(N).to(sd).contiguous())
        need_db = ctx.needs_input_grad[8]
        x_arg = xf if xf is not None else torch.zeros((1, N), dtype=xdtype, device=dev)
        grad_x = torch.empty((T, N), dtype=xdtype, device=dev)
        grad_v0 = torch.empty(N if ctx.needs_input_grad[7] or not optional else 1, dtype=sd, device=dev)
        dbeta = torch.empty(N if need_db else 1, dtype=sd, device=dev)
        # a recomputing launcher skips dθ when it is not wanted; the others always write [N]
        need_dth = ctx.needs_input_grad[9] or not launcher.recomputes_h
        dtheta = torch.empty(N if need_dth else 1, dtype=sd, device=dev)
        launcher.backward(gsf, has_gs, gvsf, has_gvs, gvl, h, v0f, x_arg, b, o, th, S, cfg,
                          grad_x, grad_v0, dbeta, need_db, dtheta)
        gx = grad_x.view(pshape).permute(back) if ctx.needs_input_grad[6] else None
        gv0 = grad_v0.view(pshape[1:]).permute(step_back).to(v0dtype) if ctx.needs_input_grad[7] else None
        gb = _reduce(dbeta, *beta, P, S) if need_db else None
        gth = _reduce(dtheta, *theta, P, S) if ctx.needs_input_grad[9] else None
        return None, None, None, None, None, None, gx, gv0, gb, gth


def make_run(launcher_factory: Callable[[], Launcher], dtypes: tuple[torch.dtype, ...]
             ) -> Callable[[Tensor, Tensor, NeuronSpec, bool], tuple[Tensor, Tensor, Optional[Tensor]]]:
    """A registry ``run(x, v0, spec, record_v)`` over :class:`FusedNeuron`.

    Inputs the kernels do not cover (a dtype outside ``dtypes``, parameters that are not
    scalar or per-channel along dim 2, ``T = 0``) run the torch reference instead, with a
    DEBUG log line.
    """
    launcher: list[Launcher] = []

    def run(x: Tensor, v0: Tensor, spec: NeuronSpec, record_v: bool = False
            ) -> tuple[Tensor, Tensor, Optional[Tensor]]:
        order = memory_order(x)
        layout = channel_layout(x, spec.beta, spec.v_threshold, order=order)
        if x.dtype not in dtypes or layout is None or x.shape[0] == 0 or x[0].numel() == 0:
            log.debug("fused kernels do not cover dtype=%s shape=%s; running the torch reference",
                      x.dtype, tuple(x.shape))
            return multistep(x, v0, spec, record_v)
        if not launcher:
            launcher.append(launcher_factory())
        P, S = layout
        out = FusedNeuron.apply(launcher[0], kernel_config(spec), P, S, record_v, order, x, v0,
                                spec.beta, spec.v_threshold)
        return out[0], out[1], (out[2] if record_v else None)

    run.supports = supports  # type: ignore[attr-defined]
    return run
