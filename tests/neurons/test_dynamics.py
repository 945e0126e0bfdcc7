"""Neuron dynamics against hand-computed trajectories and analytic gradients."""
import math

import pytest
import torch

import snn
from snn.neurons import IF, LIF, PLIF, LeakyIntegrator, tau_to_beta, beta_to_tau
from snn.surrogate import Sigmoid


def run(neuron, xs):
    neuron.record_v = True
    x = torch.tensor(xs, dtype=torch.float64).view(-1, 1, 1)
    s = neuron(x)
    return s.flatten().tolist(), neuron.v_seq.flatten().tolist()


def test_if_soft_reset_trajectory():
    s, v = run(IF(v_reset=None, dtype=torch.float64), [0.6, 0.6, 0.6, 0.6])
    assert s == [0, 1, 0, 1]
    assert v == pytest.approx([0.6, 0.2, 0.8, 0.4])


def test_if_hard_reset_trajectory():
    s, v = run(IF(v_reset=-0.5, dtype=torch.float64), [0.6, 0.6, 0.6, 0.6, 0.6])
    # 0.6, 1.2 → spike → -0.5, 0.1, 0.7, 1.3 → spike
    assert s == [0, 1, 0, 0, 1]
    assert v == pytest.approx([0.6, -0.5, 0.1, 0.7, -0.5])


def test_lif_trajectory_matches_exact_decay():
    beta = math.exp(-1 / 4)
    s, v = run(LIF(tau=4.0, dtype=torch.float64), [0.5, 0.5, 0.5, 0.0, 0.0])
    h = [0.5, 0.5 * beta + 0.5, (0.5 * beta + 0.5) * beta + 0.5]
    assert h[2] > 1 > h[1]
    assert s == [0, 0, 1, 0, 0]
    assert v == pytest.approx([h[0], h[1], 0.0, 0.0, 0.0])


def test_lif_decay_input_form():
    beta = tau_to_beta(2.0)
    s, v = run(LIF(tau=2.0, decay_input=True, v_threshold=10.0, dtype=torch.float64), [1.0, 1.0, 0.0])
    v1 = (1 - beta)
    v2 = beta * v1 + (1 - beta)
    assert v == pytest.approx([v1, v2, beta * v2])
    assert beta_to_tau(beta) == pytest.approx(2.0)


def test_tau_and_beta_validation():
    with pytest.raises(ValueError, match="tau"):
        LIF(tau=0.0)
    with pytest.raises(ValueError, match="beta"):
        LIF(beta=1.5)
    with pytest.raises(ValueError, match="v_threshold"):
        IF(v_threshold=0.0)
    assert float(LIF(beta=0.9).beta) == pytest.approx(0.9)
    # time constants whose decay rounds to 0 or 1, and an infinite threshold (every spike
    # test and soft reset would be inf - inf), are refused by name, not by a math error
    for make in (lambda: LIF(tau=1e-3), lambda: PLIF(tau=1e-3), lambda: LIF(tau=float("inf")),
                 lambda: PLIF(tau=float("inf")), lambda: LIF(tau=float("nan"))):
        with pytest.raises(ValueError, match="tau"):
            make()
    with pytest.raises(ValueError, match="finite"):
        IF(v_threshold=float("inf"))
    assert float(LIF(tau=0.002).beta) == pytest.approx(math.exp(-500))


def test_plif_forward_equals_lif_with_same_decay():
    torch.manual_seed(0)
    x = torch.rand(20, 3, 7) * 1.5
    plif, lif = PLIF(tau=3.0), LIF(tau=3.0)
    assert torch.equal(plif(x), lif(x))


def test_plif_tau_gradient_against_finite_differences():
    # below threshold the dynamics are smooth and linear in the input, so the true
    # derivative of the membrane with respect to w is well defined.
    torch.manual_seed(1)
    x = torch.rand(12, 2, 5, dtype=torch.float64)
    plif = PLIF(tau=2.5, v_threshold=1e6, dtype=torch.float64, record_v=True)
    plif(x)
    loss = plif.v_seq.pow(2).sum()
    loss.backward()

    def f(w):
        with torch.no_grad():
            plif.w.fill_(w)
            plif(x)
            return plif.v_seq.pow(2).sum().item()
    w0 = plif.w.item()
    eps = 1e-6
    fd = (f(w0 + eps) - f(w0 - eps)) / (2 * eps)
    assert plif.w.grad.item() == pytest.approx(fd, rel=1e-6)


def test_learnable_threshold_gradient_is_minus_surrogate():
    sg = Sigmoid(alpha=4.0)
    n = IF(v_threshold=1.0, learn_threshold=True, surrogate=sg, dtype=torch.float64)
    x = torch.tensor([[[0.7]]], dtype=torch.float64)  # T=1
    n(x).sum().backward()
    assert n.v_threshold.grad.item() == pytest.approx(-sg.grad(torch.tensor(-0.3, dtype=torch.float64)).item())


def test_detach_reset_changes_gradient_as_derived():
    # T=2 soft reset, threshold 1: v1 = x1 - s1, h2 = v1 + x2; loss = s2.
    sg = Sigmoid()
    x = torch.tensor([[[1.2]], [[0.5]]], dtype=torch.float64, requires_grad=True)
    g = {}
    for detach in (False, True):
        n = IF(v_reset=None, surrogate=sg, detach_reset=detach, dtype=torch.float64)
        (gx,) = torch.autograd.grad(n(x)[1].sum(), x)
        g[detach] = gx.flatten().tolist()
    d1 = sg.grad(torch.tensor(0.2, dtype=torch.float64)).item()  # at h1 - th
    d2 = sg.grad(torch.tensor(-0.3, dtype=torch.float64)).item()  # at h2 - th (h2 = 0.2 + 0.5)
    assert g[True] == pytest.approx([d2, d2])
    assert g[False] == pytest.approx([d2 * (1 - d1), d2])


def test_per_channel_parameters_equal_separate_neurons():
    torch.manual_seed(2)
    x = torch.rand(10, 4, 3, 5, 5) * 2
    n = LIF(tau=2.0, num_channels=3, learn_threshold=True)
    with torch.no_grad():
        n.v_threshold.copy_(torch.tensor([0.5, 1.0, 2.0]))
        n.beta.copy_(torch.tensor([0.3, 0.6, 0.9]))
    out = n(x)
    for c, (th, b) in enumerate([(0.5, 0.3), (1.0, 0.6), (2.0, 0.9)]):
        ref = LIF(beta=b, v_threshold=th)(x[:, :, c])
        assert torch.equal(out[:, :, c], ref)
    with pytest.raises(ValueError, match="num_channels=3"):
        n(torch.rand(10, 4, 2, 5, 5))


def test_leaky_integrator_readout():
    r = LeakyIntegrator(tau=2.0)
    x = torch.tensor([1.0, 0.0, 2.0]).view(3, 1, 1)
    b = math.exp(-0.5)
    assert r(x).flatten().tolist() == pytest.approx([1.0, b, b * b + 2.0])
    perfect = LeakyIntegrator(tau=float("inf"))
    x = torch.rand(6, 2, 3)
    torch.testing.assert_close(perfect(x), x.cumsum(0))


def test_v_init_sets_the_starting_membrane():
    # converted-network convention: start at half threshold; 0.3 per step → spikes at t=1, 4, ...
    n = IF(v_reset=None, v_init=0.5, dtype=torch.float64)
    s, v = run(n, [0.3] * 5)
    assert s == [0, 1, 0, 0, 1]
    assert v == pytest.approx([0.8, 0.1, 0.4, 0.7, 0.0])
    ch = IF(v_init=0.25, num_channels=2)
    snn.reset(ch)
    assert ch.step(torch.zeros(1, 2)).sum() == 0 and torch.allclose(ch.v, torch.full((1, 2), 0.25))
