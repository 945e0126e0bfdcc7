r"""The Dynamic-Confidence decision rule, written once (batched runner, stream and offline sweeps use it).

Li, Jones & Furber, "Unleashing the Potential of Spiking Neural Networks with Dynamic
Confidence", ICCV 2023 (arXiv:2303.10276), Sec. 3: the network's output is accumulated over
time and divided by a *fixed* constant ``s`` (it does not depend on ``t``, so the
accumulated output — and with it the confidence — grows as evidence arrives),

.. math::
    O_t = \frac{1}{s} \sum_{\tau \le t} z_\tau, \qquad
    c_t = \max_k \operatorname{softmax}(O_t)_k, \qquad
    t^\star = \min\{t : c_t > \theta\}\ (\text{or } T_{\max}), \qquad
    \hat y = \arg\max_k O_{t^\star, k}

where ``z_τ`` is the network output at step τ. Here ``s`` defaults to ``T_max``: then
``O_{T_max}`` is exactly the training-time score of :func:`snn.train.scores` (the mean of
the readout over ``T_max`` steps), so the softmax at the full length is the calibrated one
that cross-entropy training produced, and every earlier ``O_t`` is a partial sum of it.

Two kinds of network output (``readout``):

* ``"sum"``: the output at each step is ``z_t`` (e.g. the leaky-integrator membrane of
  :class:`snn.models.ConvSNN`), accumulated here;
* ``"cumulative"``: the output is already ``Σ_{τ≤t} z_τ`` (a non-leaky integrator readout,
  e.g. :class:`snn.conversion.ConvertedSNN`'s accumulator, ``LeakyIntegrator(tau=inf)``).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from snn.neurons import LeakyIntegrator
from snn.state import StatefulModule

__all__ = ["READOUTS", "detect_readout", "accumulate", "confidence", "first_crossing", "readout_scores"]

READOUTS = ("sum", "cumulative")


def detect_readout(model: nn.Module) -> str:
    """``"cumulative"`` if the last stateful module of ``model`` is a non-leaky
    :class:`snn.LeakyIntegrator` (``tau=inf``, e.g. a converted network's accumulator), else ``"sum"``."""
    last = None
    for m in model.modules():
        if isinstance(m, StatefulModule):
            last = m
    return "cumulative" if isinstance(last, LeakyIntegrator) and last.beta is None else "sum"


def check_readout(readout: str, model: Optional[nn.Module] = None) -> str:
    """Resolve ``"auto"`` with :func:`detect_readout`; raise ``ValueError`` for an unknown name."""
    if readout == "auto":
        if model is None:
            raise ValueError("readout='auto' needs the model")
        return detect_readout(model)
    if readout not in READOUTS:
        raise ValueError(f"readout must be 'auto', 'sum' or 'cumulative', got {readout!r}")
    return readout


def accumulate(y: Tensor, previous: Optional[Tensor], readout: str) -> Tensor:
    """Unscaled accumulated output ``Σ_{τ≤t} z_τ`` for the ``k`` steps of ``y``.

    Args:
        y: network output of ``k`` consecutive steps, ``[k, B, C]``.
        previous: the accumulated output before these steps ``[B, C]`` (``None`` at the start).
        readout: ``"sum"`` or ``"cumulative"`` (see the module docstring).

    Returns:
        ``[k, B, C]``.
    """
    if readout == "cumulative":
        return y
    acc = y.cumsum(0)
    return acc if previous is None else acc + previous


def confidence(accumulated: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """``(c, ŷ)``: max softmax probability (float64) and argmax (int64) of ``accumulated / scale``
    over the last dim. Float64 keeps ``c`` below 1 up to logit gaps of about 36."""
    p = torch.softmax(accumulated.double() / scale, dim=-1)
    c, pred = p.max(dim=-1)
    return c, pred


def first_crossing(conf: Tensor, threshold: float, force_last: bool) -> tuple[Tensor, Tensor]:
    """Where each column first satisfies ``c > θ`` (strictly).

    Args:
        conf: confidences of consecutive steps, ``[k, N]``.
        threshold: θ.
        force_last: the last row is ``T_max``: every column stops there at the latest.

    Returns:
        ``(stopped [N] bool, index [N] int64)``: ``index`` is the first row that stops
        (meaningless where ``stopped`` is False).
    """
    hit = conf > threshold
    if force_last:
        hit[-1] = True
    return hit.any(0), hit.to(torch.uint8).argmax(0)


def readout_scores(output: Tensor, readout: str) -> Tensor:
    """Class scores ``[B, C]`` of a whole run ``[T, B, C]``: ``O_T`` with ``s = T``, i.e. the mean
    readout (``"sum"``, as :func:`snn.train.scores`) or the final accumulator / ``T`` (``"cumulative"``)."""
    return output.mean(0) if readout == "sum" else output[-1] / output.shape[0]
