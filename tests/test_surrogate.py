import dataclasses
import math

import pytest
import torch

from snn.surrogate import SURROGATES, ATan, Erfc, Gaussian, Surrogate, Triangle, get_surrogate, spike

ALL = [cls() for cls in {c for c in SURROGATES.values()}]
ALL += [cls(alpha=a) for cls in (ATan, Triangle, Gaussian) for a in (0.5, 3.0)]


def _points(s: Surrogate) -> torch.Tensor:
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    if isinstance(s, Triangle):  # skip the kinks at 0 and ±1/alpha
        kinks = torch.tensor([0.0, 1 / s.alpha, -1 / s.alpha], dtype=torch.float64)
        x = x[(x[:, None] - kinks).abs().min(1).values > 1e-3]
    return x


@pytest.mark.parametrize("s", ALL, ids=repr)
def test_backward_is_derivative_of_primitive_by_finite_differences(s):
    x = _points(s)
    h = 1e-6
    fd = (s.primitive(x + h) - s.primitive(x - h)) / (2 * h)
    torch.testing.assert_close(s.grad(x), fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("s", ALL, ids=repr)
def test_autograd_uses_surrogate_and_forward_is_heaviside(s):
    x = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    y = s(x)
    assert torch.equal(y, (x >= 0).to(x.dtype))
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, s.grad(x.detach()))


@pytest.mark.parametrize("s", ALL, ids=repr)
def test_primitive_is_a_smooth_step_from_0_to_1(s):
    big = torch.tensor([-1e4, 1e4], dtype=torch.float64)
    torch.testing.assert_close(s.primitive(big), torch.tensor([0.0, 1.0], dtype=torch.float64), atol=1e-3, rtol=0)
    x = torch.linspace(-5, 5, 1001, dtype=torch.float64)
    assert (s.primitive(x).diff() >= -1e-12).all()


def test_surrogates_are_immutable_values():
    s = ATan()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.alpha = 5.0  # type: ignore[misc]
    assert ATan() == ATan() and hash(ATan(2.0)) == hash(ATan(2.0)) and ATan(1.0) != ATan(2.0)


def test_get_surrogate_by_name_and_errors():
    assert get_surrogate("ATan") == ATan()
    assert get_surrogate("superspike", alpha=3.0).alpha == 3.0
    assert get_surrogate(Erfc(), alpha=1.0) == Erfc(1.0)
    with pytest.raises(ValueError, match="valid names.*atan"):
        get_surrogate("nope")
    with pytest.raises(TypeError):
        get_surrogate(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha"):
        ATan(alpha=-1.0)


def test_gaussian_and_erfc_are_the_same_bell_reparameterised():
    x = torch.linspace(-2, 2, 101, dtype=torch.float64)
    torch.testing.assert_close(Gaussian(alpha=math.sqrt(2) * 2.0).grad(x), Erfc(alpha=2.0).grad(x))


def test_spike_function_helper():
    x = torch.tensor([-0.1, 0.0, 0.2], requires_grad=True)
    y = spike(x, "sigmoid")
    assert y.tolist() == [0.0, 1.0, 1.0]
    y.sum().backward()
    assert x.grad[1] == pytest.approx(1.0)  # sigmoid alpha=4: 4·½·½


def test_torch_func_transforms_work_through_the_spike_function():
    # torch.func.grad / vmap need the forward/setup_context form of the autograd.Function
    from torch.func import grad, vmap
    import snn
    x = torch.randn(6, 4, dtype=torch.float64)
    g_func = grad(lambda v: (snn.surrogate.spike(v) * torch.arange(4.0, dtype=torch.float64)).sum())(x)
    xr = x.clone().requires_grad_()
    (snn.surrogate.spike(xr) * torch.arange(4.0, dtype=torch.float64)).sum().backward()
    assert torch.equal(g_func, xr.grad)
    # a neuron layer on the torch reference: torch.func.grad equals autograd
    lif = snn.LIF(backend="torch", dtype=torch.float64)
    xs = torch.rand(5, 2, 7, dtype=torch.float64) * 2  # [T, B, N]
    w = torch.randn(5, 2, 7, dtype=torch.float64)
    g_layer = grad(lambda v: (lif(v) * w).sum())(xs)
    xr = xs.clone().requires_grad_()
    (lif(xr) * w).sum().backward()
    torch.testing.assert_close(g_layer, xr.grad, rtol=0, atol=0)
    assert torch.equal(vmap(snn.surrogate.spike)(x), (x >= 0).to(x.dtype))


@pytest.mark.parametrize("s", ALL, ids=repr)
def test_forward_mode_jvp_uses_the_surrogate(s):
    from torch.func import jvp
    from torch.autograd import forward_ad as fwAD
    x = torch.randn(50, dtype=torch.float64)
    t = torch.randn(50, dtype=torch.float64)
    out, tangent = jvp(lambda v: spike(v, s), (x,), (t,))
    assert torch.equal(out, (x >= 0).to(x.dtype))
    torch.testing.assert_close(tangent, t * s.grad(x), rtol=0, atol=0)
    with fwAD.dual_level():  # the dual-number API too
        tangent2 = fwAD.unpack_dual(spike(fwAD.make_dual(x, t), s)).tangent
    torch.testing.assert_close(tangent2, tangent, rtol=0, atol=0)
