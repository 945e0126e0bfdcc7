"""Register-blocked FIR filter of the CPU delay kernels (:mod:`snn.delays.cpu`).

On the blocked layout (:mod:`snn.delays.layout`, :data:`LANES` = 16 samples per timestep) a
synapse's window of ``w`` consecutive taps is a ``w``-tap FIR filter along a row, and a shift
of one timestep is exactly one vector of 16 float32 lanes. :func:`fir_accumulate` computes
``a[j] += Σ_u k[u] · x[w − 1 + j − u]`` (rows of ``LANES``) :data:`TB` timesteps at a time with
the whole block in registers: ``TB + w − 1`` source vectors are loaded once and reused by all
``TB · w`` multiply-adds, where the tap-list passes of :mod:`snn.delays.cpu` load one source
vector per multiply-add and pass over the accumulator once per eight taps.

Measured on the 2-core AVX-512 sandbox (1 thread, SHD size, B = 128, T = 100, 140 → 256):
the forward kernel goes from 67-72 to 60-62 ms at σ = 1 (7-tap windows) and from 121 to
101-103 ms at σ = 2; the input-gradient kernel from 68 to 60 ms at σ = 1. For windows of
fewer than :data:`snn.delays.cpu.FIR_MIN_TAPS` taps the tap-list passes are as fast or
faster (the per-block accumulator traffic then outweighs the saved loads), and the same
blocking applied to the tap-gradient kernel (``correlate``) was 1.5× slower, so both stay.

The lane count and the tap count are compile-time constants: the loops must be fully
unrolled for LLVM to keep the block in registers and to vectorise over the lanes (with a
runtime lane count it does neither, and the loop runs scalar). Windows are cut into groups of
at most :data:`MAX_G` taps, each dispatched to the build for its exact size.
"""
from __future__ import annotations

from snn.numba_target import prefer_wide_vectors

prefer_wide_vectors()  # before the overloads below create Numba's CPU target (see snn.numba_target)

from numba import njit, types
from numba.extending import overload

__all__ = ["LANES", "TB", "MAX_G", "fir_accumulate"]

LANES = 16  # samples per timestep of the CPU blocked layout (one 512-bit float32 vector)
TB = 8      # timesteps per register block (TB accumulators + TB + w − 1 source vectors + w taps ≤ 32 registers)
MAX_G = 8   # taps per group

_FM = {"reassoc", "contract"}
_OPTS = dict(cache=True, nogil=True, fastmath=_FM, error_model="numpy", boundscheck=False)


def _literal(G) -> int | None:
    return G.literal_value if isinstance(G, types.IntegerLiteral) else None


def _acc_block(a, x, k, G):
    """``a[j·LANES + l] += Σ_{u<G} k[u] · x[(G − 1 + j − u)·LANES + l]`` for ``j < TB``."""


@overload(_acc_block, prefer_literal=True, inline="always", fastmath=_FM)
def _acc_block_impl(a, x, k, G):
    g = _literal(G)
    if g is None:
        return None
    n = LANES

    def impl(a, x, k, G):  # pragma: no cover - compiled
        for l in range(n):
            a0 = a[l]
            a1 = a[n + l]
            a2 = a[2 * n + l]
            a3 = a[3 * n + l]
            a4 = a[4 * n + l]
            a5 = a[5 * n + l]
            a6 = a[6 * n + l]
            a7 = a[7 * n + l]
            for u in range(g):  # unrolled: source vector j − u is loaded once for all its uses
                ku = k[u]
                xb = (g - 1 - u) * n + l
                a0 += ku * x[xb]
                a1 += ku * x[xb + n]
                a2 += ku * x[xb + 2 * n]
                a3 += ku * x[xb + 3 * n]
                a4 += ku * x[xb + 4 * n]
                a5 += ku * x[xb + 5 * n]
                a6 += ku * x[xb + 6 * n]
                a7 += ku * x[xb + 7 * n]
            a[l] = a0
            a[n + l] = a1
            a[2 * n + l] = a2
            a[3 * n + l] = a3
            a[4 * n + l] = a4
            a[5 * n + l] = a5
            a[6 * n + l] = a6
            a[7 * n + l] = a7
    return impl


def _acc_steps(a, x, k, nsteps, G):
    """:func:`_acc_block` over ``nsteps`` timesteps (blocks of TB, then one at a time)."""


@overload(_acc_steps, prefer_literal=True, inline="always", fastmath=_FM)
def _acc_steps_impl(a, x, k, nsteps, G):
    g = _literal(G)
    if g is None:
        return None
    n = LANES

    def impl(a, x, k, nsteps, G):  # pragma: no cover - compiled
        j = 0
        while j + TB <= nsteps:
            _acc_block(a[j * n:(j + TB) * n], x[j * n:(j + TB + g - 1) * n], k, G)
            j += TB
        while j < nsteps:
            aj = a[j * n:(j + 1) * n]
            xj = x[j * n:(j + g) * n]
            for l in range(n):
                s = aj[l]
                for u in range(g):
                    s += k[u] * xj[(g - 1 - u) * n + l]
                aj[l] = s
            j += 1
    return impl


@njit(**_OPTS)
def fir_accumulate(a, x, k, nsteps, w):  # pragma: no cover - compiled
    """``a[j·16 + l] += Σ_{u<w} k[u] · x[(w − 1 + j − u)·16 + l]`` for ``j < nsteps``, ``l < 16``.

    ``a``, ``x``: 1-D float rows (``x`` starts at the source of the last tap, the earliest
    timestep); ``k``: ``w`` tap values; any ``w ≥ 1`` (groups of :data:`MAX_G`).
    """
    g0 = 0
    while g0 < w:
        m = min(MAX_G, w - g0)
        kk = k[g0:g0 + m]
        xs = x[(w - g0 - m) * LANES:]
        if m == 8:
            _acc_steps(a, xs, kk, nsteps, 8)
        elif m == 7:
            _acc_steps(a, xs, kk, nsteps, 7)
        elif m == 6:
            _acc_steps(a, xs, kk, nsteps, 6)
        elif m == 5:
            _acc_steps(a, xs, kk, nsteps, 5)
        elif m == 4:
            _acc_steps(a, xs, kk, nsteps, 4)
        elif m == 3:
            _acc_steps(a, xs, kk, nsteps, 3)
        elif m == 2:
            _acc_steps(a, xs, kk, nsteps, 2)
        else:
            _acc_steps(a, xs, kk, nsteps, 1)
        g0 += m
