"""The backend registry: selection, fall-back and the errors users see."""
import logging

import pytest
import torch

from snn.neurons import LIF, backends
from snn.neurons.backends import Backend, backend_names, register_backend, resolve_backend
from snn.neurons.functional import multistep


@pytest.fixture
def registry():
    """The registry with only the torch reference in it (fused backends removed for the test)."""
    saved = dict(backends._REGISTRY)
    backends._warned.clear()
    for key in [k for k in saved if k[0] != "torch"]:
        del backends._REGISTRY[key]
    yield backends._REGISTRY
    backends._REGISTRY.clear()
    backends._REGISTRY.update(saved)


def test_torch_backend_is_default_and_reported():
    n = LIF()
    n(torch.rand(3, 2, 4))
    assert n.backend_used in backend_names()
    assert LIF(backend="torch").backend == "torch"


def test_auto_prefers_highest_priority_available(registry):
    calls = []

    def fake(x, v, spec, record):
        calls.append(x.shape)
        return multistep(x, v, spec, record)
    register_backend(Backend("fake", "cpu", fake, priority=100))
    n = LIF()
    out = n(torch.rand(3, 2, 4))
    assert n.backend_used == "fake" and calls == [torch.Size([3, 2, 4])]
    assert out.shape == (3, 2, 4)


def test_auto_falls_back_when_options_unsupported_and_says_so_once(registry, caplog):
    register_backend(Backend("picky", "cpu", multistep, priority=100, supports=lambda spec: spec.v_reset is None))
    n = LIF(v_reset=0.0)
    with caplog.at_level(logging.WARNING, logger="snn"):
        n(torch.rand(3, 2, 4))
        n(torch.rand(3, 2, 4))
    assert n.backend_used == "torch"
    assert sum("falls back" in r.message for r in caplog.records) == 1
    m = LIF(v_reset=None)
    m(torch.rand(3, 2, 4))
    assert m.backend_used == "picky"


def test_errors_name_the_problem(registry):
    with pytest.raises(ValueError, match="valid backends.*torch"):
        LIF(backend="nope")(torch.rand(2, 1, 1))
    register_backend(Backend("gpuonly", "cuda", multistep))
    with pytest.raises(ValueError, match="runs on \\['cuda'\\]"):
        resolve_backend("gpuonly", "cpu", LIF().spec(2))
    register_backend(Backend("missing", "cpu", multistep, requires="surely_not_a_module_xyz",
                             install_hint="pip install snn[cuda]"))
    with pytest.raises(RuntimeError, match="surely_not_a_module_xyz.*pip install snn\\[cuda\\]"):
        LIF(backend="missing")(torch.rand(2, 1, 1))
    # 'auto' skips it silently
    n = LIF()
    n(torch.rand(2, 1, 1))
    assert n.backend_used == "torch"
    with pytest.raises(ValueError, match="reserved"):
        register_backend(Backend("auto", "cpu", multistep))


def test_backend_used_names_the_code_that_ran_for_uncovered_dtypes(caplog, monkeypatch):
    # the numba kernels compute in float32/float64; float16 and bfloat16 inputs run the torch
    # reference, and backend_used must say so (it said 'numba'); integer inputs are converted to
    # the layer's float32 first, so the kernels run them
    import logging
    from snn.neurons import backends as nb
    assert nb._REGISTRY[("numba", "cpu")].covers(torch.float32)
    assert not nb._REGISTRY[("numba", "cpu")].covers(torch.float16)
    x = torch.rand(4, 2, 3)
    for dtype in (torch.float16, torch.bfloat16, torch.uint8):
        auto = LIF()
        s = auto(x.to(dtype) if dtype.is_floating_point else (x > 0.5).to(dtype))
        assert auto.backend_used == ("torch" if dtype.is_floating_point else "numba")
        assert s.dtype == (dtype if dtype.is_floating_point else torch.float32)
    from snn.neurons import base
    monkeypatch.setattr(base, "_DTYPE_WARNED", set())
    with caplog.at_level(logging.WARNING, logger="snn"):
        named = [LIF(backend="numba") for _ in range(3)]
        for n in named:
            n(x.to(torch.bfloat16))
            assert n.backend_used == "torch"
    # asked for by name, the fallback is announced, once per backend and dtype
    assert sum("no kernels for torch.bfloat16" in r.getMessage() for r in caplog.records) == 1
    n = LIF()
    n(x)
    assert n.backend_used == "numba"


def test_torch_backend_traces_into_one_graph():
    # with backend="torch" a whole network is one graph for torch.compile (fullgraph=True):
    # no NaN test (a host read) or log call breaks it, and the traced graph equals eager
    import snn
    torch.manual_seed(0)
    net = torch.nn.Sequential(snn.TimeDistributed(torch.nn.Linear(6, 8)), snn.LIF(backend="torch"),
                              snn.TimeDistributed(torch.nn.Linear(8, 8)), snn.PLIF(backend="torch", learn_threshold=True),
                              snn.TimeDistributed(torch.nn.Linear(8, 3)), snn.LeakyIntegrator())
    x = torch.rand(5, 2, 6) * 2
    explained = torch._dynamo.explain(net)(x)
    assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]
    assert explained.graph_count == 1
    compiled = torch.compile(net, fullgraph=True, backend="eager")  # Dynamo's graph, run without inductor
    y = compiled(x)
    assert torch.equal(y, net(x))
    y.sum().backward()
    assert net[3].w.grad is not None and net[3].v_threshold.grad is not None
    assert net[1].backend_used == "torch"


def test_torch_backend_compiles_channels_last_activations():
    # a channels-last conv output reaches the spike function strided: Dynamo refuses the
    # out= comparison eager mode uses for it, so compiled code must take another form
    import snn
    torch.manual_seed(0)
    net = torch.nn.Sequential(snn.TimeDistributed(torch.nn.Conv2d(2, 4, 3, padding=1)), snn.LIF(backend="torch"))
    x = (torch.rand(8, 2, 6, 6) * 3).contiguous(memory_format=torch.channels_last).view(4, 2, 2, 6, 6)
    y = torch.compile(net, fullgraph=True, backend="eager")(x)
    assert torch.equal(y, net(x)) and 0 < y.mean() < 1
