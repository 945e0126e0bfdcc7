"""CPU backend ``"numba"`` of the delay synapses: two ``@njit(parallel=True)`` kernels and a layout pass.

Both work on the blocked layout of :mod:`snn.delays.layout` (rows of ``L = T·Bc``
contiguous elements; a delay is a shift along a row) with per-synapse windows of ``W`` taps:

* :func:`accumulate` — ``a[nb, r, c] = Σ_s Σ_u taps[r, s, u] · src[nb, s, base[r, s] + u·ustep + c]``,
  written straight to the time-first output: ``out[c // Bc, b0 + nb·Bc + c % Bc, r] = a[nb, r, c]``.
  Forward (``r`` = output neuron, ``s`` = input, ``ustep = −Bc``) and input gradient
  (``r`` = input, ``s`` = output, ``ustep = +Bc``) are both this kernel.
* :func:`correlate` — ``gtaps[r, s, u] (+)= Σ_nb Σ_{c<L} g[nb, r, goff + c] · src[nb, s, base[r, s] + u·ustep + c]``,
  the gradient of the tap values (added to ``gtaps`` when ``add``, for batch chunks). Given a
  ``window`` (int16 ``[R, S, 2]``), only taps ``window[r, s, 0] ≤ u < window[r, s, 1]`` are
  computed (the others stay 0; see :attr:`snn.delays.taps.Taps.inert_zeros`).

Cost: ``B·T·N_out·N_in·W`` multiply-adds each, against ``B·T·N_out·N_in·(D + 1)`` for a dense
convolution. Work split (``accumulate``): jobs of (batch block, ``RB`` rows, ``LC`` elements of
time) go to threads; inside a job, ``SB`` source rows at a time are streamed through L1 and
every tap of the ``RB`` rows that reads them is applied while they are there, into a
64-byte-aligned accumulator (:func:`zeros_aligned`). Each synapse's window is first trimmed to
its first … last non-zero tap (taps outside a truncated window are exact zeros). A window of
:data:`FIR_MIN_TAPS` taps or more (with ``Bc = 16``) is applied as a register-blocked FIR
filter (:func:`snn.delays.fir_cpu.fir_accumulate`: each source vector loaded once for all its
taps); shorter ones go into a tap list applied up to eight taps per pass over the accumulator.
With one tap per synapse (integer delays) the taps are read straight from ``taps``/``base``,
eight sources at a time.
``correlate`` splits over blocks of ``RB`` rows (each thread owns its rows of ``gtaps``) and
computes up to eight dot products per pass over a row of the output gradient.
:func:`fill_blocks` builds the blocked layout itself (one pass, parallel over timesteps).
Each kernel has a ``prange`` driver and a serial one (separate functions, so that Numba's
on-disk cache keeps both); problems under :data:`SERIAL_BELOW` multiply-adds use the serial one.
Sums are reassociated (``fastmath`` reassoc + contract), so results differ from the torch
reference by float rounding only.
"""
from __future__ import annotations

from typing import Optional

import numba
import numpy as np
import torch
from numba import njit, prange

from snn.delays.fir_cpu import LANES, fir_accumulate
from snn.delays.layout import blocks_buffer
from snn.numba_target import prefer_wide_vectors

prefer_wide_vectors()  # before anything is compiled (see snn.numba_target)

__all__ = ["CpuDelayLauncher", "zeros_aligned", "fill_blocks", "fill_blocks_serial", "accumulate", "correlate",
           "accumulate_serial", "correlate_serial", "RB", "SB", "LC", "RB_SINGLE_TAP", "SB_SINGLE_TAP", "LC_SINGLE_TAP",
           "SERIAL_BELOW", "FILL_SERIAL_BELOW", "GRAD_ROWS_BYTES", "nonzero_window_cpu"]

# reassociation (vectorised sums) and contraction (FMA) only: NaN and inf keep IEEE semantics
_OPTS = dict(cache=True, nogil=True, fastmath={"reassoc", "contract"}, error_model="numpy", boundscheck=False)
RB = 16     # rows (outputs) per job: their accumulators share the source rows loaded into L1
RB_SINGLE_TAP = 256  # ... up to this many with one tap per synapse (integer delays): whole output rows
SB = 4      # source rows streamed together
SB_SINGLE_TAP = 8
LC = 1600   # elements of a row per job (100 timesteps × 16 samples = 6.4 kB float32)
LC_SINGLE_TAP = 800
# (tuned on a 2-core AVX-512 sandbox at the SHD size, 1 and 2 threads: benchmarks/delays.py)
SERIAL_BELOW = 1 << 20  # multiply-adds under which waking the thread pool costs more than it saves
FILL_SERIAL_BELOW = 1 << 16  # the same for the layout pass, in elements written (streaming steps)
GRAD_ROWS_BYTES = 1 << 19  # output-gradient rows converted at a time for the tap gradient alone: about this much
FIR_MIN_TAPS = 5  # trimmed windows of this many taps or more run as register-blocked FIR filters (fir_cpu)


@njit(**_OPTS)
def zeros_aligned(rows, cols, like):  # pragma: no cover - compiled
    """Zeroed ``[rows, cols]`` array of ``like``'s dtype starting on a 64-byte boundary.

    Numba aligns its arrays to 32 bytes only; an accumulator that starts mid-cache-line
    splits every 512-bit load and store in two, which cost the forward kernel about 10 %.
    Each row is aligned too when ``cols × itemsize`` is a multiple of 64 (as LC is).
    """
    per_line = 64 // like.itemsize
    raw = np.zeros(rows * cols + per_line, like.dtype)
    shift = (-(raw.ctypes.data // like.itemsize)) % per_line
    return raw[shift:shift + rows * cols].reshape((rows, cols))


@njit(**_OPTS)
def _accumulate_jobs(src, out, Bc, rb, lc):  # pragma: no cover - compiled
    nrb = (out.shape[2] + rb - 1) // rb
    nlc = (out.shape[0] * Bc + lc - 1) // lc
    return src.shape[0] * nrb * nlc


@njit(**_OPTS)
def _fma8(acc, m, x0, x1, x2, x3, x4, x5, x6, x7, k0, k1, k2, k3, k4, k5, k6, k7):  # pragma: no cover - compiled
    """``acc[:m] += Σ_u k_u · x_u[:m]`` for eight taps: one pass over the accumulator, the
    sum as a balanced tree. Inlined by LLVM; the helpers below are the 4-, 2- and 1-tap tails."""
    for c in range(m):
        acc[c] += ((k0 * x0[c] + k1 * x1[c]) + (k2 * x2[c] + k3 * x3[c])) + \
                  ((k4 * x4[c] + k5 * x5[c]) + (k6 * x6[c] + k7 * x7[c]))


@njit(**_OPTS)
def _fma4(acc, m, x0, x1, x2, x3, k0, k1, k2, k3):  # pragma: no cover - compiled
    for c in range(m):
        acc[c] += k0 * x0[c] + k1 * x1[c] + k2 * x2[c] + k3 * x3[c]


@njit(**_OPTS)
def _fma2(acc, m, x0, x1, k0, k1):  # pragma: no cover - compiled
    for c in range(m):
        acc[c] += k0 * x0[c] + k1 * x1[c]


@njit(**_OPTS)
def _fma1(acc, m, x0, k0):  # pragma: no cover - compiled
    for c in range(m):
        acc[c] += k0 * x0[c]


@njit(**_OPTS)
def _nonzero_span(row):  # pragma: no cover - compiled
    """``(first, one past last)`` non-zero entry of the 1-D ``row``; ``(W, W)`` when all are zero."""
    W = row.shape[0]
    lo = 0
    while lo < W and row[lo] == 0:
        lo += 1
    end = W
    while end > lo and row[end - 1] == 0:
        end -= 1
    return lo, end


@njit(**_OPTS)
def _accumulate_job(job, src, taps, base, ustep, out, Bc, b0, rb, sb, lc, fir_min):  # pragma: no cover - compiled
    S = src.shape[1]
    T = out.shape[0]
    B = out.shape[1]
    R = out.shape[2]
    L = T * Bc
    W = taps.shape[2]
    nrb = (R + rb - 1) // rb
    nlc = (L + lc - 1) // lc
    nb = job // (nrb * nlc)
    rem = job % (nrb * nlc)
    r0 = (rem // nlc) * rb
    r1 = min(R, r0 + rb)
    c0 = (rem % nlc) * lc
    m = min(lc, L - c0)
    nsteps = m // Bc
    accb = zeros_aligned(rb, lc, out)
    kk = np.empty(W, taps.dtype)
    rows = np.empty(sb * W, np.int64)
    offs = np.empty(sb * W, np.int64)
    vals = np.empty(sb * W, taps.dtype)
    for s0 in range(0, S, sb):
        s1 = min(S, s0 + sb)
        if W == 1 and s1 - s0 == 8:
            # integer delays: one tap per synapse, straight from taps/base, eight sources per pass
            for r in range(r0, r1):
                o = base[r, s0:s1]
                k = taps[r, s0:s1, 0]
                _fma8(accb[r - r0, :m], m,
                      src[nb, s0, o[0] + c0:], src[nb, s0 + 1, o[1] + c0:], src[nb, s0 + 2, o[2] + c0:],
                      src[nb, s0 + 3, o[3] + c0:], src[nb, s0 + 4, o[4] + c0:], src[nb, s0 + 5, o[5] + c0:],
                      src[nb, s0 + 6, o[6] + c0:], src[nb, s0 + 7, o[7] + c0:],
                      k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7])
            continue
        for r in range(r0, r1):
            acc = accb[r - r0, :m]
            q = 0
            for s in range(s0, s1):
                # the window trimmed to its first … last non-zero tap (all-zero synapses skipped)
                lo, end = _nonzero_span(taps[r, s])
                if lo == end:
                    continue
                hi = end - 1
                w = end - lo
                if w >= fir_min:
                    # a register-blocked FIR filter in time order: kk[v] reads the source v steps earlier
                    if ustep < 0:
                        for v in range(w):
                            kk[v] = taps[r, s, lo + v]
                        first = base[r, s] + c0 + hi * ustep
                    else:
                        for v in range(w):
                            kk[v] = taps[r, s, hi - v]
                        first = base[r, s] + c0 + lo * ustep
                    fir_accumulate(acc, src[nb, s, first:], kk, nsteps, w)
                    continue
                b = base[r, s] + c0
                for u in range(lo, hi + 1):  # short windows: into the tap list, eight taps per pass
                    v = taps[r, s, u]
                    if v != 0:
                        rows[q] = s
                        offs[q] = b + u * ustep
                        vals[q] = v
                        q += 1
            p = 0
            while p + 8 <= q:
                _fma8(acc, m, src[nb, rows[p], offs[p]:], src[nb, rows[p + 1], offs[p + 1]:],
                      src[nb, rows[p + 2], offs[p + 2]:], src[nb, rows[p + 3], offs[p + 3]:],
                      src[nb, rows[p + 4], offs[p + 4]:], src[nb, rows[p + 5], offs[p + 5]:],
                      src[nb, rows[p + 6], offs[p + 6]:], src[nb, rows[p + 7], offs[p + 7]:],
                      vals[p], vals[p + 1], vals[p + 2], vals[p + 3],
                      vals[p + 4], vals[p + 5], vals[p + 6], vals[p + 7])
                p += 8
            if p + 4 <= q:
                _fma4(acc, m, src[nb, rows[p], offs[p]:], src[nb, rows[p + 1], offs[p + 1]:],
                      src[nb, rows[p + 2], offs[p + 2]:], src[nb, rows[p + 3], offs[p + 3]:],
                      vals[p], vals[p + 1], vals[p + 2], vals[p + 3])
                p += 4
            if p + 2 <= q:
                _fma2(acc, m, src[nb, rows[p], offs[p]:], src[nb, rows[p + 1], offs[p + 1]:], vals[p], vals[p + 1])
                p += 2
            if p < q:
                _fma1(acc, m, src[nb, rows[p], offs[p]:], vals[p])
    # write the block back in the time-first [T, B, R] layout (RB contiguous outputs per sample)
    # (timestep and sample advance by counting: no integer division per element)
    nr = r1 - r0
    t = c0 // Bc
    bi = c0 % Bc
    bb = b0 + nb * Bc
    ur0 = np.uint64(r0)  # unsigned: no negative-index wraparound, so the row loop vectorises
    for c in range(m):
        b = bb + bi
        if b < B:
            ot = out[np.uint64(t), np.uint64(b)]
            for rr in range(np.uint64(nr)):
                ot[ur0 + rr] = accb[rr, c]
        bi += 1
        if bi == Bc:
            bi = 0
            t += 1


@njit(**_OPTS)
def _correlate_job(job, src, g, goff, L, base, ustep, gt, add, rb, sb, lc, window, use_window):  # pragma: no cover - compiled
    NB, S, _ = src.shape
    R = g.shape[1]
    W = gt.shape[2]
    zero = gt.dtype.type(0)
    r0 = job * rb
    r1 = min(R, r0 + rb)
    if not add:
        for r in range(r0, r1):
            for s in range(S):
                for u in range(W):
                    gt[r, s, u] = zero
    rows = np.empty(sb * W, np.int64)
    taps = np.empty(sb * W, np.int64)
    offs = np.empty(sb * W, np.int64)
    for nb in range(NB):
        for c0 in range(0, L, lc):
            m = min(lc, L - c0)
            for s0 in range(0, S, sb):
                s1 = min(S, s0 + sb)
                for r in range(r0, r1):
                    gr = g[nb, r, goff + c0:goff + c0 + m]
                    q = 0
                    for s in range(s0, s1):
                        b = base[r, s] + c0
                        lo = 0
                        hi = W
                        if use_window:
                            lo = window[r, s, 0]
                            hi = window[r, s, 1]
                        for u in range(lo, hi):
                            rows[q] = s
                            taps[q] = u
                            offs[q] = b + u * ustep
                            q += 1
                    p = 0
                    while p + 8 <= q:
                        x0 = src[nb, rows[p], offs[p]:offs[p] + m]
                        x1 = src[nb, rows[p + 1], offs[p + 1]:offs[p + 1] + m]
                        x2 = src[nb, rows[p + 2], offs[p + 2]:offs[p + 2] + m]
                        x3 = src[nb, rows[p + 3], offs[p + 3]:offs[p + 3] + m]
                        x4 = src[nb, rows[p + 4], offs[p + 4]:offs[p + 4] + m]
                        x5 = src[nb, rows[p + 5], offs[p + 5]:offs[p + 5] + m]
                        x6 = src[nb, rows[p + 6], offs[p + 6]:offs[p + 6] + m]
                        x7 = src[nb, rows[p + 7], offs[p + 7]:offs[p + 7] + m]
                        d0 = zero
                        d1 = zero
                        d2 = zero
                        d3 = zero
                        d4 = zero
                        d5 = zero
                        d6 = zero
                        d7 = zero
                        for c in range(m):
                            gc = gr[c]
                            d0 += gc * x0[c]
                            d1 += gc * x1[c]
                            d2 += gc * x2[c]
                            d3 += gc * x3[c]
                            d4 += gc * x4[c]
                            d5 += gc * x5[c]
                            d6 += gc * x6[c]
                            d7 += gc * x7[c]
                        gt[r, rows[p], taps[p]] += d0
                        gt[r, rows[p + 1], taps[p + 1]] += d1
                        gt[r, rows[p + 2], taps[p + 2]] += d2
                        gt[r, rows[p + 3], taps[p + 3]] += d3
                        gt[r, rows[p + 4], taps[p + 4]] += d4
                        gt[r, rows[p + 5], taps[p + 5]] += d5
                        gt[r, rows[p + 6], taps[p + 6]] += d6
                        gt[r, rows[p + 7], taps[p + 7]] += d7
                        p += 8
                    if p + 4 <= q:
                        x0 = src[nb, rows[p], offs[p]:offs[p] + m]
                        x1 = src[nb, rows[p + 1], offs[p + 1]:offs[p + 1] + m]
                        x2 = src[nb, rows[p + 2], offs[p + 2]:offs[p + 2] + m]
                        x3 = src[nb, rows[p + 3], offs[p + 3]:offs[p + 3] + m]
                        d0 = zero
                        d1 = zero
                        d2 = zero
                        d3 = zero
                        for c in range(m):
                            gc = gr[c]
                            d0 += gc * x0[c]
                            d1 += gc * x1[c]
                            d2 += gc * x2[c]
                            d3 += gc * x3[c]
                        gt[r, rows[p], taps[p]] += d0
                        gt[r, rows[p + 1], taps[p + 1]] += d1
                        gt[r, rows[p + 2], taps[p + 2]] += d2
                        gt[r, rows[p + 3], taps[p + 3]] += d3
                        p += 4
                    while p < q:
                        x0 = src[nb, rows[p], offs[p]:offs[p] + m]
                        d0 = zero
                        for c in range(m):
                            d0 += gr[c] * x0[c]
                        gt[r, rows[p], taps[p]] += d0
                        p += 1


# Separate drivers (not one function compiled twice: Numba's cache would then hand the
# serial build to the parallel dispatcher, both being keyed by the same source function).
@njit(parallel=True, **_OPTS)
def accumulate(src, taps, base, ustep, out, Bc, b0, rb, sb, lc, fir_min):  # pragma: no cover - compiled
    for job in prange(_accumulate_jobs(src, out, Bc, rb, lc)):
        _accumulate_job(job, src, taps, base, ustep, out, Bc, b0, rb, sb, lc, fir_min)


@njit(**_OPTS)
def accumulate_serial(src, taps, base, ustep, out, Bc, b0, rb, sb, lc, fir_min):  # pragma: no cover - compiled
    for job in range(_accumulate_jobs(src, out, Bc, rb, lc)):
        _accumulate_job(job, src, taps, base, ustep, out, Bc, b0, rb, sb, lc, fir_min)


@njit(parallel=True, **_OPTS)
def correlate(src, g, goff, L, base, ustep, gt, add, rb, sb, lc, window, use_window):  # pragma: no cover - compiled
    for job in prange((g.shape[1] + rb - 1) // rb):
        _correlate_job(job, src, g, goff, L, base, ustep, gt, add, rb, sb, lc, window, use_window)


@njit(**_OPTS)
def correlate_serial(src, g, goff, L, base, ustep, gt, add, rb, sb, lc, window, use_window):  # pragma: no cover - compiled
    for job in range((g.shape[1] + rb - 1) // rb):
        _correlate_job(job, src, g, goff, L, base, ustep, gt, add, rb, sb, lc, window, use_window)


@njit(**_OPTS)
def _fill_step(x, history, has_history, out, front, t):  # pragma: no cover - compiled
    T, B, C = x.shape
    NB, _, steps, Bc = out.shape
    full = B // Bc
    zero = out.dtype.type(0)
    if front <= t < front + T:
        seq = x[t - front]
    elif has_history and t < front:
        seq = history[t]
    else:
        for nb in range(NB):
            for c in range(C):
                out[nb, c, t, :] = zero
        return
    for nb in range(full):
        blk = seq[nb * Bc:nb * Bc + Bc]
        for c in range(C):
            row = out[nb, c, t]
            for bi in range(Bc):
                row[bi] = blk[bi, c]
    if full < NB:
        rest = B - full * Bc
        for c in range(C):
            row = out[full, c, t]
            for bi in range(rest):
                row[bi] = seq[full * Bc + bi, c]
            for bi in range(rest, Bc):
                row[bi] = zero


@njit(parallel=True, **_OPTS)
def fill_blocks(x, history, has_history, out, front):  # pragma: no cover - compiled
    """``out [NB, C, steps, Bc]`` ← time-first ``x [T, B, C]`` at steps ``front … front + T − 1``,
    ``history [front, B, C]`` (when ``has_history``) before it, zeros elsewhere and in the
    samples past ``B`` (the layout of :func:`snn.delays.layout.to_blocks`). Parallel over
    timesteps; each step reads ``x[t]`` once and writes one ``Bc``-sample row per channel
    (a 64-byte line for 16 float32 samples)."""
    for t in prange(out.shape[2]):
        _fill_step(x, history, has_history, out, front, t)


@njit(**_OPTS)
def fill_blocks_serial(x, history, has_history, out, front):  # pragma: no cover - compiled
    for t in range(out.shape[2]):
        _fill_step(x, history, has_history, out, front, t)


@njit(**_OPTS)
def nonzero_window_cpu(v, out):  # pragma: no cover - compiled
    """``out[r, s] = (first, one past last)`` non-zero tap of ``v[r, s]`` (``0, W`` if none):
    :func:`snn.delays.autograd.nonzero_window` in one pass."""
    R, S, W = v.shape
    for r in range(R):
        for s in range(S):
            lo, end = _nonzero_span(v[r, s])
            if lo == end:  # all zero: every tap keeps its gradient
                lo, end = 0, W
            out[r, s, 0] = lo
            out[r, s, 1] = end


def _single_tap_rows(R: int, L: int, parallel: bool) -> int:
    """Rows per job for integer delays: as many as possible (each output row written once),
    but enough jobs along the rows to give every Numba thread one."""
    if not parallel:
        return RB_SINGLE_TAP
    per_rows = -(-numba.get_num_threads() // -(-L // LC_SINGLE_TAP))
    return max(RB, min(RB_SINGLE_TAP, -(-R // per_rows)))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


class CpuDelayLauncher:
    """:class:`snn.delays.autograd.DelayLauncher` on CPU tensors (float32, float64)."""

    name = "numba"

    def block(self, batch: int) -> int:
        return LANES if batch >= LANES else max(batch, 1)

    def chunk(self, batch: int) -> int:
        return self.block(batch)

    def gradient_rows(self, rows: int, length: int, itemsize: int) -> int:
        """About :data:`GRAD_ROWS_BYTES` of rows (a multiple of ``RB``), but at least two jobs of
        ``RB`` rows per Numba thread for each :func:`correlate` call."""
        groups = max(1, -(-rows * length * itemsize // GRAD_ROWS_BYTES))
        per_group = -(-rows // groups)
        whole_jobs = -(-per_group // RB) * RB
        return max(whole_jobs, 2 * RB * numba.get_num_threads())

    def window(self, v: torch.Tensor) -> torch.Tensor:
        out = torch.empty(*v.shape[:2], 2, dtype=torch.int16)
        nonzero_window_cpu(_np(v), _np(out))
        return out

    def to_blocks(self, x: torch.Tensor, Bc: int, front: int = 0, back: int = 0,
                  history: Optional[torch.Tensor] = None, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """:func:`snn.delays.layout.to_blocks` in one parallel pass (:func:`fill_blocks`); torch's
        permuted copy is 1.2-2.3× slower at the SHD shapes."""
        buf = blocks_buffer(x, Bc, front, back, out)
        hist = _np(history.to(x.dtype)) if history is not None else np.zeros((1, 1, 1), _np(x).dtype)
        fn = fill_blocks if buf.numel() >= FILL_SERIAL_BELOW else fill_blocks_serial
        fn(_np(x), hist, history is not None, _np(buf), np.int64(front))
        return buf.view(buf.shape[0], buf.shape[1], -1)

    def accumulate(self, src: torch.Tensor, taps: torch.Tensor, base: torch.Tensor, ustep: int, Bc: int, b0: int,
                   out: torch.Tensor) -> None:
        W = taps.shape[2]
        work = src.shape[0] * Bc * out.shape[0] * out.shape[2] * taps.shape[1] * W
        parallel = work >= SERIAL_BELOW
        fn = accumulate if parallel else accumulate_serial
        if W == 1:
            rb, sb, lc = _single_tap_rows(out.shape[2], out.shape[0] * Bc, parallel), SB_SINGLE_TAP, LC_SINGLE_TAP
        else:
            rb, sb, lc = RB, SB, LC
        lc = max(Bc, lc - lc % Bc)  # whole timesteps
        fir_min = FIR_MIN_TAPS if Bc == LANES else W + 1  # the FIR filter works on blocks of LANES samples
        fn(_np(src), _np(taps), _np(base), np.int64(ustep), _np(out), np.int64(Bc), np.int64(b0), rb, sb, lc, fir_min)

    def correlate(self, src: torch.Tensor, g: torch.Tensor, goff: int, L: int, base: torch.Tensor,
                  ustep: int, gtaps: torch.Tensor, add: bool, window: Optional[torch.Tensor] = None) -> None:
        fn = correlate if src.shape[0] * L * gtaps.numel() >= SERIAL_BELOW else correlate_serial
        win = _np(window) if window is not None else np.zeros((1, 1, 2), np.int16)
        fn(_np(src), _np(g), np.int64(goff), np.int64(L), _np(base), np.int64(ustep), _np(gtaps), bool(add), RB, SB, LC,
           win, window is not None)
