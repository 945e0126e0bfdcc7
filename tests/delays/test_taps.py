"""Per-synapse kernels: Gaussian / linear / integer taps against the formulas of the paper."""
import math

import pytest
import torch

from snn.delays import gaussian_taps, gaussian_width, integer_taps, linear_taps, taps_to_dense


def gaussian_dense_formula(w, d, sigma, D, truncate=None):
    """k(τ) = w g(τ) / (Σ g + 1e-7), g = exp(−(τ−d)²/2σ²) [|τ−d| ≤ truncate σ], τ = 0..D."""
    out = torch.zeros(*w.shape, D + 1, dtype=torch.float64)
    for j in range(w.shape[0]):
        for i in range(w.shape[1]):
            g = [math.exp(-((t - float(d[j, i])) ** 2) / (2 * sigma ** 2))
                 if truncate is None or abs(t - float(d[j, i])) <= truncate * sigma else 0.0 for t in range(D + 1)]
            z = sum(g) + 1e-7
            out[j, i] = torch.tensor([float(w[j, i]) * v / z for v in g])
    return out


@pytest.mark.parametrize("sigma,truncate", [(0.3, 6.0), (0.5, 6.0), (1.0, 4.0), (2.5, 3.0), (4.0, None)])
def test_gaussian_taps_equal_the_formula(sigma, truncate):
    g = torch.Generator().manual_seed(0)
    D = 12
    w = torch.randn(4, 5, generator=g, dtype=torch.float64)
    d = torch.rand(4, 5, generator=g, dtype=torch.float64) * D
    d[0, 0], d[0, 1], d[1, 0] = 0.0, float(D), 0.4  # the range ends
    taps = gaussian_taps(w, d, sigma, D, truncate)
    assert taps.width == gaussian_width(sigma, D, truncate)
    assert taps.width == (D + 1 if truncate is None else min(D + 1, math.floor(2 * truncate * sigma) + 1))
    assert int(taps.start.min()) >= 0 and int(taps.start.max()) <= D - taps.width + 1
    torch.testing.assert_close(taps_to_dense(taps), gaussian_dense_formula(w, d, sigma, D, truncate))


def test_default_truncation_equals_the_full_gaussian_to_float32_precision():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(6, 7, generator=g, dtype=torch.float64)
    d = torch.rand(6, 7, generator=g, dtype=torch.float64) * 25
    for sigma in (0.5, 1.0, 2.0):
        a = taps_to_dense(gaussian_taps(w, d, sigma, 25, 6.0))
        b = taps_to_dense(gaussian_taps(w, d, sigma, 25, None))
        assert float((a - b).abs().max()) < 1e-7 * float(w.abs().max())
    assert gaussian_taps(w, d, 1.0, 25, 6.0).width == 13  # ≤ 13 of the 26 taps carry weight
    assert gaussian_taps(w, d, 1.0, 25).width == 7  # default truncate = 3


@pytest.mark.parametrize("kind,truncate", [("gaussian", None), ("gaussian", 3.0), ("gaussian", 6.0),
                                           ("linear", None)])
def test_weight_and_position_gradients_are_exact(kind, truncate):
    g = torch.Generator().manual_seed(5)
    w = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    d = (torch.rand(3, 4, generator=g, dtype=torch.float64) * 8).requires_grad_()
    c = torch.randn(3, 4, 9, generator=g, dtype=torch.float64)

    def f(w, d):
        taps = gaussian_taps(w, d, 0.8, 8, truncate) if kind == "gaussian" else linear_taps(w, d, 8)
        return (taps_to_dense(taps) * c).sum()
    assert torch.autograd.gradcheck(f, (w, d))


def test_linear_taps_split_the_weight_between_neighbours():
    taps = linear_taps(torch.tensor([[2.0, 1.0]]), torch.tensor([[2.25, 4.0]]), 6)
    dense = taps_to_dense(taps)
    torch.testing.assert_close(dense[0, 0], torch.tensor([0, 0, 1.5, 0.5, 0, 0, 0]) / (1 + 1e-7))
    torch.testing.assert_close(dense[0, 1], torch.tensor([0, 0, 0, 0, 1.0, 0, 0]) / (1 + 1e-7))


def test_integer_taps_round_and_clamp():
    taps = integer_taps(torch.ones(1, 4), torch.tensor([[0.4, 2.6, -3.0, 9.0]]), 5)
    assert taps.width == 1 and taps.start.tolist() == [[0, 3, 0, 5]]


def test_bad_arguments():
    w, d = torch.zeros(2, 3), torch.zeros(2, 3)
    with pytest.raises(ValueError, match="weight and delay must both be"):
        gaussian_taps(w, d[0], 1.0, 4)
    with pytest.raises(ValueError, match="sigma must be a positive"):
        gaussian_taps(w, d, 0.0, 4)
    with pytest.raises(ValueError, match="truncate must be > 0"):
        gaussian_taps(w, d, 1.0, 4, truncate=-1)
    with pytest.raises(ValueError, match="max_delay must be an int"):
        linear_taps(w, d, -1)


@pytest.mark.parametrize("kind,truncate", [("gaussian", 3.0), ("gaussian", None), ("linear", None)])
def test_numba_tap_values_equal_the_torch_operations(kind, truncate, monkeypatch):
    import snn.delays.taps as tp
    g = torch.Generator().manual_seed(6)
    w = torch.randn(64, 48, generator=g)
    d = torch.rand(64, 48, generator=g) * 20
    c = torch.randn(64, 48, 21, generator=g)
    out = []
    for threshold in (0, 1 << 62):  # numba pass, then the torch operations
        monkeypatch.setattr(tp, "NUMBA_TAPS_ABOVE", threshold)
        ww, dd = w.clone().requires_grad_(), d.clone().requires_grad_()
        taps = gaussian_taps(ww, dd, 0.9, 20, truncate) if kind == "gaussian" else linear_taps(ww, dd, 20)
        (taps_to_dense(taps) * c).sum().backward()
        out.append((taps.values.detach(), ww.grad, dd.grad))
    for a, b in zip(*out):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
