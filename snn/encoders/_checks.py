"""Argument checks shared by the static-input encoders (private)."""
from __future__ import annotations

import math
import numbers

import torch


def check_steps(T: object) -> int:
    """Return ``T`` as a Python int, or raise if it is not a positive integer."""
    if isinstance(T, bool) or not isinstance(T, numbers.Integral) or int(T) < 1:
        raise ValueError(f"T must be a positive integer number of timesteps, got {T!r}")
    return int(T)


def check_tensor(x: object, name: str = "x") -> torch.Tensor:
    """Require a floating-point/integer tensor of rank >= 1 without NaN."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [B, ...], got {type(x).__name__}")
    if x.dim() < 1:
        raise ValueError(f"{name} must have shape [B, ...] (rank >= 1), got a 0-d tensor")
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be a real-valued tensor, got dtype {x.dtype}")
    if x.is_floating_point() and bool(torch.isnan(x).any()):
        raise ValueError(f"{name} contains NaN values")
    return x


def check_unit_range(p: torch.Tensor, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` and the observed range if ``p`` leaves [0, 1]."""
    if p.numel() == 0:
        return
    if p.is_floating_point() and bool(torch.isnan(p).any()):
        raise ValueError(f"{what} must lie in [0, 1], got NaN values (e.g. 0 * inf)")
    lo, hi = float(p.min()), float(p.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{what} must lie in [0, 1], got values in [{lo:.6g}, {hi:.6g}]")


def check_finite_real(v: object, name: str) -> float:
    """Return ``v`` as a float, or raise if it is not a finite real number (bools refused).

    Raises ``TypeError`` for a non-number and ``ValueError`` for NaN or an infinity, both
    naming ``name``. A one-element real tensor is read as its value.
    """
    if isinstance(v, torch.Tensor) and v.numel() == 1 and not (v.is_complex() or v.dtype == torch.bool):
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a finite real number, got {type(v).__name__} {v!r}")
    if not math.isfinite(float(v)):
        raise ValueError(f"{name} must be a finite real number, got {v!r}")
    return float(v)


def check_generator(generator: object) -> None:
    """Raise ``TypeError`` unless ``generator`` is a ``torch.Generator`` or ``None``."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__} "
                        f"{generator!r}")
