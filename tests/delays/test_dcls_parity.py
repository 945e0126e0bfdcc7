"""Parity with the ``dcls`` package's ``Dcls1d`` (the implementation the paper used), on
identical weights, positions and σ: forward and gradients of input, weights and positions."""
import pytest
import torch
import torch.nn.functional as F

from snn.delays import dcls_sigma, from_dcls1d

modules = pytest.importorskip("DCLS.construct.modules", reason="pip install --no-deps dcls")


def make_dcls(version, K, n_in, n_out, sig, seed):
    torch.manual_seed(seed)
    m = modules.Dcls1d(n_in, n_out, kernel_count=1, dilated_kernel_size=K, bias=True, version=version)
    with torch.no_grad():
        m.P.uniform_(-(K // 2), K // 2)
        m.P[0, 0, 0, 0] = -(K // 2)  # the two ends of the range
        m.P[0, 0, 1, 0] = K // 2
        if m.SIG is not None:
            m.SIG.fill_(sig)
    return m


def compare(m, layer, K, seed, tol):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(5, m.in_channels, 30, generator=g) < 0.3).float()   # DCLS layout [B, N, T]
    gy = torch.randn(5, m.out_channels, 30, generator=g)
    xd = x.clone().requires_grad_()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # Dcls1d's weight gradient varies by ~1e-4 run to run on several threads
    try:
        y_ref = m(F.pad(xd, (K - 1, 0)))                                 # the paper's causal padding
        y_ref.backward(gy)
    finally:
        torch.set_num_threads(threads)
    xs = x.permute(2, 0, 1).clone().requires_grad_()                     # ours: [T, B, N]
    y = layer(xs)
    y.backward(gy.permute(2, 0, 1))
    torch.testing.assert_close(y.permute(1, 2, 0), y_ref.detach(), **tol)
    torch.testing.assert_close(xs.grad.permute(1, 2, 0), xd.grad, **tol)
    torch.testing.assert_close(layer.weight.grad, m.weight.grad[:, :, 0], **tol)
    torch.testing.assert_close(layer.bias.grad, m.bias.grad, **tol)
    # d = const − P, so ∂L/∂d = −∂L/∂P
    torch.testing.assert_close(layer.delay.grad, -m.P.grad[0, :, :, 0], **tol)


@pytest.mark.parametrize("backend", ["torch", "numba"])
@pytest.mark.parametrize("sig,truncate", [(12.0, None), (0.73, None), (0.73, 6.0), (0.0, 6.0), (2.0, 6.0)])
def test_gaussian_matches_dcls1d(backend, sig, truncate):
    K = 25
    m = make_dcls("gauss", K, 14, 9, sig, seed=0)
    layer = from_dcls1d(m, truncate=truncate, backend=backend)
    assert float(layer.sigma) == pytest.approx(dcls_sigma(sig)) and layer.max_delay == K - 1
    compare(m, layer, K, seed=1, tol=dict(rtol=1e-4, atol=1e-5))
    if truncate is not None and sig < 1:
        assert layer.window() <= 2 * 6 * dcls_sigma(sig) + 1 < K  # a narrow window, no dense kernel


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_linear_interpolation_matches_dcls1d_v1(backend):
    K = 9
    m = make_dcls("v1", K, 7, 5, None, seed=2)
    layer = from_dcls1d(m, backend=backend)
    assert layer.interpolation == "linear" and layer.window() == 2
    compare(m, layer, K, seed=3, tol=dict(rtol=1e-5, atol=1e-6))


def test_unsupported_dcls_configurations_raise():
    with pytest.raises(ValueError, match="kernel_count=1"):
        from_dcls1d(modules.Dcls1d(4, 4, kernel_count=2, dilated_kernel_size=5))


@pytest.mark.parametrize("version", ["gauss", "v1"])
def test_even_kernel_size_converts_in_range_and_rejects_the_top_of_dcls_clamp_range(version):
    """K even: P ∈ [−K//2, K//2 − 1] maps to d ∈ [0, K − 1] (parity holds); P = K//2, which
    Dcls1d.clamp_parameters() keeps, would be d = −1 (outside the kernel): a clear ValueError."""
    K = 10
    m = make_dcls(version, K, 6, 4, 0.23 if version == "gauss" else None, seed=4)
    with torch.no_grad():
        m.P.clamp_(-(K // 2), K // 2 - 1)
    layer = from_dcls1d(m, truncate=None, backend="torch")
    assert float(layer.delay.detach().min()) == 0.0 and float(layer.delay.detach().max()) == K - 1
    compare(m, layer, K, seed=5, tol=dict(rtol=1e-4, atol=1e-5))
    with torch.no_grad():
        m.P[0, 2, 3, 0] = K // 2
    m.clamp_parameters()
    assert float(m.P.detach().max()) == K // 2  # DCLS keeps it
    with pytest.raises(ValueError, match=r"positions P must lie in \[-5, 4\].*even K"):
        from_dcls1d(m)
    with torch.no_grad():
        m.P[0, 2, 3, 0] = -(K // 2) - 0.5  # below the range (not clamped): d > K − 1
    with pytest.raises(ValueError, match=r"d in \[0, 9\.5\]"):
        from_dcls1d(m)
