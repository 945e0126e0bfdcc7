"""Documented model presets, built by name (``snn train --model NAME``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from snn.models.conv import ConvSNN
from snn.models.mlp import MLPSNN
from snn.models.shd import DelaySNN

__all__ = ["Preset", "PRESETS", "build_model"]


@dataclass(frozen=True)
class Preset:
    """A named model recipe: factory, default arguments and a one-line description."""

    factory: Callable[..., nn.Module]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""


PRESETS: dict[str, Preset] = {
    "conv": Preset(ConvSNN, dict(channels=(16, 32), kernel_size=5, neuron="lif", tau=2.0, dropout=0.3),
                   "2 conv blocks (16, 32 ch, 5×5, BN, max-pool) of LIF neurons → dropout 0.3 → linear → "
                   "leaky readout; "
                   "for 34×34×2 event frames (N-MNIST, digits-events)"),
    "conv-plif": Preset(ConvSNN, dict(channels=(16, 32), kernel_size=5, neuron="plif", tau=2.0, dropout=0.3),
                        "as 'conv' with parametric LIF (learnable τ per layer)"),
    "mlp": Preset(MLPSNN, dict(hidden=(256,), neuron="lif", tau=2.0),
                  "flatten → 256 LIF → linear → leaky readout; any input size (set in_features)"),
    "mlp2": Preset(MLPSNN, dict(hidden=(256, 256), neuron="lif", tau=5.0, dropout=0.1),
                   "flatten → 256 LIF → 256 LIF → linear → leaky readout (e.g. SHD: in_features=700, 20 classes)"),
    "shd-delays": Preset(DelaySNN, dict(hidden=(256, 256), max_delay=25, channel_bins=140, tau=10.05, dropout=0.4),
                         "SHD/SSC delay SNN (Hammouamri et al. 2024): 700→140 channels, 2 × 256 LIF with learnable "
                         "delays (max 25 steps), BN, dropout 0.4, delayed leaky readout; use 10 ms bins"),
}


def build_model(name: str, **overrides: Any) -> nn.Module:
    """Instantiate preset ``name`` with ``overrides`` on top of its defaults.

    Raises:
        ValueError: unknown preset (the message lists the valid ones).
    """
    preset = PRESETS.get(name)
    if preset is None:
        raise ValueError(f"unknown model preset {name!r}; valid presets: {sorted(PRESETS)}")
    return preset.factory(**{**preset.defaults, **overrides})
