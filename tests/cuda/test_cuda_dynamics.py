"""The scalar dynamics (snn/cuda/dynamics.py), plain Python and @njit-compiled, against
snn.surrogate and snn.neurons.functional; and the CUDA C twin's constants (csrc/neuron.cuh)."""
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snn.cuda import dynamics as dyn
from snn.cuda.cupy_gpu import SOURCE_DIR
from snn.neurons.functional import charge, reset
from snn.surrogate import SURROGATES

numba = pytest.importorskip("numba")

KIND_FNS = {dyn.ATAN: dyn.atan_grad, dyn.SIGMOID: dyn.sigmoid_grad, dyn.FAST_SIGMOID: dyn.fast_sigmoid_grad,
            dyn.TRIANGLE: dyn.triangle_grad, dyn.GAUSSIAN: dyn.gaussian_grad, dyn.ERFC: dyn.erfc_grad}


@numba.njit(cache=True)
def _jit_grad(kind, z, a, b):
    out = np.empty_like(z)
    for i in range(z.size):
        out[i] = dyn.surrogate_grad(kind, z[i], a, b)
    return out


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(sorted(dyn.SURROGATE_KINDS)), alpha=st.floats(0.1, 10.0),
       zs=st.lists(st.floats(-5.0, 5.0), min_size=1, max_size=8))
def test_surrogate_grad_matches_snn_surrogate(name, alpha, zs):
    kind = dyn.SURROGATE_KINDS[name]
    a, b = dyn.surrogate_coefficients(kind, alpha)
    z = np.array(zs, dtype=np.float64)
    expected = SURROGATES[name](alpha).grad(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(_jit_grad(kind, z, a, b), expected, rtol=1e-12, atol=1e-14)
    z32 = z.astype(np.float32)
    got32 = _jit_grad(kind, z32, np.float32(a), np.float32(b))
    assert got32.dtype == np.float32  # float32 in, float32 arithmetic (no float64 promotion)
    np.testing.assert_allclose(got32, expected, rtol=2e-5, atol=1e-6)
    # the same functions as plain Python on float32 scalars (how the CUDA simulator runs them)
    py = [KIND_FNS[kind](v, np.float32(a), np.float32(b)) for v in z32]
    np.testing.assert_allclose(py, expected, rtol=2e-5, atol=1e-6)


def test_every_registered_surrogate_has_a_kind():
    assert set(dyn.SURROGATE_KINDS) == set(SURROGATES) - {"superspike"}
    with pytest.raises(ValueError, match="unknown surrogate kind"):
        dyn.surrogate_coefficients(99, 1.0)


@numba.njit(cache=True)
def _jit_step(v, x, beta, omb, mode, theta, v_reset, hard):
    h = np.empty_like(v)
    out = np.empty_like(v)
    for i in range(v.size):
        h[i] = dyn.charge(v[i], x[i], beta, omb, mode)
        out[i] = dyn.reset(h[i], dyn.spike(h[i], theta), theta, v_reset, hard)
    return h, out


@pytest.mark.parametrize("mode", ["fma", "mul_add", "decay_input"])
@pytest.mark.parametrize("v_reset", [None, 0.0, -0.3])
def test_charge_and_reset_are_bitwise_the_reference(mode, v_reset):
    g = torch.Generator().manual_seed(0)
    v, x = torch.randn(10_000, generator=g), torch.randn(10_000, generator=g)
    beta_t = torch.tensor(0.8187)
    beta = {"fma": beta_t, "mul_add": 0.8187, "decay_input": beta_t}[mode]
    m = {"fma": dyn.CHARGE_FMA, "mul_add": dyn.CHARGE_MUL_ADD, "decay_input": dyn.CHARGE_DECAY_INPUT}[mode]
    f = np.float32
    h, out = _jit_step(v.numpy(), x.numpy(), f(0.8187), f(1.0 - beta_t.item()) if mode != "mul_add" else f(1 - 0.8187),
                       m, f(0.5), f(v_reset or 0.0), f(v_reset is not None))
    h_ref = charge(v, x, beta, mode == "decay_input")
    s_ref = (h_ref >= 0.5).float()
    assert torch.equal(torch.from_numpy(h), h_ref)
    assert torch.equal(torch.from_numpy(out), reset(h_ref, s_ref, 0.5, v_reset, False))


@numba.njit(cache=True)
def _jit_backward_step(gs, gv, h, sg, theta, v_reset, hard, keep):
    return dyn.backward_step(gs, gv, h, sg, theta, v_reset, hard, keep)


@pytest.mark.parametrize("hard", [0.0, 1.0])
@pytest.mark.parametrize("keep", [0.0, 1.0])
def test_backward_step_matches_autograd_of_one_reference_step(hard, keep):
    sg = SURROGATES["sigmoid"](3.0)
    kind = dyn.SURROGATE_KINDS["sigmoid"]
    a, b = dyn.surrogate_coefficients(kind, 3.0)
    for hv in (0.2, 0.9, 1.05, 1.7):
        h = torch.tensor(hv, dtype=torch.float64, requires_grad=True)
        th = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
        s = sg(h - th)
        v = reset(h, s, th, -0.2 if hard else None, keep == 0.0)
        gs, gv = 0.7, -1.3
        dh, dth = torch.autograd.grad(gs * s + gv * v, [h, th])
        gh, gth = _jit_backward_step(gs, gv, hv, float(sg.grad(h.detach() - 1.0)), 1.0, -0.2, hard, keep)
        assert gh == pytest.approx(dh.item(), rel=1e-12, abs=1e-14)
        assert gth == pytest.approx(dth.item(), rel=1e-12, abs=1e-14)


def test_cuda_header_uses_the_same_ids():
    src = (SOURCE_DIR / "neuron.cuh").read_text()
    for name, kind in dyn.SURROGATE_KINDS.items():
        assert re.search(rf"\b{name.upper()} = {kind}\b", src), name
    for name in ("CHARGE_FMA", "CHARGE_MUL_ADD", "CHARGE_DECAY_INPUT"):
        assert re.search(rf"\b{name} = {getattr(dyn, name)}\b", src), name
    assert math.isclose(dyn.surrogate_coefficients(dyn.ATAN, 2.0)[1], math.pi)
