"""VGG with batch norm (ANN), laid out so torchvision's ``vgg*_bn`` state dicts load unchanged."""
from __future__ import annotations

from typing import Any, Sequence, Union

import torch
from torch import Tensor, nn

from snn.conversion.activations import ActivationLike, make_activation

__all__ = ["VGG", "VGG_CONFIGS", "vgg11_bn", "vgg16_bn"]

#: Layer configurations of Simonyan & Zisserman (ICLR 2015), Table 1: output channels of each
#: 3×3 conv, "M" for a 2×2 pooling. "A" = VGG-11, "D" = VGG-16.
VGG_CONFIGS: dict[str, list[Union[int, str]]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """VGG network (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
    Recognition", ICLR 2015) with batch norm after every conv (Ioffe & Szegedy 2015).

    Module layout and names follow torchvision's ``VGG``: ``features`` is a Sequential of
    ``Conv2d(3×3, padding 1) → BatchNorm2d → activation`` triples and pooling layers (so the
    first conv is ``features.0``, its BN ``features.1``, the next conv ``features.3``, ...),
    then ``avgpool = AdaptiveAvgPool2d(pool_size)``, ``torch.flatten(x, 1)``, and
    ``classifier = [Linear, act, Dropout, Linear, act, Dropout, Linear]`` (``classifier.0``,
    ``classifier.3``, ``classifier.6``). With the defaults (3 input channels, ``pool_size=7``,
    ``hidden=4096``, ``width=1``) a torchvision ``vgg11_bn``/``vgg16_bn`` state dict loads with
    ``load_state_dict`` as is; other values keep the names but change the shapes (e.g.
    CIFAR-style ``pool_size=1, hidden=512``).

    Args:
        cfg: a key of :data:`VGG_CONFIGS` or a list of channel counts and ``"M"``.
        num_classes: outputs.
        in_channels: input channels (3 for RGB, 2 for event-count frames).
        pool_size: output size of the adaptive average pooling before the classifier.
        hidden: width of the two hidden classifier layers.
        dropout: dropout probability in the classifier (removed by conversion).
        width: multiplier of every conv's channel count (``int(c * width)``, at least 1).
        pool: ``"max"`` (torchvision) or ``"avg"`` for the 2×2 pooling layers; average
            pooling converts exactly, max pooling through :class:`snn.conversion.SpikingMaxPool`.
        activation: ``"relu"`` (default), ``"qcfs:L"``, ``"relu6"``, ``"clip:λ"`` or a factory
            (see :func:`snn.conversion.make_activation`).

    Shape:
        ``[B, in_channels, H, W] → [B, num_classes]`` (H, W ≥ 2^(number of "M")).

    Raises:
        ValueError: unknown ``cfg`` or ``pool``, non-positive sizes, an unknown ``activation``
            name (``TypeError`` for a factory not returning an ``nn.Module``).
    """

    def __init__(self, cfg: Union[str, Sequence[Union[int, str]]] = "D", num_classes: int = 1000,
                 in_channels: int = 3, pool_size: int = 7, hidden: int = 4096, dropout: float = 0.5,
                 width: float = 1.0, pool: str = "max", activation: ActivationLike = "relu") -> None:
        super().__init__()
        if isinstance(cfg, str):
            if cfg not in VGG_CONFIGS:
                raise ValueError(f"unknown VGG cfg {cfg!r}; valid: {sorted(VGG_CONFIGS)} or a list")
            cfg = VGG_CONFIGS[cfg]
        if pool not in ("max", "avg"):
            raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
        if min(num_classes, in_channels, pool_size, hidden) < 1 or not width > 0:
            raise ValueError("num_classes, in_channels, pool_size, hidden and width must be positive")
        layers: list[nn.Module] = []
        c = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2) if pool == "max" else nn.AvgPool2d(2, 2))
            else:
                out = max(1, int(int(v) * width))
                layers += [nn.Conv2d(c, out, 3, padding=1), nn.BatchNorm2d(out), make_activation(activation)]
                c = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(pool_size)
        self.classifier = nn.Sequential(
            nn.Linear(c * pool_size * pool_size, hidden), make_activation(activation), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), make_activation(activation), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal convs (fan-out, He et al., ICCV 2015), unit BN, He-uniform (Kaiming-uniform,
        ReLU gain) linear weights; zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def vgg11_bn(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG-11 with batch norm (configuration "A"); ``kwargs`` as :class:`VGG`."""
    return VGG("A", num_classes=num_classes, **kwargs)


def vgg16_bn(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG-16 with batch norm (configuration "D"); ``kwargs`` as :class:`VGG`."""
    return VGG("D", num_classes=num_classes, **kwargs)
