"""Latency (time-to-first-spike) coding: one spike, ordering, thresholds, hand-computed times."""
import math

import pytest
import torch

from snn.encoders import LatencyEncoder, latency, latency_times

INF = math.inf
CONFIGS = [
    dict(method="linear"),
    dict(method="linear", normalize=True, threshold=0.2),
    dict(method="log", tau=3.0, threshold=0.05),
    dict(method="log", normalize=True, threshold=0.1, epsilon=0.02),
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_at_most_one_spike_and_consistent_with_times(cfg):
    x = torch.rand(16, 40, generator=torch.Generator().manual_seed(0))
    T = 12
    s = latency(x, T, **cfg)
    assert s.shape == (T, 16, 40) and s.dtype == torch.float32
    assert torch.all((s == 0) | (s == 1))
    count = s.sum(0)
    assert torch.all(count <= 1)
    t = latency_times(x, T, **cfg)
    assert torch.equal(count == 1, torch.isfinite(t))
    fired = torch.isfinite(t)
    assert torch.equal(s.argmax(0)[fired].float(), t[fired])


@pytest.mark.parametrize("cfg", CONFIGS)
def test_larger_inputs_fire_no_later(cfg):
    x = torch.linspace(0, 1, 201)
    t = latency_times(x, 20, **cfg)
    assert torch.all(t[1:] <= t[:-1])  # inf (silent) only at the small end
    assert t[-1] == 0 or cfg.get("method") == "log" and not cfg.get("normalize")


@pytest.mark.parametrize("cfg", CONFIGS)
def test_below_threshold_never_fires(cfg):
    thr = cfg.get("threshold", 0.01)
    x = torch.tensor([0.0, thr * 0.5, thr * 0.999])
    assert latency(x, 10, **cfg).sum() == 0


def test_linear_hand_computed():
    # t = floor((1 - x) * (T - 1) + 0.5), T = 11; x = 0.75 -> 2.5 -> 3 (half up), 0.26 -> 7.4 -> 7
    x = torch.tensor([1.0, 0.75, 0.5, 0.26, 0.01, 0.005])
    expected = torch.tensor([0.0, 3.0, 5.0, 7.0, 10.0, INF])
    assert torch.equal(latency_times(x, 11), expected)


def test_linear_normalized_hand_computed():
    # t = (1 - x) * (T - 1) / (1 - threshold): threshold 0.2 spans the window
    x = torch.tensor([1.0, 0.6, 0.2, 0.19])
    assert torch.equal(latency_times(x, 11, threshold=0.2, normalize=True), torch.tensor([0.0, 5.0, 10.0, INF]))


def test_log_hand_computed():
    # t = tau * ln(x / (x - thr)), tau = 4, thr = 0.2, T = 10
    x = torch.tensor([1.0, 0.5, 0.25, 0.21, 0.2])
    # 4 ln 1.25 = 0.89 -> 1; 4 ln(5/3) = 2.04 -> 2; 4 ln 5 = 6.44 -> 6; 4 ln 21 = 12.2 >= T -> none
    expected = torch.tensor([1.0, 2.0, 6.0, INF, INF])
    assert torch.equal(latency_times(x, 10, method="log", tau=4.0, threshold=0.2), expected)


def test_log_normalized_hand_computed():
    # L(x) = ln(x / (x - 0.2)); x = 1 -> 0, x = 0.25 (= thr + eps) -> T - 1,
    # x = 0.5: 10 * (ln(5/3) - ln 1.25) / (ln 5 - ln 1.25) = 2.075 -> 2; x = 0.22 -> 15.8 -> none
    x = torch.tensor([1.0, 0.5, 0.25, 0.22])
    t = latency_times(x, 11, method="log", threshold=0.2, normalize=True, epsilon=0.05)
    assert torch.equal(t, torch.tensor([0.0, 2.0, 10.0, INF]))


def test_spike_positions_in_train():
    s = latency(torch.tensor([[1.0, 0.5, 0.0]]), 3)
    expected = torch.zeros(3, 1, 3)
    expected[0, 0, 0] = 1
    expected[1, 0, 1] = 1
    assert torch.equal(s, expected)


def test_module_matches_function():
    x = torch.rand(5, 7)
    enc = LatencyEncoder(T=9, method="log", threshold=0.1, normalize=True)
    assert torch.equal(enc(x), latency(x, 9, method="log", threshold=0.1, normalize=True))
    assert "method='log'" in repr(enc)


def test_errors():
    with pytest.raises(ValueError, match=r"x.*\[0, 1\].*1\.5"):
        latency(torch.tensor([0.2, 1.5]), 5)
    with pytest.raises(ValueError, match="method"):
        latency(torch.rand(3), 5, method="exp")
    with pytest.raises(ValueError, match="threshold"):
        latency(torch.rand(3), 5, method="log", threshold=0.0)
    with pytest.raises(ValueError, match="tau"):
        LatencyEncoder(5, method="log", tau=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        latency(torch.rand(3), 5, method="log", threshold=0.5, normalize=True, epsilon=0.6)
    with pytest.raises(ValueError, match="T"):
        latency(torch.rand(3), 0)
