"""Rounding-exact arithmetic primitives shared by the CPU and CUDA Numba kernels.

The fused kernels must reproduce the PyTorch reference bit for bit in the forward pass
(spikes are a threshold test, so one ulp can flip a spike). Two spots need care:

* ``torch.addcmul(x, v, beta)`` (the reference charge with a tensor decay) is a fused
  multiply-add with a single rounding, on CPU and GPU: :func:`fma`.
* every other product is rounded on its own, but NVVM contracts ``a*b + c`` into an FMA
  by default (numba.cuda exposes no switch for it): :func:`mul_rn` pins the rounding.

A third primitive is about speed, not rounding: :func:`exp`, which the exp-based surrogate
derivatives use. Numba lowers ``math.exp`` on the CPU to a call of libm's scalar ``expf``
per element, which keeps a whole backward loop from being vectorised (llvmlite's LLVM has no
SVML); the compiled float32 ``exp`` here is branch-free arithmetic that LLVM vectorises.

Each primitive is a plain Python function (used as-is by the CUDA simulator) with Numba
implementations for the CPU (``llvm.fma``, a plain product) and the CUDA target
(``llvm.fma``, libdevice ``__nv_fmul_rn``/``__nv_dmul_rn``).
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload, register_jitable

__all__ = ["fma", "mul_rn", "exp"]


def fma(a, b, c):
    """``a*b + c`` rounded once. Pure-Python fallback: float64 product and sum, rounded to
    ``c``'s type (double rounding can differ from a true FMA in ~2⁻²⁹ of float32 cases)."""
    return type(c)(float(a) * float(b) + float(c))


def mul_rn(a, b):
    """``a*b`` rounded on its own (never contracted into a neighbouring add)."""
    return a * b


def exp(x):
    """``e**x``. Compiled for the CPU in float32: Cody–Waite range reduction ``x = n·ln2 + r``,
    ``|r| ≤ ln2/2``, and Cephes' degree-7 polynomial for ``e**r`` (within 1 ulp of the exact
    value over the whole float32 range, subnormal results included; ``inf``/``0`` beyond it,
    NaN stays NaN), vectorisable; float64 and the CUDA target use ``math.exp``."""
    return math.exp(x)


@intrinsic
def _f32_from_bits(typingctx, i):
    """The float32 whose bit pattern is the low 32 bits of integer ``i`` (32 or 64 bits wide:
    Numba widens ``int32`` arithmetic to ``int64``)."""
    if not (isinstance(i, types.Integer) and i.bitwidth in (32, 64)):
        return None

    def codegen(context, builder, signature, args):
        v = args[0] if i.bitwidth == 32 else builder.trunc(args[0], ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())
    return types.float32(i), codegen


_F = np.float32
_EXP_LO, _EXP_HI = _F(-104.0), _F(89.0)  # e**x rounds to 0 below, overflows to inf above
_LOG2E, _LN2_HI, _LN2_LO = _F(1.44269504088896341), _F(0.693359375), _F(-2.12194440e-4)


@register_jitable
def _pow2(k):
    """``2**k`` for an integer ``-126 ≤ k ≤ 127``."""
    return _f32_from_bits((k + 127) << 23)


@register_jitable
def _exp_f32(x):
    xc = min(max(x, _EXP_LO), _EXP_HI)  # NaN passes through both and stays NaN below
    n = np.floor(xc * _LOG2E + _F(0.5))  # float32 (math.floor would give an int64 and promote)
    r = fma(-n, _LN2_LO, fma(-n, _LN2_HI, xc))
    p = fma(_F(1.9875691500e-4), r, _F(1.3981999507e-3))
    p = fma(p, r, _F(8.3334519073e-3))
    p = fma(p, r, _F(4.1665795894e-2))
    p = fma(p, r, _F(1.6666665459e-1))
    p = fma(p, r, _F(5.0000001201e-1))
    p = fma(p, r * r, r) + _F(1.0)
    k = np.int32(n)
    k1 = k >> 1  # two exact power-of-two factors: 2**n may lie outside the normal range
    return (p * _pow2(k1)) * _pow2(k - k1)


@overload(exp, target="cpu")
def _exp_cpu(x):
    if x == types.float32:
        return lambda x: _exp_f32(x)
    if isinstance(x, types.Float):
        return lambda x: math.exp(x)
    return None


@intrinsic
def _llvm_fma(typingctx, a, b, c):
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)
    return c(a, b, c), codegen


@overload(fma, target="generic")
def _fma_jit(a, b, c):
    if isinstance(a, types.Float) and a == b == c:
        return lambda a, b, c: _llvm_fma(a, b, c)
    return None


@overload(mul_rn, target="cpu")
def _mul_rn_cpu(a, b):
    return lambda a, b: a * b


def _register_cuda() -> None:
    try:
        from numba.cuda import libdevice
    except Exception:  # pragma: no cover - numba without its CUDA target
        return

    @overload(exp, target="cuda")
    def _exp_cuda(x):
        if isinstance(x, types.Float):
            return lambda x: math.exp(x)
        return None

    @overload(mul_rn, target="cuda")
    def _mul_rn_cuda(a, b):
        if a == b == types.float32:
            return lambda a, b: libdevice.fmul_rn(a, b)
        if a == b == types.float64:
            return lambda a, b: libdevice.dmul_rn(a, b)
        return None


_register_cuda()
