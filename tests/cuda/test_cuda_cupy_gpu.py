"""GPU backend "cupy" (snn/cuda/cupy_gpu.py, snn/cuda/csrc/*.cu[h]).

Everywhere: every ``.cu`` file is compiled with nvcc for sm_80 and sm_90, with the
templates instantiated for float, snn::f16 and snn::bf16 (skipped if nvcc is absent); the
module is compiled as CuPy compiles it, with NVRTC, its options and name expressions and no
CUDA header on the include path (skipped if no NVRTC library is found); and
the kernels themselves run on the host (``cuda_host.py``: the unchanged CUDA C source built
by the host C++ compiler, launched through ``CupyLauncher``'s own argument packing) in the
full parity suite, float32/float16/bfloat16 inputs, spikes bit-exact against the reference
(skipped without a C++ compiler).
With CuPy and a GPU: the same parity on the device, on PyTorch's current stream and under
autocast (skipped otherwise).
"""
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import cuda_host
import numpy as np
import nvrtc
import pytest
import torch
from cuda_parity import RESETS, check_parity, gpu_parity_test, make_neuron, parity_test

from snn.cuda.backends import GPU_DTYPES
from snn.cuda.cupy_gpu import COMPILE_OPTIONS, KERNEL_TYPES, SOURCE_DIR, _names
from snn.neurons.functional import multistep

NVCC = shutil.which("nvcc")
CU_FILES = sorted(SOURCE_DIR.glob("*.cu"))


def test_sources_are_real_files():
    assert CU_FILES and (SOURCE_DIR / "neuron.cuh").is_file()
    assert set(KERNEL_TYPES.values()) == {"float", "snn::f16", "snn::bf16"}


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("cu", CU_FILES, ids=lambda p: p.name)
def test_cu_files_compile_with_nvcc(cu, arch, tmp_path):
    r = subprocess.run([NVCC, "-std=c++17", f"-arch={arch}", "-DSNN_EXPLICIT_INSTANTIATION",
                        "-Werror", "all-warnings", f"-I{SOURCE_DIR}", "-c", str(cu), "-o", str(tmp_path / "k.o")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr



@pytest.mark.skipif(nvrtc.library() is None, reason="no NVRTC library (pip install nvidia-cuda-nvrtc)")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90", "compute_90"])
def test_module_compiles_with_nvrtc_as_cupy_compiles_it(arch):
    # CuPy's RawModule adds the architecture and -ftz=true to the module's own options; no
    # toolkit include folder is given, as under CuPy installed from pip wheels
    names = _names("neuron_forward") + _names("neuron_backward")
    ok, log, lowered = nvrtc.compile_program(SOURCE_DIR / "neuron.cu", COMPILE_OPTIONS + (f"-arch={arch}", "-ftz=true"),
                                             names)
    assert ok, log
    assert sorted(lowered) == sorted(names) and all(v.startswith("_Z") for v in lowered.values())
    assert len(set(lowered.values())) == len(names)


@pytest.mark.skipif(nvrtc.library() is None, reason="no NVRTC library (pip install nvidia-cuda-nvrtc)")
def test_nvrtc_check_fails_on_a_header_the_wheels_lack(tmp_path):
    # the check above can fail: a source that needs a toolkit header does not compile here
    src = tmp_path / "needs_header.cu"
    src.write_text('#include <cuda_bf16.h>\n__global__ void k(__nv_bfloat16* x) { x[0] = x[1]; }\n')
    ok, log, _ = nvrtc.compile_program(src, COMPILE_OPTIONS + ("-arch=sm_90",), [])
    assert not ok and "cuda_bf16.h" in log

def test_host_build_skips_with_a_reason_without_float16(monkeypatch):
    # a compiler that cannot build _Float16 (older than GCC 12) gives a skip reason, not a failure
    monkeypatch.setattr(cuda_host, "_compiler", lambda: shutil.which("false") or "false")
    cuda_host.unavailable_reason.cache_clear()
    try:
        assert "_Float16" in cuda_host.unavailable_reason()
    finally:
        cuda_host.unavailable_reason.cache_clear()


HOST_REASON = cuda_host.unavailable_reason()
host_only = pytest.mark.skipif(HOST_REASON is not None, reason=f"host run of the CUDA C kernels {HOST_REASON}")


@functools.lru_cache(maxsize=None)
def _host_dll():
    with tempfile.TemporaryDirectory() as d:  # the loaded library outlives its file
        return cuda_host.build(Path(d))


@functools.lru_cache(maxsize=None)
def _host_run():
    from snn.cuda.autograd import FusedKernels, make_run
    return make_run(FusedKernels("tests.host-cupy", lambda: cuda_host.HostCupyLauncher(_host_dll()), GPU_DTYPES))


@host_only
def test_host_build_has_every_kernel_cupy_instantiates():
    assert sorted(cuda_host.kernel_names(_host_dll())) == sorted(_names("neuron_forward") + _names("neuron_backward"))
    fwd = cuda_host.signature(_host_dll(), "snn::neuron_forward<snn::f16>")
    assert fwd[0] == ("p", 8) and ("i", 8) in fwd and ("f", 4) in fwd


@host_only
def test_host_argument_check_rejects_what_cupy_would_misread():
    sig = cuda_host.signature(_host_dll(), "snn::neuron_forward<float>")
    good = tuple(np.uint64(0) if k == "p" else np.float32(0) if k == "f" else
                 (np.int64(0) if n == 8 else np.int32(0)) for k, n in sig)
    cuda_host.check_arguments("fwd", sig, good)
    i64 = next(i for i, (k, n) in enumerate(sig) if (k, n) == ("i", 8))
    f32 = next(i for i, (k, n) in enumerate(sig) if k == "f")
    for i, bad in [(i64, np.int32(0)), (f32, np.float64(0)), (f32, np.int32(0)), (0, 0)]:
        with pytest.raises(TypeError, match=f"argument {i} "):
            cuda_host.check_arguments("fwd", sig, good[:i] + (bad,) + good[i + 1:])
    with pytest.raises(TypeError, match="arguments for"):
        cuda_host.check_arguments("fwd", sig, good[:-1])


test_host_parity = host_only(parity_test(
    lambda model, params, dtype, case: check_parity(_host_run(), model, params, dtype, case, "cpu", exact=True),
    max_examples=8))


@host_only
@pytest.mark.parametrize("dtype", GPU_DTYPES)
def test_host_inference_without_autograd_matches_the_reference(dtype):
    # no gradient wanted: the forward kernel runs without storing h (store_h = 0)
    shape = (5, 3, 4, 7)  # [T, B, C, F]
    for reset in RESETS:
        n = make_neuron("plif", reset, False, "per_channel", "atan", 4, torch.float32, torch.Generator().manual_seed(1))
        x = (torch.rand(shape, generator=torch.Generator().manual_seed(2)) * 1.3).to(dtype)
        v0 = torch.rand(shape[1:]) * 0.5
        spec = n.spec(x.dim() - 1)
        with torch.no_grad():
            s, v_last, v_seq = _host_run()(x, v0, spec, True)
            s_r, v_last_r, v_seq_r = multistep(x.float(), v0, spec, True)
        assert s.dtype == dtype and torch.equal(s.float(), s_r)
        torch.testing.assert_close(v_last, v_last_r, rtol=0, atol=0)
        torch.testing.assert_close(v_seq, v_seq_r, rtol=0, atol=0)



@host_only
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_host_16_bit_conversions_round_like_torch(dtype):
    # The kernels read and write float16/bfloat16 as raw bits (neuron.cuh, no CUDA headers).
    # Reading: every finite bit pattern, as one step of an IF neuron that never fires, comes
    # back as the membrane (float32), equal to the reference on x.float().
    from snn.neurons import IF
    n = IF(v_threshold=1e30, v_reset=0.0, detach_reset=True, backend="torch")
    bits = torch.arange(-2**15, 2**15, dtype=torch.int32).to(torch.int16)
    x = bits.view(dtype)
    x = x[torch.isfinite(x)].reshape(1, 1, -1)
    spec = n.spec(x.dim() - 1)
    v0 = torch.zeros(x.shape[1:])
    with torch.no_grad():
        _, _, v_seq = _host_run()(x, v0, spec, True)
        _, _, v_seq_r = multistep(x.float(), v0, spec, True)
    assert torch.equal(v_seq, v_seq_r)
    # Writing: the input gradient of that neuron at x = 0 is the final-state gradient g
    # (float32) rounded to dtype: random nonzero float32 bits (0 + -0 would be +0 before the
    # rounding) plus halfway cases, overflow to inf and subnormal results, equal to PyTorch's
    # own rounding bit for bit.
    g = torch.randint(-2**31, 2**31 - 1, (1 << 16,), dtype=torch.int64,
                      generator=torch.Generator().manual_seed(0)).to(torch.int32).view(torch.float32)
    one = torch.tensor(1.0, dtype=dtype)
    ulp = (torch.nextafter(one.float(), torch.tensor(2.0)) - 1).item()  # float32 ulp at 1
    step = (torch.tensor(1.0 + torch.finfo(dtype).eps, dtype=dtype).float() - 1).item()
    edges = torch.tensor([1 + step / 2, 1 + 3 * step / 2, 1 + step / 2 + ulp, 1 + step / 2 - ulp,
                          torch.finfo(dtype).max * 1.0001, -torch.finfo(dtype).max * 1.002,
                          torch.finfo(dtype).tiny / 3, -torch.finfo(dtype).tiny * 0.75, 3e38])
    g = torch.cat([g[torch.isfinite(g) & (g.abs() < 1e30) & (g != 0)], edges, edges * 2**-20]).reshape(1, 1, -1)
    xz = torch.zeros(g.shape, dtype=dtype, requires_grad=True)
    _, v_last, _ = _host_run()(xz, torch.zeros(g.shape[1:]), n.spec(2), False)
    (v_last * g[0]).sum().backward()
    assert torch.equal(xz.grad.view(torch.int16), g.to(dtype).view(torch.int16))


@host_only
def test_host_kernels_behind_a_layer_under_autocast(monkeypatch):
    # the module path a GPU user takes (autocast bf16 input, float32 state, per-channel
    # learnable threshold and time constant, a carried state), on the host-run CUDA C kernels
    from snn.neurons import PLIF, backends
    from snn.neurons.backends import Backend
    from snn.state import stateful
    monkeypatch.setitem(backends._REGISTRY, ("cupy-host", "cpu"), Backend("cupy-host", "cpu", _host_run(), priority=-1))
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 4 * 5)
    x = torch.rand(7, 3, 6) * 2
    wts = torch.randn(7, 3, 4, 5).to(torch.bfloat16).float()  # a spike gradient bf16 holds exactly
    n = PLIF(num_channels=4, learn_threshold=True, backend="cupy-host", v_reset=None)
    with torch.no_grad():
        n.w.copy_(torch.randn(4))
        n.v_threshold.copy_(0.5 + torch.rand(4))
    ref = PLIF(num_channels=4, learn_threshold=True, backend="torch", v_reset=None)
    ref.load_state_dict(n.state_dict())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = lin(x).view(7, 3, 4, 5)
    assert z.dtype == torch.bfloat16
    z.retain_grad()
    out = n(z)
    assert out.dtype == torch.bfloat16 and n.backend_used == "cupy-host"
    zr = z.detach().float().requires_grad_()
    out_r = ref(zr)
    assert torch.equal(out.float(), out_r)
    (out.float() * wts).sum().backward()
    (out_r * wts).sum().backward()
    torch.testing.assert_close(z.grad.float(), zr.grad, rtol=2e-2, atol=2e-2)
    for p, q in ((n.w, ref.w), (n.v_threshold, ref.v_threshold)):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-4)
    assert lin.weight.grad is not None and torch.isfinite(lin.weight.grad).all()
    # streaming: the carried state is float32 and the next chunk continues from it
    with stateful(n), stateful(ref):
        for chunk in (z[:3], z[3:]):
            assert torch.equal(n(chunk.detach()).float(), ref(chunk.detach().float()))
            assert n.v.dtype == torch.float32


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
