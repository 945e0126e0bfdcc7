"""The integrate-and-fire update and the surrogate derivatives as scalar functions.

This file is the single Numba-side definition of the dynamics: every function is plain
Python over scalars, marked :func:`numba.extending.register_jitable`, so the same source is
compiled into the ``@njit`` CPU kernels (:mod:`snn.cuda.cpu`) and into the ``numba.cuda``
kernels (:mod:`snn.cuda.numba_gpu`), and runs unchanged under the CUDA simulator. The CUDA C
twin for CuPy is ``csrc/neuron.cuh``. Both follow :mod:`snn.neurons.functional`
(the reference) operation for operation, so forward results are bitwise equal to it.

Per timestep (β decay, g input gain, θ threshold, ``hard``/``keep_reset`` 0./1. flags)::

    h = charge(v, x)                       mode FMA: fma(β, v, x)   (torch.addcmul; IF uses β = 1)
                                           mode MUL_ADD: x + β·v    (Python-float β)
                                           mode DECAY_INPUT: v + (1−β)·(x − v)
    s = spike(h, θ) = [h ≥ θ]
    v = reset(h, s) = h − s·(hard·(h − v_reset) + (1 − hard)·θ)

Flags enter as 0./1. multipliers, which is exact (products with 0 or 1 are exact), so the
options are runtime values and one compiled kernel serves every option.

Surrogates are written as ``a·f(b·z)`` with two coefficients per kind precomputed on the
host from ``alpha`` by :func:`snn.cuda.params.surrogate_coefficients`, ``z = h − θ``.
Literal constants are float32 (exact for 0, ½, 1), so float32 kernels never promote to
float64 and float64 kernels stay float64.
"""
from __future__ import annotations

import math

import numpy as np
from numba.extending import register_jitable

from snn.cuda.arith import exp, fma, mul_rn
# the ids and coefficients live with the host-side arguments (numba-free), re-exported here
from snn.cuda.params import (ATAN, CHARGE_DECAY_INPUT, CHARGE_FMA, CHARGE_MUL_ADD, ERFC, FAST_SIGMOID, GAUSSIAN,
                             SIGMOID, SURROGATE_KINDS, TRIANGLE, surrogate_coefficients)

__all__ = [
    "ATAN", "SIGMOID", "FAST_SIGMOID", "TRIANGLE", "GAUSSIAN", "ERFC", "SURROGATE_KINDS",
    "CHARGE_FMA", "CHARGE_MUL_ADD", "CHARGE_DECAY_INPUT", "surrogate_coefficients",
    "atan_grad", "sigmoid_grad", "fast_sigmoid_grad", "triangle_grad", "gaussian_grad", "erfc_grad",
    "surrogate_grad", "charge", "spike", "reset", "backward_step", "charge_backward", "charge_grad_beta",
    "state_before",
]

ZERO = np.float32(0.0)
HALF = np.float32(0.5)
ONE = np.float32(1.0)

# -- surrogate derivatives σ'(z): a = leading factor, b = scale of z ----------------------
@register_jitable
def atan_grad(z, a, b):
    """ATan: (α/2) / (1 + (π·α·z/2)²); a = α/2, b = π·α/2."""
    u = b * z
    return a / (ONE + u * u)


@register_jitable
def sigmoid_grad(z, a, b):
    """Sigmoid: α·σ(αz)·(1 − σ(αz)); a = b = α."""
    s = ONE / (ONE + exp(-(b * z)))
    return a * s * (ONE - s)


@register_jitable
def fast_sigmoid_grad(z, a, b):
    """Fast sigmoid / SuperSpike: (α/2) / (1 + α|z|)²; a = α/2, b = α."""
    d = ONE + b * abs(z)
    return a / (d * d)


@register_jitable
def triangle_grad(z, a, b):
    """Triangle: α·max(0, 1 − α|z|); a = b = α."""
    d = ONE - b * abs(z)
    return a * d if d > ZERO else ZERO


@register_jitable
def gaussian_grad(z, a, b):
    """Gaussian: α/√(2π)·exp(−(αz)²/2); a = α/√(2π), b = α."""
    u = b * z
    return a * exp(-HALF * (u * u))


@register_jitable
def erfc_grad(z, a, b):
    """Erfc: α/√π·exp(−(αz)²); a = α/√π, b = α."""
    u = b * z
    return a * exp(-(u * u))


@register_jitable
def surrogate_grad(kind, z, a, b):
    """σ'(z) of surrogate ``kind`` (an id above) with coefficients ``(a, b)``."""
    if kind == ATAN:
        return atan_grad(z, a, b)
    if kind == SIGMOID:
        return sigmoid_grad(z, a, b)
    if kind == FAST_SIGMOID:
        return fast_sigmoid_grad(z, a, b)
    if kind == TRIANGLE:
        return triangle_grad(z, a, b)
    if kind == GAUSSIAN:
        return gaussian_grad(z, a, b)
    return erfc_grad(z, a, b)


# -- forward ------------------------------------------------------------------------------
@register_jitable
def charge(v, x, beta, omb, mode):
    """Membrane before firing, ``h``; ``omb = 1 − β`` computed on the host like the reference."""
    h_fma = fma(beta, v, x)
    h_mul = x + mul_rn(beta, v)
    h_dec = v + mul_rn(omb, x - v)
    if mode == CHARGE_FMA:
        return h_fma
    if mode == CHARGE_MUL_ADD:
        return h_mul
    return h_dec


@register_jitable
def spike(h, theta):
    """Heaviside ``[h ≥ θ]`` as 0./1. (float32; equal to the reference's ``h − θ ≥ 0``)."""
    return ONE if h >= theta else ZERO


@register_jitable
def reset(h, s, theta, v_reset, hard):
    """Membrane after the spike: ``h − s·θ`` (hard = 0) or ``h − s·(h − v_reset)`` (hard = 1).

    A select, not ``hard·(h − v_reset) + (1 − hard)·θ``: that would make an infinite ``h``
    NaN under soft reset (``0·∞``), where the reference gives ``h − s·θ``.
    """
    return h - s * ((h - v_reset) if hard != ZERO else theta)


# -- backward -----------------------------------------------------------------------------
@register_jitable
def backward_step(gs, gv, h, sg, theta, v_reset, hard, keep_reset):
    """Gradients of one fire-and-reset step.

    Args: ``gs = ∂L/∂s[t]`` from the output, ``gv = ∂L/∂v[t]`` (from later steps and the
    recorded/last membrane), ``h`` the stored pre-reset membrane, ``sg = σ'(h − θ)``,
    ``keep_reset`` = 0. under ``detach_reset`` else 1.

    Returns: ``(∂L/∂h[t], ∂L/∂θ contribution of this step)``.
    """
    s = spike(h, theta)
    soft = ONE - hard
    dv_ds = hard * (v_reset - h) - soft * theta
    gs_tot = gs + keep_reset * (gv * dv_ds)
    gh = gs_tot * sg + gv * (ONE - hard * s)
    gth = -(gs_tot * sg) - soft * (s * gv)
    return gh, gth


@register_jitable
def charge_backward(gh, beta, omb, mode):
    """``(∂L/∂x[t], ∂L/∂v[t−1])`` from ``gh = ∂L/∂h[t]``."""
    gain = omb if mode == CHARGE_DECAY_INPUT else ONE
    return gh * gain, gh * beta


@register_jitable
def charge_grad_beta(gh, v_prev, x, mode):
    """This step's ``∂L/∂β``: ``gh·v[t−1]``, or ``gh·(v[t−1] − x[t])`` with decay_input."""
    if mode == CHARGE_DECAY_INPUT:
        return gh * (v_prev - x)
    return gh * v_prev


@register_jitable
def state_before(t, h_prev, v0, theta, v_reset, hard):
    """The membrane before step ``t`` (the ``v[t−1]`` of :func:`charge_grad_beta`), recomputed
    from the stored pre-reset membrane ``h_prev = h[t−1]``, or the initial state ``v0`` at t = 0."""
    if t > 0:
        return reset(h_prev, spike(h_prev, theta), theta, v_reset, hard)
    return v0
