"""Fully connected SNN (any input flattened per timestep)."""
from __future__ import annotations

from typing import Optional, Sequence

from torch import Tensor, nn

from snn.models.blocks import make_neuron
from snn.neurons import LeakyIntegrator, check_sequence

__all__ = ["MLPSNN"]


class MLPSNN(nn.Module):
    """``Flatten → [Linear → spiking neuron] × len(hidden) → Linear → LeakyIntegrator``.

    Args:
        in_features: input features per timestep after flattening (e.g. 2·34·34 or 700).
        num_classes: outputs.
        hidden: sizes of the hidden spiking layers.
        neuron, tau, surrogate, backend, dropout, readout_tau, T, detach_reset: as
            :class:`snn.models.ConvSNN` (``dropout`` after every hidden spiking layer here).

    Shape:
        ``[T, B, *feature] → [T, B, num_classes]`` with ``prod(feature) == in_features``.

    Raises:
        ValueError: an unknown ``neuron``; in forward, fewer than 3 dims, not ``T`` steps, NaN
            (on CPU), or ``prod(feature) != in_features``.
    """

    def __init__(self, in_features: int = 2 * 34 * 34, num_classes: int = 10, hidden: Sequence[int] = (256,),
                 neuron: str = "lif", tau: float = 2.0, surrogate: str = "atan", backend: str = "auto",
                 dropout: float = 0.0, readout_tau: float = 5.0, T: Optional[int] = None,
                 detach_reset: bool = True) -> None:
        super().__init__()
        self.T, self.in_features = T, in_features
        layers: list[nn.Module] = [nn.Flatten(2)]
        n_in = in_features
        for n in hidden:
            layers += [nn.Linear(n_in, n), make_neuron(neuron, tau=tau, surrogate=surrogate, backend=backend,
                                                       detach_reset=detach_reset)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            n_in = n
        layers.append(nn.Linear(n_in, num_classes))
        self.layers = nn.Sequential(*layers)
        self.readout = LeakyIntegrator(tau=readout_tau)

    def forward(self, x: Tensor) -> Tensor:
        check_sequence(x, "x", min_dim=3, T=self.T)
        n = x[0, 0].numel()
        if n != self.in_features:
            raise ValueError(f"x has {n} features per timestep (shape {tuple(x.shape)}), "
                             f"expected in_features={self.in_features}")
        return self.readout(self.layers(x))
