"""CPU backend ``"numba"``: fused forward and BPTT backward as ``@njit(parallel=True)`` kernels.

Work split: the ``[T, N]`` sequence is cut into blocks of ``block`` consecutive neurons;
``prange`` hands blocks to threads and each thread runs the whole time loop of its block,
with the inner loop over the block's neurons (unit stride, vectorisable) and the state,
parameters and per-step gradient scratch of the block in small per-thread arrays that stay
in L1/L2. One compiled kernel per dtype (float32, float64) serves every neuron option.

Sequences that are not wanted (``h`` at inference, ``v_seq`` without ``record_v``,
missing output gradients) are ``[1, N]`` rows indexed with a row multiplier of 0: the
writes land in one cache-resident row instead of a branch in the inner loop.

Each block function (``_forward_block``, ``_backward_block``) is driven by a ``prange``
driver and by a serial driver; problems under ``SERIAL_BELOW`` neuron-timesteps use the
serial one, since waking the thread pool costs more than they take.
"""
from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from snn.cuda import dynamics as dyn
from snn.cuda.numba_cache import install as _install_cache
from snn.cuda.params import KernelConfig

__all__ = ["CpuLauncher", "forward_parallel", "forward_serial", "backward_parallel", "backward_serial"]

_install_cache()
_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)
SERIAL_BELOW = 1 << 16  # neuron-timesteps under which a thread-pool launch costs more than it saves


@njit(**_OPTS)
def _forward_block(x, v0, beta, omb, theta, S, mode, v_reset, hard, n0, L, block,
                   spikes, h_seq, v_seq, v_last):  # pragma: no cover - compiled
    T = x.shape[0]
    P = beta.shape[0]
    hm = 1 if h_seq.shape[0] == T else 0
    vm = 1 if v_seq.shape[0] == T else 0
    v = np.empty(block, v_last.dtype)
    bl = np.empty(block, v_last.dtype)
    ol = np.empty(block, v_last.dtype)
    tl = np.empty(block, v_last.dtype)
    for j in range(L):
        c = ((n0 + j) // S) % P
        v[j] = v0[n0 + j]
        bl[j] = beta[c]
        ol[j] = omb[c]
        tl[j] = theta[c]
    for t in range(T):
        xr = x[t, n0:n0 + L]
        sr = spikes[t, n0:n0 + L]
        hr = h_seq[t * hm, n0:n0 + L]
        vr = v_seq[t * vm, n0:n0 + L]
        for j in range(L):
            h = dyn.charge(v[j], xr[j], bl[j], ol[j], mode)
            s = dyn.spike(h, tl[j])
            sr[j] = s
            hr[j] = h
            vn = dyn.reset(h, s, tl[j], v_reset, hard)
            vr[j] = vn
            v[j] = vn
    for j in range(L):
        v_last[n0 + j] = v[j]


@njit(**_OPTS)
def _surrogate_block(kind, z, a, b, L):  # pragma: no cover - compiled
    """z[:L] ← σ'(z[:L]); the kind is chosen once per row so each loop vectorises."""
    if kind == dyn.ATAN:
        for j in range(L):
            z[j] = dyn.atan_grad(z[j], a, b)
    elif kind == dyn.SIGMOID:
        for j in range(L):
            z[j] = dyn.sigmoid_grad(z[j], a, b)
    elif kind == dyn.FAST_SIGMOID:
        for j in range(L):
            z[j] = dyn.fast_sigmoid_grad(z[j], a, b)
    elif kind == dyn.TRIANGLE:
        for j in range(L):
            z[j] = dyn.triangle_grad(z[j], a, b)
    elif kind == dyn.GAUSSIAN:
        for j in range(L):
            z[j] = dyn.gaussian_grad(z[j], a, b)
    else:
        for j in range(L):
            z[j] = dyn.erfc_grad(z[j], a, b)


@njit(**_OPTS)
def _backward_block(grad_s, grad_vseq, grad_vlast, h_seq, v0, x, beta, omb, theta, S, mode,
                    v_reset, hard, keep_reset, kind, sa, sb, need_dbeta, n0, L, block,
                    grad_x, grad_v0, dbeta, dtheta):  # pragma: no cover - compiled
    T = h_seq.shape[0]
    P = beta.shape[0]
    gm = 1 if grad_s.shape[0] == T else 0
    qm = 1 if grad_vseq.shape[0] == T else 0
    xm = 1 if x.shape[0] == T else 0
    dt = h_seq.dtype
    gv = np.empty(block, dt)
    sgb = np.empty(block, dt)
    ghb = np.empty(block, dt)
    dth = np.zeros(block, dt)
    db = np.zeros(block, dt)
    bl = np.empty(block, dt)
    ol = np.empty(block, dt)
    tl = np.empty(block, dt)
    for j in range(L):
        c = ((n0 + j) // S) % P
        gv[j] = grad_vlast[n0 + j]
        bl[j] = beta[c]
        ol[j] = omb[c]
        tl[j] = theta[c]
    for t in range(T - 1, -1, -1):
        hr = h_seq[t, n0:n0 + L]
        gsr = grad_s[t * gm, n0:n0 + L]
        gqr = grad_vseq[t * qm, n0:n0 + L]
        gxr = grad_x[t, n0:n0 + L]
        for j in range(L):
            sgb[j] = hr[j] - tl[j]
        _surrogate_block(kind, sgb, sa, sb, L)
        for j in range(L):
            g_v = gv[j] + gqr[j]
            gh, gth = dyn.backward_step(gsr[j], g_v, hr[j], sgb[j], tl[j], v_reset, hard, keep_reset)
            gx, gvp = dyn.charge_backward(gh, bl[j], ol[j], mode)
            gxr[j] = gx
            gv[j] = gvp
            dth[j] += gth
            ghb[j] = gh
        if need_dbeta:
            xr = x[t * xm, n0:n0 + L]
            if t > 0:
                hp = h_seq[t - 1, n0:n0 + L]
                for j in range(L):
                    vp = dyn.reset(hp[j], dyn.spike(hp[j], tl[j]), tl[j], v_reset, hard)
                    db[j] += dyn.charge_grad_beta(ghb[j], vp, xr[j], mode)
            else:
                for j in range(L):
                    db[j] += dyn.charge_grad_beta(ghb[j], v0[n0 + j], xr[j], mode)
    for j in range(L):
        grad_v0[n0 + j] = gv[j]
        dtheta[n0 + j] = dth[j]
    if need_dbeta:
        for j in range(L):
            dbeta[n0 + j] = db[j]


@njit(parallel=True, **_OPTS)
def forward_parallel(x, v0, beta, omb, theta, S, mode, v_reset, hard, block,
                     spikes, h_seq, v_seq, v_last):  # pragma: no cover - compiled
    """Forward over all T. ``x``/``spikes`` ``[T, N]`` (float32 or float64), ``v0``/``v_last``
    ``[N]``, ``beta``/``omb``/``theta`` ``[P]`` (neuron n uses entry ``(n // S) % P``);
    ``h_seq``/``v_seq`` ``[T, N]``, or ``[1, N]`` scratch when not wanted; scalars as in
    :class:`snn.cuda.params.KernelConfig`; ``block`` neurons per work item."""
    N = x.shape[1]
    for ib in prange((N + block - 1) // block):
        n0 = ib * block
        _forward_block(x, v0, beta, omb, theta, S, mode, v_reset, hard, n0, min(block, N - n0), block,
                       spikes, h_seq, v_seq, v_last)


@njit(**_OPTS)
def forward_serial(x, v0, beta, omb, theta, S, mode, v_reset, hard, block,
                   spikes, h_seq, v_seq, v_last):  # pragma: no cover - compiled
    """:func:`forward_parallel` on one thread (small problems)."""
    N = x.shape[1]
    for ib in range((N + block - 1) // block):
        n0 = ib * block
        _forward_block(x, v0, beta, omb, theta, S, mode, v_reset, hard, n0, min(block, N - n0), block,
                       spikes, h_seq, v_seq, v_last)


@njit(parallel=True, **_OPTS)
def backward_parallel(grad_s, grad_vseq, grad_vlast, h_seq, v0, x, beta, omb, theta, S, mode,
                      v_reset, hard, keep_reset, kind, sa, sb, block, need_dbeta,
                      grad_x, grad_v0, dbeta, dtheta):  # pragma: no cover - compiled
    """BPTT over all T, from t = T−1 down to 0. ``grad_s``/``grad_vseq`` ``[T, N]`` or ``[1, N]``
    zeros when absent, ``grad_vlast [N]``, ``h_seq [T, N]`` from the forward pass, ``v0 [N]``
    and ``x [T, N]`` (``[1, N]`` unless needed for ``dbeta``). Writes ``grad_x [T, N]``,
    ``grad_v0 [N]``, per-neuron ``dtheta [N]`` and, if ``need_dbeta``, ``dbeta [N]``."""
    N = h_seq.shape[1]
    for ib in prange((N + block - 1) // block):
        n0 = ib * block
        _backward_block(grad_s, grad_vseq, grad_vlast, h_seq, v0, x, beta, omb, theta, S, mode,
                        v_reset, hard, keep_reset, kind, sa, sb, need_dbeta, n0, min(block, N - n0),
                        block, grad_x, grad_v0, dbeta, dtheta)


@njit(**_OPTS)
def backward_serial(grad_s, grad_vseq, grad_vlast, h_seq, v0, x, beta, omb, theta, S, mode,
                    v_reset, hard, keep_reset, kind, sa, sb, block, need_dbeta,
                    grad_x, grad_v0, dbeta, dtheta):  # pragma: no cover - compiled
    """:func:`backward_parallel` on one thread (small problems)."""
    N = h_seq.shape[1]
    for ib in range((N + block - 1) // block):
        n0 = ib * block
        _backward_block(grad_s, grad_vseq, grad_vlast, h_seq, v0, x, beta, omb, theta, S, mode,
                        v_reset, hard, keep_reset, kind, sa, sb, need_dbeta, n0, min(block, N - n0),
                        block, grad_x, grad_v0, dbeta, dtheta)


def _block(N: int) -> int:
    """Neurons per work item: ≥ 4 items per thread for balance, 256..4096 for streaming."""
    from numba import get_num_threads
    per = N // (4 * max(1, get_num_threads()))
    return int(min(4096, max(256, (per // 64) * 64)))


class CpuLauncher:
    """:class:`snn.cuda.autograd.Launcher` for CPU tensors (float32 and float64)."""

    name = "numba"

    def state_dtype(self, x: Tensor) -> torch.dtype:
        return x.dtype

    def forward(self, x: Tensor, v0: Tensor, beta: Tensor, omb: Tensor, theta: Tensor, S: int,
                cfg: KernelConfig, spikes: Tensor, h: Tensor, store_h: bool, v_seq: Tensor,
                record_v: bool, v_last: Tensor) -> None:
        f = x.numpy().dtype.type
        kernel = forward_serial if x.numel() < SERIAL_BELOW else forward_parallel
        kernel(x.numpy(), v0.numpy(), beta.numpy(), omb.numpy(), theta.numpy(), S,
                       cfg.charge_mode, f(cfg.v_reset), f(cfg.hard), _block(x.shape[1]),
                       spikes.numpy(), h.numpy(), v_seq.numpy(), v_last.numpy())

    def backward(self, grad_s: Tensor, has_gs: bool, grad_vseq: Tensor, has_gvseq: bool,
                 grad_vlast: Tensor, h: Tensor, v0: Tensor, x: Tensor, beta: Tensor, omb: Tensor,
                 theta: Tensor, S: int, cfg: KernelConfig, grad_x: Tensor, grad_v0: Tensor,
                 dbeta: Tensor, need_dbeta: bool, dtheta: Tensor) -> None:
        f = h.numpy().dtype.type
        kernel = backward_serial if h.numel() < SERIAL_BELOW else backward_parallel
        kernel(grad_s.numpy(), grad_vseq.numpy(), grad_vlast.numpy(), h.numpy(), v0.numpy(),
                        x.numpy(), beta.numpy(), omb.numpy(), theta.numpy(), S, cfg.charge_mode,
                        f(cfg.v_reset), f(cfg.hard), f(cfg.keep_reset), cfg.kind, f(cfg.sa), f(cfg.sb),
                        _block(h.shape[1]), need_dbeta, grad_x.numpy(), grad_v0.numpy(),
                        dbeta.numpy(), dtheta.numpy())
