"""One ``torch.autograd.Function`` for the fused delay kernels; backends differ only in the
:class:`DelayLauncher` that runs the two kernels on the blocked layout (:mod:`snn.delays.layout`).

Forward: ``y[t, b, o] = Σ_i Σ_u v[o, i, u] · x̃[t − start[o, i] − u, b, i]`` with ``x̃`` the input
preceded by ``D`` timesteps of history (zeros when none). Saved for backward: references to
the input and history, the tap values and the starts — never a dense kernel, and no copy of
the input (its blocked layout is rebuilt chunk by chunk in the backward pass).

Backward (exact):

* ``∂L/∂x̃[p, b, i] = Σ_o Σ_u v[o, i, u] · ∂L/∂y[p + start[o, i] + u, b, o]`` (the same
  accumulate kernel with the synapse matrix transposed and the shift reversed);
* ``∂L/∂v[o, i, u] = Σ_{t, b} ∂L/∂y[t, b, o] · x̃[t − start[o, i] − u, b, i]`` (correlate kernel).
"""
from __future__ import annotations

from typing import Optional, Protocol

import torch
from torch import Tensor


__all__ = ["DelayLauncher", "FusedDelayConv", "fused_delay_conv"]


class DelayLauncher(Protocol):
    """Kernel launches of one backend (see :mod:`snn.delays.cpu` for the exact sums).
    Tensors are contiguous and on one device; ``base`` is int64 ``[R, S]`` element offsets."""

    name: str

    def block(self, batch: int) -> int:
        """Samples per batch block ``Bc`` for a batch of ``batch``."""

    def chunk(self, batch: int) -> int:
        """Samples converted to the blocked layout at a time (a multiple of ``block``)."""

    def to_blocks(self, x: Tensor, Bc: int, front: int = 0, back: int = 0,
                  history: Optional[Tensor] = None, out: Optional[Tensor] = None) -> Tensor:
        """The blocked layout of ``x`` (:func:`snn.delays.layout.to_blocks`, which it must equal),
        written into ``out`` when that is a previous result of the same shape."""

    def accumulate(self, src: Tensor, taps: Tensor, base: Tensor, ustep: int, Bc: int, b0: int,
                   out: Tensor) -> None:
        """Fill samples ``b0 …`` of the time-first ``out [T_out, B, R]``."""

    def correlate(self, src: Tensor, g: Tensor, goff: int, L: int, base: Tensor, ustep: int,
                  gtaps: Tensor, add: bool, skip: Optional[Tensor]) -> None:
        """Fill (or add to, if ``add``) ``gtaps [R, S, W]``. A backend may leave the entries
        flagged in ``skip`` (bool ``[R, S, W]``, or None) at 0."""


def _chunks(B: int, size: int):
    return ((b0, min(B, b0 + size)) for b0 in range(0, B, size))


class FusedDelayConv(torch.autograd.Function):
    """``apply(launcher, max_delay, x, history, values, start, inert_zeros=False) → y``.

    ``x [T, B, N_in]``, ``history [D, B, N_in]`` or None, ``values [N_out, N_in, W]``,
    ``start [N_out, N_in]`` int64 → ``y [T, B, N_out]``. Gradients flow to ``x``, ``history``
    and ``values``. The batch is processed in chunks (``launcher.chunk``): only one chunk of
    the blocked input (or output gradient) exists at a time, and nothing but ``x`` itself,
    the taps and the starts is kept for the backward pass. ``inert_zeros`` as
    :attr:`snn.delays.taps.Taps.inert_zeros`.
    """

    @staticmethod
    def forward(ctx, launcher: DelayLauncher, D: int, x: Tensor, history: Optional[Tensor],
                values: Tensor, start: Tensor, inert_zeros: bool = False) -> Tensor:  # type: ignore[override]
        T, B, _ = x.shape
        O = values.shape[0]
        Bc, chunk = launcher.block(B), launcher.chunk(B)
        v = values.detach().to(x.dtype).contiguous()
        xd = x.detach()
        hd = None if history is None else history.detach()
        base = ((D - start) * Bc).contiguous()
        out = x.new_empty(T, B, O)
        src = None  # one blocked buffer for all chunks
        for b0, b1 in _chunks(B, chunk):
            src = launcher.to_blocks(xd[:, b0:b1], Bc, front=D, history=None if hd is None else hd[:, b0:b1], out=src)
            launcher.accumulate(src, v, base, -Bc, Bc, b0, out)
        ctx.save_for_backward(xd, hd, v, start)
        ctx.meta = (launcher, D, values.dtype, inert_zeros)
        ctx.set_materialize_grads(False)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy: Optional[Tensor]):  # type: ignore[override]
        launcher, D, vdtype, inert_zeros = ctx.meta
        need_x, need_h, need_v = ctx.needs_input_grad[2], ctx.needs_input_grad[3], ctx.needs_input_grad[4]
        if gy is None or not (need_x or need_h or need_v):
            return None, None, None, None, None, None, None
        x, h, v, start = ctx.saved_tensors
        T, B, _ = x.shape
        Bc, chunk = launcher.block(B), launcher.chunk(B)
        gy = gy.to(x.dtype)
        front = D if need_h else 0
        gseq = x.new_empty(T + front, B, v.shape[1]) if (need_x or need_h) else None
        vt = v.transpose(0, 1).contiguous() if gseq is not None else None
        base_t = (start.t() * Bc).contiguous()
        base = ((D - start) * Bc).contiguous()
        gvals = torch.empty_like(v) if need_v else None
        # inert zeros: the zero taps of a synapse with a non-zero tap get no gradient (stays 0)
        skip = (v == 0) & (v != 0).any(-1, keepdim=True) if need_v and inert_zeros else None
        g = src = None  # one blocked buffer each for all chunks
        for k, (b0, b1) in enumerate(_chunks(B, chunk)):
            g = launcher.to_blocks(gy[:, b0:b1], Bc, front=front, back=D, out=g)
            if gseq is not None:
                launcher.accumulate(g, vt, base_t, Bc, Bc, b0, gseq)
            if gvals is not None:
                src = launcher.to_blocks(x[:, b0:b1], Bc, front=D, history=None if h is None else h[:, b0:b1],
                                         out=src)
                launcher.correlate(src, g, front * Bc, T * Bc, base, -Bc, gvals, k > 0, skip)
        gx = gseq[front:] if need_x else None
        gh = gseq[:front] if need_h else None
        gv = gvals.to(vdtype) if need_v else None
        return None, None, gx, gh, gv, None, None


def fused_delay_conv(launcher: DelayLauncher, x: Tensor, values: Tensor, start: Tensor, max_delay: int,
                     history: Optional[Tensor] = None, inert_zeros: bool = False) -> Tensor:
    """Run :class:`FusedDelayConv` (inputs already validated by :func:`snn.delays.delay_conv`)."""
    return FusedDelayConv.apply(launcher, max_delay, x, history, values, start, inert_zeros)
