"""Blocked layout shared by the fused delay kernels.

A time-first sequence ``[T, B, C]`` is stored as ``[NB, C, (F + T + K)·Bc]``: the batch is
cut into ``NB = ⌈B / Bc⌉`` blocks of ``Bc`` samples (zero-padded), and each channel of a
block is one contiguous row, time-major with the ``Bc`` samples innermost, with ``F`` leading
and ``K`` trailing timesteps of padding (zeros, or the carried history in front). A delay
of ``τ`` timesteps is then a shift of ``τ·Bc`` elements along a row, so every kernel inner
loop is a unit-stride loop over ``T·Bc`` elements (CPU: ``Bc = 16`` keeps a channel of a
block in L1; GPU: one block, ``Bc = B``, consecutive threads read consecutive elements).
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor

__all__ = ["to_blocks", "blocks_buffer"]


def blocks_buffer(x: Tensor, Bc: int, front: int, back: int, out: Optional[Tensor]) -> Tensor:
    """``out`` viewed as ``[NB, C, steps, Bc]`` when it is the blocked layout's shape and dtype for
    ``x``, else a new buffer: the batch chunks of one call reuse one buffer (a fresh
    multi-MB allocation per chunk would be page-faulted in each time)."""
    T, B, C = x.shape
    shape = (-(-B // Bc), C, front + T + back, Bc)
    if out is not None and out.dtype == x.dtype and out.device == x.device and out.is_contiguous() \
            and tuple(out.shape) == (shape[0], C, shape[2] * Bc):
        return out.view(shape)
    return x.new_empty(shape)


def to_blocks(x: Tensor, Bc: int, front: int = 0, back: int = 0, history: Optional[Tensor] = None,
              out: Optional[Tensor] = None) -> Tensor:
    """``[T, B, C]`` → ``[NB, C, (front + T + back)·Bc]`` (zeros in the padding).

    ``history`` (``[front, B, C]``) fills the leading ``front`` timesteps instead of zeros.
    ``out``: a previous result to overwrite when it has this result's shape (see
    :func:`blocks_buffer`).
    """
    T, B, C = x.shape
    NB = -(-B // Bc)
    out = blocks_buffer(x, Bc, front, back, out)

    def fill(dst: Tensor, seq: Tensor) -> None:  # dst [NB, C, steps, Bc] ← seq [steps, B, C]
        full = B // Bc
        if full:
            dst[:full].copy_(seq[:, :full * Bc].reshape(seq.shape[0], full, Bc, C).permute(1, 3, 0, 2))
        if full < NB:
            rest = B - full * Bc
            dst[full].zero_()
            dst[full, :, :, :rest].copy_(seq[:, full * Bc:].permute(2, 0, 1))

    fill(out[:, :, front:front + T], x)
    if front:
        if history is not None:
            fill(out[:, :, :front], history.to(x.dtype))
        else:
            out[:, :, :front].zero_()
    if back:
        out[:, :, front + T:].zero_()
    return out.view(NB, C, -1)
