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
