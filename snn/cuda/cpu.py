"""CPU backend ``"numba"``: fused forward and BPTT backward as ``@njit`` kernels.

Work split: the time loop runs in order and, at every step, one ``prange`` loop updates all
``N`` neurons of the ``[T, N]`` sequence with unit stride (the loop LLVM vectorises, each
thread taking a contiguous range). The state ``v [N]`` (and, backward, ``∂L/∂v``) is updated
in place. Sequences that are not wanted (``h`` at inference, ``v_seq`` without
``record_v``, missing output gradients) are ``[1, N]`` rows indexed with a row multiplier
of 0: the writes land in one row instead of a branch in the inner loop.

The backward pass first writes the surrogate derivative of step ``t`` into a row, one loop
per surrogate kind (so the loop body has no branch on the kind), then runs the fused
gradient update. Parameters are either scalars (one value for all neurons) or per-neuron
vectors ``[N]`` expanded on the host from per-channel ones; :func:`_at` reads both, and
Numba compiles one specialisation per form. Each kernel is compiled twice from one source,
with ``parallel=True`` and serially; problems under ``SERIAL_BELOW`` neuron-timesteps use
the serial build, since waking the thread pool costs more than they take.
"""
from __future__ import annotations

import types as pytypes

import numpy as np
import torch
from numba import njit, prange, types
from numba.extending import overload, register_jitable
from torch import Tensor

from snn.cuda import dynamics as dyn
from snn.cuda.numba_cache import install as _install_cache
from snn.cuda.params import KernelConfig
from snn.numba_target import prefer_wide_vectors

prefer_wide_vectors()  # before anything is compiled (see snn.numba_target)

__all__ = ["CpuLauncher", "forward_parallel", "forward_serial", "backward_parallel", "backward_serial"]

_install_cache()
_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)
SERIAL_BELOW = 1 << 16  # neuron-timesteps under which a thread-pool launch costs more than it saves


def _at(p, n):  # pragma: no cover - replaced by the overload inside compiled code
    """``p[n]`` for a per-neuron vector, ``p`` for a scalar parameter."""
    return p[n] if isinstance(p, np.ndarray) else p


@overload(_at)
def _at_impl(p, n):  # pragma: no cover - compiled
    if isinstance(p, types.Array):
        return lambda p, n: p[n]
    return lambda p, n: p


@register_jitable
def _forward_step(v, x, b, o, th, mode, v_reset, hard):
    h = dyn.charge(v, x, b, o, mode)
    s = dyn.spike(h, th)
    return h, s, dyn.reset(h, s, th, v_reset, hard)


def _forward(x, v, beta, omb, theta, mode, v_reset, hard, spikes, h_seq, v_seq):  # pragma: no cover - compiled
    """Forward over all T. ``x``/``spikes`` ``[T, N]``; ``v [N]``: the initial state in, the
    last state out; ``beta``/``omb``/``theta`` scalars or ``[N]``; ``h_seq``/``v_seq``
    ``[T, N]``, or ``[1, N]`` (not written) when not wanted; flags as in
    :class:`snn.cuda.params.KernelConfig`."""
    T, N = x.shape
    want_h = h_seq.shape[0] == T
    want_v = v_seq.shape[0] == T
    for t in range(T):
        for n in prange(N):
            h, s, vn = _forward_step(v[n], x[t, n], _at(beta, n), _at(omb, n), _at(theta, n), mode, v_reset, hard)
            spikes[t, n] = s
            if want_h:                  # loop-invariant: LLVM unswitches these branches
                h_seq[t, n] = h
            if want_v:
                v_seq[t, n] = vn
            v[n] = vn


@register_jitable
def _backward_step(sg, gs, gq, gv, h, b, o, th, mode, v_reset, hard, keep_reset):
    gh, gth = dyn.backward_step(gs, gv + gq, h, sg, th, v_reset, hard, keep_reset)
    gx, gvp = dyn.charge_backward(gh, b, o, mode)
    return gh, gth, gx, gvp


def _backward(grad_s, grad_vseq, gv, h_seq, v0, x, beta, omb, theta, mode, v_reset, hard, keep_reset,
              kind, sa, sb, need_dbeta, grad_x, dtheta, dbeta):  # pragma: no cover - compiled
    """BPTT over all T, from t = T−1 down to 0. ``grad_s``/``grad_vseq`` ``[T, N]``, or ``[1, N]``
    (not read) when absent; ``gv [N]``: ``∂L/∂v_last`` in, ``∂L/∂v0`` out; ``h_seq [T, N]`` from the
    forward pass; ``v0 [N]`` and ``x [T, N]`` (``[1, N]`` unless needed for ``dbeta``).
    Writes ``grad_x [T, N]`` and adds to per-neuron ``dtheta [N]`` and, if ``need_dbeta``,
    ``dbeta [N]`` (both zero on entry)."""
    T, N = h_seq.shape
    has_gs = grad_s.shape[0] == T
    has_gq = grad_vseq.shape[0] == T
    xm = 1 if x.shape[0] == T else 0
    sg = np.empty(N, h_seq.dtype)
    for t in range(T - 1, -1, -1):
        tx, tp = t * xm, max(t - 1, 0)
        # σ'(h[t] − θ) into a row, the kind chosen once so each loop vectorises
        if kind == dyn.ATAN:
            for n in prange(N):
                sg[n] = dyn.atan_grad(h_seq[t, n] - _at(theta, n), sa, sb)
        elif kind == dyn.SIGMOID:
            for n in prange(N):
                sg[n] = dyn.sigmoid_grad(h_seq[t, n] - _at(theta, n), sa, sb)
        elif kind == dyn.FAST_SIGMOID:
            for n in prange(N):
                sg[n] = dyn.fast_sigmoid_grad(h_seq[t, n] - _at(theta, n), sa, sb)
        elif kind == dyn.TRIANGLE:
            for n in prange(N):
                sg[n] = dyn.triangle_grad(h_seq[t, n] - _at(theta, n), sa, sb)
        elif kind == dyn.GAUSSIAN:
            for n in prange(N):
                sg[n] = dyn.gaussian_grad(h_seq[t, n] - _at(theta, n), sa, sb)
        else:
            for n in prange(N):
                sg[n] = dyn.erfc_grad(h_seq[t, n] - _at(theta, n), sa, sb)
        if need_dbeta:
            for n in prange(N):
                th = _at(theta, n)
                gh, gth, gx, gvp = _backward_step(sg[n], grad_s[t, n] if has_gs else dyn.ZERO,
                                                  grad_vseq[t, n] if has_gq else dyn.ZERO, gv[n], h_seq[t, n],
                                                  _at(beta, n), _at(omb, n), th, mode, v_reset, hard, keep_reset)
                vp = dyn.state_before(t, h_seq[tp, n], v0[n], th, v_reset, hard)
                dbeta[n] += dyn.charge_grad_beta(gh, vp, x[tx, n], mode)
                grad_x[t, n] = gx
                gv[n] = gvp
                dtheta[n] += gth
        else:
            for n in prange(N):
                gh, gth, gx, gvp = _backward_step(sg[n], grad_s[t, n] if has_gs else dyn.ZERO,
                                                  grad_vseq[t, n] if has_gq else dyn.ZERO, gv[n], h_seq[t, n],
                                                  _at(beta, n), _at(omb, n), _at(theta, n), mode, v_reset, hard,
                                                  keep_reset)
                grad_x[t, n] = gx
                gv[n] = gvp
                dtheta[n] += gth


def _twin(fn, name: str):
    """A copy of ``fn`` under another name: Numba's on-disk cache is indexed by the function's
    qualified name, not by the compile flags, so the serial and the parallel build of one
    source need distinct names to be cached side by side."""
    twin = pytypes.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    twin.__qualname__, twin.__module__, twin.__doc__ = name, fn.__module__, fn.__doc__
    return twin


# one source, two builds: threads for large problems, one thread for small ones
forward_parallel = njit(parallel=True, **_OPTS)(_twin(_forward, "forward_parallel"))
forward_serial = njit(**_OPTS)(_twin(_forward, "forward_serial"))
backward_parallel = njit(parallel=True, **_OPTS)(_twin(_backward, "backward_parallel"))
backward_serial = njit(**_OPTS)(_twin(_backward, "backward_serial"))


def _params(beta: Tensor, omb: Tensor, theta: Tensor, S: int, N: int):
    """Scalars when every neuron shares the parameters, else per-neuron ``[N]`` vectors."""
    b, o, th = beta.numpy(), omb.numpy(), theta.numpy()
    if b.shape[0] == 1:
        f = b.dtype.type
        return f(b[0]), f(o[0]), f(th[0])
    idx = (np.arange(N) // S) % b.shape[0]
    return b[idx], o[idx], th[idx]


class CpuLauncher:
    """:class:`snn.cuda.autograd.Launcher` for CPU tensors (float32 and float64)."""

    name = "numba"

    def state_dtype(self, x: Tensor) -> torch.dtype:
        return x.dtype

    def forward(self, x: Tensor, v0: Tensor, beta: Tensor, omb: Tensor, theta: Tensor, S: int,
                cfg: KernelConfig, spikes: Tensor, h: Tensor, store_h: bool, v_seq: Tensor,
                record_v: bool, v_last: Tensor) -> None:
        f = x.numpy().dtype.type
        N = x.shape[1]
        kernel = forward_serial if x.numel() < SERIAL_BELOW else forward_parallel
        v_last.copy_(v0)
        b, o, th = _params(beta, omb, theta, S, N)
        kernel(x.numpy(), v_last.numpy(), b, o, th, cfg.charge_mode, f(cfg.v_reset), f(cfg.hard),
               spikes.numpy(), h.numpy(), v_seq.numpy())

    def backward(self, grad_s: Tensor, has_gs: bool, grad_vseq: Tensor, has_gvseq: bool,
                 grad_vlast: Tensor, h: Tensor, v0: Tensor, x: Tensor, beta: Tensor, omb: Tensor,
                 theta: Tensor, S: int, cfg: KernelConfig, grad_x: Tensor, grad_v0: Tensor,
                 dbeta: Tensor, need_dbeta: bool, dtheta: Tensor) -> None:
        f = h.numpy().dtype.type
        N = h.shape[1]
        kernel = backward_serial if h.numel() < SERIAL_BELOW else backward_parallel
        grad_v0.copy_(grad_vlast)
        dtheta.zero_()
        dbeta.zero_()
        b, o, th = _params(beta, omb, theta, S, N)
        kernel(grad_s.numpy(), grad_vseq.numpy(), grad_v0.numpy(), h.numpy(), v0.numpy(), x.numpy(), b, o, th,
               cfg.charge_mode, f(cfg.v_reset), f(cfg.hard), f(cfg.keep_reset), cfg.kind, f(cfg.sa), f(cfg.sb),
               need_dbeta, grad_x.numpy(), dtheta.numpy(), dbeta.numpy())
