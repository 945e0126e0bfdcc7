"""The delay-synapse operation ``y[t, j] = Σ_i Σ_τ k_ij(τ) x[t − τ, i]`` and its torch reference.

:func:`delay_conv` validates its inputs and dispatches to a backend of
:mod:`snn.delays.backends`; :func:`dense_delay_conv` is the pure-PyTorch reference every
fused kernel is tested against: the windowed taps are scattered into a dense kernel
``[N_out, N_in, D + 1]`` and applied as one causal ``conv1d`` (cross-correlation with the
kernel flipped in time), exactly what a DCLS layer computes (Hammouamri et al., ICLR 2024).
"""
from __future__ import annotations

import logging
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from snn.backend_registry import values_unreadable
from snn.delays.taps import Taps, taps_to_dense

__all__ = ["delay_conv", "dense_delay_conv", "check_history"]

log = logging.getLogger("snn")


def dense_delay_conv(x: Tensor, taps: Taps, history: Optional[Tensor] = None) -> Tensor:
    """Reference: ``y[t, b, j] = Σ_i Σ_{τ=0}^{D} K[j, i, τ] · x̃[t − τ, b, i]`` with a dense ``K``.

    Args:
        x: ``[T, B, N_in]``.
        taps: :class:`snn.delays.taps.Taps` (densified with :func:`taps_to_dense`).
        history: ``[D, B, N_in]`` inputs before ``x[0]`` (zeros when None).

    Returns:
        ``[T, B, N_out]`` in ``x``'s dtype.
    """
    D = taps.max_delay
    K = taps_to_dense(taps).to(x.dtype)
    if history is None:
        seq = F.pad(x.permute(1, 2, 0), (D, 0))                                   # [B, N_in, D + T]
    else:
        seq = torch.cat([history.to(x.dtype), x], 0).permute(1, 2, 0).contiguous()
    y = F.conv1d(seq, K.flip(-1))                                                 # [B, N_out, T]
    return y.permute(2, 0, 1)


def check_history(history: Optional[Tensor], x: Tensor, max_delay: int) -> None:
    """``history`` must be None or ``[max_delay, B, N_in]`` matching ``x``; raises ``ValueError``."""
    if history is None:
        return
    want = (max_delay, x.shape[1], x.shape[2])
    if tuple(history.shape) != want:
        raise ValueError(f"history must be [max_delay, B, N_in] = {list(want)}, got {list(history.shape)}")


def delay_conv(x: Tensor, taps: Taps, history: Optional[Tensor] = None, backend: str = "auto") -> Tensor:
    r"""Apply per-synapse delay kernels to a time-first sequence (causal; starts from ``history``).

    .. math::
        y[t, b, j] = \sum_i \sum_{u=0}^{W-1} v_{jiu}\, \tilde x[t - s_{ji} - u, b, i]

    with ``v = taps.values``, ``s = taps.start`` and ``x̃`` = ``history`` (or zeros) then ``x``.

    Args:
        x: ``[T, B, N_in]`` float input (spikes or currents).
        taps: windowed kernels from :mod:`snn.delays.taps`.
        history: ``[D, B, N_in]`` the ``D = taps.max_delay`` inputs before ``x[0]``, or None (rest).
        backend: ``"auto"``, ``"torch"`` (dense reference) or ``"numba"`` (fused kernels).

    Returns:
        ``[T, B, N_out]``, differentiable in ``x``, ``history`` and ``taps.values``.

    The range of ``taps.start`` is checked in eager calls only: code being compiled and code
    under a ``torch.func`` transform (which also runs the ``"torch"`` reference whatever
    ``backend`` says, :func:`snn.delays.backends.resolve_delay_backend`) skip that check.

    Raises:
        ValueError: ``x`` not 3-D, ``N_in`` mismatch, bad ``taps.start`` or ``history`` shape,
            unknown backend or one not for this device.
        RuntimeError: the requested backend cannot run here (names the missing package).
    """
    from snn.delays.backends import resolve_delay_backend

    if not isinstance(x, Tensor) or x.dim() != 3:
        raise ValueError(f"x must be a [T, B, N_in] tensor, got {type(x).__name__} "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else ''}")
    v, start, D = taps.values, taps.start, taps.max_delay
    if v.dim() != 3 or v.shape[1] != x.shape[2] or tuple(start.shape) != tuple(v.shape[:2]):
        raise ValueError(f"taps.values must be [N_out, N_in={x.shape[2]}, W] with start [N_out, N_in]; got "
                         f"values {tuple(v.shape)}, start {tuple(start.shape)}")
    W = v.shape[2]
    # the range of the starts is read from their values, which code being compiled (a graph
    # break) and code under a torch.func transform (vmap cannot read values) skip; eager calls check it
    in_range = values_unreadable() or not start.numel() or (
        int(start.min()) >= 0 and int(start.max()) <= D - W + 1)
    if W > D + 1 or not in_range:
        raise ValueError(f"taps.start must lie in [0, max_delay - W + 1] = [0, {D - W + 1}] for W={W} taps")
    check_history(history, x, D)
    be = resolve_delay_backend(backend, x, W, D)
    return be.run(x, taps, history)
