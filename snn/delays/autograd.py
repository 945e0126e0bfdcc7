"""The fused delay kernels as two PyTorch custom operators; backends differ only in the
:class:`DelayLauncher` that runs the two kernels on the blocked layout (:mod:`snn.delays.layout`).

``snn::fused_delay_forward`` and ``snn::fused_delay_backward`` (``torch.library.custom_op``)
take tensors and plain scalars and name their launcher by a string key
(:func:`register_delay_launcher`; the launcher, with Numba, loads inside the first operator
call that needs it), so ``torch.compile`` (``fullgraph=True`` included) treats each as one
opaque node. The forward operator's autograd formula is the backward operator. Eager calls
run the same implementation and formula through a plain ``torch.autograd.Function``, without
the operator's dispatch (:func:`fused_delay_conv`).

Forward: ``y[t, b, o] = Σ_i Σ_u v[o, i, u] · x̃[t − start[o, i] − u, b, i]`` with ``x̃`` the input
preceded by ``D`` timesteps of history (zeros when none). Saved for backward: references to
the input and history, the starts, the tap values only when an input gradient is wanted, and
(for inert zeros, when the tap gradient is wanted) each synapse's non-zero window — never a
dense kernel, and no copy of the input (its blocked layout is rebuilt chunk by chunk in the
backward pass). Without an input gradient, the output gradient is converted a group of rows
at a time (:meth:`DelayLauncher.gradient_rows`).

Backward (exact):

* ``∂L/∂x̃[p, b, i] = Σ_o Σ_u v[o, i, u] · ∂L/∂y[p + start[o, i] + u, b, o]`` (the same
  accumulate kernel with the synapse matrix transposed and the shift reversed);
* ``∂L/∂v[o, i, u] = Σ_{t, b} ∂L/∂y[t, b, o] · x̃[t − start[o, i] − u, b, i]`` (correlate kernel).
"""
from __future__ import annotations

from typing import Callable, Optional, Protocol

import torch
from torch import Tensor

from snn.custom_ops import call, eager_twin

__all__ = ["DelayLauncher", "register_delay_launcher", "FusedDelayConv", "fused_delay_conv", "fused_delay_forward",
           "fused_delay_backward", "nonzero_window"]


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


_LOADERS: dict[str, Callable[[], DelayLauncher]] = {}
_LOADED: dict[str, DelayLauncher] = {}

_INT16_MAX = 32767  # torch.iinfo(torch.int16).max: the widest window nonzero_window describes


def register_delay_launcher(key: str, load: Callable[[], DelayLauncher]) -> None:
    """Name a launcher ``key`` for the operators; ``load()`` makes it, once, inside the first
    operator call that uses it (so neither registering nor tracing imports Numba). Registering
    a key again replaces its launcher."""
    _LOADERS[key] = load
    _LOADED.pop(key, None)


def _launcher(key: str) -> DelayLauncher:
    impl = _LOADED.get(key)
    if impl is None:
        impl = _LOADED[key] = _LOADERS[key]()
    return impl


def _chunks(B: int, size: int):
    return ((b0, min(B, b0 + size)) for b0 in range(0, B, size))


def offsets(steps: Tensor, Bc: int, rows: int) -> Tensor:
    """``steps · Bc`` as a contiguous element-offset tensor: int32 when offsets within a blocked
    row of ``rows`` timesteps fit in it (half the memory of int64), else int64."""
    small = rows * Bc < 2 ** 31
    return (steps.to(torch.int32 if small else torch.int64) * Bc).contiguous()


def nonzero_window(v: Tensor) -> Tensor:
    """int16 ``[R, S, 2]``: each synapse's first and one-past-last non-zero tap of ``v [R, S, W]``
    (``0, W`` when all its taps are zero); ``W`` must fit in int16 (at most 32767)."""
    W = v.shape[-1]
    nz = (v != 0).to(torch.int16)
    live = nz.amax(-1) > 0
    lo = torch.where(live, nz.argmax(-1), 0)
    hi = torch.where(live, W - nz.flip(-1).argmax(-1), W)
    return torch.stack([lo, hi], -1).to(torch.int16)


# -- forward operator --------------------------------------------------------------------------

def _forward_impl(x: Tensor, history: Optional[Tensor], values: Tensor, start: Tensor, launcher: str,
                  max_delay: int, window: bool) -> tuple[Tensor, Tensor]:
    """``(y [T, B, N_out] in x's dtype, window)``; ``window`` is :func:`nonzero_window` of the
    taps (int16 ``[N_out, N_in, 2]``) when asked for, else an empty int16 ``[0, N_in, 2]``.
    The batch is processed in chunks (``launcher.chunk``): one blocked input buffer is reused."""
    impl = _launcher(launcher)
    D = max_delay
    T, B, _ = x.shape
    O, I, _ = values.shape
    Bc, chunk = impl.block(B), impl.chunk(B)
    v = values.detach().to(x.dtype).contiguous()
    base = offsets(D - start, Bc, D + T)
    out = x.new_empty(T, B, O)
    src = None  # one blocked buffer for all chunks
    for b0, b1 in _chunks(B, chunk):
        src = impl.to_blocks(x[:, b0:b1], Bc, front=D, history=None if history is None else history[:, b0:b1],
                             out=src)
        impl.accumulate(src, v, base, -Bc, Bc, b0, out)
    win = impl.window(v) if window else x.new_empty((0, I, 2), dtype=torch.int16)
    return out, win


fused_delay_forward = torch.library.custom_op("snn::fused_delay_forward", _forward_impl, mutates_args=())


@fused_delay_forward.register_fake
def _forward_fake(x, history, values, start, launcher, max_delay, window):
    T, B, _ = x.shape
    O, I, _ = values.shape
    return x.new_empty(T, B, O), x.new_empty((O if window else 0, I, 2), dtype=torch.int16)


# -- backward operator -------------------------------------------------------------------------

def _backward_impl(gy: Tensor, x: Tensor, history: Optional[Tensor], values: Optional[Tensor], start: Tensor,
                   window: Optional[Tensor], launcher: str, max_delay: int, width: int, need_x: bool,
                   need_h: bool, need_v: bool) -> tuple[Tensor, Tensor]:
    """``(grad_seq, grad_values)`` in ``x``'s dtype for the output gradient ``gy [T, B, N_out]``.

    ``grad_seq`` is ``[F + T, B, N_in]``, the gradient of the history (``F = D`` rows, only when
    ``need_h``; else ``F = 0``) followed by that of ``x``, when ``need_x`` or ``need_h`` (which
    need ``values``), else empty ``[0, B, N_in]``. ``grad_values`` is ``[N_out, N_in, width]``
    when ``need_v``, else empty ``[0, N_in, width]``; given a ``window`` (int16
    ``[N_out, N_in, 2]``), its taps outside each synapse's window may be left at 0.
    ``history`` (``[D, B, N_in]`` or None) and ``window`` are read only for the tap gradient."""
    impl = _launcher(launcher)
    D = max_delay
    T, B, I = x.shape
    O = start.shape[0]
    Bc, chunk = impl.block(B), impl.chunk(B)
    gy = gy.to(x.dtype)
    need_seq = need_x or need_h
    front = D if need_h else 0
    gseq = x.new_empty(T + front if need_seq else 0, B, I)
    base = offsets(D - start, Bc, D + T) if need_v else None
    gvals = x.new_empty(O if need_v else 0, I, width)
    if need_seq:
        assert values is not None, "the input gradient needs the tap values"
        # v transposed to [N_in, N_out, W] (contiguous), in x's dtype: one copy
        vt = x.new_empty(I, O, width).copy_(values.detach().transpose(0, 1))
        base_t = offsets(start.t(), Bc, D + T + front)
    # without an input gradient the output gradient is only correlated with the input, a
    # group of output rows at a time (less memory than all of them)
    rows = O if need_seq else max(1, min(O, impl.gradient_rows(O, T * Bc, x.element_size())))
    g = src = None  # blocked buffers reused by all chunks
    for k, (b0, b1) in enumerate(_chunks(B, chunk)):
        if need_v:
            src = impl.to_blocks(x[:, b0:b1], Bc, front=D, history=None if history is None else history[:, b0:b1],
                                 out=src)
        if need_seq:
            g = impl.to_blocks(gy[:, b0:b1], Bc, front=front, back=D, out=g)
            impl.accumulate(g, vt, base_t, Bc, Bc, b0, gseq)
            if need_v:
                impl.correlate(src, g, front * Bc, T * Bc, base, -Bc, gvals, k > 0, window)
            continue
        if not need_v:
            break
        for r0 in range(0, O, rows):
            r1 = min(O, r0 + rows)
            part = impl.to_blocks(gy[:, b0:b1, r0:r1], Bc, out=None if g is None else g[:, :r1 - r0])
            g = part if g is None else g
            impl.correlate(src, part, 0, T * Bc, base[r0:r1], -Bc, gvals[r0:r1], k > 0,
                           None if window is None else window[r0:r1])
    return gseq, gvals


fused_delay_backward = torch.library.custom_op("snn::fused_delay_backward", _backward_impl, mutates_args=())


@fused_delay_backward.register_fake
def _backward_fake(gy, x, history, values, start, window, launcher, max_delay, width, need_x, need_h, need_v):
    T, B, I = x.shape
    front = max_delay if need_h else 0
    return (x.new_empty(T + front if need_x or need_h else 0, B, I),
            x.new_empty(start.shape[0] if need_v else 0, I, width))


# -- autograd formula of the forward operator --------------------------------------------------

def _setup_context(ctx, inputs, output) -> None:
    x, history, values, start, launcher, max_delay, window = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)
    need_seq = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
    # the tap values are needed again only for the input gradient
    ctx.save_for_backward(x, history, values if need_seq else None, start, output[1] if window else None)
    ctx.args = (launcher, max_delay, values.shape[2], values.dtype)


def _backward(ctx, gy: Optional[Tensor], _gwin: Optional[Tensor] = None):
    need_x, need_h, need_v = ctx.needs_input_grad[:3]
    if gy is None or not (need_x or need_h or need_v):
        return None, None, None, None, None, None, None
    x, history, values, start, window = ctx.saved_tensors
    launcher, D, W, vdtype = ctx.args
    backward = _backward_impl if ctx.eager else fused_delay_backward
    gseq, gv = backward(gy, x, history, values, start, window, launcher, D, W, need_x, need_h, need_v)
    front = D if need_h else 0
    return (gseq[front:] if need_x else None, gseq[:front] if need_h else None,
            gv.to(vdtype) if need_v else None, None, None, None, None)


FusedDelayConv = eager_twin(
    fused_delay_forward, _forward_impl, _setup_context, _backward, "FusedDelayConv",
    """The forward operator's implementation and autograd formula without the operator's
    dispatch (:func:`snn.custom_ops.eager_twin`); eager calls take this path, ``torch.compile``
    traces the operators.""")


def fused_delay_conv(launcher: str, x: Tensor, values: Tensor, start: Tensor, max_delay: int,
                     history: Optional[Tensor] = None, inert_zeros: bool = False) -> Tensor:
    """The fused delay convolution with the launcher registered as ``launcher``
    (:func:`register_delay_launcher`); inputs already validated by :func:`snn.delays.delay_conv`.

    ``x [T, B, N_in]`` (``T, B ≥ 1``), ``history [D, B, N_in]`` or None (zeros),
    ``values [N_out, N_in, W]`` (any float dtype; used in ``x``'s), ``start [N_out, N_in]``
    int64 → ``y [T, B, N_out]`` in ``x``'s dtype. Gradients flow to ``x``, ``history`` and
    ``values`` (in ``values``' dtype). ``inert_zeros`` as
    :attr:`snn.delays.taps.Taps.inert_zeros`: the taps outside a synapse's first … last
    non-zero tap then get no gradient (0), when ``W ≤ 32767``.

    Eager calls bypass the operators' dispatch; code being compiled (and tensor subclasses,
    as under ``make_fx`` or ``opcheck``) calls :data:`fused_delay_forward`.
    """
    # inert zeros: the taps outside a synapse's first … last non-zero tap get no gradient
    # (a synapse whose taps are all zero keeps them all: its weight gradient is not zero);
    # windows wider than int16 holds (D over 32766 steps) simply compute every tap
    window = (inert_zeros and values.shape[2] <= _INT16_MAX and torch.is_grad_enabled()
              and values.requires_grad)
    return call(fused_delay_forward, FusedDelayConv, x, history, values, start, launcher, max_delay, window)[0]
