"""Numba kernels for the tap values of :mod:`snn.delays.taps` on CPU: one pass over the
``[N_out, N_in, W]`` taps instead of ~10 elementwise torch operations (same formulas, see
:class:`snn.delays.taps._NormalisedTaps`: the Gaussian relative to the tap nearest ``d``, the
integers around ``d`` always kept). ``kind`` 0 = Gaussian, 1 = triangle; a tap at offset
``z = τ − d`` is kept (non-zero) iff ``|z| ≤ radius`` (:func:`kept_radius`).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from numba import njit, prange

from snn.numba_target import prefer_wide_vectors

prefer_wide_vectors()  # before anything is compiled (see snn.numba_target)

__all__ = ["taps_forward", "taps_backward", "cpu_taps_forward", "cpu_taps_backward", "kept_radius"]

_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)

_BELOW_ONE = 1.0 - 2.0 ** -53
"""The largest float64 below 1: ``|z| < 1 ⟺ |z| ≤ _BELOW_ONE`` for float64 ``z``."""


def kept_radius(sigma: Optional[float], truncate: Optional[float]) -> float:
    """The kept taps as one float64 bound: ``|z| ≤ truncate·σ`` or ``|z| < 1`` (Gaussian),
    every tap (``truncate`` None), ``|z| < 1`` (triangle, ``sigma`` None)."""
    if sigma is None:
        return _BELOW_ONE
    if truncate is None:
        return math.inf
    return max(float(truncate) * float(sigma), _BELOW_ONE)


@njit(inline="always")
def _nearest(d, st, W):  # pragma: no cover - compiled
    """``z₀ = τ₀ − d`` for the tap ``τ₀ = ⌊d + ½⌋`` nearest ``d``, clamped to the window
    ``st … st + W − 1``."""
    s = float(st)
    t0 = min(max(np.floor(d + 0.5), s), s + (W - 1))  # in float64: no float → int conversion
    return t0 - d


@njit(inline="always")
def _g(z, z0, c0, kind, inv, radius):  # pragma: no cover - compiled
    """``g, ∂g/∂d`` at offset ``z = τ − d`` (``inv = 1/σ``); the Gaussian relative to the tap
    nearest ``d`` (offset ``z₀``, ``c0 = ½ (z₀/σ)²``): ``exp(c0 − ½ (z/σ)²)``, exactly 1 at ``z₀``."""
    if abs(z) > radius:
        return 0.0, 0.0
    if kind == 0:
        q = z * inv
        g = math.exp(c0 - 0.5 * (q * q))
        return g, g * (z - z0) * (inv * inv)
    return 1.0 - abs(z), (1.0 if z > 0 else (-1.0 if z < 0 else 0.0))


@njit(parallel=True, **_OPTS)
def taps_forward(weight, delay, start, inv, radius, kind, eps, out):  # pragma: no cover - compiled
    O, I, W = out.shape
    for o in prange(O):
        for i in range(I):
            d = delay[o, i]
            st = start[o, i]
            z0 = _nearest(d, st, W)
            q0 = z0 * inv
            c0 = 0.5 * (q0 * q0)
            Z = 0.0
            for u in range(W):
                g, _ = _g(st + u - d, z0, c0, kind, inv, radius)
                out[o, i, u] = g
                Z += g
            scale = weight[o, i] / (Z + eps)
            for u in range(W):
                out[o, i, u] = out[o, i, u] * scale


@njit(parallel=True, **_OPTS)
def taps_backward(weight, delay, start, inv, radius, kind, eps, gv, gw, gd):  # pragma: no cover - compiled
    O, I, W = gv.shape
    for o in prange(O):
        for i in range(I):
            d = delay[o, i]
            st = start[o, i]
            z0 = _nearest(d, st, W)
            q0 = z0 * inv
            c0 = 0.5 * (q0 * q0)
            Z = 0.0
            a = 0.0
            b = 0.0
            sp = 0.0
            for u in range(W):
                g, gp = _g(st + u - d, z0, c0, kind, inv, radius)
                Z += g
                a += gv[o, i, u] * g
                b += gv[o, i, u] * gp
                sp += gp
            Z += eps
            gw[o, i] = a / Z
            gd[o, i] = weight[o, i] / Z * (b - a * sp / Z)


def _scalars(sigma: Optional[float], truncate: Optional[float]) -> tuple[float, float, int]:
    return 1.0 / float(sigma or 1.0), kept_radius(sigma, truncate), 0 if sigma is not None else 1


def cpu_taps_forward(weight: torch.Tensor, delay: torch.Tensor, start: torch.Tensor, W: int,
                     sigma: Optional[float], truncate: Optional[float], eps: float) -> torch.Tensor:
    """``[N_out, N_in, W]`` tap values (Gaussian if ``sigma`` is given, else triangle)."""
    out = weight.new_empty(*weight.shape, W)
    inv, radius, kind = _scalars(sigma, truncate)
    taps_forward(weight.detach().contiguous().numpy(), delay.detach().contiguous().numpy(),
                 start.contiguous().numpy(), inv, radius, kind, float(eps), out.numpy())
    return out


def cpu_taps_backward(weight: torch.Tensor, delay: torch.Tensor, start: torch.Tensor, sigma: Optional[float],
                      truncate: Optional[float], eps: float, gv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(∂L/∂weight, ∂L/∂delay)``, both ``[N_out, N_in]``, from ``gv = ∂L/∂values``."""
    gw, gd = torch.empty_like(weight), torch.empty_like(delay)
    inv, radius, kind = _scalars(sigma, truncate)
    taps_backward(weight.detach().contiguous().numpy(), delay.detach().contiguous().numpy(),
                  start.contiguous().numpy(), inv, radius, kind, float(eps), gv.contiguous().to(weight.dtype).numpy(),
                  gw.numpy(), gd.numpy())
    return gw, gd
