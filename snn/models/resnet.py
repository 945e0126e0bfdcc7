"""ResNet-18 (ImageNet or CIFAR stem) and ResNet-20 (CIFAR), as ANNs for conversion, with the
parameter names of torchvision's / timm's ``resnet18`` (conv1, bn1, layer1.0.conv1, ..., fc)."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from snn.conversion.activations import ActivationLike, make_activation

__all__ = ["BasicBlock", "ResNet", "resnet18", "resnet20"]


class BasicBlock(nn.Module):
    r"""Residual block of two 3×3 convs (He et al., "Deep Residual Learning for Image
    Recognition", CVPR 2016, Fig. 2): :math:`y = f(\mathrm{BN}(W_2 f(\mathrm{BN}(W_1 x))) + S x)`,
    with :math:`S` the identity or ``downsample`` (1×1 conv + BN, the paper's option B).

    Parameter names as torchvision/timm (``conv1, bn1, conv2, bn2, downsample.0/1``); the two
    activations are separate modules ``act1``/``act2`` (timm's names) because a converted
    activation is a stateful neuron layer.

    Args:
        inplanes, planes: input and output channels.
        stride: stride of ``conv1`` (and of ``downsample``, which must match it).
        downsample: shortcut module, needed when ``stride != 1`` or ``inplanes != planes``.
        activation: as :func:`snn.conversion.make_activation`.

    Shape:
        ``[B, inplanes, H, W] → [B, planes, H/stride, W/stride]``.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 activation: ActivationLike = "relu") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = make_activation(activation)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = make_activation(activation)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + identity)


class ResNet(nn.Module):
    """ResNet of :class:`BasicBlock` stages with torchvision's module names.

    ``conv1 → bn1 → relu → maxpool → layer1 … layerN → avgpool → flatten → fc``. The ImageNet
    stem is a 7×7/2 conv and a 3×3/2 max pooling; ``cifar_stem=True`` uses a 3×3/1 conv and no
    pooling (``maxpool`` is then an ``nn.Identity``), as for 32×32 inputs.

    Args:
        layers: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        widths: channels per stage (default ``64·2^i``).
        num_classes, in_channels: outputs and input channels.
        cifar_stem: small-image stem (see above).
        activation: ``"relu"``, ``"qcfs:L"``, ... (:func:`snn.conversion.make_activation`).

    Shape:
        ``[B, in_channels, H, W] → [B, num_classes]``.

    Raises:
        ValueError: ``layers`` and ``widths`` of different lengths or non-positive entries.
    """

    def __init__(self, layers: Sequence[int] = (2, 2, 2, 2), widths: Optional[Sequence[int]] = None,
                 num_classes: int = 1000, in_channels: int = 3, cifar_stem: bool = False,
                 activation: ActivationLike = "relu") -> None:
        super().__init__()
        widths = list(widths) if widths is not None else [64 * 2 ** i for i in range(len(layers))]
        if len(widths) != len(layers) or min(list(layers) + widths + [num_classes, in_channels]) < 1:
            raise ValueError(f"layers {list(layers)} and widths {widths} must be positive and of equal length")
        w0 = widths[0]
        if cifar_stem:
            self.conv1 = nn.Conv2d(in_channels, w0, 3, 1, 1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, w0, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(w0)
        self.relu = make_activation(activation)
        inplanes = w0
        for i, (n, w) in enumerate(zip(layers, widths)):
            stride = 1 if i == 0 else 2
            blocks = []
            for b in range(n):
                s = stride if b == 0 else 1
                down = None
                if s != 1 or inplanes != w:
                    down = nn.Sequential(nn.Conv2d(inplanes, w, 1, s, bias=False), nn.BatchNorm2d(w))
                blocks.append(BasicBlock(inplanes, w, s, down, activation))
                inplanes = w
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_stages = len(layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal convs (fan-out), unit BN; the torch default for ``fc``."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes: int = 1000, in_channels: int = 3, cifar_stem: bool = False, width: int = 64,
             activation: ActivationLike = "relu") -> ResNet:
    """ResNet-18 (He et al. 2016, Table 1): 4 stages × 2 basic blocks, ``width·(1, 2, 4, 8)`` channels.

    With the defaults a torchvision or timm ``resnet18`` state dict loads as is.
    """
    return ResNet((2, 2, 2, 2), [width * 2 ** i for i in range(4)], num_classes, in_channels, cifar_stem, activation)


def resnet20(num_classes: int = 10, in_channels: int = 3, width: int = 16,
             activation: ActivationLike = "relu") -> ResNet:
    """ResNet-20 for 32×32 images (He et al. 2016, Sec. 4.2): 3×3 stem, 3 stages × 3 basic blocks
    with ``width·(1, 2, 4)`` channels; projection shortcuts (option B) where the shape changes."""
    return ResNet((3, 3, 3), [width, 2 * width, 4 * width], num_classes, in_channels, True, activation)
