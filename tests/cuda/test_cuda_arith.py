"""Rounding-exact primitives (snn/cuda/arith.py): the compiled fma is torch.addcmul's."""
import math

import numpy as np
import pytest
import torch

from snn.cuda.arith import exp, fma, mul_rn

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


@numba.njit(cache=True)
def _jit_exp(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = exp(a[i])
    return out


def test_compiled_float32_exp_is_within_one_ulp_everywhere():
    # the whole float32 domain: overflow, normal and subnormal results, underflow to 0
    a = np.concatenate([np.linspace(-110, 95, 400_001, dtype=np.float32),
                        np.float32([0.0, -0.0, 1e-30, -1e-30, 88.72283, 88.7229, -87.3365, -103.97, -104.5])])
    got = _jit_exp(a)
    with np.errstate(over="ignore"):
        exact = np.exp(a.astype(np.float64))
        rounded = exact.astype(np.float32)
    finite = np.isfinite(rounded)
    spacing = np.spacing(np.maximum(np.abs(rounded[finite]), np.float32(1e-45))).astype(np.float64)
    err_ulp = np.abs(got[finite].astype(np.float64) - exact[finite]) / spacing
    assert err_ulp.max() <= 1.0
    assert np.array_equal(got[~finite], rounded[~finite])           # inf where e**x overflows
    assert got[a < -104].tolist() == [0.0] * int((a < -104).sum())  # 0 where it underflows
    special = _jit_exp(np.float32([np.inf, -np.inf, np.nan]))
    assert special[0] == np.inf and special[1] == 0.0 and np.isnan(special[2])
    # float64 is libm's exp, and so is the pure-Python version the CUDA simulator runs
    b = np.linspace(-700, 700, 10_001)
    assert _jit_exp(b).tolist() == [math.exp(v) for v in b.tolist()]
    assert exp(np.float32(1.5)) == pytest.approx(np.exp(1.5))
