"""Reference CNNs: torchvision-compatible parameter names and shapes, forward shapes, conversion."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from snn.conversion import QCFS, convert
from snn.conversion.report import conversion_report
from snn.encoders import direct
from snn.models import VGG, resnet18, resnet20, vgg11_bn, vgg16_bn

BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _bn(prefix: str, n: int) -> dict[str, tuple]:
    return {f"{prefix}.{k}": (() if k == "num_batches_tracked" else (n,)) for k in BN_KEYS}


def torchvision_vgg_bn_keys(convs: list[tuple[int, int, int]], num_classes: int = 1000) -> dict[str, tuple]:
    """Key → shape of torchvision's ``vgg*_bn`` state dict, written out by hand from the
    documented layout: conv at ``features.i``, its BN at ``features.i+1``; classifier 0/3/6."""
    keys: dict[str, tuple] = {}
    for index, c_in, c_out in convs:
        keys[f"features.{index}.weight"] = (c_out, c_in, 3, 3)
        keys[f"features.{index}.bias"] = (c_out,)
        keys.update(_bn(f"features.{index + 1}", c_out))
    keys.update({"classifier.0.weight": (4096, 512 * 7 * 7), "classifier.0.bias": (4096,),
                 "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,),
                 "classifier.6.weight": (num_classes, 4096), "classifier.6.bias": (num_classes,)})
    return keys


VGG11_CONVS = [(0, 3, 64), (4, 64, 128), (8, 128, 256), (11, 256, 256), (15, 256, 512), (18, 512, 512),
               (22, 512, 512), (25, 512, 512)]
VGG16_CONVS = [(0, 3, 64), (3, 64, 64), (7, 64, 128), (10, 128, 128), (14, 128, 256), (17, 256, 256),
               (20, 256, 256), (24, 256, 512), (27, 512, 512), (30, 512, 512), (34, 512, 512), (37, 512, 512),
               (40, 512, 512)]


def torchvision_resnet18_keys(num_classes: int = 1000) -> dict[str, tuple]:
    keys: dict[str, tuple] = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    c_in = 64
    for stage, c in enumerate((64, 128, 256, 512), start=1):
        for block in (0, 1):
            p = f"layer{stage}.{block}"
            keys[f"{p}.conv1.weight"] = (c, c_in if block == 0 else c, 3, 3)
            keys.update(_bn(f"{p}.bn1", c))
            keys[f"{p}.conv2.weight"] = (c, c, 3, 3)
            keys.update(_bn(f"{p}.bn2", c))
            if block == 0 and stage > 1:
                keys[f"{p}.downsample.0.weight"] = (c, c_in, 1, 1)
                keys.update(_bn(f"{p}.downsample.1", c))
        c_in = c
    keys.update({"fc.weight": (num_classes, 512), "fc.bias": (num_classes,)})
    return keys


def _shapes(model: nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("factory, expected", [
    (vgg11_bn, torchvision_vgg_bn_keys(VGG11_CONVS)), (vgg16_bn, torchvision_vgg_bn_keys(VGG16_CONVS)),
    (resnet18, torchvision_resnet18_keys())])
def test_torchvision_state_dict_layout(factory, expected):
    with torch.device("meta"):  # full ImageNet sizes without allocating memory
        model = factory()
    assert _shapes(model) == expected
    assert len(expected) == {"vgg11_bn": 8 * 7 + 6, "vgg16_bn": 13 * 7 + 6, "resnet18": 122}[factory.__name__]


def test_hand_built_torchvision_state_dict_loads_strictly():
    g = torch.Generator().manual_seed(0)
    model = resnet18(num_classes=10, width=8)
    sd = {}
    for k, shape in torchvision_resnet18_keys(10).items():  # torchvision names, scaled-down shapes
        shape = tuple(model.state_dict()[k].shape)
        sd[k] = torch.randint(0, 5, shape, generator=g) if k.endswith("num_batches_tracked") else \
            torch.rand(shape, generator=g) + (0.5 if k.endswith("running_var") else 0.0)
    model.load_state_dict(sd, strict=True)
    assert torch.equal(model.layer2[0].downsample[0].weight, sd["layer2.0.downsample.0.weight"])
    vgg = vgg11_bn(num_classes=10, width=0.125, pool_size=1, hidden=16)
    vgg.load_state_dict({k: torch.zeros_like(v) for k, v in vgg.state_dict().items()}, strict=True)
    assert vgg.features[25].weight.shape == (64, 64, 3, 3)


def test_forward_shapes_and_options():
    x = torch.rand(2, 3, 32, 32)
    assert resnet18(num_classes=7, width=8)(x).shape == (2, 7)
    assert resnet18(num_classes=7, width=8, cifar_stem=True)(x).shape == (2, 7)
    r20 = resnet20(num_classes=10)
    assert r20(x).shape == (2, 10) and sum(isinstance(m, nn.ReLU) for m in r20.modules()) == 19
    vgg = vgg16_bn(num_classes=5, width=0.125, pool_size=1, hidden=32, pool="avg", activation="qcfs:4")
    assert vgg(x).shape == (2, 5)
    assert not any(isinstance(m, nn.MaxPool2d) for m in vgg.modules())
    assert sum(isinstance(m, QCFS) for m in vgg.modules()) == 15
    assert VGG([8, "M"], in_channels=2, num_classes=3, pool_size=2, hidden=4)(torch.rand(1, 2, 8, 8)).shape == (1, 3)
    with pytest.raises(ValueError, match="cfg"):
        VGG("Z")
    with pytest.raises(ValueError, match="pool"):
        VGG("A", pool="median")


def _data_bn(model: nn.Module, shape: tuple, g: torch.Generator) -> nn.Module:
    """Random weights with batch-norm statistics measured on random inputs, so the outputs
    depend on the input (with the default statistics a random deep net maps every input to
    almost the same logits, and "argmax agreement" would only test one class)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.rand(32, *shape, generator=g))
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "vgg16_bn"])
def test_reference_cnns_convert_and_agree_at_large_T(name):
    """Acceptance: conversion of the ResNet-18 and VGG-16 references (random weights) completes,
    keeps the output shape, and matches the ANN's argmax on ≥ 95 % of random inputs at large T.

    Narrow versions keep this affordable on a CPU (ResNet-18 at width 8 on 16×16 inputs, VGG-16
    at 1/16 width on 32×32); the calibration set includes the test inputs, so that the test
    measures the conversion and not how far 64 random calibration images generalise."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    if name == "resnet18":
        model, shape = resnet18(num_classes=10, width=8), (3, 16, 16)
    else:
        model, shape = vgg16_bn(num_classes=10, width=1 / 16, pool_size=1, hidden=32), (3, 32, 32)
    model = _data_bn(model, shape, g)
    x = torch.rand(20 if name == "resnet18" else 12, *shape, generator=g)
    net = convert(model, torch.cat([torch.rand(64, *shape, generator=g), x]))
    assert len(net.neurons()) == (17 if name == "resnet18" else 15)
    with torch.no_grad():
        labels = model(x).argmax(1)
        assert net(direct(x[:2], 3)).shape == (3, 2, 10)
    rep = conversion_report(net, (x, labels), ann=model, T_max=2048, checkpoints=[64, 2048], chunk=256,
                            batch_size=len(x), layer_errors=False)
    assert rep["agreement"][-1] >= 0.95, rep["agreement"]
    assert rep["agreement"][0] < 0.95  # it does take many steps for these deep random networks
