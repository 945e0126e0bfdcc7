"""Per-synapse temporal kernels of a delay synapse, as narrow windows of taps.

A synapse ``i → j`` with weight ``w`` and real-valued delay position ``d ∈ [0, D]`` (in
timesteps, ``D = max_delay``) has a causal temporal kernel ``k(τ)``, ``τ = 0 … D``, and the
layer computes ``y[t, j] = Σ_i Σ_τ k_ij(τ) x[t − τ, i]``. Following Hammouamri,
Khalfaoui-Hassani & Masquelier, "Learning Delays in Spiking Neural Networks using Dilated
Convolutions with Learnable Spacings" (ICLR 2024, eq. 3–4; DCLS: Khalfaoui-Hassani et al.,
ICLR 2023):

* Gaussian interpolation:  ``k(τ) = w · g(τ) / (Σ_τ' g(τ') + ε · max_τ' g(τ'))``,
  ``g(τ) = exp(−(τ − d)² / 2σ²)``, optionally truncated to ``|τ − d| ≤ truncate·σ`` — but
  never below the integers around ``d`` (``|τ − d| < 1`` is always kept) — with ``g = 0`` outside;
* linear (triangle) interpolation: ``g(τ) = max(0, 1 − |τ − d|)``, normalised by ``Σ g + ε``;
* integer delays (after rounding, or fixed delays): ``k(τ) = w · [τ = d]``.

``ε = 1e-7`` as in the DCLS package. The Gaussian's guard is relative to its largest tap (the
one nearest ``d``), and ``g`` is evaluated relative to that tap, so nothing underflows: as
``σ → 0`` the kernel tends to the nearest-integer delay of :func:`integer_taps`, with the
weight gradient of that delay (DCLS's ``Σ g + ε`` instead fades to 0 once ``max g ≲ ε``:
below ``σ ≈ 0.05`` for a position 0.3 from the nearest integer). Where ``max g = 1`` (integer
``d``) the two are identical, elsewhere they differ by a relative ``≤ ε / Σ g``. Instead of a dense
``[N_out, N_in, D + 1]`` kernel, every function here returns :class:`Taps`: ``W`` consecutive
taps per synapse starting at an integer ``start`` (``W = 1`` for integer delays, ``2`` for
linear, ``max(⌊2·truncate·σ⌋ + 1, 2)`` for a truncated Gaussian, ``D + 1`` when the window
covers the whole range). Tap values carry the autograd graph to ``weight`` and ``delay``;
``start`` is an integer tensor without gradient.
"""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple, Optional

import torch
from torch import Tensor

from snn.backend_registry import reference_only, values_unreadable

__all__ = ["Taps", "EPS", "gaussian_taps", "linear_taps", "integer_taps", "gaussian_width", "taps_to_dense"]

EPS = 1e-7
"""Normalisation guard ``ε`` (the DCLS package's value)."""


class Taps(NamedTuple):
    """Windowed per-synapse kernels.

    Attributes:
        values: ``[N_out, N_in, W]`` tap values ``k_ij(start_ij + u)``, ``u = 0 … W−1``
            (float, differentiable).
        start: ``[N_out, N_in]`` int64 first delay of each window, ``0 ≤ start ≤ D − W + 1``.
        max_delay: ``D`` (int, timesteps).
        inert_zeros: True when a tap value that is exactly zero, in a synapse with some non-zero
            tap, is structurally zero (outside the interpolation window) and its gradient is
            never used: the fused CPU kernels then skip the zero taps before a synapse's first
            and after its last non-zero tap in the gradient of ``values`` too (those entries
            stay 0). Set by :func:`gaussian_taps` and :func:`linear_taps`, whose own backward
            multiplies such a gradient by ``g = g' = 0``; leave it False (the default) for tap
            values made otherwise, whose every gradient entry is then exact.
    """

    values: Tensor
    start: Tensor
    max_delay: int
    inert_zeros: bool = False

    @property
    def width(self) -> int:
        """``W``, taps per synapse."""
        return int(self.values.shape[-1])


def _check(weight: Tensor, delay: Tensor, max_delay: int) -> None:
    if weight.dim() != 2 or delay.shape != weight.shape:
        raise ValueError(f"weight and delay must both be [N_out, N_in]; got weight {tuple(weight.shape)}, "
                         f"delay {tuple(delay.shape)}")
    if not (isinstance(max_delay, int) and max_delay >= 0):
        raise ValueError(f"max_delay must be an int >= 0 (timesteps), got {max_delay!r}")


def gaussian_width(sigma: float, max_delay: int, truncate: Optional[float]) -> int:
    """Taps per synapse ``W = min(max(⌊2·truncate·σ⌋ + 1, 2), D + 1)`` (``D + 1`` if ``truncate``
    is None): the number of integers that can lie within ``truncate·σ`` of a real position, and
    at least the two integers around it (kept however small ``σ`` is)."""
    if truncate is None:
        return max_delay + 1
    return int(min(max(math.floor(2.0 * truncate * sigma) + 1, 2), max_delay + 1))


def _gaussian_starts(delay: Tensor, sigma: float, max_delay: int, truncate: Optional[float]) -> Tensor:
    """int64 ``[N_out, N_in]`` first tap of each window of :func:`gaussian_taps`:
    ``min(⌈d − truncate·σ⌉, ⌊d⌋)`` clamped to ``[0, D − W + 1]`` (all zeros when the window spans
    ``[0, D]``), so that the window holds every integer within ``truncate·σ`` of ``d`` and the two
    integers around ``d``."""
    D = max_delay
    W = gaussian_width(sigma, D, truncate)
    with torch.no_grad():
        if W >= D + 1:
            return torch.zeros(delay.shape, dtype=torch.long, device=delay.device)
        d = delay.detach()
        return torch.minimum(torch.ceil(d - truncate * sigma), torch.floor(d)).long().clamp_(0, D - W + 1)


def _offsets(delay: Tensor, start: Tensor, W: int) -> Tensor:
    """``z[o, i, u] = start[o, i] + u − d[o, i]`` (distance of each tap from the position)."""
    tau = start.unsqueeze(-1) + torch.arange(W, device=delay.device)
    return tau.to(delay.dtype) - delay.unsqueeze(-1)


def _gauss(delay: Tensor, start: Tensor, W: int, sigma: float, truncate: Optional[float], derivative: bool = False):
    """``(g̃, ∂g̃/∂d or None, Σ g̃ + ε)`` (the derivative only if asked for) with
    ``g̃ = g / g(τ₀) = exp(−(z − z₀)(z + z₀) / 2σ²)`` over the kept taps (``|z| ≤ truncate·σ``
    or ``|z| < 1``; 0 elsewhere), ``z = τ − d``, ``z₀ = τ₀ − d`` for the tap ``τ₀ = ⌊d + ½⌋``
    nearest ``d`` (clamped to the window, which holds it for ``d ∈ [0, D]``).
    ``g̃ ≤ 1`` and ``g̃(τ₀) = 1``: nothing underflows however small ``σ`` is."""
    z = _offsets(delay, start, W)
    s = start.to(delay.dtype)
    z0 = (torch.floor(delay + 0.5).clamp(min=s, max=s + (W - 1)) - delay).unsqueeze(-1)
    inv = 1.0 / sigma
    q = (z - z0) * inv
    g = torch.exp(-0.5 * q * ((z + z0) * inv))
    if truncate is not None:
        za = z.abs()
        g = torch.where((za <= truncate * sigma) | (za < 1.0), g, 0.0)
    gp = g * q * inv if derivative else None           # ∂g̃/∂d
    return g, gp, g.sum(-1, keepdim=True) + EPS


def _triangle(delay: Tensor, start: Tensor, W: int, derivative: bool = False):
    """``(g, ∂g/∂d or None, Σ g + ε)`` of the triangle ``g = max(0, 1 − |z|)``."""
    z = _offsets(delay, start, W)
    g = torch.relu(1.0 - z.abs())
    gp = torch.sign(z) * (z.abs() < 1) if derivative else None
    return g, gp, g.sum(-1, keepdim=True) + EPS


def _use_numba(weight: Tensor) -> bool:
    """Tap values of CPU float32/float64 tensors come from one Numba pass (:mod:`snn.delays.taps_cpu`),
    except in code being compiled: ``torch.compile`` traces (and fuses) the torch operations instead
    (Dynamo cannot trace into Numba)."""
    return (weight.device.type == "cpu" and weight.dtype in (torch.float32, torch.float64)
            and weight.numel() * 8 >= NUMBA_TAPS_ABOVE and not torch.compiler.is_compiling())


NUMBA_TAPS_ABOVE = 1 << 14
"""Tap values (``N_out·N_in·8`` roughly) from which the Numba pass beats the torch operations."""


class _NormalisedTaps(torch.autograd.Function):
    """``values = w · g(d) / (Σ_u g(d) + ε)`` with the gradient written out, so that the
    backward pass recomputes ``g`` instead of keeping ~8 ``[N_out, N_in, W]`` intermediates:

    ``∂L/∂w = Σ_u γ_u g_u / Z``, ``∂L/∂d = (w / Z) · (Σ_u γ_u g'_u − (Σ_u γ_u g_u)(Σ_u g'_u) / Z)``,
    with ``γ = ∂L/∂values``, ``Z = Σ g + ε`` and ``g' = ∂g/∂d`` (Gaussian, relative to the
    tap nearest ``d``, ``z₀``: ``g = exp(−(z − z₀)(z + z₀) / 2σ²)``, ``g' = g (z − z₀) / σ²``;
    triangle: ``g = max(0, 1 − |z|)``, ``g' = sign(z) [|z| < 1]``; ``z = τ − d``).
    """

    @staticmethod
    def forward(ctx, weight: Tensor, delay: Tensor, start: Tensor, W: int, sigma: Optional[float],
                truncate: Optional[float]) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(weight, delay, start)
        ctx.meta = (W, sigma, truncate)
        if _use_numba(weight):
            from snn.delays.taps_cpu import cpu_taps_forward
            return cpu_taps_forward(weight, delay, start, W, sigma, truncate, EPS)
        g, _, Z = _gauss(delay, start, W, sigma, truncate) if sigma is not None else _triangle(delay, start, W)
        return weight.unsqueeze(-1) * (g / Z)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gv: Tensor):  # type: ignore[override]
        weight, delay, start = ctx.saved_tensors
        W, sigma, truncate = ctx.meta
        if _use_numba(weight):
            from snn.delays.taps_cpu import cpu_taps_backward
            gw, gd = cpu_taps_backward(weight, delay, start, sigma, truncate, EPS, gv)
            return (gw if ctx.needs_input_grad[0] else None, gd if ctx.needs_input_grad[1] else None,
                    None, None, None, None)
        g, gp, Z = (_gauss(delay, start, W, sigma, truncate, derivative=True) if sigma is not None
                    else _triangle(delay, start, W, derivative=True))
        Z = Z.squeeze(-1)
        a = (gv * g).sum(-1)
        gw = a / Z if ctx.needs_input_grad[0] else None
        gd = weight / Z * ((gv * gp).sum(-1) - a * gp.sum(-1) / Z) if ctx.needs_input_grad[1] else None
        return gw, gd, None, None, None, None


def _normalised_taps(weight: Tensor, delay: Tensor, start: Tensor, W: int, sigma: Optional[float],
                     truncate: Optional[float]) -> Tensor:
    """The tap values of :class:`_NormalisedTaps` (``sigma=None``: the triangle).

    Eager and compiled code use the ``autograd.Function`` (its written-out backward, and a
    Numba pass for large CPU layers). Under a ``torch.func`` transform
    or forward-mode AD (:func:`snn.backend_registry.reference_only`), which run neither this
    Function (no ``setup_context``, no ``jvp``) nor Numba, the same values come from the same torch operations as the
    Function's torch forward, differentiated by autograd: the same gradient, with the
    intermediates kept for backward (and differentiable again, for ``jacrev``/``hessian``)."""
    if not reference_only():
        return _NormalisedTaps.apply(weight, delay, start, W, sigma, truncate)
    g, _, Z = _gauss(delay, start, W, sigma, truncate) if sigma is not None else _triangle(delay, start, W)
    return weight.unsqueeze(-1) * (g / Z)


def gaussian_taps(weight: Tensor, delay: Tensor, sigma: float, max_delay: int,
                  truncate: Optional[float] = 3.0) -> Taps:
    r"""Gaussian-interpolated delay kernels (DCLS "gauss"), normalised over the taps in range.

    .. math::
        k_{ij}(\tau) = w_{ij}\, \frac{g_{ij}(\tau)}{\sum_{\tau'=0}^{D} g_{ij}(\tau')
            + \varepsilon \max_{\tau'} g_{ij}(\tau')},\quad
        g_{ij}(\tau) = e^{-(\tau - d_{ij})^2 / 2\sigma^2}\,
            [\,|\tau - d_{ij}| \le \text{truncate}\cdot\sigma \ \text{or}\ |\tau - d_{ij}| < 1\,]

    (Hammouamri et al., ICLR 2024, eq. 4; DCLS ``ConstructKernel1d.forward_vgauss`` with
    ``σ = |SIG| + 0.27``). ``truncate=3`` (default) keeps the taps within 3σ (99.7 % of the
    Gaussian's mass; the kernel is renormalised over them); ``truncate=6`` drops only taps
    below ``e^{-18} ≈ 1.5·10⁻⁸`` of the peak, i.e. equals the untruncated kernel to float32
    precision; ``truncate=None`` keeps every tap (``W = D + 1``). The two integers around
    ``d`` are always kept, and ``g`` is computed relative to the tap nearest ``d``, so the
    kernel never vanishes: as ``σ → 0`` it tends to the nearest-integer delay
    (:func:`integer_taps`, what :meth:`snn.delays.DelayLinear.round_delays_` applies). DCLS
    normalises by ``Σ g + ε``; the guard ``ε · max g`` here equals it for an integer ``d`` and
    differs by a relative ``≤ ε / Σ g`` (``ε = 10⁻⁷``) otherwise, until ``max g ≲ ε``
    (``σ ≲ 0.05`` at 0.3 from an integer), where DCLS's kernel fades to 0. Gradients flow to
    ``weight`` and ``delay`` (the exact gradient of this function; taps outside the window have
    none).

    Args:
        weight: ``[N_out, N_in]`` synaptic weights.
        delay: ``[N_out, N_in]`` real delay positions in timesteps; used as given (clamp them
            to ``[0, D]`` first, see :meth:`snn.delays.DelayLinear.clamp_delays_`).
        sigma: Gaussian standard deviation in timesteps (> 0).
        max_delay: ``D``, the largest delay (timesteps, ≥ 0).
        truncate: window half-width in units of ``σ`` (> 0), or None.

    Returns:
        :class:`Taps` with ``W = gaussian_width(sigma, max_delay, truncate)``.

    Raises:
        ValueError: shapes differ or are not 2-D, ``sigma ≤ 0``, ``truncate ≤ 0``, bad ``max_delay``.
    """
    _check(weight, delay, max_delay)
    if not (isinstance(sigma, numbers.Real) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number of timesteps, got {sigma!r}")
    if truncate is not None and not truncate > 0:
        raise ValueError(f"truncate must be > 0 (in units of sigma) or None, got {truncate!r}")
    D = max_delay
    W = gaussian_width(sigma, D, truncate)
    start = _gaussian_starts(delay, sigma, D, truncate)
    values = _normalised_taps(weight, delay, start, W, float(sigma), truncate)
    return Taps(values, start, D, inert_zeros=True)


def linear_taps(weight: Tensor, delay: Tensor, max_delay: int) -> Taps:
    r"""Linearly interpolated delay kernels (DCLS "v1"): two taps around each position.

    .. math::
        k_{ij}(\tau) = w_{ij}\, \frac{\max(0, 1 - |\tau - d_{ij}|)}{\sum_{\tau'} \max(0, 1 - |\tau' - d_{ij}|) + \varepsilon}

    (Khalfaoui-Hassani et al., "Dilated convolution with learnable spacings", ICLR 2023,
    eq. 2, the bilinear construction in 1-D). ``W = 2`` (``1`` if ``D = 0``).

    Args:
        weight, delay, max_delay: as :func:`gaussian_taps`.

    Raises:
        ValueError: shapes differ or are not 2-D, bad ``max_delay``.
    """
    _check(weight, delay, max_delay)
    D = max_delay
    W = min(2, D + 1)
    with torch.no_grad():
        start = torch.floor(delay.detach()).long().clamp_(0, D - W + 1)
    return Taps(_normalised_taps(weight, delay, start, W, None, None), start, D, inert_zeros=True)


def integer_taps(weight: Tensor, delay: Tensor, max_delay: int) -> Taps:
    """Exact integer delays: one tap ``w_ij`` at ``round(d_ij)`` (clamped to ``[0, D]``).

    Gradients flow to ``weight`` only (rounding has no gradient).

    Raises:
        ValueError: shapes differ or are not 2-D, bad ``max_delay``.
    """
    _check(weight, delay, max_delay)
    start = torch.round(delay.detach()).long().clamp_(0, max_delay)
    return Taps(weight.unsqueeze(-1), start, max_delay)


def taps_to_dense(taps: Taps) -> Tensor:
    """The dense kernel ``[N_out, N_in, D + 1]`` (index = delay τ) of windowed taps.

    Differentiable in ``taps.values``; used by the torch reference backend and for inspection.
    A window of all ``D + 1`` taps is returned as it is when ``start`` is all zeros (as valid
    taps' is); code being compiled and code under a ``torch.func`` transform assume so
    without reading ``start``.
    """
    v, start, D = taps.values, taps.start, taps.max_delay
    O, I, W = v.shape
    # a full window starts at 0 (0 ≤ start ≤ D − W + 1); code being compiled (a graph break)
    # and code under a torch.func transform (vmap cannot read values) rely on that rather
    # than reading start's values
    if W == D + 1 and (values_unreadable() or not bool(start.any())):
        return v
    idx = start.unsqueeze(-1) + torch.arange(W, device=v.device)
    return v.new_zeros(O, I, D + 1).scatter_add(2, idx, v)
