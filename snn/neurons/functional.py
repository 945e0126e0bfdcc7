"""Pure-PyTorch reference dynamics of the integrate-and-fire family (the ``torch`` backend).

One discrete-time update covers IF, LIF and parametric LIF; the models differ only in the
decay factor ``beta`` (none for IF, fixed for LIF, learnable for PLIF). Per timestep ``t``
(time in timesteps, potentials in threshold-relative units of the user's choosing):

    charge:  h[t] = β·v[t−1] + g·x[t],      g = 1 − β if decay_input else 1   (IF: β = 1, g = 1)
    fire:    s[t] = Θ(h[t] − v_threshold)   (surrogate gradient in the backward pass)
    reset:   v[t] = h[t] − s̃[t]·v_threshold               (soft / subtractive, v_reset=None)
             v[t] = (1 − s̃[t])·h[t] + s̃[t]·v_reset         (hard)

where ``s̃ = s.detach()`` when ``detach_reset`` (Zenke & Vogels 2021 recommend it) and the
membrane leaks towards a resting potential of 0. ``β = exp(−1/τ)`` with τ the membrane
time constant in timesteps (exact solution of τ·dv/dt = −v over one step). Sources: Gerstner
et al., *Neuronal Dynamics* (2014) ch. 1; Fang et al., ICCV 2021 (PLIF); Rueckauer et al.
2017 (soft reset for converted networks).

Every fused kernel (``snn.cuda``) is tested against these functions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from snn.surrogate import Surrogate

__all__ = ["NeuronSpec", "charge", "fire", "reset", "neuron_step", "multistep"]


@dataclass(frozen=True)
class NeuronSpec:
    """Everything the update needs besides input and state. Tensors broadcast against
    ``[B, *feature]`` (per-channel parameters already reshaped to ``[C, 1, ...]``).

    Attributes:
        beta: decay factor in (0, 1] as a float or tensor, or ``None`` for IF (no leak).
        v_threshold: firing threshold, float or tensor (learnable thresholds are tensors).
        v_reset: hard-reset value, or ``None`` for soft (subtractive) reset.
        surrogate: surrogate-gradient value used by :func:`fire`.
        decay_input: scale the input by ``1 − β`` (leaky-integrator normalisation).
        detach_reset: exclude the reset path from the gradient.
    """

    beta: Optional[Tensor | float]
    v_threshold: Tensor | float
    v_reset: Optional[float]
    surrogate: Surrogate
    decay_input: bool = False
    detach_reset: bool = False


def charge(v: Tensor, x: Tensor, beta: Optional[Tensor | float], decay_input: bool) -> Tensor:
    """Membrane potential before firing, ``h = β·v + g·x`` (see module docstring)."""
    if beta is None:
        return v + x
    if decay_input:
        return v + (1.0 - beta) * (x - v)
    return torch.addcmul(x, v, beta) if isinstance(beta, Tensor) else x + beta * v


def fire(h: Tensor, v_threshold: Tensor | float, surrogate: Surrogate) -> Tensor:
    """Spikes ``Θ(h − v_threshold)`` as 0./1. in ``h``'s dtype, surrogate gradient backward."""
    return surrogate(h - v_threshold)


def reset(h: Tensor, s: Tensor, v_threshold: Tensor | float, v_reset: Optional[float],
          detach_reset: bool) -> Tensor:
    """Membrane potential after the spike: soft (``v_reset is None``) or hard reset."""
    if detach_reset:
        s = s.detach()
    if v_reset is None:
        return h - s * v_threshold
    if v_reset == 0.0:
        return h - s * h
    return h - s * (h - v_reset)


def neuron_step(x: Tensor, v: Tensor, spec: NeuronSpec) -> tuple[Tensor, Tensor]:
    """One timestep: ``(x[t], v[t−1]) → (s[t], v[t])``, all ``[B, *feature]``.

    The spikes come back in a floating ``x``'s dtype (else in the membrane's); the membrane in
    the promoted dtype of ``x``, ``v`` and the parameters (a float16 input into a float32
    layer keeps a float32 state).
    """
    h = charge(v, x, spec.beta, spec.decay_input)
    s = fire(h, spec.v_threshold, spec.surrogate)
    return (s.to(x.dtype) if x.is_floating_point() else s), reset(h, s, spec.v_threshold, spec.v_reset,
                                                                    spec.detach_reset)


def multistep(x: Tensor, v: Tensor, spec: NeuronSpec, record_v: bool = False
              ) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """Run :func:`neuron_step` over all T.

    Iterates with ``unbind`` and stacks once at the end: indexing ``x[t]`` under autograd
    makes each step's gradient a full ``[T, B, ...]`` tensor, several times slower.

    Args:
        x: input current ``[T, B, *feature]``.
        v: initial membrane potential ``[B, *feature]``.
        spec: the neuron parameters.
        record_v: also return the membrane sequence after reset ``[T, B, *feature]``.

    Returns:
        ``(spikes [T, B, *feature], v_last [B, *feature], v_seq or None)``.
    """
    spikes = []
    vs = [] if record_v else None
    for x_t in x.unbind(0):
        s, v = neuron_step(x_t, v, spec)
        spikes.append(s)
        if vs is not None:
            vs.append(v)
    return torch.stack(spikes), v, (torch.stack(vs) if vs is not None else None)
