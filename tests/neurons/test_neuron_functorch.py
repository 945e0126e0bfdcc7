"""Neuron layers under torch.func transforms (grad, vmap, per-sample gradients), every backend.

The fused kernels cannot run under the transforms, so every backend name resolves to the
torch reference there (snn.neurons.backends.resolve_backend); the results must equal plain
autograd through the layer's own backend.
"""
import logging

import pytest
import torch
from torch.func import functional_call, grad, jacfwd, jacrev, vmap

from snn.models.registry import build_model
from snn.neurons import IF, LIF, PLIF, backends

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch.func's

BACKENDS = ["torch", "numba", "auto"]
MODELS = {
    "lif": lambda b: LIF(tau=2.0, backend=b),
    "if-soft": lambda b: IF(v_reset=None, backend=b),
    "plif-detach": lambda b: PLIF(tau=3.0, detach_reset=True, backend=b),
    "lif-channels-threshold": lambda b: LIF(tau=2.5, num_channels=3, learn_threshold=True, decay_input=True,
                                            backend=b),
}


def _input(B: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(6, B, 3, 5, generator=g) * 1.5


def _weights() -> torch.Tensor:
    return torch.linspace(-1.0, 2.0, 15).view(3, 5)  # a loss whose gradient differs per neuron


def _loss(layer, params, x):
    return (functional_call(layer, params, (x,)) * _weights()).sum()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", sorted(MODELS))
def test_grad_equals_autograd(model, backend):
    layer = MODELS[model](backend)
    x = _input()
    params = {k: v.detach() for k, v in layer.named_parameters()}
    g_x, g_p = grad(lambda xx, p: _loss(layer, p, xx), argnums=(0, 1))(x, params)
    # plain autograd through the layer's own backend (the fused kernels for numba/auto)
    xr = x.clone().requires_grad_()
    out = layer(xr)
    assert layer.backend_used == ("torch" if backend == "torch" else "numba")
    refs = torch.autograd.grad((out * _weights()).sum(), [xr, *layer.parameters()])
    torch.testing.assert_close(g_x, refs[0])
    assert g_x.abs().sum() > 0
    for (name, _), r in zip(layer.named_parameters(), refs[1:]):
        torch.testing.assert_close(g_p[name], r, msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", sorted(MODELS))
def test_vmap_equals_per_sample_calls(model, backend):
    layer = MODELS[model](backend)
    x = _input(B=5)
    batched = vmap(lambda xb: layer(xb.unsqueeze(1)).squeeze(1), in_dims=1, out_dims=1)(x)
    assert layer.backend_used == "torch"
    looped = torch.stack([layer(x[:, i:i + 1]).squeeze(1) for i in range(x.shape[1])], 1)
    assert torch.equal(batched, looped)
    assert 0 < batched.mean() < 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_sample_gradients_equal_a_loop(backend):
    layer = MODELS["lif-channels-threshold"](backend)
    x = _input(B=5)
    params = {k: v.detach() for k, v in layer.named_parameters()}
    per_sample = vmap(grad(lambda p, xb: _loss(layer, p, xb.unsqueeze(1))), in_dims=(None, 1))(params, x)
    for i in range(x.shape[1]):
        out = layer(x[:, i:i + 1])
        refs = torch.autograd.grad((out * _weights()).sum(), list(layer.parameters()))
        for (name, _), r in zip(layer.named_parameters(), refs):
            torch.testing.assert_close(per_sample[name][i], r, msg=f"{name}, sample {i}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", sorted(MODELS))
def test_forward_mode_jacobian_equals_reverse_mode(model, backend):
    layer = MODELS[model](backend)
    x = _input(B=2)[:4]
    j_fwd = jacfwd(layer)(x)
    assert j_fwd.abs().sum() > 0
    torch.testing.assert_close(j_fwd, jacrev(layer)(x))


def test_nan_checks_are_skipped_under_vmap_and_kept_outside():
    layer = LIF(backend="numba")
    x = _input()
    x[2, 1, 0, 0] = float("nan")
    out = vmap(lambda xb: layer(xb.unsqueeze(1)).squeeze(1), in_dims=1, out_dims=1)(x)  # vmap cannot read values
    assert out.shape == x.shape
    with pytest.raises(ValueError, match="NaN"):
        layer(x)


def test_named_fused_backend_says_once_that_it_runs_the_reference(caplog, monkeypatch):
    monkeypatch.setattr(backends._BACKENDS, "noted_reference_only", False)
    layer = LIF(backend="numba")
    x = _input()
    with caplog.at_level(logging.INFO, logger="snn"):
        for _ in range(2):
            grad(lambda xx: layer(xx).sum())(x)
    notes = [r for r in caplog.records if "torch.func" in r.getMessage()]
    assert len(notes) == 1 and "'numba'" in notes[0].getMessage()
    layer(x)
    assert layer.backend_used == "numba"  # outside the transform the kernels run again


def test_unknown_backend_is_still_an_error_under_a_transform():
    layer = LIF(backend="nope")
    with pytest.raises(ValueError, match="nope"):
        grad(lambda xx: layer(xx).sum())(_input())


@pytest.mark.parametrize("preset,kw,shape", [
    ("conv-plif", dict(in_channels=2, num_classes=10), (4, 3, 2, 34, 34)),
    ("mlp2", dict(in_features=40, num_classes=5), (5, 3, 40)),
])
def test_preset_per_sample_gradients_equal_a_loop(preset, kw, shape):
    torch.manual_seed(0)
    model = build_model(preset, backend="auto", **kw).eval()
    x = (torch.rand(shape) < 0.3).float()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def loss(p, xb):
        return functional_call(model, (p, buffers), (xb.unsqueeze(1),)).pow(2).mean()

    per_sample = vmap(grad(loss), in_dims=(None, 1))(params, x)
    for i in range(shape[1]):
        out = model(x[:, i:i + 1])
        refs = torch.autograd.grad(out.pow(2).mean(), list(model.parameters()))
        for (name, _), r in zip(model.named_parameters(), refs):
            torch.testing.assert_close(per_sample[name][i], r, msg=f"{name}, sample {i}", rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", sorted(MODELS))
def test_dual_number_forward_ad_equals_the_jacobian(model, backend):
    from torch.autograd import forward_ad as fwAD
    layer = MODELS[model](backend)
    x = _input(B=2)[:4]
    t = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    with fwAD.dual_level():
        out = layer(fwAD.make_dual(x, t))
        assert layer.backend_used == "torch"
        primal, tangent = fwAD.unpack_dual(out)
    assert torch.equal(primal, layer(x))
    expected = (jacrev(layer)(x) * t).sum(dim=tuple(range(x.dim(), 2 * x.dim())))
    torch.testing.assert_close(tangent, expected)
    layer(x)
    assert layer.backend_used == ("torch" if backend == "torch" else "numba")  # the dual level is closed
