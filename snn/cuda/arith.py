"""Rounding-exact arithmetic primitives shared by the CPU and CUDA Numba kernels.

The fused kernels must reproduce the PyTorch reference bit for bit in the forward pass
(spikes are a threshold test, so one ulp can flip a spike). Two spots need care:

* ``torch.addcmul(x, v, beta)`` (the reference charge with a tensor decay) is a fused
  multiply-add with a single rounding, on CPU and GPU: :func:`fma`.
* every other product is rounded on its own, but NVVM contracts ``a*b + c`` into an FMA
  by default (numba.cuda exposes no switch for it): :func:`mul_rn` pins the rounding.

Each primitive is a plain Python function (used as-is by the CUDA simulator) with Numba
implementations for the CPU (``llvm.fma``, a plain product) and the CUDA target
(``llvm.fma``, libdevice ``__nv_fmul_rn``/``__nv_dmul_rn``).
"""
from __future__ import annotations

from numba import types
from numba.extending import intrinsic, overload

__all__ = ["fma", "mul_rn"]


def fma(a, b, c):
    """``a*b + c`` rounded once. Pure-Python fallback: float64 product and sum, rounded to
    ``c``'s type (double rounding can differ from a true FMA in ~2⁻²⁹ of float32 cases)."""
    return type(c)(float(a) * float(b) + float(c))


def mul_rn(a, b):
    """``a*b`` rounded on its own (never contracted into a neighbouring add)."""
    return a * b


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

    @overload(mul_rn, target="cuda")
    def _mul_rn_cuda(a, b):
        if a == b == types.float32:
            return lambda a, b: libdevice.fmul_rn(a, b)
        if a == b == types.float64:
            return lambda a, b: libdevice.dmul_rn(a, b)
        return None


_register_cuda()
