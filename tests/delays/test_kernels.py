"""Fused delay kernels (backend "numba" on CPU) against the dense conv1d reference."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from snn.delays import Taps, delay_conv, dense_delay_conv, taps_to_dense
from snn.delays.autograd import fused_delay_conv
from snn.delays.backends import CPU_LAUNCHER
from snn.delays import cpu
from snn.delays.cpu import CpuDelayLauncher

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-12)}


def random_taps(O, I, W, D, dtype, g, zeros=False):
    v = torch.randn(O, I, W, generator=g, dtype=dtype)
    if zeros:  # truncated windows have exact zeros, which the kernel skips
        v = v * (torch.rand(O, I, W, generator=g, dtype=dtype) > 0.4)
    start = torch.randint(0, D - W + 2, (O, I), generator=g)
    return Taps(v, start, D)


def explicit_loops(x, taps, history=None):
    """y[t, b, o] = Σ_i Σ_u v[o, i, u] · x̃[t − start − u, b, i], written as plain loops."""
    v, start, D = taps.values, taps.start, taps.max_delay
    T, B, I = x.shape
    hist = history if history is not None else x.new_zeros(D, B, I)
    full = torch.cat([hist, x], 0)
    y = x.new_zeros(T, B, v.shape[0])
    for o in range(v.shape[0]):
        for i in range(I):
            for u in range(v.shape[2]):
                d = int(start[o, i]) + u
                y[:, :, o] += v[o, i, u] * full[D - d:D - d + T, :, i]
    return y


def run_both(x, taps, history, gy):
    outs = []
    for backend in ("torch", "numba"):
        xx = x.clone().requires_grad_()
        hh = None if history is None else history.clone().requires_grad_()
        vv = taps.values.clone().requires_grad_()
        y = delay_conv(xx, Taps(vv, taps.start, taps.max_delay), hh, backend=backend)
        grads = torch.autograd.grad(y, [xx, vv] + ([hh] if hh is not None else []), gy)
        outs.append((y.detach(), grads))
    return outs


def test_reference_is_the_delay_sum():
    g = torch.Generator().manual_seed(0)
    taps = random_taps(3, 4, 2, 5, torch.float64, g)
    x = torch.randn(9, 2, 4, generator=g, dtype=torch.float64)
    h = torch.randn(5, 2, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(dense_delay_conv(x, taps), explicit_loops(x, taps))
    torch.testing.assert_close(dense_delay_conv(x, taps, h), explicit_loops(x, taps, h))


@settings(max_examples=15, deadline=None)
@given(T=st.integers(1, 13), B=st.sampled_from([1, 3, 16, 21, 35]), I=st.integers(1, 9), O=st.integers(1, 11),
       D=st.integers(0, 9), wfrac=st.floats(0, 1), hist=st.booleans(), zeros=st.booleans(),
       dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**16))
def test_fused_matches_dense_reference(T, B, I, O, D, wfrac, hist, zeros, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    W = 1 + int(wfrac * D)
    taps = random_taps(O, I, W, D, dtype, g, zeros)
    x = torch.randn(T, B, I, generator=g, dtype=dtype)
    history = torch.randn(D, B, I, generator=g, dtype=dtype) if hist else None
    gy = torch.randn(T, B, O, generator=g, dtype=dtype)
    (y0, g0), (y1, g1) = run_both(x, taps, history, gy)
    torch.testing.assert_close(y1, y0, **TOL[dtype])
    for a, b in zip(g1[:1] + g1[2:], g0[:1] + g0[2:]):  # input and history gradients
        torch.testing.assert_close(a, b, **TOL[dtype])
    # the tap-value gradient sums T·B products of unit-scale terms: float32 rounding grows with √(T·B)
    tol = dict(TOL[dtype], atol=TOL[dtype]["atol"] * max(1.0, (T * B) ** 0.5))
    torch.testing.assert_close(g1[1], g0[1], **tol)


def test_spike_inputs_at_shd_like_scale():
    """Binary inputs, B not a multiple of the batch block, a wide and a narrow window."""
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(40, 37, 24, generator=g) < 0.1).float()
    gy = torch.randn(40, 37, 30, generator=g)
    for W in (1, 5):
        taps = random_taps(30, 24, W, 25, torch.float32, g)
        (y0, g0), (y1, g1) = run_both(x, taps, None, gy)
        torch.testing.assert_close(y1, y0, rtol=1e-4, atol=1e-4)
        for a, b in zip(g1, g0):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-4)


@pytest.mark.parametrize("W", [1, 4])
def test_parallel_job_split_matches_reference(monkeypatch, W):
    """The prange drivers with jobs much smaller than the problem: several row blocks with a
    ragged last one, time chunks of two timesteps (a ragged last one), a ragged last batch block."""
    import snn.delays.cpu as cpu
    for name, value in dict(SERIAL_BELOW=0, RB=3, RB_SINGLE_TAP=5, SB=2, SB_SINGLE_TAP=3, LC=32,
                            LC_SINGLE_TAP=48).items():
        monkeypatch.setattr(cpu, name, value)
    g = torch.Generator().manual_seed(4)
    x = (torch.rand(11, 37, 13, generator=g) < 0.3).float()
    gy = torch.randn(11, 37, 17, generator=g)
    taps = random_taps(17, 13, W, 6, torch.float32, g)
    (y0, g0), (y1, g1) = run_both(x, taps, torch.randn(6, 37, 13, generator=g), gy)
    torch.testing.assert_close(y1, y0, rtol=1e-4, atol=1e-4)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-4)


@pytest.mark.parametrize("fir_min", [1, 99])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fir_and_tap_list_paths_match_reference(monkeypatch, fir_min, dtype):
    """The two ways the accumulate kernel applies a window — register-blocked FIR filters
    (every window, ``FIR_MIN_TAPS = 1``) and the tap-list passes (none, ``99``) — on windows
    with leading, trailing and interior zeros, all-zero synapses, a window of two FIR groups
    (W = 11), register blocks plus a ragged tail (T = 21), history and a partial batch block."""
    monkeypatch.setattr(cpu, "FIR_MIN_TAPS", fir_min)
    g = torch.Generator().manual_seed(6)
    O, I, W, D, T, B = 9, 7, 11, 14, 21, 19
    v = torch.randn(O, I, W, generator=g, dtype=dtype)
    lo = torch.randint(0, 4, (O, I, 1), generator=g)
    hi = torch.randint(W - 4, W, (O, I, 1), generator=g)
    u = torch.arange(W)
    v = v * ((u >= lo) & (u <= hi)) * (torch.rand(O, I, W, generator=g) > 0.15)
    v[3, 2] = 0.0
    taps = Taps(v, torch.randint(0, D - W + 2, (O, I), generator=g), D)
    x = torch.randn(T, B, I, generator=g, dtype=dtype)
    h = torch.randn(D, B, I, generator=g, dtype=dtype)
    (y0, g0), (y1, g1) = run_both(x, taps, h, torch.randn(T, B, O, generator=g, dtype=dtype))
    torch.testing.assert_close(y1, y0, **TOL[dtype])
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, **TOL[dtype])


@pytest.mark.parametrize("make", ["gaussian", "linear"])
def test_inert_zero_taps_keep_weight_and_position_gradients_exact(make):
    """Taps from gaussian_taps/linear_taps are flagged inert_zeros: the fused backward skips
    their window-masked zero taps, and the weight and position gradients must still equal
    the torch reference's — including a synapse whose weight is 0 (all its taps zero, so
    none may be skipped: its weight gradient is not zero)."""
    from snn.delays import gaussian_taps, linear_taps
    g = torch.Generator().manual_seed(5)
    O, I, D = 6, 5, 12
    w0 = torch.randn(O, I, generator=g, dtype=torch.float64)
    w0[2, 3] = 0.0
    d0 = torch.rand(O, I, generator=g, dtype=torch.float64) * D
    x = (torch.rand(30, 3, I, generator=g) < 0.3).double()
    gy = torch.randn(30, 3, O, generator=g, dtype=torch.float64)
    grads = {}
    for backend in ("torch", "numba"):
        w, d = w0.clone().requires_grad_(), d0.clone().requires_grad_()
        taps = gaussian_taps(w, d, 1.0, D) if make == "gaussian" else linear_taps(w, d, D)
        assert taps.inert_zeros and bool((taps.values == 0).any())  # there are masked taps to skip
        delay_conv(x, taps, backend=backend).backward(gy)
        grads[backend] = (w.grad, d.grad)
    assert grads["numba"][0][2, 3] != 0
    for a, b in zip(grads["numba"], grads["torch"]):
        torch.testing.assert_close(a, b, **TOL[torch.float64])


def test_value_gradient_of_zero_taps_is_exact_unless_flagged_inert():
    """With inert_zeros, the zero taps before a synapse's first and after its last non-zero tap
    get no gradient (0); every other entry, interior zeros and all-zero synapses included, is
    the exact gradient."""
    g = torch.Generator().manual_seed(6)
    taps = random_taps(4, 3, 5, 8, torch.float64, g, zeros=True)
    taps.values[0, 0] = torch.tensor([0.0, 1.5, 0.0, -2.0, 0.0], dtype=torch.float64)  # an interior zero
    taps.values[1, 2] = 0.0  # an all-zero synapse
    x = torch.randn(12, 2, 3, generator=g, dtype=torch.float64)
    gy = torch.randn(12, 2, 4, generator=g, dtype=torch.float64)
    outer = torch.zeros_like(taps.values, dtype=torch.bool)
    for o in range(4):
        for i in range(3):
            nz = [u for u in range(5) if taps.values[o, i, u] != 0]
            if nz:
                outer[o, i, :nz[0]] = True
                outer[o, i, nz[-1] + 1:] = True
    got = {}
    for inert in (False, True):
        v = taps.values.clone().requires_grad_()
        delay_conv(x, Taps(v, taps.start, taps.max_delay, inert_zeros=inert), backend="numba").backward(gy)
        got[inert] = v.grad
    v = taps.values.clone().requires_grad_()
    dense_delay_conv(x, Taps(v, taps.start, taps.max_delay)).backward(gy)
    zero = taps.values == 0
    assert bool(outer.any()) and bool((zero & ~outer).any()) and bool((got[False][zero] != 0).all())
    torch.testing.assert_close(got[False], v.grad, **TOL[torch.float64])
    assert bool((got[True][outer] == 0).all())
    torch.testing.assert_close(got[True][~outer], v.grad[~outer], **TOL[torch.float64])


@pytest.mark.parametrize("rows", [3, 7, 64])
@pytest.mark.parametrize("inert", [False, True])
def test_tap_gradient_without_input_gradient_matches_reference(monkeypatch, rows, inert):
    """A first layer (input needs no gradient): the output gradient is converted a group of
    rows at a time (groups of 3, 3, 1; 7; all rows) with a partial batch block and two
    chunks; the tap values are not kept for backward."""
    monkeypatch.setattr(CpuDelayLauncher, "gradient_rows", lambda self, R, L, n: rows)
    g = torch.Generator().manual_seed(8)
    O, I, W, D, T, B = 7, 5, 4, 9, 13, 21
    taps = random_taps(O, I, W, D, torch.float64, g, zeros=True)
    x = (torch.rand(T, B, I, generator=g) < 0.3).double()
    gy = torch.randn(T, B, O, generator=g, dtype=torch.float64)
    v = taps.values.clone().requires_grad_()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = delay_conv(x, Taps(v, taps.start, D, inert_zeros=inert), backend="numba")
    assert not any(t.dtype == v.dtype and t.shape == v.shape for t in saved)
    (got,) = torch.autograd.grad(y, [v], gy)
    ref = v.detach().clone().requires_grad_()
    (want,) = torch.autograd.grad(dense_delay_conv(x, Taps(ref, taps.start, D)), [ref], gy)
    if inert:  # zeros outside each synapse's non-zero window get 0 instead
        from snn.delays.autograd import nonzero_window
        win = nonzero_window(taps.values).long()
        u = torch.arange(W)
        outer = (u < win[..., :1]) | (u >= win[..., 1:])
        assert bool(outer.any()) and bool((got[outer] == 0).all())
        want = want.masked_fill(outer, 0.0)
    torch.testing.assert_close(got, want, **TOL[torch.float64])


def test_nonzero_window_is_first_to_last_nonzero_tap():
    from snn.delays.autograd import nonzero_window
    v = torch.tensor([[[0.0, 2.0, 0.0, 3.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0],
                       [0.0, 0.0, 0.0, 0.0, -1.0], [1.0, 1.0, 1.0, 1.0, 1.0]]])
    for win in (nonzero_window(v), CpuDelayLauncher().window(v)):
        assert win.tolist() == [[[1, 4], [0, 5], [0, 1], [4, 5], [0, 5]]] and win.dtype == torch.int16
    g = torch.Generator().manual_seed(9)
    for dtype in (torch.float32, torch.float64):
        r = random_taps(9, 11, 6, 10, dtype, g, zeros=True).values
        r[2, 3] = r[7, 0] = 0.0  # all-zero synapses
        assert torch.equal(CpuDelayLauncher().window(r), nonzero_window(r))


def test_gradient_rows_bounds_the_buffer_but_keeps_threads_busy(monkeypatch):
    import numba
    la = CpuDelayLauncher()
    monkeypatch.setattr(numba, "get_num_threads", lambda: 1)
    assert la.gradient_rows(256, 1600, 4) == 64              # SHD: 1.6 MB of rows → four groups
    assert la.gradient_rows(512, 1600, 4) == 80              # SSC: 3.3 MB → seven groups (the last 32 rows)
    assert la.gradient_rows(250, 1600, 4) == 64              # 250 rows → 63 → whole 16-row jobs
    assert la.gradient_rows(10, 1600, 4) == 32               # small layers: one group (capped by the caller)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 16)
    assert la.gradient_rows(256, 1600, 4) == 512             # 16 threads: two 16-row jobs each


def test_fused_gradcheck_float64():
    g = torch.Generator().manual_seed(2)
    taps = random_taps(2, 2, 2, 3, torch.float64, g)
    x = torch.randn(4, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    h = torch.randn(3, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    v = taps.values.clone().requires_grad_()
    fn = lambda x, h, v: fused_delay_conv(CPU_LAUNCHER, x, v, taps.start, 3, h)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, h, v))


def test_never_builds_the_dense_kernel(monkeypatch):
    """The fused path must not densify the taps (that is the point of the kernels)."""
    import snn.delays.functional as fn
    import snn.delays.taps as tp

    def boom(*a, **k):
        raise AssertionError("dense kernel built")
    monkeypatch.setattr(tp, "taps_to_dense", boom)
    monkeypatch.setattr(fn, "taps_to_dense", boom)
    g = torch.Generator().manual_seed(3)
    taps = random_taps(8, 6, 3, 20, torch.float32, g)
    x = torch.randn(10, 4, 6, generator=g, requires_grad=True)
    v = taps.values.requires_grad_()
    delay_conv(x, Taps(v, taps.start, 20), backend="numba").sum().backward()
    assert x.grad is not None and v.grad is not None


def test_taps_to_dense_places_each_tap_at_its_delay():
    v = torch.tensor([[[1.0, 2.0]]])
    dense = taps_to_dense(Taps(v, torch.tensor([[3]]), 6))
    assert dense.tolist() == [[[0, 0, 0, 1.0, 2.0, 0, 0]]]


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_bad_inputs_raise_clear_errors(backend):
    g = torch.Generator().manual_seed(4)
    taps = random_taps(3, 4, 2, 5, torch.float32, g)
    x = torch.randn(6, 2, 4)
    with pytest.raises(ValueError, match=r"x must be a \[T, B, N_in\]"):
        delay_conv(x[0], taps, backend=backend)
    with pytest.raises(ValueError, match="N_in=5"):
        delay_conv(torch.randn(6, 2, 5), taps, backend=backend)
    with pytest.raises(ValueError, match="start must lie in"):
        delay_conv(x, Taps(taps.values, taps.start + 5, 5), backend=backend)
    with pytest.raises(ValueError, match=r"history must be \[max_delay, B, N_in\]"):
        delay_conv(x, taps, torch.zeros(4, 2, 4), backend=backend)
    with pytest.raises(ValueError, match="unknown delay backend 'cuda'.*auto.*numba.*torch"):
        delay_conv(x, taps, backend="cuda")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,cols", [(16, 1600), (256, 800), (3, 5), (1, 1)])
def test_accumulator_buffer_is_zeroed_and_cache_line_aligned(dtype, rows, cols):
    from snn.delays.cpu import zeros_aligned

    for _ in range(4):  # several allocations: Numba's own alignment (32 B) is hit or miss
        a = zeros_aligned(rows, cols, np.empty(1, dtype))
        assert a.shape == (rows, cols) and a.dtype == dtype and a.flags.c_contiguous
        assert a.ctypes.data % 64 == 0
        assert not a.any()


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 9), B=st.integers(1, 40), C=st.integers(1, 7), front=st.integers(0, 4), back=st.integers(0, 3),
       hist=st.booleans(), view=st.sampled_from(["contiguous", "batch-slice", "expanded"]),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_cpu_blocked_layout_equals_the_torch_layout(T, B, C, front, back, hist, view, dtype):
    from snn.delays.layout import to_blocks

    g = torch.Generator().manual_seed(T * 1000 + B * 10 + C)
    if view == "contiguous":
        x = torch.randn(T, B, C, generator=g, dtype=dtype)
    elif view == "batch-slice":
        x = torch.randn(T, B + 3, C, generator=g, dtype=dtype)[:, 2:B + 2]
    else:  # e.g. the output gradient of a sum: stride 0 along batch and channels
        x = torch.randn(T, 1, 1, generator=g, dtype=dtype).expand(T, B, C)
    h = torch.randn(front, B, C, generator=g, dtype=torch.float32) if hist and front else None
    L = CpuDelayLauncher()
    Bc = L.block(B)
    want = to_blocks(x, Bc, front, back, h)
    saved = cpu.FILL_SERIAL_BELOW
    try:
        for cpu.FILL_SERIAL_BELOW in (0, 1 << 62):  # the parallel and the serial build
            got = L.to_blocks(x, Bc, front, back, h)
            assert got.dtype == want.dtype and torch.equal(got, want)
    finally:
        cpu.FILL_SERIAL_BELOW = saved
    # a previous result is overwritten in place (every element, padding included) ...
    stale = torch.full_like(got, float("nan"))
    for fn in (to_blocks, L.to_blocks):
        again = fn(x, Bc, front, back, h, out=stale)
        assert again.data_ptr() == stale.data_ptr() and torch.equal(again, want)
        stale.fill_(float("nan"))
    # ... but never one of another shape or dtype
    for other in (torch.empty(1, 1, 1, dtype=dtype), torch.empty_like(got, dtype=torch.float16)):
        assert torch.equal(L.to_blocks(x, Bc, front, back, h, out=other), want)


def test_delay_conv_compiles_to_one_graph():
    # delay_conv's range check of the starts reads their values: skipped while compiling
    from snn.delays import linear_taps
    g = torch.Generator().manual_seed(2)
    w, d = torch.randn(3, 4, generator=g), torch.rand(3, 4, generator=g) * 3
    x = torch.rand(6, 2, 4, generator=g)
    fn = lambda x: delay_conv(x, linear_taps(w, d, 4), backend="numba")  # noqa: E731
    explained = torch._dynamo.explain(fn)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    y = torch.compile(fn, fullgraph=True, backend="aot_eager")(x)
    torch.testing.assert_close(y, delay_conv(x, linear_taps(w, d, 4), backend="torch"))
