"""Delay SNN of Hammouamri, Khalfaoui-Hassani & Masquelier (ICLR 2024) for SHD / SSC."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snn.delays import DelayLinear, DelayTrainingMixin, SigmaSchedule
from snn.layers import TimeDistributed
from snn.models.blocks import make_neuron
from snn.neurons import LeakyIntegrator, check_sequence
from snn.surrogate import get_surrogate

__all__ = ["DelaySNN", "TimeSharedDropout", "sum_channel_bins"]


def sum_channel_bins(x: Tensor, k: int) -> Tensor:
    """``[T, B, C] → [T, B, ⌈C / k⌉]``: adjacent channels summed in groups of ``k`` (the last
    group zero-padded), the input binning of :class:`DelaySNN`."""
    return F.pad(x, (0, -x.shape[2] % k)).reshape(*x.shape[:2], -1, k).sum(-1)


class TimeSharedDropout(nn.Module):
    """Dropout with one mask per sample and feature, shared by all timesteps of ``[T, B, ...]``
    (a dropped neuron stays silent for the whole sequence, as SpikingJelly's multi-step
    ``layer.Dropout`` used by the paper). Identity in eval mode or with ``p = 0``.

    Args:
        p: drop probability; kept values are scaled by ``1 / (1 − p)``.

    Shape:
        ``[T, B, ...] → [T, B, ...]``.

    Raises:
        ValueError: ``p`` outside ``[0, 1)``.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout p must be in [0, 1), got {p!r}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        mask = F.dropout(torch.ones_like(x[:1]), self.p, training=True)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


class DelaySNN(DelayTrainingMixin, nn.Module):
    """Fully connected SNN with learnable synaptic delays and a non-spiking readout.

    ``[optional channel binning] → [DelayLinear → BatchNorm → LIF → dropout] × len(hidden) →
    DelayLinear → LeakyIntegrator``. Defaults reproduce the SHD model of Hammouamri et al.,
    "Learning Delays in Spiking Neural Networks using Dilated Convolutions with Learnable
    Spacings" (ICLR 2024, sec. 4): 700 channels summed in groups of 5 to 140, 10 ms bins, two
    hidden layers of 256 LIF neurons (τ = 10.05 steps, threshold 1, hard reset, detached
    reset, arctan surrogate α = 5), bias-free delay synapses with max delay 25 steps, batch
    norm, dropout 0.4 (mask shared over time), a leaky-integrator readout, positions at 100×
    the learning rate, σ decaying from ``max_delay / 2`` to 0.5 over the first quarter of the
    epochs, and integer delays after training (hooks of :class:`snn.delays.DelayTrainingMixin`).

    Args:
        in_features: input channels per timestep (inputs ``[T, B, ...]`` are flattened from dim 2).
        num_classes: outputs (20 for SHD, 35 for SSC).
        hidden: hidden layer sizes.
        max_delay: largest delay in timesteps.
        channel_bins: if given and smaller than ``in_features``, adjacent input channels are
            summed in groups of ``k = ⌈in_features / channel_bins⌉`` (the last group may be
            partial), giving ``⌈in_features / k⌉ ≤ channel_bins`` channels: SHD's 700 → 140 (k = 5),
            the same bins as ``FrameDataset(..., downsample=0.2)``; 140 inputs stay as they are.
        delays: ``"learned"``, ``"fixed"`` (random integer delays) or ``"none"`` (no delays).
        interpolation, truncate: of the delay layers (:class:`snn.delays.DelayLinear`).
        sigma: initial σ (default ``max_delay / 2``); sigma_end, sigma_fraction: schedule.
        position_lr_factor: learning-rate multiplier of the positions.
        readout_delays: delays in the readout synapses too (as the paper).
        batchnorm, dropout: per hidden layer.
        neuron, tau, v_threshold, surrogate, surrogate_alpha, detach_reset: hidden neurons.
        readout_tau: time constant of the readout integrator (timesteps).
        backend: neuron backend; delay_backend: delay backend (``"auto"``, ``"torch"``, ``"numba"``).
        T: if given, inputs must have exactly ``T`` timesteps.

    Shape:
        ``[T, B, *feature] → [T, B, num_classes]`` (readout membrane), ``prod(feature) == in_features``.

    Raises:
        ValueError: non-positive ``in_features``/``channel_bins``; bad delay, neuron or σ-schedule
            settings (as :class:`snn.delays.DelayLinear`, :func:`snn.models.make_neuron`,
            :class:`snn.delays.SigmaSchedule`); in forward, inputs of the wrong size or without
            exactly ``T`` steps.
    """

    def __init__(self, in_features: int = 140, num_classes: int = 20, hidden: Sequence[int] = (256, 256),
                 max_delay: int = 25, channel_bins: Optional[int] = 140, delays: str = "learned",
                 interpolation: str = "gaussian", truncate: Optional[float] = 3.0, sigma: Optional[float] = None,
                 sigma_end: float = 0.5, sigma_fraction: float = 0.25, position_lr_factor: float = 100.0,
                 readout_delays: bool = True, batchnorm: bool = True, dropout: float = 0.4, neuron: str = "lif",
                 tau: float = 10.05, v_threshold: float = 1.0, surrogate: str = "atan", surrogate_alpha: float = 5.0,
                 detach_reset: bool = True, readout_tau: float = 10.05, backend: str = "auto",
                 delay_backend: str = "auto", T: Optional[int] = None) -> None:
        super().__init__()
        self.in_features, self.T = in_features, T
        for name, v in (("in_features", in_features), ("channel_bins", channel_bins)):
            if v is not None and not (isinstance(v, int) and v > 0):
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.bin = 1 if channel_bins is None or channel_bins >= in_features else -(-in_features // channel_bins)
        n_in = -(-in_features // self.bin)
        sg = get_surrogate(surrogate, surrogate_alpha)
        dkw = dict(delays=delays, interpolation=interpolation, truncate=truncate, sigma=sigma, bias=False,
                   backend=delay_backend)
        layers: list[nn.Module] = []
        for n in hidden:
            layers.append(DelayLinear(n_in, n, max_delay, **dkw))
            if batchnorm:
                layers.append(TimeDistributed(nn.BatchNorm1d(n)))
            nkw = dict(decay_input=False) if neuron.lower() != "if" else {}
            layers.append(make_neuron(neuron, tau=tau, v_threshold=v_threshold, surrogate=sg, backend=backend,
                                      detach_reset=detach_reset, **nkw))
            if dropout:
                layers.append(TimeSharedDropout(dropout))
            n_in = n
        self.features = nn.Sequential(*layers)
        self.head = DelayLinear(n_in, num_classes, max_delay if readout_delays else 0,
                                **{**dkw, "delays": delays if readout_delays else "none"})
        self.readout = LeakyIntegrator(tau=readout_tau)
        self.position_lr_factor = position_lr_factor
        gaussian = delays == "learned" and interpolation == "gaussian" and max_delay > 0
        self.sigma_schedule = SigmaSchedule(sigma if sigma is not None else max_delay / 2, sigma_end,
                                            sigma_fraction) if gaussian else None

    def forward(self, x: Tensor) -> Tensor:
        check_sequence(x, "x", min_dim=3, T=self.T)
        x = x.flatten(2)
        if x.shape[2] != self.in_features:
            raise ValueError(f"x has {x.shape[2]} features per timestep (shape {tuple(x.shape)}), "
                             f"expected in_features={self.in_features}")
        if self.bin > 1:
            x = sum_channel_bins(x, self.bin)
        return self.readout(self.head(self.features(x)))
