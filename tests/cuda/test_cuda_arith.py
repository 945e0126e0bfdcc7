"""Rounding-exact primitives (snn/cuda/arith.py): the compiled fma is torch.addcmul's."""
import numpy as np
import pytest
import torch

from snn.cuda.arith import fma, mul_rn

numba = pytest.importorskip("numba")


@numba.njit(cache=True)
def _jit_fma(a, b, c):
    out = np.empty_like(c)
    for i in range(c.size):
        out[i] = fma(a[i], b[i], c[i])
    return out


@numba.njit(cache=True)
def _jit_mul(a, b):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = mul_rn(a[i], b[i])
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_fma_equals_addcmul(dtype):
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(50_000, generator=g, dtype=dtype) for _ in range(3))
    assert torch.equal(torch.from_numpy(_jit_fma(a.numpy(), b.numpy(), c.numpy())), torch.addcmul(c, a, b))
    # and differs from a separately rounded product somewhere (so the test has teeth)
    assert not torch.equal(torch.addcmul(c, a, b), c + a * b)


def test_python_fallbacks_and_mul_rn():
    f = np.float32
    assert fma(f(1.5), f(2.0), f(0.25)) == f(3.25) and type(fma(f(1), f(1), f(1))) is np.float32
    a, b = np.random.default_rng(0).standard_normal((2, 1000)).astype(np.float32)
    assert np.array_equal(_jit_mul(a, b), a * b)
