"""Parametric LIF: the membrane time constant is learned (Fang et al., ICCV 2021)."""
from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor, nn

from snn.neurons.base import BaseNeuron
from snn.neurons.lif import tau_to_beta

__all__ = ["ParametricLIF", "PLIF"]


class ParametricLIF(BaseNeuron):
    r"""LIF neuron with a learnable decay factor ``β = sigmoid(w)``.

    .. math::
        h[t] = \beta v[t-1] + g\, x[t], \quad \beta = \mathrm{sigmoid}(w) \in (0, 1)

    Source: Fang et al., "Incorporating Learnable Membrane Time Constant to Enhance Learning
    of Spiking Neural Networks", ICCV 2021, eq. (5)-(6), where ``1/τ = sigmoid(w)`` and the
    input is scaled by ``1/τ``. Here the sigmoid parameterises the decay ``β = 1 − 1/τ`` of
    that Euler form directly (``decay_input=True`` reproduces the paper's update exactly with
    ``w_here = −w_paper``); the parameter stays bounded and its gradient is smooth either way.

    Args:
        tau: initial time constant in timesteps (> 0); ``w`` starts at ``logit(exp(−1/τ))``.
        decay_input: scale the input by ``1 − β`` (the paper's form).
        **kwargs: as :class:`snn.neurons.base.BaseNeuron` (``num_channels`` gives one ``w`` per channel).

    Shape:
        ``[T, B, *feature] → [T, B, *feature]``.

    Attributes:
        w: the learnable parameter, 0-d or ``[num_channels]``.

    Raises:
        ValueError: ``tau`` not a finite number > 0 (see :func:`~snn.neurons.lif.tau_to_beta`),
            or a bad base argument (see :class:`~snn.neurons.base.BaseNeuron`).
    """

    def __init__(self, tau: float = 2.0, decay_input: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        b = tau_to_beta(tau)
        self.decay_input = decay_input
        shape = (self.num_channels,) if self.num_channels else ()
        self.w = nn.Parameter(torch.full(shape, math.log(b / (1.0 - b)), **self._factory))

    def decay(self) -> Optional[Tensor]:
        return torch.sigmoid(self.w)

    @property
    def tau(self) -> Tensor:
        """Current time constant in timesteps, ``−1/ln β``."""
        return -1.0 / torch.log(torch.sigmoid(self.w.detach()))

    def extra_repr(self) -> str:
        tau = self.tau
        t = f"{tau.item():.4g}" if tau.dim() == 0 else f"[{tau.shape[0]}]"
        return f"tau={t} (learnable), decay_input={self.decay_input}, " + super().extra_repr()


PLIF = ParametricLIF
