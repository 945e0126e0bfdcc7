"""GPU backend ``"numba"`` of the delay synapses: the two kernels of :mod:`snn.delays.cpu` as
``numba.cuda`` kernels, on the blocked layout with one batch block (``Bc = B``).

* :func:`accumulate_kernel` — one thread per output element ``(nb, r, c)``; consecutive
  threads read consecutive elements of each source row (coalesced) and write the
  time-first output ``[T, B, R]``.
* :func:`correlate_kernel` — one thread block per synapse ``(r, s)``; its threads stride over
  ``(nb, c)`` and the partial sums of each tap ``u`` are reduced in shared memory.

float32 only (other dtypes run the torch reference). Launches go to PyTorch's current stream.
Under ``NUMBA_ENABLE_CUDASIM=1`` the kernels run in Numba's CUDA simulator on CPU tensors
(the tests use that; tiny shapes only).
"""
from __future__ import annotations

import numpy as np
import torch
from numba import config, cuda, float32

from snn.cuda.launch import quiet_occupancy_warning
from snn.delays.autograd import nonzero_window
from snn.delays.layout import to_blocks

__all__ = ["NumbaCudaDelayLauncher", "accumulate_kernel", "correlate_kernel", "THREADS"]

_SIM = bool(config.ENABLE_CUDASIM)
THREADS = 32 if _SIM else 128
_ZERO = float32(0.0)


@cuda.jit(cache=not _SIM)
def accumulate_kernel(src, taps, base, ustep, Bc, b0, out):  # pragma: no cover - compiled
    c = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    r = cuda.blockIdx.y
    nb = cuda.blockIdx.z
    L = out.shape[0] * Bc
    bo = b0 + nb * Bc + c % Bc
    if c >= L or bo >= out.shape[1]:
        return
    S = src.shape[1]
    W = taps.shape[2]
    acc = _ZERO
    for s in range(S):
        b = base[r, s] + c
        for u in range(W):
            v = taps[r, s, u]
            if v != _ZERO:
                acc += v * src[nb, s, b + u * ustep]
    out[c // Bc, bo, r] = acc


@cuda.jit(cache=not _SIM)
def correlate_kernel(src, g, goff, L, base, ustep, gt, add):  # pragma: no cover - compiled
    s = cuda.blockIdx.x
    r = cuda.blockIdx.y
    tid = cuda.threadIdx.x
    NB = src.shape[0]
    W = gt.shape[2]
    part = cuda.shared.array(THREADS, float32)
    b0 = base[r, s]
    for u in range(W):
        acc = _ZERO
        off = b0 + u * ustep
        for nb in range(NB):
            c = tid
            while c < L:
                acc += g[nb, r, goff + c] * src[nb, s, off + c]
                c += THREADS
        part[tid] = acc
        cuda.syncthreads()
        step = THREADS // 2
        while step > 0:
            if tid < step:
                part[tid] += part[tid + step]
            cuda.syncthreads()
            step //= 2
        if tid == 0:
            if add:
                gt[r, s, u] += part[0]
            else:
                gt[r, s, u] = part[0]
        cuda.syncthreads()


class NumbaCudaDelayLauncher:
    """:class:`snn.delays.autograd.DelayLauncher` on CUDA tensors (CPU tensors in the simulator)."""

    name = "numba"

    def block(self, batch: int) -> int:
        return max(batch, 1)

    def _arr(self, t: torch.Tensor):
        return t.detach().numpy() if _SIM else cuda.as_cuda_array(t.detach())

    def _launch(self, kernel, grid: tuple, device: torch.device, *args) -> None:
        arrs = tuple(self._arr(a) if isinstance(a, torch.Tensor) else a for a in args)
        if _SIM:
            kernel[grid, (THREADS,)](*arrs)
            return
        with torch.cuda.device(device):
            stream = cuda.external_stream(torch.cuda.current_stream(device).cuda_stream)
            with quiet_occupancy_warning():  # a small problem's grid is small on purpose
                launch = kernel[grid, (THREADS,), stream]
            launch(*arrs)

    def chunk(self, batch: int) -> int:
        return max(batch, 1)

    def gradient_rows(self, rows: int, length: int, itemsize: int) -> int:
        return max(rows, 1)  # one launch over all rows

    def window(self, v):
        return nonzero_window(v)

    def to_blocks(self, x, Bc, front=0, back=0, history=None, out=None):
        return to_blocks(x, Bc, front, back, history, out)

    def accumulate(self, src, taps, base, ustep, Bc, b0, out) -> None:
        T, _, R = out.shape
        if out.numel() == 0:
            return
        grid = ((T * Bc + THREADS - 1) // THREADS, R, src.shape[0])
        self._launch(accumulate_kernel, grid, out.device, src, taps, base, np.int64(ustep), np.int64(Bc),
                     np.int64(b0), out)

    def correlate(self, src, g, goff, L, base, ustep, gtaps, add, window=None) -> None:  # every tap computed
        R, S, _ = gtaps.shape
        if gtaps.numel() == 0:
            return
        self._launch(correlate_kernel, (S, R), gtaps.device, src, g, np.int64(goff), np.int64(L), base,
                     np.int64(ustep), gtaps, bool(add))
