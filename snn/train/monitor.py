"""Firing-rate monitoring of spiking layers through forward hooks."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from snn.neurons import BaseNeuron

__all__ = ["SpikeMonitor"]


class SpikeMonitor:
    """Counts the spikes of every spiking layer in ``model`` while active (a context manager).

    Firing rate = spikes / (neurons × timesteps × samples), dimensionless, per layer.
    ``record=name`` keeps the last output ``[T, B, ...]`` of that layer (for rasters).

    Args:
        model: the network; every :class:`snn.neurons.BaseNeuron` inside it is monitored.
        record: module name (as in ``model.named_modules()``) whose last output is kept, on
            the CPU, in ``recorded``.

    Attributes:
        layers: ``{name: neuron module}`` monitored.
        recorded: the recorded layer's last output ``[T, B, ...]`` (``None`` until seen).

    Examples:
        >>> with SpikeMonitor(model) as mon:
        ...     model(x)
        >>> mon.rates()    # {'features.1': 0.12, ...}
    """

    def __init__(self, model: nn.Module, record: Optional[str] = None) -> None:
        self.layers = {name: m for name, m in model.named_modules() if isinstance(m, BaseNeuron)}
        self.record = record
        self.recorded: Optional[Tensor] = None
        self._spikes = {n: 0.0 for n in self.layers}
        self._count = {n: 0 for n in self.layers}
        self._handles: list = []

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs, output: Tensor) -> None:
            with torch.no_grad():
                self._spikes[name] += float(output.sum())
                self._count[name] += output.numel()
                if name == self.record:
                    self.recorded = output.detach().cpu()
        return hook

    def __enter__(self) -> "SpikeMonitor":
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self.layers.items()]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def rates(self) -> dict[str, float]:
        """Firing rate per spiking layer (spikes / neuron / timestep), over everything seen."""
        return {n: self._spikes[n] / self._count[n] if self._count[n] else 0.0 for n in self.layers}

    def mean_rate(self) -> float:
        """Firing rate over all spiking neurons together."""
        total = sum(self._count.values())
        return sum(self._spikes.values()) / total if total else 0.0
