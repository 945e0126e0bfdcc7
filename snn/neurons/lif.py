"""Leaky integrate-and-fire neuron with a fixed membrane time constant."""
from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor

from snn.neurons.base import BaseNeuron

__all__ = ["LIF", "tau_to_beta", "beta_to_tau"]


def tau_to_beta(tau: float) -> float:
    """Decay factor ``β = exp(−1/τ)`` for a time constant ``τ`` in timesteps.

    Raises:
        ValueError: ``τ`` is not a finite number > 0, or so small or large (about
            ``τ < 0.0014`` or ``τ > 9e15``) that ``β`` rounds to 0 or 1 in float64.
    """
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be a finite number of timesteps > 0, got {tau!r}")
    beta = math.exp(-1.0 / float(tau))
    if not 0.0 < beta < 1.0:
        raise ValueError(f"tau={tau} timesteps gives the decay exp(-1/tau) = {beta}, which must lie strictly "
                         "between 0 and 1 (about 0.0014 < tau < 9e15)")
    return beta


def beta_to_tau(beta: float) -> float:
    """Time constant ``τ = −1/ln β`` in timesteps for a decay factor ``0 < β < 1``.

    Raises:
        ValueError: ``β`` outside the open interval (0, 1).
    """
    if not 0 < beta < 1:
        raise ValueError(f"beta must be in (0, 1), got {beta}")
    return -1.0 / math.log(beta)


class LIF(BaseNeuron):
    r"""Leaky integrate-and-fire neuron.

    .. math::
        h[t] = \beta v[t-1] + g\, x[t], \quad g = 1 - \beta \text{ if decay\_input else } 1, \quad
        \beta = e^{-1/\tau}

    then fire and reset as :class:`snn.IF`. The membrane leaks towards 0. Exact discretisation
    of :math:`\tau \dot v = -v + R I` with one-timestep input pulses (Gerstner et al.,
    *Neuronal Dynamics*, 2014, ch. 1). ``decay_input=True`` gives the normalised form of
    SpikingJelly/Fang et al.; the default adds the input current directly (snnTorch, Norse).

    Args:
        tau: membrane time constant in timesteps (> 0); ignored if ``beta`` is given.
        beta: decay factor in (0, 1), alternative to ``tau``.
        decay_input: scale the input by ``1 − β``.
        **kwargs: threshold, reset, surrogate, ... as in :class:`snn.neurons.base.BaseNeuron`.

    Shape:
        ``[T, B, *feature] → [T, B, *feature]`` (``step``: ``[B, *feature] → [B, *feature]``).

    Attributes:
        beta: buffer, 0-d or ``[num_channels]``.

    Raises:
        ValueError: ``tau`` not a finite number > 0 (when ``beta`` is not given), ``beta``
            outside (0, 1), or a bad base argument (see :class:`~snn.neurons.base.BaseNeuron`).

    Examples:
        >>> import torch, snn
        >>> lif = snn.LIF(tau=2.0)
        >>> spikes = lif(torch.rand(100, 8, 64))   # [T, B, N]
    """

    def __init__(self, tau: float = 2.0, beta: Optional[float] = None, decay_input: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        b = tau_to_beta(tau) if beta is None else beta
        if not 0 < b < 1:
            raise ValueError(f"beta must be in (0, 1), got {b}")
        self.decay_input = decay_input
        shape = (self.num_channels,) if self.num_channels else ()
        self.register_buffer("beta", torch.full(shape, b, **self._factory))

    def decay(self) -> Optional[Tensor]:
        return self.beta

    @property
    def tau(self) -> Tensor:
        """Membrane time constant in timesteps (derived from ``beta``)."""
        return -1.0 / torch.log(self.beta)

    def extra_repr(self) -> str:
        b = self.beta
        tau = f"{(-1.0 / math.log(b.item())):.4g}" if b.dim() == 0 else f"[{b.shape[0]}]"
        return f"tau={tau}, decay_input={self.decay_input}, " + super().extra_repr()
