"""CPU backend ``"numba"``: fused forward and BPTT backward as ``@njit`` kernels.

Work split: the ``N`` neurons of the ``[T, N]`` sequence are cut into blocks of ``W``
consecutive neurons (:func:`block_width`); one ``prange`` over blocks hands each thread
whole blocks, and inside a block the time loop runs in order around a unit-stride loop over
the block's neurons (the loop LLVM vectorises). One thread-pool launch per call, and a
block's state stays in L1 for all T steps. Loop indices into arrays are unsigned so that
Numba drops its negative-index wraparound, which would otherwise stop vectorisation.

Nothing is stored for the backward pass but the input: the backward kernel recomputes each
block's pre-reset membranes ``h [T, W]`` from ``x`` and ``v0`` into a per-thread buffer
that stays in cache (``T·W`` values, :data:`BLOCK_BYTES`), then runs BPTT over the block
from it. That moves fewer bytes than writing ``h`` in the forward pass and reading it back
(20 instead of 24 bytes per float32 neuron-timestep for forward + backward) and allocates
no ``[T, N]`` state sequence; the recomputation is the forward's own code, so it is bitwise
the forward's ``h``.

The backward pass first writes the surrogate derivative of step ``t`` into a row, one loop
per surrogate kind (so the loop body has no branch on the kind), then runs the fused
gradient update. ``v_seq`` without ``record_v`` is a ``[1, N]`` scratch row; missing output
gradients are flagged and never read. The per-neuron state vectors ``[N]`` may come as ``[1]``
(``optional_state``): one initial value for all neurons (the layer's rest state), a zero
``∂L/∂v_last``, an unwanted ``∂L/∂v0``. At T = 4 each such row costs a quarter of a pass over
the input, so skipping them makes a training step of a large layer 10-15 % faster.
Parameters are either scalars (one value for all neurons) or per-neuron vectors ``[N]``
expanded on the host from per-channel ones; :func:`_at` reads both, and Numba compiles one
specialisation per form.
Each kernel is compiled twice from one source, with ``parallel=True`` and serially;
problems under ``SERIAL_BELOW`` neuron-timesteps use the serial build, since waking the
thread pool costs more than they take.
"""
from __future__ import annotations

import types as pytypes
from typing import Optional

import numba
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

__all__ = ["CpuLauncher", "block_width", "forward_parallel", "forward_serial", "backward_parallel", "backward_serial"]

_install_cache()
_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)
SERIAL_BELOW = 1 << 16  # neuron-timesteps under which a thread-pool launch costs more than it saves
BLOCK_BYTES = 1 << 19   # the backward's per-thread [T, W] membrane buffer, sized to stay in L2
BLOCK_MAX = 256         # neurons per block at most (short sequences; measured best on 1 and 2 threads)
BLOCK_MIN = 16          # neurons per block at least (one 512-bit vector; very long sequences)


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


def _forward(x, v0, beta, omb, theta, mode, v_reset, hard, spikes, v_seq, v, W, nan_flags):  # pragma: no cover - compiled
    """Forward over all T. ``x``/``spikes`` ``[T, N]``; ``v0 [N]`` the initial state (``[1]``:
    the same for every neuron), ``v [N]`` the last state out (the running state in between);
    ``beta``/``omb``/``theta`` scalars or ``[N]``; ``v_seq`` ``[T, N]``, or ``[1, N]`` (not
    written) when not wanted; ``W`` neurons per block; flags as in
    :class:`snn.cuda.params.KernelConfig`. ``nan_flags`` (uint8, one per block) says whether
    the block's last state holds NaN, which any NaN input leaves there (the layer's NaN test,
    without a pass over ``v`` in PyTorch's thread pool)."""
    T, N = x.shape
    want_v = v_seq.shape[0] == T
    uniform = v0.shape[0] != N          # one initial value for every neuron: v0 is [1]
    for blk in prange((N + W - 1) // W):
        n0 = np.uint64(blk * W)
        n1 = np.uint64(min(blk * W + W, N))
        if uniform:
            for n in range(n0, n1):
                v[n] = v0[0]
        else:
            for n in range(n0, n1):
                v[n] = v0[n]
        for t in range(T):
            for n in range(n0, n1):
                h, s, vn = _forward_step(v[n], x[t, n], _at(beta, n), _at(omb, n), _at(theta, n), mode, v_reset, hard)
                spikes[t, n] = s
                if want_v:              # loop-invariant: LLVM unswitches this branch
                    v_seq[t, n] = vn
                v[n] = vn
        bad = np.uint8(0)
        for n in range(n0, n1):
            bad |= np.uint8(v[n] != v[n])
        nan_flags[blk] = bad


@register_jitable
def _backward_step(sg, gs, gq, gv, h, b, o, th, mode, v_reset, hard, keep_reset):
    gh, gth = dyn.backward_step(gs, gv + gq, h, sg, th, v_reset, hard, keep_reset)
    gx, gvp = dyn.charge_backward(gh, b, o, mode)
    return gh, gth, gx, gvp


@register_jitable
def _surrogate_row(kind, hb, t, theta, n0, m, sa, sb, sg):
    """``sg[j] = σ'(h[t, n0 + j] − θ)`` for the ``m`` neurons of a block, the kind chosen
    once so each loop vectorises."""
    if kind == dyn.ATAN:
        for j in range(m):
            sg[j] = dyn.atan_grad(hb[t, j] - _at(theta, n0 + j), sa, sb)
    elif kind == dyn.SIGMOID:
        for j in range(m):
            sg[j] = dyn.sigmoid_grad(hb[t, j] - _at(theta, n0 + j), sa, sb)
    elif kind == dyn.FAST_SIGMOID:
        for j in range(m):
            sg[j] = dyn.fast_sigmoid_grad(hb[t, j] - _at(theta, n0 + j), sa, sb)
    elif kind == dyn.TRIANGLE:
        for j in range(m):
            sg[j] = dyn.triangle_grad(hb[t, j] - _at(theta, n0 + j), sa, sb)
    elif kind == dyn.GAUSSIAN:
        for j in range(m):
            sg[j] = dyn.gaussian_grad(hb[t, j] - _at(theta, n0 + j), sa, sb)
    else:
        for j in range(m):
            sg[j] = dyn.erfc_grad(hb[t, j] - _at(theta, n0 + j), sa, sb)


def _backward(grad_s, has_gs, grad_vseq, has_gq, gv_last, x, v0, beta, omb, theta, mode, v_reset, hard, keep_reset, kind, sa, sb,
              need_dtheta, need_dbeta, grad_x, gv, dtheta, dbeta, W, jobs):  # pragma: no cover - compiled
    """BPTT over all T, from t = T−1 down to 0, recomputing ``h`` block by block.

    ``x [T, N]`` the forward input and ``v0 [N]`` the forward's initial state (``[1]``: the
    same for every neuron); ``grad_s``/``grad_vseq`` ``[T, N]``, read only when
    ``has_gs``/``has_gq``; ``gv_last [N] = ∂L/∂v_last`` (``[1]``: zero, not read). Writes
    ``grad_x [T, N]``, ``gv [N] = ∂L/∂v0`` (``[1]``: not wanted, not written) and the
    per-neuron sums ``dtheta [N]`` and ``dbeta [N]`` where flagged (else they may be ``[1]``,
    not touched). ``W`` neurons per block; the blocks are split into ``jobs`` contiguous runs,
    each with its own ``[T, W]`` membrane buffer and ``[W]`` rows for the surrogate
    derivative (which carries the state in the recomputation), the initial state and the
    running ``∂L/∂v``."""
    T, N = x.shape
    uniform = v0.shape[0] != N
    has_gvl = gv_last.shape[0] == N
    want_gv0 = gv.shape[0] == N
    nblocks = (N + W - 1) // W
    per_job = (nblocks + jobs - 1) // jobs
    for job in prange(jobs):
        hb = np.empty((T, W), x.dtype)
        sg = np.empty(W, x.dtype)
        vb = np.empty(W, x.dtype)   # the block's initial state
        gb = np.empty(W, x.dtype)   # the block's running ∂L/∂v
        for blk in range(job * per_job, min(nblocks, job * per_job + per_job)):
            n0 = np.uint64(blk * W)
            m = np.uint64(min(W, N - blk * W))
            if uniform:
                for j in range(m):
                    vb[j] = v0[0]
            else:
                for j in range(m):
                    vb[j] = v0[n0 + j]
            if has_gvl:
                for j in range(m):
                    gb[j] = gv_last[n0 + j]
            else:
                for j in range(m):
                    gb[j] = dyn.ZERO
            for j in range(m):
                if need_dtheta:
                    dtheta[n0 + j] = dyn.ZERO
                if need_dbeta:
                    dbeta[n0 + j] = dyn.ZERO
            # the block's pre-reset membranes, in the forward's order (the state rides in sg)
            for j in range(m):
                sg[j] = vb[j]
            for t in range(T):
                for j in range(m):
                    n = n0 + j
                    h, s, vn = _forward_step(sg[j], x[t, n], _at(beta, n), _at(omb, n), _at(theta, n), mode,
                                             v_reset, hard)
                    hb[t, j] = h
                    sg[j] = vn
            for t in range(T - 1, -1, -1):
                _surrogate_row(kind, hb, t, theta, n0, m, sa, sb, sg)
                tp = max(t - 1, 0)
                for j in range(m):
                    n = n0 + j
                    th = _at(theta, n)
                    gh, gth, gx, gvp = _backward_step(sg[j], grad_s[t, n] if has_gs else dyn.ZERO,
                                                      grad_vseq[t, n] if has_gq else dyn.ZERO, gb[j], hb[t, j],
                                                      _at(beta, n), _at(omb, n), th, mode, v_reset, hard, keep_reset)
                    grad_x[t, n] = gx
                    gb[j] = gvp
                    if need_dtheta:             # loop-invariant flags: LLVM unswitches these branches
                        dtheta[n] += gth
                    if need_dbeta:
                        vp = dyn.state_before(t, hb[tp, j], vb[j], th, v_reset, hard)
                        dbeta[n] += dyn.charge_grad_beta(gh, vp, x[t, n], mode)
            if want_gv0:
                for j in range(m):
                    gv[n0 + j] = gb[j]


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


def block_width(T: int, N: int, itemsize: int, threads: int) -> int:
    """Neurons per block ``W``: a power of two with ``T·W·itemsize ≤ BLOCK_BYTES`` within
    ``[BLOCK_MIN, BLOCK_MAX]``, lowered while that would leave fewer than four blocks per
    thread (down to ``BLOCK_MIN``) so the threads share the work evenly."""
    w = BLOCK_MAX
    while w > BLOCK_MIN and (T * w * itemsize > BLOCK_BYTES or -(-N // w) < 4 * threads):
        w //= 2
    return w


def _plan(x: Tensor) -> tuple[bool, int, int]:
    """For a ``[T, N]`` sequence: whether to use the parallel build (``SERIAL_BELOW``), the
    block width ``W`` and the number of jobs (threads that get at least one block)."""
    T, N = x.shape
    parallel = x.numel() >= SERIAL_BELOW
    threads = numba.get_num_threads() if parallel else 1
    W = block_width(T, N, x.element_size(), threads)
    return parallel, W, min(threads, -(-N // W))


class CpuLauncher:
    """:class:`snn.cuda.autograd.Launcher` for CPU tensors (float32 and float64). It recomputes
    the membranes in the backward pass and takes ``[1]`` state rows (registered with
    ``recomputes_h`` and ``optional_state``, :class:`snn.cuda.autograd.FusedKernels`): the
    forward stores no ``h``."""

    def forward(self, x: Tensor, v0: Tensor, beta: Tensor, omb: Tensor, theta: Tensor, S: int,
                cfg: KernelConfig, spikes: Tensor, h: Tensor, store_h: bool, v_seq: Tensor,
                record_v: bool, v_last: Tensor) -> bool:
        f = x.numpy().dtype.type
        N = x.shape[1]
        parallel, W, _ = _plan(x)
        kernel = forward_parallel if parallel else forward_serial
        b, o, th = _params(beta, omb, theta, S, N)
        nan_flags = np.empty(-(-N // W), dtype=np.uint8)
        kernel(x.numpy(), v0.numpy(), b, o, th, cfg.charge_mode, f(cfg.v_reset), f(cfg.hard),
               spikes.numpy(), v_seq.numpy(), v_last.numpy(), W, nan_flags)
        return bool(nan_flags.any())

    def backward(self, grad_s: Tensor, has_gs: bool, grad_vseq: Tensor, has_gvseq: bool,
                 grad_vlast: Tensor, h: Optional[Tensor], v0: Tensor, x: Tensor, beta: Tensor, omb: Tensor,
                 theta: Tensor, S: int, cfg: KernelConfig, grad_x: Tensor, grad_v0: Tensor,
                 dbeta: Tensor, need_dbeta: bool, dtheta: Tensor) -> None:
        f = x.numpy().dtype.type
        N = x.shape[1]
        parallel, W, jobs = _plan(x)
        kernel = backward_parallel if parallel else backward_serial
        b, o, th = _params(beta, omb, theta, S, N)
        kernel(grad_s.numpy(), has_gs, grad_vseq.numpy(), has_gvseq, grad_vlast.numpy(), x.numpy(), v0.numpy(), b, o, th,
               cfg.charge_mode, f(cfg.v_reset), f(cfg.hard), f(cfg.keep_reset), cfg.kind, f(cfg.sa), f(cfg.sb),
               dtheta.shape[0] == N, need_dbeta, grad_x.numpy(), grad_v0.numpy(), dtheta.numpy(), dbeta.numpy(),
               W, jobs)
