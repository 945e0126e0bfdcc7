"""Counting the work a network really did: membrane updates and spikes of its spiking layers."""
from __future__ import annotations

from torch import Tensor, nn

from snn.neurons import BaseNeuron

__all__ = ["UpdateCounter"]


class UpdateCounter:
    """Counts neuron (membrane) updates and spikes of every :class:`snn.neurons.BaseNeuron`
    layer in ``model`` while active (a context manager, through forward hooks: multi-step and
    stateful-chunk calls are counted, ``step()`` calls are not).

    One update = one neuron advanced by one timestep for one sample, so a multi-step call on
    ``[T, B, *feature]`` adds ``T·B·prod(feature)`` — whatever the batch held at that time.
    This is what early stopping must reduce when finished samples leave the batch.

    Attributes:
        updates (int): membrane updates counted so far.
        spikes (float): spikes emitted so far.

    Examples:
        >>> with UpdateCounter(model) as c:
        ...     model(x)
        >>> c.updates
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, BaseNeuron)]
        self.updates = 0
        self.spikes = 0.0
        self._handles: list = []

    def _hook(self, module: nn.Module, inputs, output: Tensor) -> None:
        self.updates += output.numel()
        self.spikes += float(output.detach().sum())

    def __enter__(self) -> "UpdateCounter":
        self._handles = [m.register_forward_hook(self._hook) for m in self.layers]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
