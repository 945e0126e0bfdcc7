"""GPU backend ``"numba"``: the fused kernels as ``numba.cuda`` kernels.

One thread per neuron runs the whole time loop (reads and writes of consecutive threads
are consecutive in memory). The kernels call the same scalar functions as the CPU kernels
(:mod:`snn.cuda.dynamics`). State and arithmetic are float32; float16/bfloat16 inputs are
converted to float32 around the launch (the CuPy backend reads them natively). Launches go
to PyTorch's current stream.

Under ``NUMBA_ENABLE_CUDASIM=1`` the same kernels run in Numba's CUDA simulator on CPU
tensors (the tests use that; it is slow: tiny shapes only).
"""
from __future__ import annotations

import numpy as np
import torch
from numba import config, cuda, float32
from torch import Tensor

from snn.cuda import dynamics as dyn
from snn.cuda.launch import grid_blocks, quiet_occupancy_warning, sm_count, threads_per_block
from snn.cuda.numba_cache import install as _install_cache
from snn.cuda.params import KernelConfig

__all__ = ["NumbaCudaLauncher", "forward_kernel", "backward_kernel", "THREADS"]

_SIM = bool(config.ENABLE_CUDASIM)
_install_cache()
THREADS = 32  # per block in the simulator (one Python thread per CUDA thread); on a GPU see snn.cuda.launch
_ZERO = float32(0.0)


@cuda.jit(device=True)
def _channel(n, S, beta, omb, theta):  # pragma: no cover - compiled
    """Decay, 1 − decay and threshold of neuron ``n``: entry ``(n // S) % P`` of the ``[P]`` rows."""
    c = (n // S) % beta.shape[0]
    return beta[c], omb[c], theta[c]


@cuda.jit(cache=not _SIM)
def forward_kernel(x, v0, beta, omb, theta, S, mode, v_reset, hard, spikes, h_seq, store_h,
                   v_seq, record_v, v_last):  # pragma: no cover - compiled
    """One thread per neuron running all T steps. ``x``/``spikes`` ``[T, N]`` float32, ``v0``/``v_last``
    ``[N]``, ``beta``/``omb``/``theta`` ``[P]`` (neuron n uses entry ``(n // S) % P``); ``h_seq`` and
    ``v_seq`` are written when ``store_h``/``record_v``; flags as in :class:`snn.cuda.params.KernelConfig`."""
    n = cuda.grid(1)
    T = x.shape[0]
    N = x.shape[1]
    if n >= N:
        return
    b, o, th = _channel(n, S, beta, omb, theta)
    v = v0[n]
    for t in range(T):
        h = dyn.charge(v, x[t, n], b, o, mode)
        s = dyn.spike(h, th)
        spikes[t, n] = s
        if store_h:
            h_seq[t, n] = h
        v = dyn.reset(h, s, th, v_reset, hard)
        if record_v:
            v_seq[t, n] = v
    v_last[n] = v


@cuda.jit(cache=not _SIM)
def backward_kernel(grad_s, has_gs, grad_vseq, has_gvseq, grad_vlast, h_seq, v0, x, beta, omb,
                    theta, S, mode, v_reset, hard, keep_reset, kind, sa, sb, need_dbeta,
                    grad_x, grad_v0, dbeta, dtheta):  # pragma: no cover - compiled
    """One thread per neuron, t = T−1 down to 0; parameters as :func:`forward_kernel`, output
    gradients read only when ``has_gs``/``has_gvseq``, ``x`` only for ``dbeta`` with decay_input.
    Writes ``grad_x [T, N]``, ``grad_v0 [N]``, per-neuron ``dtheta [N]`` and, if flagged, ``dbeta [N]``."""
    n = cuda.grid(1)
    T = h_seq.shape[0]
    N = h_seq.shape[1]
    if n >= N:
        return
    b, o, th = _channel(n, S, beta, omb, theta)
    has_x = x.shape[0] == T
    gv = grad_vlast[n]
    dth = _ZERO
    db = _ZERO
    for i in range(T):
        t = T - 1 - i
        h = h_seq[t, n]
        gs = grad_s[t, n] if has_gs else _ZERO
        if has_gvseq:
            gv += grad_vseq[t, n]
        sg = dyn.surrogate_grad(kind, h - th, sa, sb)
        gh, gth = dyn.backward_step(gs, gv, h, sg, th, v_reset, hard, keep_reset)
        gx, gv = dyn.charge_backward(gh, b, o, mode)
        grad_x[t, n] = gx
        dth += gth
        if need_dbeta:
            vp = dyn.state_before(t, h_seq[t - 1 if t > 0 else 0, n], v0[n], th, v_reset, hard)
            xt = x[t, n] if has_x else _ZERO
            db += dyn.charge_grad_beta(gh, vp, xt, mode)
    grad_v0[n] = gv
    dtheta[n] = dth
    if need_dbeta:
        dbeta[n] = db


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == torch.float32 else t.float()


class NumbaCudaLauncher:
    """:class:`snn.cuda.autograd.Launcher` on CUDA tensors (CPU tensors in the simulator)."""

    def _launch(self, kernel, N: int, device: torch.device, *args) -> None:
        if _SIM:
            arrs = tuple(a.numpy() if isinstance(a, torch.Tensor) else a for a in args)
            kernel[(grid_blocks(N, THREADS),), (THREADS,)](*arrs)
            return
        index = device.index if device.index is not None else torch.cuda.current_device()
        threads = threads_per_block(N, sm_count(index))
        with torch.cuda.device(index), cuda.gpus[index]:
            arrs = tuple(cuda.as_cuda_array(a.detach()) if isinstance(a, torch.Tensor) else a for a in args)
            stream = cuda.external_stream(torch.cuda.current_stream(index).cuda_stream)
            with quiet_occupancy_warning():
                launch = kernel[(grid_blocks(N, threads),), (threads,), stream]
            launch(*arrs)

    def forward(self, x: Tensor, v0: Tensor, beta: Tensor, omb: Tensor, theta: Tensor, S: int,
                cfg: KernelConfig, spikes: Tensor, h: Tensor, store_h: bool, v_seq: Tensor,
                record_v: bool, v_last: Tensor) -> None:
        out = spikes if spikes.dtype == torch.float32 else torch.empty(spikes.shape, device=x.device)
        f = np.float32
        self._launch(forward_kernel, x.shape[1], x.device, _f32(x), v0, beta, omb, theta, np.int64(S),
                     np.int32(cfg.charge_mode), f(cfg.v_reset), f(cfg.hard), out, h, bool(store_h),
                     v_seq, bool(record_v), v_last)
        if out is not spikes:
            spikes.copy_(out)

    def backward(self, grad_s: Tensor, has_gs: bool, grad_vseq: Tensor, has_gvseq: bool,
                 grad_vlast: Tensor, h: Tensor, v0: Tensor, x: Tensor, beta: Tensor, omb: Tensor,
                 theta: Tensor, S: int, cfg: KernelConfig, grad_x: Tensor, grad_v0: Tensor,
                 dbeta: Tensor, need_dbeta: bool, dtheta: Tensor) -> None:
        gx = grad_x if grad_x.dtype == torch.float32 else torch.empty(grad_x.shape, device=h.device)
        f = np.float32
        self._launch(backward_kernel, h.shape[1], h.device, _f32(grad_s), bool(has_gs), grad_vseq,
                     bool(has_gvseq), grad_vlast, h, v0, _f32(x), beta, omb, theta, np.int64(S),
                     np.int32(cfg.charge_mode), f(cfg.v_reset), f(cfg.hard), f(cfg.keep_reset),
                     np.int32(cfg.kind), f(cfg.sa), f(cfg.sb), bool(need_dbeta), gx, grad_v0, dbeta,
                     dtheta)
        if gx is not grad_x:
            grad_x.copy_(gx)
