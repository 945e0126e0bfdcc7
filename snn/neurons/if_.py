"""Integrate-and-fire neuron (no leak)."""
from __future__ import annotations

from snn.neurons.base import BaseNeuron

__all__ = ["IF"]


class IF(BaseNeuron):
    r"""Integrate-and-fire neuron: a perfect integrator that spikes at ``v_threshold``.

    .. math::
        h[t] = v[t-1] + x[t], \quad s[t] = \Theta(h[t] - V_{th}), \quad
        v[t] = h[t] - s[t] V_{th} \text{ (soft) or } (1 - s[t]) h[t] + s[t] V_{reset} \text{ (hard)}

    The neuron of ANN→SNN conversion (with soft reset: Rueckauer et al., "Conversion of
    Continuous-Valued Deep Networks to Efficient Event-Driven Networks for Image
    Classification", Frontiers in Neuroscience 2017).

    Args: see :class:`snn.neurons.base.BaseNeuron`.

    Shape:
        ``[T, B, *feature] → [T, B, *feature]`` (``step``: ``[B, *feature] → [B, *feature]``).

    Examples:
        >>> import torch, snn
        >>> neuron = snn.IF(v_threshold=1.0, v_reset=None)      # soft reset
        >>> neuron(torch.full((4, 1, 1), 0.6)).flatten().tolist()
        [0.0, 1.0, 0.0, 1.0]
    """
