"""Neuron-parameter conventions between snn (discrete, timesteps) and NIR (continuous, seconds).

NIR (Pedersen et al., "Neuromorphic intermediate representation: A unified instruction set for
interoperable brain-inspired computing", Nature Communications 15, 8122, 2024) describes each
neuron by an ODE in continuous time: LIF ``τ·dv/dt = (v_leak − v) + R·I``, IF ``dv/dt = R·I``,
LI as LIF without spikes, Integrator ``dv/dt = R·I``. Simulators discretize with a step ``dt``.
Two discretizations are supported, both giving snn's update ``v[t] = β·v[t−1] + g·x[t]``:

* ``"euler"`` (default; what snnTorch, Norse and most NIR back-ends do):
  ``v ← v + (dt/τ)(v_leak − v + R·I)``, so ``β = 1 − dt/τ`` and ``g = (dt/τ)·R``;
  IF/Integrator: ``g = dt·R``.
* ``"exact"`` (zero-order hold of the input over one step): ``β = exp(−dt/τ)``,
  ``g = (1 − β)·R``; IF/Integrator as Euler.

Export writes ``τ`` and ``R`` so that the chosen discretization reproduces snn's ``β`` and
``g`` (``g = 1`` unless ``decay_input``, where ``g = 1 − β``): Euler ``τ = dt/(1 − β)``,
exact ``τ = −dt/ln β``; ``R = 1/(1 − β)`` (``g = 1``) or ``R = 1`` (``g = 1 − β``).
All conversions are done in float64 so that float32 parameters survive a round trip bit-exactly.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["DISCRETIZATIONS", "beta_to_nir_tau", "nir_tau_to_beta", "input_gain", "resistance"]

DISCRETIZATIONS = ("euler", "exact")


def _check(discretization: str, dt: float) -> None:
    if discretization not in DISCRETIZATIONS:
        raise ValueError(f"discretization must be one of {DISCRETIZATIONS}, got {discretization!r}")
    if not (isinstance(dt, numbers.Real) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds per timestep, got {dt!r}")


def beta_to_nir_tau(beta: np.ndarray, dt: float, discretization: str = "euler") -> np.ndarray:
    """NIR time constant ``τ`` (seconds) for decay factors ``β ∈ (0, 1)`` (float64 array, ``β``'s shape).

    Raises:
        ValueError: unknown ``discretization``, ``dt`` not a finite number > 0 (seconds per
            timestep), or a ``β`` outside (0, 1).
    """
    _check(discretization, dt)
    b = np.asarray(beta, dtype=np.float64)
    if np.any(~((b > 0) & (b < 1))):
        raise ValueError(f"beta must lie in (0, 1) to be exported as a NIR time constant, got {b}")
    return dt / (1.0 - b) if discretization == "euler" else -dt / np.log(b)


def nir_tau_to_beta(tau: np.ndarray, dt: float, discretization: str = "euler") -> np.ndarray:
    """Decay factor ``β`` (float64 array, ``τ``'s shape) for NIR time constants ``τ`` (seconds).

    Raises:
        ValueError: unknown ``discretization``, ``dt`` not a finite number > 0, or a resulting
            ``β`` outside (0, 1) (Euler needs ``τ > dt``).
    """
    _check(discretization, dt)
    t = np.asarray(tau, dtype=np.float64)
    b = 1.0 - dt / t if discretization == "euler" else np.exp(-dt / t)
    if np.any(~((b > 0) & (b < 1))):
        raise ValueError(f"NIR tau={t} with dt={dt} s gives decay factors beta={b} outside (0, 1): "
                         "pass the dt the graph was made for (Euler needs tau > dt)")
    return b


def resistance(beta: np.ndarray, decay_input: bool) -> np.ndarray:
    """NIR ``R`` that makes the input gain ``g`` equal snn's (1, or ``1 − β`` with ``decay_input``)."""
    b = np.asarray(beta, dtype=np.float64)
    return np.ones_like(b) if decay_input else 1.0 / (1.0 - b)


def input_gain(beta: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Input gain ``g = (1 − β)·R`` of a leaky node (both discretizations)."""
    return (1.0 - np.asarray(beta, dtype=np.float64)) * np.asarray(r, dtype=np.float64)
