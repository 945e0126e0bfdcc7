"""Per-synapse kernels: Gaussian / linear / integer taps against the formulas of the paper."""
import math

import pytest
import torch

from snn.delays import gaussian_taps, gaussian_width, integer_taps, linear_taps, taps_to_dense


def gaussian_dense_formula(w, d, sigma, D, truncate=None, dcls=False):
    """k(τ) = w g(τ) / (Σ g + 1e-7 · max g), g = exp(−(τ−d)²/2σ²) [|τ−d| ≤ truncate σ or
    |τ−d| < 1], τ = 0..D; ``dcls=True``: DCLS's Σ g + 1e-7 and truncation |τ−d| ≤ truncate σ."""
    out = torch.zeros(*w.shape, D + 1, dtype=torch.float64)
    for j in range(w.shape[0]):
        for i in range(w.shape[1]):
            dd = float(d[j, i])
            g = [math.exp(-((t - dd) ** 2) / (2 * sigma ** 2))
                 if truncate is None or abs(t - dd) <= truncate * sigma or (abs(t - dd) < 1 and not dcls) else 0.0
                 for t in range(D + 1)]
            z = sum(g) + 1e-7 * (1.0 if dcls else max(g))
            out[j, i] = torch.tensor([float(w[j, i]) * v / z for v in g])
    return out


@pytest.mark.parametrize("sigma,truncate", [(0.3, 6.0), (0.5, 6.0), (1.0, 4.0), (2.5, 3.0), (4.0, None),
                                            (0.1, 3.0), (0.03, 3.0), (0.1, None), (0.03, None), (0.2, 2.0)])
def test_gaussian_taps_equal_the_formula(sigma, truncate):
    g = torch.Generator().manual_seed(0)
    D = 12
    w = torch.randn(4, 5, generator=g, dtype=torch.float64)
    d = torch.rand(4, 5, generator=g, dtype=torch.float64) * D
    d[0, 0], d[0, 1], d[1, 0], d[1, 1] = 0.0, float(D), 0.4, 4.0  # the range ends, an integer
    d[1, 2], d[1, 3], d[2, 0] = 11.6, 6.5, 8.5 - 2 * sigma ** 2  # next to the top end, midpoints
    taps = gaussian_taps(w, d, sigma, D, truncate)
    assert taps.width == gaussian_width(sigma, D, truncate)
    assert taps.width == (D + 1 if truncate is None else min(D + 1, max(2, math.floor(2 * truncate * sigma) + 1)))
    assert int(taps.start.min()) >= 0 and int(taps.start.max()) <= D - taps.width + 1
    torch.testing.assert_close(taps_to_dense(taps), gaussian_dense_formula(w, d, sigma, D, truncate))


@pytest.mark.parametrize("sigma,truncate", [(0.5, None), (0.5, 6.0), (1.0, None), (2.5, 6.0), (6.0, None)])
def test_gaussian_taps_equal_dcls_normalisation_at_usual_sigma(sigma, truncate):
    """For σ ≥ 0.5 the guard ε·max g instead of DCLS's ε changes a kernel by a relative < 1e-6."""
    g = torch.Generator().manual_seed(8)
    D = 20
    w = torch.randn(5, 6, generator=g, dtype=torch.float64)
    d = torch.rand(5, 6, generator=g, dtype=torch.float64) * D
    k = taps_to_dense(gaussian_taps(w, d, sigma, D, truncate))
    ref = gaussian_dense_formula(w, d, sigma, D, truncate, dcls=True)
    torch.testing.assert_close(k, ref, rtol=1e-6, atol=1e-12)


def _nearest_integer_kernel(w, d, D):
    return taps_to_dense(integer_taps(w, d, D))


@pytest.mark.parametrize("numba", [False, True])
@pytest.mark.parametrize("truncate", [3.0, None])
@pytest.mark.parametrize("sigma", [0.1, 0.03, 0.01])
def test_small_sigma_tends_to_the_nearest_integer_delay(sigma, truncate, numba, monkeypatch):
    """σ → 0: every synapse keeps its weight at its nearest integer delay (never an all-zero
    kernel, never a kernel swallowed by ε), on the torch and the Numba tap construction."""
    import snn.delays.taps as tp
    monkeypatch.setattr(tp, "NUMBA_TAPS_ABOVE", 0 if numba else 1 << 62)
    g = torch.Generator().manual_seed(9)
    D = 10
    frac = torch.tensor([0.0, 0.05, 0.2, 0.3, 0.35, 0.65, 0.7, 0.8, 0.95])
    d = (torch.randint(0, D, (7, 9), generator=g) + frac).clamp(0, D)
    d[0, 0], d[0, 1], d[0, 2] = 4.3, 0.0, float(D)
    w = (torch.randn(7, 9, generator=g)).requires_grad_()
    c = torch.randn(7, 9, D + 1, generator=g)
    taps = gaussian_taps(w, d, sigma, D, truncate)
    k = taps_to_dense(taps)
    want = _nearest_integer_kernel(w.detach(), d, D)
    torch.testing.assert_close(k.detach(), want, rtol=1e-5, atol=1e-5)
    assert bool((k.detach().abs().sum(-1) > 0).all())
    (k * c).sum().backward()
    # the weight gradient of the nearest-integer delay: c at round(d), never 0
    torch.testing.assert_close(w.grad, c.gather(-1, d.round().long().unsqueeze(-1)).squeeze(-1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("numba", [False, True])
@pytest.mark.parametrize("sigma", [0.1, 0.03, 0.01])
def test_small_sigma_position_gradients_are_exact(sigma, numba, monkeypatch):
    """Near a midpoint the two taps around d share the weight even at σ = 0.01: the position
    gradient is non-zero, finite and exact (finite differences at a step ≪ σ²)."""
    import snn.delays.taps as tp
    monkeypatch.setattr(tp, "NUMBA_TAPS_ABOVE", 0 if numba else 1 << 62)
    g = torch.Generator().manual_seed(10)
    w = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    offs = torch.tensor([[-2.0, -0.5, 0.7], [1.5, 0.2, 3.0]], dtype=torch.float64) * sigma ** 2
    d = (torch.tensor([[2.5, 4.5, 7.5], [1.5, 8.5, 5.5]], dtype=torch.float64) + offs).requires_grad_()
    c = torch.randn(2, 3, 11, generator=g, dtype=torch.float64)

    def f(w, d):
        return (taps_to_dense(gaussian_taps(w, d, sigma, 10, 3.0)) * c).sum()
    gw, gd = torch.autograd.grad(f(w, d), (w, d))
    assert bool(gd.isfinite().all()) and bool((gd != 0).all()) and bool((gw != 0).all())
    assert torch.autograd.gradcheck(f, (w, d), eps=1e-4 * sigma ** 2, atol=1e-5, rtol=1e-4)


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


@pytest.mark.parametrize("kind,truncate,sigma", [("gaussian", None, 0.8), ("gaussian", 3.0, 0.8),
                                                 ("gaussian", 6.0, 0.8), ("gaussian", 3.0, 0.25),
                                                 ("gaussian", None, 0.25), ("linear", None, None)])
def test_weight_and_position_gradients_are_exact(kind, truncate, sigma):
    g = torch.Generator().manual_seed(5)
    w = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    d = (torch.rand(3, 4, generator=g, dtype=torch.float64) * 8).requires_grad_()
    c = torch.randn(3, 4, 9, generator=g, dtype=torch.float64)

    def f(w, d):
        taps = gaussian_taps(w, d, sigma, 8, truncate) if kind == "gaussian" else linear_taps(w, d, 8)
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


@pytest.mark.parametrize("kind,truncate,sigma", [("gaussian", 3.0, 0.9), ("gaussian", None, 0.9),
                                                 ("gaussian", 3.0, 0.2), ("gaussian", 3.0, 0.05),
                                                 ("gaussian", None, 0.05), ("linear", None, None)])
def test_numba_tap_values_equal_the_torch_operations(kind, truncate, sigma, monkeypatch):
    import snn.delays.taps as tp
    g = torch.Generator().manual_seed(6)
    w = torch.randn(64, 48, generator=g)
    d = torch.rand(64, 48, generator=g) * 20
    c = torch.randn(64, 48, 21, generator=g)
    out = []
    for threshold in (0, 1 << 62):  # numba pass, then the torch operations
        monkeypatch.setattr(tp, "NUMBA_TAPS_ABOVE", threshold)
        ww, dd = w.clone().requires_grad_(), d.clone().requires_grad_()
        taps = gaussian_taps(ww, dd, sigma, 20, truncate) if kind == "gaussian" else linear_taps(ww, dd, 20)
        (taps_to_dense(taps) * c).sum().backward()
        out.append((taps.values.detach(), ww.grad, dd.grad))
    for a, b in zip(*out):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
