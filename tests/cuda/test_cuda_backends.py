"""Registration of the fused backends (snn/cuda/backends.py) with the neuron registry."""
import logging
import os
import sys
import types

import pytest
import torch

from snn.cuda.backends import CUDA_INSTALL_HINT
from snn.neurons import LIF, available_backends, backend_names, backends, resolve_backend


def test_registered_names_devices_and_priorities():
    reg = backends._REGISTRY
    assert {"numba", "cupy", "torch"} <= set(backend_names())
    assert reg[("cupy", "cuda")].priority > reg[("numba", "cuda")].priority > reg[("torch", "cuda")].priority
    assert reg[("numba", "cpu")].priority > reg[("torch", "cpu")].priority
    assert reg[("cupy", "cuda")].requires == "cupy" and reg[("numba", "cuda")].requires == "numba"
    assert CUDA_INSTALL_HINT in reg[("cupy", "cuda")].install_hint
    assert "cupy" not in [n for (n, d) in reg if d == "cpu"]


def test_auto_on_cpu_is_numba():
    assert available_backends("cpu")[0] == "numba"
    n = LIF()
    n(torch.rand(2, 1, 3))
    assert n.backend_used == "numba"


def test_cupy_on_cpu_tensors_is_a_clear_error():
    with pytest.raises(ValueError, match="runs on \\['cuda'\\]"):
        LIF(backend="cupy")(torch.rand(2, 1, 3))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_gpu_backends_without_gpu_say_why():
    for name in ("cupy", "numba"):
        with pytest.raises(RuntimeError, match=f"{name}|GPU|CUDA"):
            resolve_backend(name, "cuda", LIF().spec(3))
    assert available_backends("cuda") == ["torch"]


def test_cupy_that_cannot_compile_is_unavailable_so_auto_moves_on(monkeypatch, caplog):
    # CuPy imports and sees the GPU, but NVRTC is missing: 'cupy' must report itself
    # unavailable (auto then takes numba.cuda) and say why once, not fail at the first forward
    from snn.cuda import backends as cb
    from snn.cuda import cupy_gpu
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(cb, "_torch_cuda_reason", lambda: None)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)

    def no_nvrtc(index):
        raise RuntimeError("CuPy failed to load libnvrtc.so.12")
    monkeypatch.setattr(cupy_gpu, "load_module", no_nvrtc)
    cb._cupy_reason.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="snn"):
            reason = cb._cupy_reason()
            assert cb._cupy_reason() == reason  # checked once per process
        assert "cannot compile" in reason and "libnvrtc" in reason and "nvidia-cuda-nvrtc" in reason
        assert [r.getMessage() for r in caplog.records].count(f"{reason}; 'auto' uses the next CUDA backend") == 1
        assert backends._REGISTRY[("cupy", "cuda")].available() == reason
        monkeypatch.setattr(cupy_gpu, "load_module", lambda index: object())
        cb._cupy_reason.cache_clear()
        assert cb._cupy_reason() is None
    finally:
        cb._cupy_reason.cache_clear()


COMPILE_SCRIPT = r"""
import warnings
import torch
import snn
from snn.delays import DelayLinear

torch.manual_seed(0)
net = torch.nn.Sequential(snn.TimeDistributed(torch.nn.Linear(5, 6)), snn.LIF(),
                          DelayLinear(6, 4, max_delay=3, backend="numba"), snn.PLIF())
ref = torch.nn.Sequential(snn.TimeDistributed(torch.nn.Linear(5, 6)), snn.LIF(backend="torch"),
                          DelayLinear(6, 4, max_delay=3, backend="torch"), snn.PLIF(backend="torch"))
ref.load_state_dict(net.state_dict())
x = torch.rand(7, 2, 5) * 2
with warnings.catch_warnings():
    warnings.filterwarnings("error", message=".*lru_cache")  # Dynamo tracing a cached function
    # the first call in this process: Numba compiles inside the operators of one inductor graph
    y = torch.compile(net, fullgraph=True)(x)
y_ref = ref(x)
assert [net[i].backend_used for i in (1, 2, 3)] == ["numba"] * 3
assert torch.equal(y, y_ref)
y.sum().backward()
y_ref.sum().backward()
for (name, p), q in zip(net.named_parameters(), ref.parameters()):
    torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)
print("COMPILED-OK")
"""


def test_torch_compile_first_call_runs_the_fused_kernels_in_one_graph(tmp_path):
    # a fresh process, so that Numba's first-call compilation happens inside torch.compile
    import subprocess
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"), TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "ind"))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    r = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0 and "COMPILED-OK" in r.stdout, r.stdout[-3000:] + r.stderr[-5000:]


def test_numba_cuda_that_cannot_compile_is_unavailable(monkeypatch):
    # a driver but no NVVM (numba-cuda without the toolkit wheels): 'numba' on CUDA must say
    # so up front (auto then uses torch) instead of failing at the first kernel launch
    from numba import cuda

    from snn.cuda import backends as cb
    monkeypatch.setattr(cb, "_torch_cuda_reason", lambda: None)
    monkeypatch.setattr(cuda, "is_available", lambda: True)

    def no_nvvm(*args, **kwargs):
        raise RuntimeError("libNVVM cannot be found")
    monkeypatch.setattr(cuda, "compile_ptx_for_current_device", no_nvvm)
    cb.numba_cuda_reason.cache_clear()
    try:
        reason = cb.numba_cuda_reason()
        assert "cannot compile" in reason and "libNVVM" in reason and "numba-cuda" in reason
        monkeypatch.setattr(cuda, "compile_ptx_for_current_device", lambda *a, **k: ("ptx", None))
        cb.numba_cuda_reason.cache_clear()
        assert cb.numba_cuda_reason() is None
    finally:
        cb.numba_cuda_reason.cache_clear()
