"""Register-blocked FIR primitives of the CPU delay kernels against a NumPy loop."""
import numpy as np
import pytest

from snn.delays.fir_cpu import LANES, MAX_G, TB, fir_accumulate


def reference(a, x, k, nsteps, w):
    """a[j] += Σ_u k[u] · x[w − 1 + j − u], rows of LANES, in float64."""
    out = a.reshape(-1, LANES)[:nsteps].astype(np.float64)
    X = x.reshape(-1, LANES).astype(np.float64)
    for j in range(nsteps):
        for u in range(w):
            out[j] += float(k[u]) * X[w - 1 + j - u]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("w", list(range(1, 2 * MAX_G + 2)))
def test_fir_accumulate_matches_loop(w, dtype):
    """Every group size 1 … 8, and windows of two and three groups; whole register blocks, a
    ragged tail and fewer steps than one block; the rows around the written range untouched."""
    rng = np.random.default_rng(w)
    for nsteps in (0, 1, TB - 1, TB, TB + 1, 3 * TB + 5):
        a = rng.standard_normal((nsteps + 2) * LANES).astype(dtype)
        x = rng.standard_normal((nsteps + w) * LANES).astype(dtype)
        k = rng.standard_normal(w).astype(dtype)
        want = reference(a, x, k, nsteps, w)
        got = a.copy()
        fir_accumulate(got, x, k, nsteps, w)
        tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got.reshape(-1, LANES)[:nsteps], want, **tol)
        np.testing.assert_array_equal(got[nsteps * LANES:], a[nsteps * LANES:])  # past the last step
