"""snn.state: stateful modules deep-copy and pickle while they hold state that needs gradients."""
import copy
import io

import pytest
import torch

import snn
from snn.conversion import SpikingMaxPool
from snn.delays import DelayLinear
from snn.models.registry import build_model
from snn.neurons import LIF, LeakyIntegrator


def _leaves_only(module: torch.nn.Module) -> None:
    for m in module.modules():
        for k, v in vars(m).items():
            if isinstance(v, torch.Tensor):
                assert v.grad_fn is None, f"{type(m).__name__}.{k} still has a graph"


@pytest.mark.parametrize("make,shape", [
    (lambda: LIF(record_v=True, backend="numba"), (5, 2, 4)),
    (lambda: LIF(record_v=True, backend="torch"), (5, 2, 4)),
    (lambda: LeakyIntegrator(tau=3.0), (5, 2, 4)),
    (lambda: DelayLinear(4, 3, max_delay=3), (5, 2, 4)),
    (lambda: SpikingMaxPool(torch.nn.MaxPool2d(2)), (5 * 2, 1, 4, 4)),
])
def test_deepcopy_and_pickle_with_carried_state_that_needs_gradients(make, shape):
    module = make()
    x = (torch.rand(shape) * 2).requires_grad_()
    with snn.stateful(module, reset_on_exit=False):
        out = module(x, 5) if isinstance(module, SpikingMaxPool) else module(x)
    carried = {k: v for k, v in vars(module).items() if isinstance(v, torch.Tensor) and v.grad_fn is not None}
    assert carried, "the forward left no state with a graph: the test would not test anything"
    twin = copy.deepcopy(module)
    _leaves_only(twin)
    for k, v in carried.items():
        assert torch.equal(getattr(twin, k), v.detach()) and getattr(twin, k).data_ptr() != v.data_ptr()
    assert getattr(module, next(iter(carried))).grad_fn is not None  # the original keeps its graph
    out.sum().backward()
    assert x.grad is not None
    buf = io.BytesIO()
    torch.save(module, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    for k, v in carried.items():
        assert torch.equal(getattr(loaded, k), v.detach())


def test_deepcopy_of_a_model_mid_training_step():
    """A best-model snapshot taken between forward and backward (record_v on every neuron)."""
    torch.manual_seed(0)
    model = build_model("conv", in_channels=2, num_classes=10)
    for m in model.modules():
        if isinstance(m, LIF):
            m.record_v = True
    x = (torch.rand(4, 2, 2, 34, 34) < 0.2).float()
    out = model(x)
    snapshot = copy.deepcopy(model)
    _leaves_only(snapshot)
    out.pow(2).mean().backward()  # the original's graph is intact
    model.eval()
    snapshot.eval()
    with torch.no_grad():
        assert torch.equal(snapshot(x), model(x))
