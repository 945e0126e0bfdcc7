"""Registration of the fused backends (snn/cuda/backends.py) with the neuron registry."""
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
