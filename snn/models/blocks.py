"""Builders shared by the reference models: neuron factory by name."""
from __future__ import annotations

from typing import Any

from torch import nn

from snn.neurons import IF, LIF, PLIF

__all__ = ["NEURONS", "make_neuron"]

NEURONS: dict[str, type[nn.Module]] = {"if": IF, "lif": LIF, "plif": PLIF}


def make_neuron(kind: str, **kwargs: Any) -> nn.Module:
    """Build a neuron layer by name (``"if"``, ``"lif"``, ``"plif"``).

    ``tau`` is dropped for IF. Raises ``ValueError`` for an unknown name (lists the valid ones).
    """
    cls = NEURONS.get(kind.lower())
    if cls is None:
        raise ValueError(f"unknown neuron {kind!r}; valid neurons: {sorted(NEURONS)}")
    if cls is IF:
        kwargs.pop("tau", None)
    return cls(**kwargs)
