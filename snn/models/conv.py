"""Small convolutional SNN for event frames (e.g. N-MNIST's 34×34×2)."""
from __future__ import annotations

import numbers
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from snn.layers import TimeDistributed
from snn.models.blocks import make_neuron
from snn.neurons import LeakyIntegrator, check_sequence
from snn.validation import is_positive_int

__all__ = ["ConvSNN"]


class ConvSNN(nn.Module):
    """Conv → BN → pool → spiking neuron blocks, then a linear layer into a leaky-integrator readout.

    Each block is ``TimeDistributed(Conv2d(k, padding=k//2), BatchNorm2d, MaxPool2d(2))``
    followed by a spiking neuron layer; the head is ``Flatten → Dropout → Linear →
    LeakyIntegrator``. Class scores are read from the readout membrane (its mean over time,
    see :func:`snn.train.scores`). With the defaults this is the "plain 2-conv LIF network"
    commonly used for N-MNIST (cf. the snnTorch and SpikingJelly tutorials).

    Args:
        in_channels: input channels (polarities), 2 for DVS data.
        num_classes: outputs.
        input_size: input height = width in pixels (34 for N-MNIST).
        channels: output channels of each conv block.
        kernel_size: conv kernel size (odd, so that the padding keeps the size).
        neuron: ``"lif"``, ``"plif"`` or ``"if"``.
        tau: membrane time constant in timesteps (LIF/PLIF).
        surrogate: surrogate-gradient name or instance.
        backend: neuron backend (``"auto"``, ``"torch"``, ...).
        dropout: dropout before the linear head.
        readout_tau: time constant of the readout integrator (timesteps).
        T: if given, inputs must have exactly ``T`` timesteps (``ValueError`` otherwise).
        detach_reset: detach the neurons' reset from the gradient (default ``True`` here,
            unlike the neuron layers' own default; Zenke & Vogels 2021).
        channels_last: run the conv blocks on channels-last activations (each timestep's
            ``[B, C, H, W]`` stored as ``B, H, W, C``). oneDNN's and cuDNN's convolutions,
            batch norm and pooling are faster in that layout, and the fused neuron kernels walk
            it in place, so the result is the same up to float rounding, only faster (one
            training step of the ``conv`` preset on a 2-core CPU: about 20 % less time, see
            ``benchmarks/conv_step.py``).

    Shape:
        ``[T, B, in_channels, input_size, input_size] → [T, B, num_classes]`` (readout membrane).

    Raises:
        ValueError: a non-positive size, an even ``kernel_size``, no conv block, an
            ``input_size`` below ``2 ** len(channels)`` (each block halves it), an unknown
            ``neuron``; in forward, an input that is not
            ``[T, B, in_channels, input_size, input_size]`` (or has not ``T`` steps, or NaN on CPU).
    """

    def __init__(self, in_channels: int = 2, num_classes: int = 10, input_size: int = 34,
                 channels: Sequence[int] = (16, 32), kernel_size: int = 5, neuron: str = "lif",
                 tau: float = 2.0, surrogate: str = "atan", backend: str = "auto", dropout: float = 0.0,
                 readout_tau: float = 5.0, T: Optional[int] = None, detach_reset: bool = True,
                 channels_last: bool = True) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("num_classes", num_classes), ("input_size", input_size)):
            if not is_positive_int(v):
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not (isinstance(kernel_size, numbers.Integral) and kernel_size >= 1 and kernel_size % 2 == 1):
            raise ValueError(f"kernel_size must be an odd positive int ('same' padding keeps the size), got {kernel_size!r}")
        if not channels:
            raise ValueError("channels must list at least one conv block")
        if input_size < 2 ** len(channels):
            raise ValueError(f"input_size={input_size} is too small for {len(channels)} conv blocks, each halving it "
                             f"by 2×2 max pooling: needs ≥ {2 ** len(channels)}")
        self.T = T
        self.in_channels, self.input_size = in_channels, input_size
        layers: list[nn.Module] = []
        c_in, size = in_channels, input_size
        for c_out in channels:
            layers.append(TimeDistributed(nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
                                          nn.BatchNorm2d(c_out), nn.MaxPool2d(2)))
            layers.append(make_neuron(neuron, tau=tau, surrogate=surrogate, backend=backend,
                                      detach_reset=detach_reset))
            c_in, size = c_out, size // 2
        self.features = nn.Sequential(*layers)
        if channels_last:  # channels-last weights make the convolutions return channels-last
            self.features.to(memory_format=torch.channels_last)  # (whatever the input's layout)
        self.head = nn.Sequential(nn.Flatten(2), nn.Dropout(dropout), nn.Linear(c_in * size * size, num_classes))
        self.readout = LeakyIntegrator(tau=readout_tau)

    def forward(self, x: Tensor) -> Tensor:
        check_sequence(x, "x", min_dim=5, T=self.T)
        if x.shape[2:] != (self.in_channels, self.input_size, self.input_size):
            raise ValueError(f"x must be [T, B, {self.in_channels}, {self.input_size}, {self.input_size}], "
                             f"got {tuple(x.shape)}")
        return self.readout(self.head(self.features(x)))
