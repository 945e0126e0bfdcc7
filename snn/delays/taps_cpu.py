"""Numba kernels for the tap values of :mod:`snn.delays.taps` on CPU: one pass over the
``[N_out, N_in, W]`` taps instead of ~10 elementwise torch operations (same formulas, see
:class:`snn.delays.taps._NormalisedTaps`). ``kind`` 0 = Gaussian, 1 = triangle;
``trunc < 0`` means no truncation.
"""
from __future__ import annotations

import math

import torch
from numba import njit, prange

from snn.numba_target import prefer_wide_vectors

prefer_wide_vectors()  # before anything is compiled (see snn.numba_target)

__all__ = ["taps_forward", "taps_backward", "cpu_taps_forward", "cpu_taps_backward"]

_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@njit(inline="always")
def _g(z, kind, sigma, trunc):  # pragma: no cover - compiled
    if kind == 0:
        if trunc >= 0 and abs(z) > trunc * sigma:
            return 0.0, 0.0
        g = math.exp(-0.5 * (z / sigma) ** 2)
        return g, g * z / (sigma * sigma)          # g, ∂g/∂d  (z = τ − d)
    a = abs(z)
    if a >= 1.0:
        return 0.0, 0.0
    return 1.0 - a, (1.0 if z > 0 else (-1.0 if z < 0 else 0.0))


@njit(parallel=True, **_OPTS)
def taps_forward(weight, delay, start, sigma, trunc, kind, eps, out):  # pragma: no cover - compiled
    O, I, W = out.shape
    for o in prange(O):
        for i in range(I):
            d = delay[o, i]
            st = start[o, i]
            Z = 0.0
            for u in range(W):
                g, _ = _g(st + u - d, kind, sigma, trunc)
                out[o, i, u] = g
                Z += g
            scale = weight[o, i] / (Z + eps)
            for u in range(W):
                out[o, i, u] = out[o, i, u] * scale


@njit(parallel=True, **_OPTS)
def taps_backward(weight, delay, start, sigma, trunc, kind, eps, gv, gw, gd):  # pragma: no cover - compiled
    O, I, W = gv.shape
    for o in prange(O):
        for i in range(I):
            d = delay[o, i]
            st = start[o, i]
            Z = 0.0
            a = 0.0
            b = 0.0
            sp = 0.0
            for u in range(W):
                g, gp = _g(st + u - d, kind, sigma, trunc)
                Z += g
                a += gv[o, i, u] * g
                b += gv[o, i, u] * gp
                sp += gp
            Z += eps
            gw[o, i] = a / Z
            gd[o, i] = weight[o, i] / Z * (b - a * sp / Z)


def cpu_taps_forward(weight: torch.Tensor, delay: torch.Tensor, start: torch.Tensor, W: int, sigma, truncate,
                     eps: float) -> torch.Tensor:
    out = weight.new_empty(*weight.shape, W)
    taps_forward(weight.detach().contiguous().numpy(), delay.detach().contiguous().numpy(),
                 start.contiguous().numpy(), float(sigma or 1.0), -1.0 if truncate is None else float(truncate),
                 0 if sigma is not None else 1, float(eps), out.numpy())
    return out


def cpu_taps_backward(weight: torch.Tensor, delay: torch.Tensor, start: torch.Tensor, sigma, truncate, eps: float,
                      gv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    gw, gd = torch.empty_like(weight), torch.empty_like(delay)
    taps_backward(weight.detach().contiguous().numpy(), delay.detach().contiguous().numpy(),
                  start.contiguous().numpy(), float(sigma or 1.0), -1.0 if truncate is None else float(truncate),
                  0 if sigma is not None else 1, float(eps), gv.contiguous().to(weight.dtype).numpy(),
                  gw.numpy(), gd.numpy())
    return gw, gd

