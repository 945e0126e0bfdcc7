"""GPU backend "numba" of the delays (snn/delays/numba_gpu.py).

Without a GPU the kernels are checked two ways: in Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, in a subprocess so this process's Numba is left alone; tiny
shapes) against the dense torch reference, and compiled to PTX for sm_80 (which also checks
that no float64 arithmetic leaks in). With a GPU the parity test runs on CUDA tensors.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

numba = pytest.importorskip("numba")
REPO = Path(__file__).resolve().parents[2]

PARITY = r"""
import torch
from snn.delays import Taps, dense_delay_conv
from snn.delays.autograd import fused_delay_conv
from snn.delays.backends import CUDA_LAUNCHER
dev = "cuda" if torch.cuda.is_available() and not __import__("numba").config.ENABLE_CUDASIM else "cpu"
g = torch.Generator().manual_seed(0)
for (T, B, I, O, D, W, hist) in [(5, 3, 4, 3, 4, 2, False), (4, 2, 3, 2, 3, 1, True)]:
    v = torch.randn(O, I, W, generator=g).to(dev).requires_grad_()
    start = torch.randint(0, D - W + 2, (O, I), generator=g).to(dev)
    x = torch.randn(T, B, I, generator=g).to(dev).requires_grad_()
    h = torch.randn(D, B, I, generator=g).to(dev).requires_grad_() if hist else None
    gy = torch.randn(T, B, O, generator=g).to(dev)
    ins = [x, v] + ([h] if hist else [])
    y = fused_delay_conv(CUDA_LAUNCHER, x, v, start, D, h)
    got = [y] + list(torch.autograd.grad(y, ins, gy))
    y0 = dense_delay_conv(x, Taps(v, start, D), h)
    want = [y0] + list(torch.autograd.grad(y0, ins, gy))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
print("ok")
"""


def test_simulator_parity():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", PARITY], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


@pytest.mark.skipif(bool(numba.config.ENABLE_CUDASIM), reason="PTX compilation needs the real numba.cuda")
def test_kernels_compile_to_float32_ptx():
    from numba import boolean, cuda, float32, int64

    from snn.delays import numba_gpu as ng
    a3, a2i = float32[:, :, :], int64[:, :]
    for kernel, sig in [(ng.accumulate_kernel, (a3, a3, a2i, int64, int64, int64, a3)),
                        (ng.correlate_kernel, (a3, a3, int64, int64, a2i, int64, a3, boolean))]:
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(8, 0))
        except Exception as err:
            if "nvvm" not in str(err).lower():
                raise
            pytest.skip(f"NVVM unavailable on this machine: {err}")
        assert ".f64" not in ptx


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_gpu_parity():
    r = subprocess.run([sys.executable, "-c", PARITY], cwd=REPO, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]
