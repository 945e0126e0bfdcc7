"""One ``torch.autograd.Function`` for the fused delay kernels; backends differ only in the
:class:`DelayLauncher` that runs the two kernels on the blocked layout (:mod:`snn.delays.layout`).

Forward: ``y[t, b, o] = Σ_i Σ_u v[o, i, u] · x̃[t − start[o, i] − u, b, i]`` with ``x̃`` the input
preceded by ``D`` timesteps of history (zeros when none). Saved for backward: references to
the input and history, the starts, the tap values only when an input gradient is wanted, and
(for inert zeros) each synapse's non-zero window — never a dense kernel, and no copy of the
input (its blocked layout is rebuilt chunk by chunk in the backward pass). Without an input
gradient, the output gradient is converted a group of rows at a time
(:meth:`DelayLauncher.gradient_rows`).

Backward (exact):

* ``∂L/∂x̃[p, b, i] = Σ_o Σ_u v[o, i, u] · ∂L/∂y[p + start[o, i] + u, b, o]`` (the same
  accumulate kernel with the synapse matrix transposed and the shift reversed);
* ``∂L/∂v[o, i, u] = Σ_{t, b} ∂L/∂y[t, b, o] · x̃[t − start[o, i] − u, b, i]`` (correlate kernel).
"""
from __future__ import annotations

from typing import Optional, Protocol

import torch
from torch import Tensor


__all__ = ["DelayLauncher", "FusedDelayConv", "fused_delay_conv", "nonzero_window"]


class DelayLauncher(Protocol):
    """Kernel launches of one backend (see :mod:`snn.delays.cpu` for the exact sums).
    Tensors are contiguous and on one device; ``base`` is ``[R, S]`` element offsets (int32, or
    int64 where a row's offsets could pass 2³¹: :func:`offsets`)."""

    name: str

    def block(self, batch: int) -> int:
        """Samples per batch block ``Bc`` for a batch of ``batch``."""

    def chunk(self, batch: int) -> int:
        """Samples converted to the blocked layout at a time (a multiple of ``block``)."""

    def gradient_rows(self, rows: int, length: int, itemsize: int) -> int:
        """Rows of the output gradient (each ``length`` elements of ``itemsize`` bytes in the
        blocked layout) converted at a time when only the tap gradient needs them."""

    def window(self, v: Tensor) -> Tensor:
        """:func:`nonzero_window` of the tap values ``v`` (which it must equal; ``W`` fits in int16)."""

    def to_blocks(self, x: Tensor, Bc: int, front: int = 0, back: int = 0,
                  history: Optional[Tensor] = None, out: Optional[Tensor] = None) -> Tensor:
        """The blocked layout of ``x`` (:func:`snn.delays.layout.to_blocks`, which it must equal),
        written into ``out`` when that is a previous result of the same shape."""

    def accumulate(self, src: Tensor, taps: Tensor, base: Tensor, ustep: int, Bc: int, b0: int,
                   out: Tensor) -> None:
        """Fill samples ``b0 …`` of the time-first ``out [T_out, B, R]``."""

    def correlate(self, src: Tensor, g: Tensor, goff: int, L: int, base: Tensor, ustep: int,
                  gtaps: Tensor, add: bool, window: Optional[Tensor]) -> None:
        """Fill (or add to, if ``add``) ``gtaps [R, S, W]``. A backend may leave the taps outside
        ``window[r, s, 0] ≤ u < window[r, s, 1]`` (int16 ``[R, S, 2]``, or None: all) at 0."""


def _chunks(B: int, size: int):
    return ((b0, min(B, b0 + size)) for b0 in range(0, B, size))


def offsets(steps: Tensor, Bc: int, rows: int) -> Tensor:
    """``steps · Bc`` as a contiguous element-offset tensor: int32 when offsets within a blocked
    row of ``rows`` timesteps fit in it (half the memory of int64), else int64."""
    small = rows * Bc < 2 ** 31
    return (steps.to(torch.int32 if small else torch.int64) * Bc).contiguous()


def nonzero_window(v: Tensor) -> Tensor:
    """int16 ``[R, S, 2]``: each synapse's first and one-past-last non-zero tap of ``v [R, S, W]``
    (``0, W`` when all its taps are zero); ``W`` must fit in int16 (see :class:`FusedDelayConv`)."""
    W = v.shape[-1]
    nz = (v != 0).to(torch.int16)
    live = nz.amax(-1) > 0
    lo = torch.where(live, nz.argmax(-1), 0)
    hi = torch.where(live, W - nz.flip(-1).argmax(-1), W)
    return torch.stack([lo, hi], -1).to(torch.int16)


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
        need_seq, need_v = ctx.needs_input_grad[2] or ctx.needs_input_grad[3], ctx.needs_input_grad[4]
        # inert zeros: the taps outside a synapse's first … last non-zero tap get no gradient
        # (a synapse whose taps are all zero keeps them all: its weight gradient is not zero)
        # (windows wider than int16 holds, a D over 32766 steps, simply compute every tap)
        window = launcher.window(v) if need_v and inert_zeros and v.shape[-1] <= torch.iinfo(torch.int16).max \
            else None
        base = offsets(D - start, Bc, D + T)
        out = x.new_empty(T, B, O)
        src = None  # one blocked buffer for all chunks
        for b0, b1 in _chunks(B, chunk):
            src = launcher.to_blocks(xd[:, b0:b1], Bc, front=D, history=None if hd is None else hd[:, b0:b1], out=src)
            launcher.accumulate(src, v, base, -Bc, Bc, b0, out)
        # the tap values are needed again only for the input gradient
        ctx.save_for_backward(xd, hd, v if need_seq else None, start, window)
        ctx.meta = (launcher, D, values.dtype, tuple(v.shape))
        ctx.set_materialize_grads(False)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy: Optional[Tensor]):  # type: ignore[override]
        launcher, D, vdtype, vshape = ctx.meta
        need_x, need_h, need_v = ctx.needs_input_grad[2], ctx.needs_input_grad[3], ctx.needs_input_grad[4]
        if gy is None or not (need_x or need_h or need_v):
            return None, None, None, None, None, None, None
        x, h, v, start, window = ctx.saved_tensors
        T, B, _ = x.shape
        O = vshape[0]
        Bc, chunk = launcher.block(B), launcher.chunk(B)
        gy = gy.to(x.dtype)
        front = D if need_h else 0
        gseq = x.new_empty(T + front, B, vshape[1]) if (need_x or need_h) else None
        base = offsets(D - start, Bc, D + T) if need_v else None
        gvals = x.new_empty(vshape) if need_v else None
        vt = v.transpose(0, 1).contiguous() if gseq is not None else None
        base_t = offsets(start.t(), Bc, D + T + front) if gseq is not None else None
        # without an input gradient the output gradient is only correlated with the input, a
        # group of output rows at a time (less memory than all of them)
        rows = O if gseq is not None else max(1, min(O, launcher.gradient_rows(O, T * Bc, x.element_size())))
        g = src = None  # blocked buffers reused by all chunks
        for k, (b0, b1) in enumerate(_chunks(B, chunk)):
            if gvals is not None:
                src = launcher.to_blocks(x[:, b0:b1], Bc, front=D, history=None if h is None else h[:, b0:b1],
                                         out=src)
            if gseq is not None:
                g = launcher.to_blocks(gy[:, b0:b1], Bc, front=front, back=D, out=g)
                launcher.accumulate(g, vt, base_t, Bc, Bc, b0, gseq)
                if gvals is not None:
                    launcher.correlate(src, g, front * Bc, T * Bc, base, -Bc, gvals, k > 0, window)
                continue
            for r0 in range(0, O, rows):
                r1 = min(O, r0 + rows)
                part = launcher.to_blocks(gy[:, b0:b1, r0:r1], Bc, out=None if g is None else g[:, :r1 - r0])
                g = part if g is None else g
                launcher.correlate(src, part, 0, T * Bc, base[r0:r1], -Bc, gvals[r0:r1], k > 0,
                                   None if window is None else window[r0:r1])
        gx = gseq[front:] if need_x else None
        gh = gseq[:front] if need_h else None
        gv = gvals.to(vdtype) if need_v else None
        return None, None, gx, gh, gv, None, None


def fused_delay_conv(launcher: DelayLauncher, x: Tensor, values: Tensor, start: Tensor, max_delay: int,
                     history: Optional[Tensor] = None, inert_zeros: bool = False) -> Tensor:
    """Run :class:`FusedDelayConv` (inputs already validated by :func:`snn.delays.delay_conv`)."""
    return FusedDelayConv.apply(launcher, max_delay, x, history, values, start, inert_zeros)
