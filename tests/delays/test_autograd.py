"""The fused delay operators (snn/delays/autograd.py): schema, fake tensors and autograd
formula checked by ``torch.library.opcheck``, networks with delay layers compiled as one
graph, and eager calls that skip the operator dispatch."""
import pytest
import torch

import snn
from snn.delays import DelayLinear, Taps, delay_conv, dense_delay_conv
from snn.delays import autograd as A
from snn.delays.backends import CPU_LAUNCHER

pytest.importorskip("numba")

T, B, I, O, W, D = 6, 19, 3, 4, 3, 5  # B = 19: two batch chunks of 16 samples, the second partial


def _inputs(dtype, vdtype, history, grads, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, I, generator=g) < 0.4).to(dtype).requires_grad_("x" in grads)
    h = (torch.rand(D, B, I, generator=g) < 0.4).to(dtype).requires_grad_("h" in grads) if history else None
    v = torch.randn(O, I, W, generator=g, dtype=vdtype) * (torch.rand(O, I, W, generator=g) > 0.3)
    v[1, 2] = 0.0  # an all-zero synapse: its window is every tap
    v.requires_grad_("v" in grads)
    start = torch.randint(0, D - W + 2, (O, I), generator=g)
    return x, h, v, start


@pytest.mark.parametrize("dtype, vdtype, history, grads, window", [
    (torch.float32, torch.float32, False, "xv", False),
    (torch.float64, torch.float64, True, "xhv", True),
    (torch.float32, torch.float32, True, "v", True),     # a first layer: the tap gradient alone
    (torch.float64, torch.float64, True, "h", False),
    (torch.float64, torch.float64, False, "", False),
    (torch.float64, torch.float32, False, "xv", True),   # taps in another dtype than the input
])
def test_forward_operator_passes_opcheck(dtype, vdtype, history, grads, window):
    x, h, v, start = _inputs(dtype, vdtype, history, grads, seed=len(grads) + 10 * history)
    torch.library.opcheck(A.fused_delay_forward, (x, h, v, start, CPU_LAUNCHER, D, window))


@pytest.mark.parametrize("dtype, history, need, window", [
    (torch.float64, True, "xhv", True),
    (torch.float32, False, "x", False),
    (torch.float32, True, "v", True),    # output gradient converted a group of rows at a time
    (torch.float64, False, "v", False),
    (torch.float64, True, "h", False),
    (torch.float32, True, "xv", False),
])
def test_backward_operator_passes_opcheck(dtype, history, need, window):
    x, h, v, start = (t if t is None else t.detach() for t in _inputs(dtype, dtype, history, "", seed=7))
    gy = torch.randn(T, B, O, generator=torch.Generator().manual_seed(8), dtype=dtype)
    seq = "x" in need or "h" in need
    win = A.nonzero_window(v) if window else None
    torch.library.opcheck(A.fused_delay_backward, (gy, x, h, v if seq else None, start, win, CPU_LAUNCHER, D, W,
                                                   "x" in need, "h" in need, "v" in need))


def test_operator_gradients_are_exact_float64():
    """The autograd formula through the operators (not the eager Function) against finite differences."""
    x, h, v, start = _inputs(torch.float64, torch.float64, True, "xhv", seed=3)
    x, h = torch.randn_like(x).requires_grad_(), torch.randn_like(h).requires_grad_()
    fn = lambda x, h, v: A.fused_delay_forward(x, h, v, start, CPU_LAUNCHER, D, False)[0]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, h, v))


def _network(backend: str, interpolation: str, rounded: bool) -> torch.nn.Sequential:
    torch.manual_seed(0)
    kw = dict(interpolation=interpolation, backend=backend, dtype=torch.float64)
    net = torch.nn.Sequential(
        DelayLinear(6, 8, max_delay=5, sigma=0.8, **kw),  # W = 5 of D + 1 = 6 taps: windows with zeros
        snn.LIF(v_threshold=0.3, backend="numba" if backend == "numba" else "torch"),
        DelayLinear(8, 4, max_delay=4, sigma=0.6, **kw),
        snn.LIF(v_threshold=0.2, backend="numba" if backend == "numba" else "torch"))
    if rounded:
        snn.delays.round_delays(net)
    return net


def _assert_same_gradients(net, ref):
    for (name, p), q in zip(net.named_parameters(), ref.parameters(), strict=True):
        if q.grad is None:  # the positions of rounded (integer) delays
            assert p.grad is None and name.endswith("delay"), name
            continue
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12, msg=name)


@pytest.mark.parametrize("interpolation, rounded", [("gaussian", False), ("linear", False), ("gaussian", True)])
def test_network_compiles_to_one_graph_and_matches_the_reference(interpolation, rounded):
    """``fullgraph=True`` through two fused delay layers and fused neurons (no graph break),
    outputs and every parameter gradient equal to the torch reference's; ``aot_eager`` traces
    the operators' fake tensors and the backward operator, and runs them. The first layer's
    input needs no gradient (the tap gradient alone), the second's does."""
    torch._dynamo.reset()
    net, ref = _network("numba", interpolation, rounded), _network("torch", interpolation, rounded)
    x = (torch.rand(9, 3, 6, generator=torch.Generator().manual_seed(1)) < 0.5).double()
    explained = torch._dynamo.explain(net)(x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons
    assert "fused_delay_forward" in explained.graphs[0].code
    y = torch.compile(net, fullgraph=True, backend="aot_eager")(x)
    y_ref = ref(x)
    assert [net[i].backend_used for i in (0, 2)] == ["numba"] * 2
    assert [ref[i].backend_used for i in (0, 2)] == ["torch"] * 2
    torch.testing.assert_close(y, y_ref, rtol=1e-9, atol=1e-12)
    assert 0 < y_ref.mean() < 1
    w = torch.linspace(-1, 1, 4, dtype=torch.float64)
    (y * w).sum().backward()
    (y_ref * w).sum().backward()
    _assert_same_gradients(net, ref)


def test_compiled_stateful_stream_carries_the_history_with_its_gradient():
    """Chunks of a stream under :func:`snn.stateful`: the second chunk's delay layers read the
    carried history (the second layer's, spikes of the first chunk, needs a gradient)."""
    torch._dynamo.reset()
    net, ref = _network("numba", "gaussian", False), _network("torch", "gaussian", False)
    x = (torch.rand(10, 2, 6, generator=torch.Generator().manual_seed(2)) < 0.5).double()
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    outs = []
    for model in (compiled, ref):
        with snn.stateful(model):
            outs.append(torch.cat([model(x[:4]), model(x[4:])]))
        snn.reset(model)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-9, atol=1e-12)
    w = torch.linspace(-1, 1, 4, dtype=torch.float64)
    for y in outs:
        (y * w).sum().backward()
    _assert_same_gradients(net, ref)


def test_compiled_layer_follows_sigma_and_rounding():
    """σ and the rounding flag are buffers; the compiled layer reads Python copies of them,
    kept by set_sigma / round_delays_ / load_state_dict (Dynamo guards on them: recompiles)."""
    torch._dynamo.reset()
    layer, ref = (DelayLinear(5, 3, max_delay=8, backend=b, dtype=torch.float64) for b in ("numba", "torch"))
    ref.load_state_dict(layer.state_dict())
    x = torch.rand(12, 2, 5, dtype=torch.float64)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    for change in (lambda m: None, lambda m: m.set_sigma(0.7), lambda m: m.round_delays_()):
        change(layer)
        change(ref)
        torch.testing.assert_close(compiled(x), ref(x), rtol=1e-9, atol=1e-12)
    other = DelayLinear(5, 3, max_delay=8, backend="numba", dtype=torch.float64)
    other.load_state_dict(layer.state_dict())
    assert other._mode_cache == (True, pytest.approx(0.7))


def test_eager_calls_bypass_the_operator_dispatch(monkeypatch):
    """Eager mode runs the operators' implementation through a plain autograd.Function (the
    dispatcher costs ~0.1 ms per call); gradients are the reference's."""
    def boom(*args):
        raise AssertionError("eager mode went through the operator")
    monkeypatch.setattr(A, "fused_delay_forward", boom)
    monkeypatch.setattr(A, "fused_delay_backward", boom)
    x, h, v, start = _inputs(torch.float64, torch.float64, True, "xhv", seed=5)
    taps = Taps(v, start, D, inert_zeros=False)
    gy = torch.randn(T, B, O, dtype=torch.float64)
    got = torch.autograd.grad(delay_conv(x, taps, h, backend="numba"), (x, h, v), gy)
    want = torch.autograd.grad(dense_delay_conv(x, taps, h), (x, h, v), gy)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("delay_backend", ["numba", "auto"])
def test_delay_snn_compiles_to_one_graph(monkeypatch, delay_backend):
    """The SHD model (channel binning, delay layers, BatchNorm, dropout, LIF, readout) without a
    graph break: under ``torch.compile`` the tap values come from the torch operations, not the
    Numba pass (forced here for a small layer), and ``"auto"``'s dense reference (σ = D/2:
    windows spanning the whole range) does not read the starts to skip densifying."""
    import snn.delays.taps as tp
    from snn.models.shd import DelaySNN

    monkeypatch.setattr(tp, "NUMBA_TAPS_ABOVE", 0)
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = DelaySNN(in_features=20, num_classes=3, hidden=(12,), max_delay=6, channel_bins=10,
                     delay_backend=delay_backend).eval()
    x = (torch.rand(8, 2, 20, generator=torch.Generator().manual_seed(4)) < 0.3).float()
    explained = torch._dynamo.explain(model)(x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons
    want = model(x)
    assert {m.backend_used for m in snn.delays.delay_layers(model)} == ({"numba"} if delay_backend == "numba"
                                                                          else {"torch"})
    torch.testing.assert_close(torch.compile(model, fullgraph=True, backend="aot_eager")(x), want)
