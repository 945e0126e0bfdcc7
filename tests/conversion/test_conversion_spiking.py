"""The spiking layers of converted networks: IF activations and spiking max pooling."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import snn
from snn.conversion import IFActivation, SpikingMaxPool


def _spike_train(y: torch.Tensor, theta: float) -> bool:
    """Every value is 0 or θ (up to float rounding)."""
    return bool(torch.all((y == 0) | ((y - theta).abs() <= 1e-5 * theta)))


@settings(max_examples=30, deadline=None)
@given(T=st.integers(1, 200), theta=st.floats(0.05, 5.0), seed=st.integers(0, 2**16))
def test_if_activation_rate_code_error_is_at_most_half_a_spike(T, theta, seed):
    """Constant input z: θ·(spikes/T) = θ·floor(Tz/θ + 1/2)/T for z in [0, θ] (Rueckauer et al.
    2017 with v(0) = θ/2), so |θ·rate − clip(z, 0, θ)| ≤ θ/(2T)."""
    z = (torch.rand(64, generator=torch.Generator().manual_seed(seed)) * 1.4 - 0.2) * theta
    act = IFActivation(theta, backend="torch")
    out = act(z.repeat(T, 1), T).reshape(T, -1)
    assert _spike_train(out, theta)
    err = (out.sum(0) / T - z.clamp(0, theta)).abs()
    assert float(err.max()) <= theta / (2 * T) * (1 + 1e-4) + 1e-6


def test_if_activation_channel_wise_and_neuron_parameters():
    th = torch.tensor([0.5, 1.0, 2.0])
    act = IFActivation(th, backend="torch")
    n = act.neuron
    assert isinstance(n, snn.IF) and n.v_reset is None and n.num_channels == 3
    torch.testing.assert_close(n.v_init, th / 2)
    x = torch.ones(4 * 2, 3, 5, 5)  # [T·B, C, H, W] with T = 4, B = 2
    out = act(x, 4).reshape(4, 2, 3, 5, 5)
    for c in range(3):
        assert set(out[:, :, c].unique().tolist()) <= {0.0, float(th[c])}
    # input 1: θ = 0.5 fires every step; θ = 2 (v starts at 1) at steps 1, 3, ...
    assert out[:, 0, 0, 0, 0].tolist() == [0.5] * 4
    assert out[:, 0, 2, 0, 0].tolist() == [2.0, 0.0, 2.0, 0.0]


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), torch.ones(2, 2)])
def test_if_activation_rejects_bad_thresholds(bad):
    with pytest.raises(ValueError, match="threshold"):
        IFActivation(bad)


def test_if_activation_needs_batch_multiple_of_T():
    with pytest.raises(ValueError, match="multiple of T=3"):
        IFActivation(1.0)(torch.ones(4, 2), 3)


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 40), seed=st.integers(0, 2**16), kernel=st.sampled_from([2, 3]),
       stride=st.sampled_from([1, 2]))
def test_spiking_maxpool_count_is_max_of_input_counts(T, seed, kernel, stride):
    g = torch.Generator().manual_seed(seed)
    theta = 0.7
    spikes = (torch.rand(T, 3, 2, 6, 6, generator=g) < torch.rand(1, 3, 2, 6, 6, generator=g)).float() * theta
    pool = SpikingMaxPool(nn.MaxPool2d(kernel, stride))
    y = pool(spikes.reshape(T * 3, 2, 6, 6), T).reshape(T, 3, 2, *pool.pool(spikes[0]).shape[2:])
    assert _spike_train(y, theta)  # still a spike train
    ref = torch.nn.functional.max_pool2d(torch.cumsum(spikes, 0).flatten(0, 1), kernel, stride)
    torch.testing.assert_close(torch.cumsum(y, 0).flatten(0, 1), ref, rtol=0, atol=1e-5)


def test_spiking_maxpool_rate_converges_to_max_rate_not_union():
    T = 400
    # two inputs of rate 1/2, out of phase: a plain max of spikes would fire every step
    a = torch.tensor([1.0, 0.0]).repeat(T // 2)
    b = torch.tensor([0.0, 1.0]).repeat(T // 2)
    x = torch.stack([a, b], -1).reshape(T, 1, 2)  # [T·B, C, L] with B = 1
    y = SpikingMaxPool(nn.MaxPool1d(2))(x, T)
    assert float(y.sum()) / T == pytest.approx(0.5, abs=1 / T)
    assert float(nn.MaxPool1d(2)(x).sum()) / T == 1.0


def test_spiking_maxpool_streams_in_chunks_like_one_run():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(30, 2, 3, 4, 4, generator=g) < 0.4).float() * 1.3
    pool = SpikingMaxPool(nn.AdaptiveMaxPool2d(2))
    whole = pool(x.flatten(0, 1), 30)
    with snn.stateful(pool):
        parts = [pool(c.flatten(0, 1), len(c)) for c in x.split([7, 13, 10])]
    assert torch.equal(torch.cat(parts), whole)
    assert pool.acc is None  # reset on leaving the context
    with snn.stateful(pool):
        pool(x[:2].flatten(0, 1), 2)
        with pytest.raises(ValueError, match="snn.reset"):
            pool(torch.zeros(2 * 5, 3, 4, 4), 2)
