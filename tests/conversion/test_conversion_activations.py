"""QCFS and ClipReLU: values, gradients, and the IF-neuron equivalence QCFS is built for."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from snn.conversion import ClipReLU, IFActivation, QCFS, make_activation


def test_qcfs_values_match_the_formula():
    act = QCFS(levels=4, clip=2.0)
    z = torch.linspace(-1, 3, 81)
    expected = 2.0 / 4 * torch.clamp(torch.floor(z * 4 / 2.0 + 0.5), 0, 4)
    assert torch.equal(act(z), expected)
    assert set(act(z).unique().tolist()) == {0.0, 0.5, 1.0, 1.5, 2.0}


def test_qcfs_shift_zero_is_floor_quantisation():
    act = QCFS(levels=2, clip=1.0, shift=0.0)
    assert act(torch.tensor([0.49, 0.5, 0.99, 1.0])).tolist() == [0.0, 0.5, 0.5, 1.0]


def test_qcfs_gradients_straight_through_and_to_clip():
    act = QCFS(levels=4, clip=2.0)
    z = torch.tensor([-1.0, 0.3, 1.1, 5.0], requires_grad=True)
    act(z).sum().backward()
    assert z.grad.tolist() == [0.0, 1.0, 1.0, 0.0]  # STE inside the clip range, 0 outside
    # above the clip the output is λ, so dh/dλ = 1 there; inside, h/λ - z/λ
    assert act.clip.grad is not None and act.clip.grad.item() != 0.0
    assert isinstance(act.clip, nn.Parameter)
    assert not isinstance(QCFS(learn_clip=False).clip, nn.Parameter)


@pytest.mark.parametrize("kwargs, match", [(dict(levels=0), "levels"), (dict(levels=2.5), "levels"),
                                           (dict(clip=0.0), "clip"), (dict(shift=1.0), "shift")])
def test_qcfs_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QCFS(**kwargs)


@settings(max_examples=40, deadline=None)
@given(levels=st.integers(1, 16), clip=st.floats(0.1, 10.0),
       z=st.lists(st.floats(-2.0, 12.0, allow_nan=False), min_size=1, max_size=8))
def test_if_neuron_at_T_equals_L_reproduces_qcfs(levels, clip, z):
    """Bu et al. 2022: IF with θ = λ, v(0) = θ/2 and soft reset, fed a constant z for T = L
    steps, emits exactly ĥ(z)·L/λ spikes, so its mean output θ·rate equals ĥ(z)."""
    x = torch.tensor(z, dtype=torch.float32)
    qcfs = QCFS(levels=levels, clip=clip)
    neuron = IFActivation(qcfs.clip.detach(), backend="torch")
    out = neuron(x.repeat(levels, 1), levels)  # [T·B, N] with B = 1: the same z at every step
    rate_times_theta = out.sum(0) / levels
    expected = qcfs(x).detach()
    diff = (rate_times_theta - expected).abs()
    u = x.double() * levels / float(qcfs.clip.detach()) + 0.5
    at_edge = (u - torch.round(u)).abs() < 1e-4  # float rounding may fall either way there
    assert torch.all((diff <= 1e-5 * clip) | (at_edge & (diff <= 1.001 * clip / levels)))


def test_clip_relu():
    act = ClipReLU(1.5)
    assert act(torch.tensor([-1.0, 0.5, 2.0])).tolist() == [0.0, 0.5, 1.5]
    with pytest.raises(ValueError, match="clip"):
        ClipReLU(-1)


@pytest.mark.parametrize("spec, cls", [("relu", nn.ReLU), ("relu6", nn.ReLU6), ("qcfs", QCFS), ("qcfs:4", QCFS),
                                       ("clip:2", ClipReLU), (lambda: nn.ReLU(), nn.ReLU)])
def test_make_activation(spec, cls):
    assert isinstance(make_activation(spec), cls)


def test_make_activation_parameters_and_errors():
    a = make_activation("qcfs:4:2.5")
    assert a.levels == 4 and float(a.clip) == 2.5
    with pytest.raises(ValueError, match="unknown activation"):
        make_activation("gelu")
    with pytest.raises(ValueError, match="qcfs:0"):
        make_activation("qcfs:0")
    with pytest.raises(TypeError, match="nn.Module"):
        make_activation(lambda: 3)


@pytest.mark.parametrize("shift", [0.0, 0.25, 0.5])
def test_if_neuron_with_v_init_shift_theta_equals_qcfs_of_any_shift(shift):
    """IF with soft reset, v(0) = φ·θ, constant input z: v(T) = φθ + Tz − θ·N stays in [0, θ)
    while 0 ≤ z ≤ θ, so N = clip(⌊zT/θ + φ⌋, 0, T) spikes; at T = L that is QCFS(L, λ = θ, φ).
    Inputs sit halfway between quantisation edges (zL/θ + φ = j + 1/2), away from float ties."""
    L, theta = 4, 0.8
    j = torch.arange(-2, L + 3, dtype=torch.float64)
    z = (theta * (j + 0.5 - shift) / L).float()
    neuron = IFActivation(theta, backend="torch", shift=shift)
    assert float(neuron.neuron.v_init) == pytest.approx(shift * theta)
    spikes = neuron(z.repeat(L, 1), L).sum(0) / theta
    assert spikes.tolist() == torch.clamp(j, 0, L).tolist()
    qcfs = QCFS(levels=L, clip=theta, shift=shift)
    torch.testing.assert_close(spikes * theta / L, qcfs(z).detach(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("shift", [0.0, 0.25, 0.5])
def test_converted_qcfs_network_is_exact_at_T_equals_L_for_any_shift(shift):
    import snn
    from snn.encoders import direct
    torch.manual_seed(0)
    L = 4
    ann = nn.Sequential(nn.Linear(16, 32), QCFS(levels=L, clip=1.0, shift=shift), nn.Linear(32, 5)).eval()
    net = snn.convert(ann, None, backend="torch")
    assert float(net.net.get_submodule("1").neuron.v_init) == pytest.approx(shift)
    x = torch.randn(200, 16)
    with torch.no_grad():
        torch.testing.assert_close(net(direct(x, L))[-1] / L, ann(x), rtol=0, atol=1e-5)


def test_if_activation_rejects_a_bad_shift():
    for bad in (-0.1, 1.0, True):
        with pytest.raises(ValueError, match="shift"):
            IFActivation(1.0, shift=bad)
