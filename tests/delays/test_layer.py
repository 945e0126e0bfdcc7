"""DelayLinear: modes, backends, rounding to integer delays, streaming state, errors."""
import pytest
import torch

import snn
from snn.delays import DelayLinear, delay_layers, round_delays


def grads(layer, x, gy):
    x = x.clone().requires_grad_()
    y = layer(x)
    params = [p for p in (layer.weight, None if layer.integer else layer.delay, layer.bias)
              if p is not None and p.requires_grad]
    return (y.detach(),) + torch.autograd.grad(y, [x] + params, gy)


@pytest.mark.parametrize("interpolation,sigma,rounded", [("gaussian", 0.5, False), ("gaussian", 1.0, False),
                                                         ("gaussian", 6.0, False), ("linear", None, False),
                                                         ("gaussian", 1.0, True)])
def test_numba_backend_matches_torch_reference(interpolation, sigma, rounded):
    g = torch.Generator().manual_seed(0)
    layer = DelayLinear(12, 9, 10, interpolation=interpolation, sigma=sigma, generator=g)
    if rounded:
        layer.round_delays_()
    x = (torch.rand(20, 19, 12, generator=g) < 0.3).float()
    gy = torch.randn(20, 19, 9, generator=g)
    layer.backend = "torch"
    ref = grads(layer, x, gy)
    layer.backend = "numba"
    out = grads(layer, x, gy)
    assert layer.backend_used == "numba"
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_rounded_layer_applies_exact_integer_delays():
    """out[t, j] = bias_j + Σ_i w_ij · x[t − d_ij, i] — checked by explicit shifting."""
    g = torch.Generator().manual_seed(1)
    layer = DelayLinear(5, 4, 7, sigma=0.5, generator=g).round_delays_()
    assert layer.integer and layer.window() == 1
    d = layer.integer_delays()
    assert torch.equal(layer.delay, d.float()) and int(d.min()) >= 0 and int(d.max()) <= 7
    x = torch.randn(15, 3, 5, generator=g)
    want = layer.bias.expand(15, 3, 4).clone()
    for j in range(4):
        for i in range(5):
            k = int(d[j, i])
            want[k:, :, j] += layer.weight[j, i] * x[:15 - k, :, i]
    for backend in ("torch", "numba", "auto"):
        layer.backend = backend
        torch.testing.assert_close(layer(x), want, rtol=1e-5, atol=1e-5)
    assert layer.backend_used == "numba"  # auto picks the gather kernel for integer delays


def test_rounding_keeps_a_trained_gaussian_layer_close_once_sigma_is_small():
    g = torch.Generator().manual_seed(2)
    layer = DelayLinear(6, 5, 9, sigma=0.25, generator=g)
    with torch.no_grad():
        layer.delay.copy_(layer.delay.round() + 0.05)
    x = torch.randn(30, 4, 6, generator=g)
    before = layer(x)
    round_delays(torch.nn.Sequential(layer))
    assert torch.allclose(layer(x), before, atol=0.05)


@pytest.mark.parametrize("backend", ["torch", "numba"])
@pytest.mark.parametrize("sigma", [0.1, 0.03, 0.01])
def test_small_sigma_equals_the_rounded_layer(sigma, backend):
    """Once σ has decayed below 1/(2·truncate), no synapse falls between the taps of its window:
    the layer computes (and trains the weights of) its nearest-integer delays."""
    g = torch.Generator().manual_seed(11)
    layer = DelayLinear(12, 9, 10, sigma=sigma, generator=g, backend=backend)
    frac = torch.tensor([0.0, 0.05, 0.2, 0.35, 0.65, 0.8, 0.95])
    with torch.no_grad():
        pick = torch.randint(0, len(frac), (9, 12), generator=g)
        layer.delay.copy_((torch.randint(0, 10, (9, 12), generator=g) + frac[pick]).clamp(0, 10))
    rounded = DelayLinear(12, 9, 10, generator=g, backend=backend)
    rounded.load_state_dict(layer.state_dict())
    rounded.round_delays_()
    x = (torch.rand(20, 3, 12, generator=g) < 0.3).float()
    gy = torch.randn(20, 3, 9, generator=g)
    out, ref = grads(layer, x, gy), grads(rounded, x, gy)
    assert layer.backend_used == backend
    for a, b in zip(out[:3], ref[:3]):  # output, input and weight gradients
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert bool(out[3].isfinite().all())  # position gradient


@pytest.mark.parametrize("mode", ["gaussian", "rounded", "none"])
@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_integer_and_bool_spikes_give_float_currents(mode, backend):
    """uint8/bool spike frames are converted to the layer's dtype (as snn.LIF does), never the
    weights to the input's dtype (which truncated them to 0)."""
    g = torch.Generator().manual_seed(12)
    layer = DelayLinear(20, 3, 5, delays="none" if mode == "none" else "learned", generator=g, backend=backend)
    if mode == "rounded":
        layer.round_delays_()
    spikes = torch.rand(10, 2, 20, generator=g) < 0.5
    want = layer(spikes.float())
    for x in (spikes, spikes.to(torch.uint8), spikes.to(torch.int64)):
        y = layer(x)
        assert y.dtype == torch.float32
        torch.testing.assert_close(y, want)
        torch.testing.assert_close(torch.stack([layer.step(x_t) for x_t in x]), want, rtol=1e-5, atol=1e-5)
        snn.reset(layer)
    assert float(want.detach().abs().sum()) > 0


def test_fixed_and_none_modes():
    g = torch.Generator().manual_seed(3)
    fixed = DelayLinear(8, 6, 5, delays="fixed", generator=g)
    assert fixed.integer and not isinstance(fixed.delay, torch.nn.Parameter)
    assert torch.equal(fixed.delay, fixed.delay.round()) and len(set(fixed.delay.flatten().tolist())) > 1
    assert [n for n, _ in fixed.named_parameters()] == ["weight", "bias"]
    none = DelayLinear(8, 6, 5, delays="none", generator=g)
    assert none.max_delay == 0
    x = torch.randn(7, 3, 8, generator=g)
    torch.testing.assert_close(none(x), torch.nn.functional.linear(x, none.weight, none.bias))
    # equal trainable parameter count to nn.Linear
    assert sum(p.numel() for p in none.parameters()) == 8 * 6 + 6


def test_generator_makes_initialisation_reproducible():
    a = DelayLinear(4, 3, 6, generator=torch.Generator().manual_seed(7))
    b = DelayLinear(4, 3, 6, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.weight, b.weight) and torch.equal(a.delay, b.delay)
    assert float(a.delay.detach().min()) >= 0 and float(a.delay.detach().max()) <= 6 and float(a.sigma) == 3.0


@pytest.mark.parametrize("rounded", [False, True])
def test_streaming_and_chunks_equal_one_whole_sequence(rounded):
    g = torch.Generator().manual_seed(4)
    layer = DelayLinear(5, 3, 6, sigma=0.7, generator=g, backend="numba")
    if rounded:
        layer.round_delays_()
    x = torch.randn(17, 2, 5, generator=g)
    whole = layer(x)
    steps = torch.stack([layer.step(x_t) for x_t in x])
    torch.testing.assert_close(steps, whole, rtol=1e-5, atol=1e-5)
    snn.reset(layer)
    with snn.stateful(layer):
        chunks = torch.cat([layer(x[:4]), layer(x[4:5]), layer(x[5:])])
    torch.testing.assert_close(chunks, whole, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer(x), whole)  # from rest again after the context
    layer.step(x[0])
    with pytest.raises(ValueError, match="call snn.reset"):
        layer.step(torch.randn(3, 5))


def test_gradient_flows_into_the_previous_chunk_through_the_history():
    g = torch.Generator().manual_seed(5)
    layer = DelayLinear(3, 2, 4, sigma=0.5, generator=g, backend="numba")
    x = torch.randn(8, 2, 3, generator=g, requires_grad=True)
    with snn.stateful(layer):
        y = torch.cat([layer(x[:5]), layer(x[5:])])
    y.square().sum().backward()
    gx = x.grad.clone()
    x.grad = None
    layer(x).square().sum().backward()
    torch.testing.assert_close(gx, x.grad, rtol=1e-5, atol=1e-6)


def test_clamp_state_dict_and_sigma():
    layer = DelayLinear(4, 3, 5)
    with torch.no_grad():
        layer.delay[0, 0], layer.delay[0, 1] = -2.0, 9.0
    layer.clamp_delays_()
    assert float(layer.delay.detach().min()) >= 0 and float(layer.delay.detach().max()) <= 5
    layer.set_sigma(0.4)
    layer.round_delays_()
    other = DelayLinear(4, 3, 5)
    other.load_state_dict(layer.state_dict())
    assert other.integer and float(other.sigma) == pytest.approx(0.4) and torch.equal(other.delay, layer.delay)
    assert "rounded=True" in repr(layer)
    with pytest.raises(ValueError, match="sigma must be a positive"):
        layer.set_sigma(0.0)


def test_auto_uses_dense_convolution_for_wide_windows_and_fused_for_narrow():
    layer = DelayLinear(4, 3, 20, sigma=10.0)
    x = torch.randn(6, 2, 4)
    layer(x)
    assert layer.window() == 21 and layer.backend_used == "torch"
    layer.set_sigma(0.5)
    layer(x)
    assert layer.window() == 4 and layer.backend_used == "numba"  # ⌊2·3·0.5⌋ + 1 taps
    assert delay_layers(torch.nn.Sequential(layer, torch.nn.ReLU())) == [layer]


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="max_delay must be an int >= 0"):
        DelayLinear(3, 2, -1)
    with pytest.raises(ValueError, match="delays must be one of"):
        DelayLinear(3, 2, 4, delays="random")
    with pytest.raises(ValueError, match="interpolation must be one of"):
        DelayLinear(3, 2, 4, interpolation="cubic")
    with pytest.raises(ValueError, match="in_features must be a positive int"):
        DelayLinear(0, 2, 4)
    layer = DelayLinear(3, 2, 4)
    with pytest.raises(ValueError, match=r"x must be \[T, B, in_features=3\]"):
        layer(torch.zeros(5, 2, 4))
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        layer(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="NaN"):
        layer(torch.zeros(5, 2, 3).index_fill_(0, torch.tensor([4]), float("nan")))
    with pytest.raises(ValueError, match="unknown delay backend 'cupy'"):
        DelayLinear(3, 2, 4, backend="cupy")(torch.zeros(5, 2, 3))


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_infinite_inputs_are_refused_alike_on_every_backend(backend):
    """An inf input has no defined output (the dense reference gives NaN from inf · 0 taps where
    the fused kernels skip the zeros): both refuse it, in forward and step."""
    layer = DelayLinear(2, 1, 4, sigma=0.3, bias=False, backend=backend)
    x = torch.zeros(5, 1, 2)
    x[3, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        layer(x)
    with pytest.raises(ValueError, match="non-finite"):
        layer.step(x[3])
    huge = torch.full((5, 1, 2), 3e38)  # finite values whose sum overflows are accepted
    layer(huge)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_delay_positions_are_an_error_not_a_silent_dead_synapse(bad):
    layer = DelayLinear(2, 1, 4, sigma=0.3, bias=False)
    with torch.no_grad():
        layer.delay[0, 0] = bad
    x = torch.zeros(4, 1, 2)
    with pytest.raises(ValueError, match="delay holds non-finite"):
        layer(x)
    for fix in (layer.clamp_delays_, layer.round_delays_):
        with pytest.raises(ValueError, match="delay holds non-finite"):
            fix()
    assert not bool(layer.rounded)  # nothing was switched to integer mode
