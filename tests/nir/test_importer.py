"""Importing NIR nodes from other tools: Delay nodes that stream, LI nodes with one τ per channel."""
import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("nir")
import nir  # noqa: E402

import snn  # noqa: E402
from snn.nir import ChannelLeakyIntegrator, IntegerDelay, from_nir, to_nir  # noqa: E402


def _delay_graph():
    return nir.NIRGraph.from_list(nir.Delay(delay=np.array([0.0, 2e-3, 5e-3])),
                                  nir.Linear(weight=np.array([[1.0, 0, 0], [0, 2.0, 0], [0, 0, -1.0]])))


def test_delay_node_streams_in_chunks_and_single_steps():
    """The delay line is carried state: chunks under snn.stateful and step() give the whole-sequence output."""
    m = from_nir(_delay_graph(), dt=1e-3)
    delay = m[0]
    assert isinstance(delay, IntegerDelay) and delay.delays.tolist() == [0, 2, 5]
    g = torch.Generator().manual_seed(0)
    x = torch.rand(11, 2, 3, generator=g)
    whole = m(x)
    want = torch.zeros(11, 2, 3)
    for i, d in enumerate([0, 2, 5]):
        want[d:, :, i] = x[:11 - d, :, i] * [1.0, 2.0, -1.0][i]
    torch.testing.assert_close(whole, want)
    for size in (1, 3, 4):
        with snn.stateful(m):
            chunks = torch.cat([m(x[i:i + size]) for i in range(0, 11, size)])
        torch.testing.assert_close(chunks, whole)
    steps = torch.stack([delay.step(x_t) for x_t in x])
    torch.testing.assert_close(steps, whole / torch.tensor([1.0, 2.0, -1.0]))
    with pytest.raises(ValueError, match="call snn.reset"):
        delay.step(torch.rand(3, 3))
    snn.reset(m)
    torch.testing.assert_close(torch.stack([delay.step(x_t) for x_t in x]), steps)  # from rest again
    torch.testing.assert_close(m(x), whole)  # outside snn.stateful: from rest, nothing carried


def test_delay_line_history_carries_the_gradient_into_the_previous_chunk():
    m = IntegerDelay(torch.tensor([1, 3]))
    x = torch.rand(6, 1, 2, requires_grad=True)
    with snn.stateful(m):
        y = torch.cat([m(x[:4]), m(x[4:])])
    (y * torch.arange(12.0).view(6, 1, 2)).sum().backward()
    gx = x.grad.clone()
    x.grad = None
    (m(x) * torch.arange(12.0).view(6, 1, 2)).sum().backward()
    torch.testing.assert_close(gx, x.grad)


@pytest.mark.parametrize("decay_input", [False, True])
def test_li_with_one_tau_per_channel(decay_input):
    """A NIR LI node whose τ differs per neuron imports as a per-channel leaky integrator (and back)."""
    tau = np.array([2e-3, 3e-3, 4e-3])
    beta = 1.0 - 1e-3 / tau                                   # Euler, dt = 1 ms
    r = np.ones(3) if decay_input else 1.0 / (1.0 - beta)      # input gain (1 − β)R: 1 − β or 1
    w = np.random.default_rng(0).standard_normal((3, 5))
    graph = nir.NIRGraph.from_list(nir.Affine(weight=w, bias=np.zeros(3)),
                                   nir.LI(tau=tau, r=r, v_leak=np.zeros(3)))
    m = from_nir(graph, dt=1e-3)
    li = m[1]
    assert isinstance(li, ChannelLeakyIntegrator) and li.decay_input == decay_input
    torch.testing.assert_close(li.beta.double(), torch.as_tensor(beta), rtol=1e-6, atol=0)
    x = torch.rand(7, 2, 5)
    with torch.no_grad():
        y = m(x)
        i = torch.as_tensor(w, dtype=torch.float32)
        cur = x @ i.T
    v, want = torch.zeros(2, 3), []
    b = torch.as_tensor(beta, dtype=torch.float32)
    for t in range(7):
        v = b * v + ((1 - b) if decay_input else 1.0) * cur[t]
        want.append(v)
    torch.testing.assert_close(y, torch.stack(want), rtol=1e-5, atol=1e-6)
    back = from_nir(to_nir(m.eval(), x, dt=1e-3))
    with torch.no_grad():
        torch.testing.assert_close(back(x), y, rtol=1e-5, atol=1e-6)


def test_li_per_channel_over_spatial_dims_and_per_neuron_error():
    tau = np.broadcast_to(np.array([2e-3, 5e-3]).reshape(2, 1, 1), (2, 3, 3)).copy()
    li = from_nir(nir.NIRGraph.from_list(nir.LI(tau=tau, r=np.ones((2, 3, 3)), v_leak=np.zeros((2, 3, 3)))),
                  dt=1e-3, discretization="exact")
    li = li[0] if isinstance(li, nn.Sequential) else li
    assert isinstance(li, ChannelLeakyIntegrator) and tuple(li.beta.shape) == (2, 1, 1)
    x = torch.ones(4, 1, 2, 3, 3)
    y = li(x)
    torch.testing.assert_close(y[:, 0, 1], y[:, 0, 1, :1, :1].expand(4, 3, 3))
    beta = torch.exp(-torch.tensor([1 / 2, 1 / 5]))             # exact: β = exp(−dt/τ); r = 1: g = 1 − β
    want = 1 - beta.view(1, 2) ** torch.arange(1, 5.0).view(4, 1)  # constant input 1 from rest
    torch.testing.assert_close(y[:, 0, :, 2, 1], want)
    tau[0, 1, 1] = 9e-3
    with pytest.raises(ValueError, match="varies within a channel"):
        from_nir(nir.NIRGraph.from_list(nir.LI(tau=tau, r=np.ones((2, 3, 3)), v_leak=np.zeros((2, 3, 3)))), dt=1e-3)
