"""GPU backend "cupy" (snn/cuda/cupy_gpu.py, snn/cuda/csrc/*.cu[h]).

Everywhere: every ``.cu`` file is compiled with nvcc for sm_80 and sm_90, with the
templates instantiated for float, __half and __nv_bfloat16 (skipped if nvcc is absent).
With CuPy and a GPU: parity with the torch reference in float32/float16/bfloat16, on
PyTorch's current stream and under autocast (skipped otherwise).
"""
import shutil
import subprocess

import pytest
import torch
from cuda_parity import gpu_parity_test

from snn.cuda.cupy_gpu import KERNEL_TYPES, SOURCE_DIR

NVCC = shutil.which("nvcc")
CU_FILES = sorted(SOURCE_DIR.glob("*.cu"))


def test_sources_are_real_files():
    assert CU_FILES and (SOURCE_DIR / "neuron.cuh").is_file()
    assert set(KERNEL_TYPES.values()) == {"float", "__half", "__nv_bfloat16"}


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("cu", CU_FILES, ids=lambda p: p.name)
def test_cu_files_compile_with_nvcc(cu, arch, tmp_path):
    r = subprocess.run([NVCC, "-std=c++17", f"-arch={arch}", "-DSNN_EXPLICIT_INSTANTIATION",
                        "-Werror", "all-warnings", f"-I{SOURCE_DIR}", "-c", str(cu), "-o", str(tmp_path / "k.o")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def _gpu_reason():
    if not torch.cuda.is_available():
        return "needs a CUDA GPU"
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
    except Exception as err:
        return f"needs a working CuPy ({type(err).__name__}: {err})"
    return None


gpu_only = pytest.mark.skipif(_gpu_reason() is not None, reason=str(_gpu_reason()))


test_gpu_parity = gpu_only(gpu_parity_test("cupy"))


@gpu_only
def test_auto_prefers_cupy_and_uses_the_current_stream():
    from snn.neurons import LIF
    x = torch.rand(16, 4, 3, 17, 17, device="cuda") * 1.5
    ref = LIF(backend="torch", num_channels=3).cuda()(x)
    n = LIF(num_channels=3).cuda()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        out = n(x)
    s.synchronize()
    assert n.backend_used == "cupy"
    assert torch.equal(out, ref)


@gpu_only
def test_autocast_half_inputs_keep_float32_state():
    from snn.neurons import PLIF
    lin = torch.nn.Linear(32, 64).cuda()
    n = PLIF(learn_threshold=True).cuda()
    x = torch.rand(10, 4, 32, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = n(lin(x))
    assert out.dtype == torch.bfloat16 and n.backend_used == "cupy"
    out.float().sum().backward()
    assert n.w.grad is not None and torch.isfinite(n.w.grad).all()
    assert lin.weight.grad is not None
