"""Optional threshold rescaling between IIR stages (ours, not part of IIR-SNN).

When an IIR stage lowers ``T``, a neuron has fewer steps to charge, and layers whose inputs
sit below threshold fall silent until retraining moves the thresholds. Rescaling the
thresholds before the stage starts retraining from a closer point:

* a number ``f``: every threshold (and ``v_init``, which is kept in proportion) times ``f``;
* ``"rate"``: layer by layer in network order, the factor that makes the layer's firing rate
  at the new ``T`` equal its rate at the previous ``T`` on a calibration batch (bisection on
  ``log f``; the rate falls monotonically as the threshold rises).
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Union

import torch
from torch import Tensor, nn

from snn.neurons import BaseNeuron
from snn.state import reset
from snn.train.monitor import SpikeMonitor
from snn.validation import is_positive_finite

__all__ = ["scale_thresholds", "match_firing_rates", "rescale_thresholds", "ThresholdRescale"]

ThresholdRescale = Union[None, float, str]


@torch.no_grad()
def scale_thresholds(model: nn.Module, factor: float | dict[str, float]) -> None:
    """Multiply the threshold and ``v_init`` of every spiking layer (or of the named ones) by a factor.

    Raises:
        ValueError: a non-positive or non-finite factor.
    """
    factors = factor if isinstance(factor, dict) else {n: factor for n, m in model.named_modules()
                                                       if isinstance(m, BaseNeuron)}
    for name, f in factors.items():
        if not (isinstance(f, numbers.Real) and 0 < f < math.inf):
            raise ValueError(f"threshold factor for {name!r} must be a positive number, got {f!r}")
        m = model.get_submodule(name)
        m.v_threshold.mul_(f)
        m.v_init.mul_(f)


@torch.no_grad()
def _rates(model: nn.Module, x: Tensor) -> dict[str, float]:
    mon = SpikeMonitor(model)
    reset(model)
    with mon:
        model(x)
    reset(model)
    return mon.rates()


@torch.no_grad()
def match_firing_rates(model: nn.Module, x_static: Tensor, T_from: int, T_to: int,
                       encode: Callable[[Tensor, int], Tensor], iterations: int = 12,
                       max_factor: float = 16.0) -> dict[str, float]:
    """Rescale thresholds so every spiking layer fires at ``T_to`` as it did at ``T_from``.

    Args:
        model: the network (modified in place; run in eval mode, restored afterwards).
        x_static: a calibration batch of static inputs ``[B, ...]`` (a few hundred samples).
        T_from, T_to: previous and new number of timesteps.
        encode: ``(x [B, ...], T) → [T, B, ...]``, e.g. :func:`snn.encoders.direct`.
        iterations: bisection steps per layer.
        max_factor: factors are searched in ``[1/max_factor, max_factor]``.

    Returns:
        the factor applied to each layer (1.0 for layers silent at ``T_from``).
    """
    was_training = model.training
    model.eval()
    try:
        target = _rates(model, encode(x_static, T_from))
        x_new = encode(x_static, T_to)
        applied: dict[str, float] = {}
        for name in target:
            if target[name] == 0.0:
                applied[name] = 1.0
                continue
            m = model.get_submodule(name)
            th0, vi0 = m.v_threshold.clone(), m.v_init.clone()
            lo, hi = -math.log(max_factor), math.log(max_factor)
            for _ in range(iterations):
                mid = 0.5 * (lo + hi)
                m.v_threshold.copy_(th0 * math.exp(mid))
                m.v_init.copy_(vi0 * math.exp(mid))
                if _rates(model, x_new)[name] > target[name]:
                    lo = mid  # fires too much: raise the threshold
                else:
                    hi = mid
            f = math.exp(0.5 * (lo + hi))
            m.v_threshold.copy_(th0 * f)
            m.v_init.copy_(vi0 * f)
            applied[name] = f
    finally:
        model.train(was_training)
    return applied


def rescale_thresholds(model: nn.Module, how: ThresholdRescale, x_static: Tensor, T_from: int, T_to: int,
                       encode: Callable[[Tensor, int], Tensor]) -> dict[str, float]:
    """Apply the rescaling ``how`` (``None``, a factor, or ``"rate"``) between two IIR stages.

    Returns:
        the factor applied per spiking layer (empty for ``None``).

    Raises:
        ValueError: ``how`` is neither ``None``, a positive number nor ``"rate"``.
    """
    if how is None or how == "none":
        return {}
    if how == "rate":
        return match_firing_rates(model, x_static, T_from, T_to, encode)
    if is_positive_finite(how):
        scale_thresholds(model, float(how))
        return {n: float(how) for n, m in model.named_modules() if isinstance(m, BaseNeuron)}
    raise ValueError(f"threshold rescaling must be None, 'rate' or a positive factor, got {how!r}")
