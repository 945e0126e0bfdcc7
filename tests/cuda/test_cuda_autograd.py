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
from snn.neurons import available_backends, resolve_backend

CPU_KEY = "snn.cuda.cpu.CpuLauncher"  # registered by snn.cuda.backends
#: the GPU launchers (registered by snn.cuda.backends): name in the registry, key, input dtype
GPU = {"cupy": ("cupy", "snn.cuda.cupy_gpu.CupyLauncher", torch.float16),
       "numba-cuda": ("numba", "snn.cuda.numba_gpu.NumbaCudaLauncher", torch.float32)}
WHICH = ["cpu", "host-cupy", "cupy", "numba-cuda"]


@functools.lru_cache(maxsize=None)
def _host_key() -> str:
    """A launcher that stores ``h`` and takes only ``[N]`` state rows (the CuPy one, its CUDA C
    built for the host), registered under its own key."""
    with tempfile.TemporaryDirectory() as d:
        dll = cuda_host.build(Path(d))
    A.make_run(A.FusedKernels("tests.autograd-host-cupy", lambda: cuda_host.HostCupyLauncher(dll), GPU_DTYPES))
    return "tests.autograd-host-cupy"


def _launcher(which: str) -> tuple[str, str, torch.dtype]:
    """``(key, device, input dtype)`` of a launcher; skips where it cannot run."""
    if which == "cpu":
        return CPU_KEY, "cpu", torch.float32
    if which == "host-cupy":
        reason = cuda_host.unavailable_reason()
        if reason is not None:
            pytest.skip(reason)
        return _host_key(), "cpu", torch.float16
    name, key, dtype = GPU[which]
    if name not in available_backends("cuda"):
        pytest.skip(f"backend {name!r} cannot run on a CUDA GPU here")
    return key, "cuda", dtype


def _inputs(key: str, P: int, S: int, B: int, T: int, dtype: torch.dtype, grads: str, seed: int,
            device: str = "cpu"):
    g = torch.Generator().manual_seed(seed)
    N = B * P * S
    sd = A.state_dtype(dtype)

    def make(t: torch.Tensor, dt: torch.dtype, grad: bool) -> torch.Tensor:
        return t.to(device=device, dtype=dt).requires_grad_(grad)
    x = make(torch.rand(T, N, generator=g) * 2, dtype, "x" in grads)
    optional = A._KERNELS[key].optional_state
    v0 = make(torch.rand(1 if optional and "v" not in grads else N, generator=g) * 0.5, sd, "v" in grads)
    beta = make(torch.rand(P, generator=g) * 0.5 + 0.3, sd, "b" in grads)
    theta = make(torch.rand(P, generator=g) + 0.5, sd, "t" in grads)
    return x, v0, beta, (1 - beta).detach(), theta


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize("neuron, P, S, grads, record_v", [
    (dict(), 1, 1, "x", False),
    (dict(decay_input=True, v_reset=None), 3, 2, "xvbt", True),
    (dict(detach_reset=True, surrogate="erfc"), 2, 3, "bt", False),
    (dict(v_reset=-0.1, surrogate="triangle"), 1, 4, "xv", True),
])
def test_forward_operator_passes_opcheck(which, neuron, P, S, grads, record_v):
    key, device, dtype = _launcher(which)
    x, v0, beta, omb, theta = _inputs(key, P, S, 2, 5, dtype, grads, seed=P * 10 + S, device=device)
    cfg = A._as_list(kernel_config(snn.LIF(**neuron).spec(3)))
    store_h = bool(grads) and not A._KERNELS[key].recomputes_h
    torch.library.opcheck(A.fused_neuron_forward, (x, v0, beta, omb, theta, key, S, cfg, store_h, record_v,
                                                   record_v))  # the NaN test, on and off


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize("given", ["all", "spikes only", "none"])
def test_backward_operator_passes_opcheck(which, given):
    key, device, _ = _launcher(which)
    kernels = A._KERNELS[key]
    T, P, S, B = 4, 2, 3, 2
    N = P * S * B
    x, v0, beta, omb, theta = (t.detach() for t in _inputs(key, P, S, B, T, torch.float32, "", seed=3,
                                                           device=device))
    v0 = v0.expand(N).contiguous()
    cfg = A._as_list(kernel_config(snn.LIF(decay_input=True).spec(3)))
    g = torch.Generator().manual_seed(5)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device)
    h = None if kernels.recomputes_h else rand(T, N).abs() * 2
    gs = rand(T, N) if given != "none" else None
    gq = rand(T, N) if given == "all" else None
    gl = rand(N) if given == "all" else None
    torch.library.opcheck(A.fused_neuron_backward, (gs, gq, gl, h, v0, x, beta, omb, theta, key, S, cfg,
                                                    torch.float32, T, N, True, True, True))


def _network(backend: str, device: str = "cpu") -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        snn.TimeDistributed(torch.nn.Conv2d(2, 4, 3, padding=1)),
        snn.PLIF(num_channels=4, learn_threshold=True, backend=backend),  # per-channel β and θ, both learned
        snn.TimeDistributed(torch.nn.Conv2d(4, 3, 3, padding=1)),
        snn.LIF(decay_input=True, v_reset=None, detach_reset=True, surrogate="sigmoid", v_threshold=0.1,
                backend=backend),
        snn.TimeDistributed(torch.nn.Flatten()), snn.TimeDistributed(torch.nn.Linear(3 * 25, 5)),
        snn.IF(learn_threshold=True, v_threshold=0.3, backend=backend)).to(device)


@pytest.mark.parametrize("which", ["cpu", "cupy", "numba-cuda"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_network_compiles_to_one_graph_and_matches_the_reference(layout, which):
    """``fullgraph=True`` through every fused layer (no graph break), outputs and every
    parameter gradient equal to the reference's: the torch backend on the CPU (bitwise
    spikes), the same backend run eagerly on a GPU (the parity suites compare that one with
    torch). ``aot_eager`` traces the operators' fake tensors and the backward operator as
    inductor would, and runs them."""
    _, device, _ = _launcher(which)
    backend = "numba" if which == "cpu" else GPU[which][0]
    net, ref = _network(backend, device), _network("torch" if device == "cpu" else backend, device)
    x = (torch.rand(6, 3, 2, 5, 5, generator=torch.Generator().manual_seed(1)) * 3).to(device)
    if layout == "channels_last":
        x = x.view(18, 2, 5, 5).contiguous(memory_format=torch.channels_last).view(6, 3, 2, 5, 5)
    explained = torch._dynamo.explain(net)(x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons
    snn.reset(net)
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    y = compiled(x)
    y_ref = ref(x)
    assert [net[i].backend_used for i in (1, 3, 6)] == [backend] * 3
    assert torch.equal(y, y_ref) and 0 < y_ref.mean() < 1
    w = torch.linspace(-1, 1, 5, device=device)
    (y * w).sum().backward()
    (y_ref * w).sum().backward()
    for (name, p), q in zip(net.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_second_compiled_call_does_not_recompile():
    # the first call sets backend_used and caches backend checks: none of that may be guarded
    net = torch.nn.Sequential(snn.TimeDistributed(torch.nn.Linear(4, 5)), snn.LIF(), snn.PLIF(learn_threshold=True))
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    x = torch.rand(3, 2, 4) * 2
    y = compiled(x)
    snn.reset(net)
    with torch.compiler.set_stance("fail_on_recompile"):
        assert torch.equal(compiled(x), y)
    assert net[1].backend_used == "numba"


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


@pytest.mark.parametrize("which", ["cpu", "host-cupy"])
def test_forward_raises_for_nan_where_asked(which):
    """The CPU kernels flag a NaN last membrane themselves (no pass over it in PyTorch's thread
    pool); other launchers are tested on the host. Either way the layer does not test again."""
    key, device, dtype = _launcher(which)
    x, v0, beta, omb, theta = _inputs(key, 2, 3, 2, 4, dtype, "", seed=1, device=device)
    x = x.detach().clone()
    x[2, 5] = float("nan")
    cfg = A._as_list(kernel_config(snn.LIF().spec(3)))
    args = (x, v0, beta, omb, theta, key, 3, cfg, False, False)
    assert torch.isnan(A.fused_neuron_forward(*args, False)[3]).any()  # not asked: no test
    with pytest.raises(ValueError, match="x contains NaN values"):
        A.FusedNeuron.apply(*args, True)
    with pytest.raises(ValueError, match="x contains NaN values"):
        A.fused_neuron_forward(*args, True)


def test_layer_leaves_the_nan_test_to_the_fused_backend(monkeypatch):
    import snn.neurons.base as base

    def second_pass(v_last, name="x"):
        raise AssertionError("the layer tested the membrane again")
    monkeypatch.setattr(base, "check_no_nan_membrane", second_pass)
    x = torch.rand(5, 2, 3)
    snn.LIF()(x)  # numba: no second test
    x[3, 1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        snn.LIF()(x)
    with pytest.raises(AssertionError, match="again"):
        snn.LIF(backend="torch")(x)  # the reference backend is tested by the layer
