"""Host side of the fused kernels: a :class:`NeuronSpec` turned into kernel arguments.

Everything that varies between neuron options is a runtime value here (ids, 0./1. flags,
coefficients), never a compile-time specialisation, so one compiled kernel per dtype
covers every model × reset × surrogate combination. The ids of the surrogate kinds and charge
modes are defined here, with the coefficients of each kind; the kernels' twin definitions read
them (:mod:`snn.cuda.dynamics`, ``csrc/neuron.cuh``). Nothing here imports Numba or CuPy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from snn import surrogate as sg
from snn.neurons.functional import NeuronSpec

__all__ = ["ATAN", "SIGMOID", "FAST_SIGMOID", "TRIANGLE", "GAUSSIAN", "ERFC", "SURROGATE_KINDS",
           "CHARGE_FMA", "CHARGE_MUL_ADD", "CHARGE_DECAY_INPUT", "surrogate_coefficients", "KernelConfig",
           "supports", "kernel_config", "flat_param", "channel_layout", "memory_order"]

# surrogate kind ids (same numbering in csrc/neuron.cuh)
ATAN, SIGMOID, FAST_SIGMOID, TRIANGLE, GAUSSIAN, ERFC = 0, 1, 2, 3, 4, 5
SURROGATE_KINDS = {"atan": ATAN, "sigmoid": SIGMOID, "fast_sigmoid": FAST_SIGMOID,
                   "triangle": TRIANGLE, "gaussian": GAUSSIAN, "erfc": ERFC}

# charge modes (same numbering in csrc/neuron.cuh)
CHARGE_FMA, CHARGE_MUL_ADD, CHARGE_DECAY_INPUT = 0, 1, 2


def surrogate_coefficients(kind: int, alpha: float) -> tuple[float, float]:
    """The coefficients ``(a, b)`` of surrogate ``kind`` (see the ``*_grad`` functions of
    :mod:`snn.cuda.dynamics`) for sharpness ``alpha``, in float64. Raises ``ValueError`` for an unknown kind."""
    if kind == ATAN:
        return 0.5 * alpha, 0.5 * math.pi * alpha
    if kind == SIGMOID:
        return alpha, alpha
    if kind == FAST_SIGMOID:
        return 0.5 * alpha, alpha
    if kind == TRIANGLE:
        return alpha, alpha
    if kind == GAUSSIAN:
        return alpha / math.sqrt(2.0 * math.pi), alpha
    if kind == ERFC:
        return alpha / math.sqrt(math.pi), alpha
    raise ValueError(f"unknown surrogate kind {kind}")


# exact classes only: a user subclass may override grad(), which no kernel knows about
_KIND_OF_CLASS = {sg.ATan: ATAN, sg.Sigmoid: SIGMOID, sg.FastSigmoid: FAST_SIGMOID,
                  sg.Triangle: TRIANGLE, sg.Gaussian: GAUSSIAN, sg.Erfc: ERFC}


@dataclass(frozen=True)
class KernelConfig:
    """Scalar kernel arguments of one neuron configuration.

    Attributes:
        charge_mode: ``CHARGE_*`` id.
        hard: 1. for hard reset, 0. for soft.
        v_reset: hard-reset value (0. for soft reset; unused there).
        keep_reset: 0. under ``detach_reset`` else 1.
        kind: surrogate id (``SURROGATE_KINDS``).
        sa, sb: surrogate coefficients (:func:`surrogate_coefficients`).
    """

    charge_mode: int
    hard: float
    v_reset: float
    keep_reset: float
    kind: int
    sa: float
    sb: float


def _param_ok(p: object) -> bool:
    if p is None or isinstance(p, (int, float)):
        return True
    if not isinstance(p, Tensor) or not p.is_floating_point():
        return False
    # 0-d, or per channel [C, 1, ..., 1] (checked against the input in channel_layout)
    return p.dim() == 0 or all(s == 1 for s in p.shape[1:])


def supports(spec: NeuronSpec) -> bool:
    """Whether the fused kernels implement ``spec``: one of the six built-in surrogates
    (exact class), scalar or per-channel decay and threshold."""
    return (type(spec.surrogate) in _KIND_OF_CLASS and _param_ok(spec.beta)
            and _param_ok(spec.v_threshold) and spec.v_threshold is not None)


def kernel_config(spec: NeuronSpec) -> KernelConfig:
    """The scalar kernel arguments for ``spec`` (assumes :func:`supports`)."""
    kind = _KIND_OF_CLASS[type(spec.surrogate)]
    sa, sb = surrogate_coefficients(kind, float(spec.surrogate.alpha))
    if spec.beta is None:
        mode = CHARGE_FMA  # IF: fma(1, v, x) == v + x exactly
    elif spec.decay_input:
        mode = CHARGE_DECAY_INPUT
    elif isinstance(spec.beta, Tensor):
        mode = CHARGE_FMA
    else:
        mode = CHARGE_MUL_ADD
    hard = spec.v_reset is not None
    return KernelConfig(charge_mode=mode, hard=1.0 if hard else 0.0,
                        v_reset=float(spec.v_reset) if hard else 0.0,
                        keep_reset=0.0 if spec.detach_reset else 1.0, kind=kind, sa=sa, sb=sb)


def channel_layout(x: Tensor, *params: object, order: Optional[tuple[int, ...]] = None
                   ) -> Optional[tuple[int, int]]:
    """``(P, S)`` for input ``x [T, B, C, *rest]`` walked in dim ``order`` (default row-major;
    see :func:`memory_order`): P parameters per tensor (1 or C), S = the product of the sizes
    of the dims that come after the channel dim in that order, so that neuron ``n`` of the walk
    is in channel ``(n // S) % P``; ``None`` if a parameter does not broadcast as a scalar or
    along dim 2 (then the caller falls back to the reference)."""
    P = 1
    for p in params:
        if not isinstance(p, Tensor) or p.dim() == 0:
            continue
        if x.dim() < 3 or p.dim() != x.dim() - 2 or p.shape[0] not in (1, x.shape[2]):
            return None
        if p.shape[0] != 1:
            P = x.shape[2]
    if x.dim() < 3:
        return P, 1
    order = order or tuple(range(x.dim()))
    return P, math.prod([x.shape[d] for d in order[order.index(2) + 1:]])  # a list: Dynamo traces it


def memory_order(x: Tensor) -> tuple[int, ...]:
    """The permutation of ``x [T, B, *feature]``'s dims that lists them as laid out in memory,
    outermost first, if ``x.permute(order)`` is contiguous with ``T`` outermost (row-major,
    channels-last and any other dense layout of one timestep); else the identity (the caller
    then copies ``x`` into row-major order). Size-1 dims, whose strides mean nothing, go last."""
    identity = tuple(range(x.dim()))
    if x.dim() < 3 or x.is_contiguous():
        return identity
    order = (0,) + tuple(sorted(range(1, x.dim()), key=lambda d: (x.shape[d] == 1, -x.stride(d), d)))
    return order if x.permute(order).is_contiguous() else identity


def flat_param(p: Optional[Tensor | float], default: float, P: int, dtype: torch.dtype,
               device: torch.device) -> Tensor:
    """A parameter (``None`` means ``default``) as a contiguous ``[P]`` vector in the kernel's
    ``dtype``; a tensor keeps its autograd history, so a ``[P]`` gradient flows back to it."""
    if p is None:
        p = default
    if not isinstance(p, Tensor):
        return torch.full((P,), float(p), dtype=dtype, device=device)
    q = p.reshape(-1).to(device=device, dtype=dtype)
    return q.expand(P).contiguous() if q.numel() == 1 else q.contiguous()
