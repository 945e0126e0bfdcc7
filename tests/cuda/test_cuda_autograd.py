"""The fused-neuron operators (snn/cuda/autograd.py): schema, fake tensors and autograd
formula checked by ``torch.library.opcheck``, and whole networks compiled as one graph."""
import functools
import tempfile
from pathlib import Path

import cuda_host
import pytest
import torch

import snn
from snn.cuda import autograd as A
from snn.cuda.backends import GPU_DTYPES
from snn.cuda.params import kernel_config
from snn.neurons import resolve_backend

CPU_KEY = "snn.cuda.cpu.CpuLauncher"  # registered by snn.cuda.backends


@functools.lru_cache(maxsize=None)
def _host_key() -> str:
    """A launcher that stores ``h`` and takes only ``[N]`` state rows (the CuPy one, its CUDA C
    built for the host), registered under its own key."""
    with tempfile.TemporaryDirectory() as d:
        dll = cuda_host.build(Path(d))
    A.make_run(A.FusedKernels("tests.autograd-host-cupy", lambda: cuda_host.HostCupyLauncher(dll), GPU_DTYPES))
    return "tests.autograd-host-cupy"


def _launcher_key(which: str) -> str:
    if which == "cpu":
        return CPU_KEY
    reason = cuda_host.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    return _host_key()


def _inputs(key: str, P: int, S: int, B: int, T: int, dtype: torch.dtype, grads: str, seed: int):
    g = torch.Generator().manual_seed(seed)
    N = B * P * S
    sd = A.state_dtype(dtype)
    x = (torch.rand(T, N, generator=g) * 2).to(dtype).requires_grad_("x" in grads)
    optional = A._KERNELS[key].optional_state
    v0 = (torch.rand(1 if optional and "v" not in grads else N, generator=g) * 0.5).to(sd)
    v0.requires_grad_("v" in grads)
    beta = (torch.rand(P, generator=g) * 0.5 + 0.3).to(sd).requires_grad_("b" in grads)
    theta = (torch.rand(P, generator=g) + 0.5).to(sd).requires_grad_("t" in grads)
    return x, v0, beta, (1 - beta).detach(), theta


@pytest.mark.parametrize("which", ["cpu", "host-cupy"])
@pytest.mark.parametrize("neuron, P, S, grads, record_v", [
    (dict(), 1, 1, "x", False),
    (dict(decay_input=True, v_reset=None), 3, 2, "xvbt", True),
    (dict(detach_reset=True, surrogate="erfc"), 2, 3, "bt", False),
    (dict(v_reset=-0.1, surrogate="triangle"), 1, 4, "xv", True),
])
def test_forward_operator_passes_opcheck(which, neuron, P, S, grads, record_v):
    key = _launcher_key(which)
    dtype = torch.float32 if which == "cpu" else torch.float16
    x, v0, beta, omb, theta = _inputs(key, P, S, 2, 5, dtype, grads, seed=P * 10 + S)
    cfg = A._as_list(kernel_config(snn.LIF(**neuron).spec(3)))
    store_h = bool(grads) and not A._KERNELS[key].recomputes_h
    torch.library.opcheck(A.fused_neuron_forward, (x, v0, beta, omb, theta, key, S, cfg, store_h, record_v))


@pytest.mark.parametrize("which", ["cpu", "host-cupy"])
@pytest.mark.parametrize("given", ["all", "spikes only", "none"])
def test_backward_operator_passes_opcheck(which, given):
    key = _launcher_key(which)
    kernels = A._KERNELS[key]
    T, P, S, B = 4, 2, 3, 2
    N = P * S * B
    x, v0, beta, omb, theta = (t.detach() for t in _inputs(key, P, S, B, T, torch.float32, "", seed=3))
    v0 = v0.expand(N).contiguous()
    cfg = A._as_list(kernel_config(snn.LIF(decay_input=True).spec(3)))
    h = None if kernels.recomputes_h else torch.rand(T, N) * 2
    g = torch.Generator().manual_seed(5)
    gs = torch.randn(T, N, generator=g) if given != "none" else None
    gq = torch.randn(T, N, generator=g) if given == "all" else None
    gl = torch.randn(N, generator=g) if given == "all" else None
    torch.library.opcheck(A.fused_neuron_backward, (gs, gq, gl, h, v0, x, beta, omb, theta, key, S, cfg,
                                                    torch.float32, T, N, True, True, True))


def _network(backend: str) -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        snn.TimeDistributed(torch.nn.Conv2d(2, 4, 3, padding=1)),
        snn.PLIF(num_channels=4, learn_threshold=True, backend=backend),  # per-channel β and θ, both learned
        snn.TimeDistributed(torch.nn.Conv2d(4, 3, 3, padding=1)),
        snn.LIF(decay_input=True, v_reset=None, detach_reset=True, surrogate="sigmoid", v_threshold=0.1,
                backend=backend),
        snn.TimeDistributed(torch.nn.Flatten()), snn.TimeDistributed(torch.nn.Linear(3 * 25, 5)),
        snn.IF(learn_threshold=True, v_threshold=0.3, backend=backend))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_network_compiles_to_one_graph_and_matches_the_reference(layout):
    """``fullgraph=True`` through every fused layer (no graph break), outputs and every
    parameter gradient equal to the torch reference's; ``aot_eager`` traces the operators'
    fake tensors and the backward operator as inductor would, and runs them."""
    net, ref = _network("numba"), _network("torch")
    x = torch.rand(6, 3, 2, 5, 5, generator=torch.Generator().manual_seed(1)) * 3
    if layout == "channels_last":
        x = x.view(18, 2, 5, 5).contiguous(memory_format=torch.channels_last).view(6, 3, 2, 5, 5)
    explained = torch._dynamo.explain(net)(x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons
    snn.reset(net)
    y = torch.compile(net, fullgraph=True, backend="aot_eager")(x)
    y_ref = ref(x)
    assert [net[i].backend_used for i in (1, 3, 6)] == ["numba"] * 3
    assert torch.equal(y, y_ref) and 0 < y_ref.mean() < 1
    (y * torch.linspace(-1, 1, 5)).sum().backward()
    (y_ref * torch.linspace(-1, 1, 5)).sum().backward()
    for (name, p), q in zip(net.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_eager_calls_bypass_the_operator_dispatch(monkeypatch):
    """Eager mode runs the operators' implementation through a plain autograd.Function (the
    dispatcher would cost a small layer's whole kernel time); results are the operator's."""
    def boom(*args):
        raise AssertionError("eager mode went through the operator")
    monkeypatch.setattr(A, "fused_neuron_forward", boom)
    monkeypatch.setattr(A, "fused_neuron_backward", boom)
    x = torch.rand(5, 2, 7, requires_grad=True)
    s, v_last, _ = resolve_backend("numba", "cpu", snn.LIF().spec(3)).run(x, torch.zeros(2, 7), snn.LIF().spec(3))
    (s.sum() + v_last.sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
