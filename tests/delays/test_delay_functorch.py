"""Delay layers under ``torch.func`` transforms: ``grad``, ``vmap`` and per-sample gradients
``vmap(grad(...))`` equal plain autograd, for every delay backend name (the fused ones run
the torch reference under a transform)."""
import importlib.util
import logging

import pytest
import torch
from torch.func import functional_call, grad, vmap

from snn.delays import DelayLinear, delay_conv, gaussian_taps, linear_taps, resolve_delay_backend
from snn.delays import backends as delay_backends
from snn.models.registry import build_model

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch.func's

NUMBA = pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba is not installed")
BACKENDS = ["torch", "auto", pytest.param("numba", marks=NUMBA)]
# (interpolation, sigma, rounded): the training-time sigma (D / 2, a window of all D + 1 taps),
# a decayed one (a narrow window, which "auto" runs fused outside a transform), linear
# interpolation, and integer delays after round_delays_()
MODES = [("gaussian", None, False), ("gaussian", 0.5, False), ("linear", None, False), ("gaussian", None, True)]
MODE_IDS = ["gauss-train-sigma", "gauss-narrow", "linear", "rounded"]
T, B, N_IN, N_OUT, D = 16, 3, 48, 50, 10  # 2400 synapses: the Numba tap pass's size outside a transform
TOL = dict(rtol=1e-4, atol=1e-5)  # float32


def make_layer(interpolation, sigma, rounded, backend, seed=0):
    g = torch.Generator().manual_seed(seed)
    layer = DelayLinear(N_IN, N_OUT, D, interpolation=interpolation, sigma=sigma, backend=backend, generator=g)
    if rounded:
        layer.round_delays_()
    return layer.eval()


def spikes(*shape, seed=1):
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


def detached(module):
    return {k: v.detach() for k, v in module.named_parameters()}


def autograd_grads(module, loss, params, *args):
    """``{name: ∂loss/∂param}`` by plain autograd on the module's own parameters (zeros for an
    unused one, as ``torch.func.grad`` gives)."""
    names = list(params)
    live = dict(module.named_parameters())
    gs = torch.autograd.grad(loss(live, *args), [live[n] for n in names], allow_unused=True)
    return {n: torch.zeros_like(live[n]) if g is None else g for n, g in zip(names, gs)}


def assert_grads_close(got, want, **tol):
    assert set(got) == set(want)
    for name in want:
        torch.testing.assert_close(got[name], want[name], **(tol or TOL), msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("interpolation,sigma,rounded", MODES, ids=MODE_IDS)
def test_grad_of_delay_linear_equals_autograd(interpolation, sigma, rounded, backend):
    layer = make_layer(interpolation, sigma, rounded, backend)
    x = spikes(T, B, N_IN)
    gy = torch.randn(T, B, N_OUT, generator=torch.Generator().manual_seed(2))

    def loss(p, xb):
        return (functional_call(layer, p, (xb,)) * gy).sum()

    params = detached(layer)
    got = grad(loss)(params, x)
    want = autograd_grads(layer, loss, params, x)
    assert_grads_close(got, want)
    if not rounded:  # the positions learn (integer delays give them no gradient)
        assert got["delay"].abs().sum() > 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("interpolation,sigma,rounded", MODES, ids=MODE_IDS)
def test_vmap_over_the_batch_equals_each_sample(interpolation, sigma, rounded, backend):
    layer = make_layer(interpolation, sigma, rounded, backend)
    x = spikes(T, B, N_IN)
    with torch.no_grad():
        got = vmap(lambda xb: layer(xb.unsqueeze(1)).squeeze(1), in_dims=1, out_dims=1)(x)
        want = torch.cat([layer(x[:, b:b + 1]) for b in range(B)], 1)
    torch.testing.assert_close(got, want, **TOL)
    # with the gradient graph too (vmap of a differentiable call)
    got = vmap(lambda xb: layer(xb.unsqueeze(1)).squeeze(1), in_dims=1, out_dims=1)(x)
    torch.testing.assert_close(got.detach(), want, **TOL)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("interpolation,sigma,rounded", MODES, ids=MODE_IDS)
def test_per_sample_gradients_equal_a_loop_of_autograd(interpolation, sigma, rounded, backend):
    layer = make_layer(interpolation, sigma, rounded, backend)
    x = spikes(T, B, N_IN)
    target = torch.randn(T, B, N_OUT, generator=torch.Generator().manual_seed(3))

    def loss(p, xb, tb):  # one sample: xb [T, N_in], tb [T, N_out]
        y = functional_call(layer, p, (xb.unsqueeze(1),)).squeeze(1)
        return (y - tb).pow(2).mean()

    params = detached(layer)
    got = vmap(grad(loss), in_dims=(None, 1, 1))(params, x, target)
    for b in range(B):
        want = autograd_grads(layer, loss, params, x[:, b], target[:, b])
        assert_grads_close({n: g[b] for n, g in got.items()}, want)


@pytest.mark.parametrize("backend", ["auto", pytest.param("numba", marks=NUMBA)])
def test_backend_used_reports_the_torch_reference_under_a_transform(backend):
    layer = make_layer("gaussian", None, True, backend)  # integer delays: fused outside a transform
    x = spikes(T, B, N_IN)
    layer(x)
    fused = layer.backend_used
    if importlib.util.find_spec("numba") is not None:
        assert fused == "numba"
    params = detached(layer)
    grad(lambda p: functional_call(layer, p, (x,)).sum())(params)
    assert layer.backend_used == "torch"
    vmap(lambda xb: layer(xb.unsqueeze(1)), in_dims=1)(x)
    assert layer.backend_used == "torch"
    layer(x)
    assert layer.backend_used == fused


def test_resolve_delay_backend_under_a_transform(caplog, monkeypatch):
    monkeypatch.setattr(delay_backends._BACKENDS, "noted_reference_only", False)
    x = torch.zeros(4, 2, 3)
    seen = {}

    def probe(xb):
        seen["auto"] = resolve_delay_backend("auto", xb, 1, 10).name
        if importlib.util.find_spec("numba") is not None:
            seen["numba"] = resolve_delay_backend("numba", xb, 1, 10).name
        with pytest.raises(ValueError, match="unknown delay backend 'nope'"):
            resolve_delay_backend("nope", xb, 1, 10)
        return xb

    assert resolve_delay_backend("auto", x, 1, 10).name != "torch" or importlib.util.find_spec("numba") is None
    with caplog.at_level(logging.INFO, logger="snn"):
        vmap(probe, in_dims=1)(x)
        vmap(probe, in_dims=1)(x)
    assert set(seen.values()) == {"torch"}
    notes = [r for r in caplog.records if "torch.func" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO


@pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")  # vmap's clamp_ fallback
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["gaussian", "linear-full-window"])
def test_vmap_over_delay_positions_in_delay_conv(kind, backend):
    """An ensemble of delay positions (batched taps, whose starts vmap cannot read): the range
    check of delay_conv and the full-window shortcut of taps_to_dense are skipped, with the
    same results as each member alone."""
    g = torch.Generator().manual_seed(4)
    Dk = 10 if kind == "gaussian" else 1  # linear taps with D = 1: one window of all D + 1 taps
    w = torch.randn(N_OUT, N_IN, generator=g)
    delays = torch.rand(4, N_OUT, N_IN, generator=g) * Dk
    x = spikes(T, B, N_IN)

    def run(d):
        taps = gaussian_taps(w, d, 0.7, Dk) if kind == "gaussian" else linear_taps(w, d, Dk)
        return delay_conv(x, taps, backend=backend)

    got = vmap(run)(delays)
    want = torch.stack([run(d) for d in delays])
    torch.testing.assert_close(got, want, **TOL)
    # and their gradients, one per member
    gx = vmap(grad(lambda d: run(d).pow(2).sum()))(delays)
    for k, d in enumerate(delays):
        d = d.clone().requires_grad_()
        (want_d,) = torch.autograd.grad(run(d).pow(2).sum(), d)
        torch.testing.assert_close(gx[k], want_d, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rounded", [False, True], ids=["gauss", "rounded"])
def test_shd_delays_preset_under_grad_and_vmap(rounded, backend):
    torch.manual_seed(0)
    model = build_model("shd-delays", in_features=700, num_classes=20, backend=backend, delay_backend=backend)
    if rounded:
        model.on_train_end()  # integer delays: "auto" runs them fused outside a transform
    model.eval()
    Ts, Bs = 12, 2
    x = spikes(Ts, Bs, 700, seed=5)
    buffers = dict(model.named_buffers())

    def loss(p, xb):
        return functional_call(model, (p, buffers), (xb,)).pow(2).mean()

    params = detached(model)
    assert_grads_close(grad(loss)(params, x), autograd_grads(model, loss, params, x))

    with torch.no_grad():
        want = model(x)
        got = vmap(lambda xb: model(xb.unsqueeze(1)).squeeze(1), in_dims=1, out_dims=1)(x)
    torch.testing.assert_close(got, want, **TOL)

    per_sample = vmap(grad(lambda p, xb: loss(p, xb.unsqueeze(1))), in_dims=(None, 1))(params, x)
    assert {m.backend_used for m in model.modules() if isinstance(m, DelayLinear)} == {"torch"}
    for b in range(Bs):
        want_b = autograd_grads(model, lambda p, xb: loss(p, xb.unsqueeze(1)), params, x[:, b])
        assert_grads_close({n: g[b] for n, g in per_sample.items()}, want_b)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("interpolation,sigma,rounded", MODES, ids=MODE_IDS)
def test_dual_number_forward_ad_equals_the_vjp_jacobian(interpolation, sigma, rounded, backend):
    """Forward-mode AD (dual tensors) in the input and the delay positions: the taps' Function
    and the fused kernels have no jvp, so both run their torch form inside a dual level."""
    from torch.autograd import forward_ad as fwAD
    from torch.func import jvp
    layer = make_layer(interpolation, sigma, rounded, backend)
    x = spikes(T, B, N_IN)
    tx = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    params = detached(layer)
    td = torch.randn(params["delay"].shape, generator=torch.Generator().manual_seed(5))
    with fwAD.dual_level():
        dual = {**params, "delay": fwAD.make_dual(params["delay"], td)}
        primal, tangent = fwAD.unpack_dual(functional_call(layer, dual, (fwAD.make_dual(x, tx),)))
        assert layer.backend_used == "torch"
    torch.testing.assert_close(primal, layer(x), **TOL)
    # the same directional derivative from torch.func.jvp (functorch's forward mode)
    _, want = jvp(lambda xx, d: functional_call(layer, {**params, "delay": d}, (xx,)), (x, params["delay"]), (tx, td))
    torch.testing.assert_close(tangent, want, **TOL)
    assert tangent.abs().sum() > 0
