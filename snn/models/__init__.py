"""Reference SNN architectures and named presets; reference CNNs (ANNs) for conversion."""
from snn.models.blocks import NEURONS, make_neuron
from snn.models.conv import ConvSNN
from snn.models.mlp import MLPSNN
from snn.models.registry import PRESETS, Preset, build_model
from snn.models.resnet import BasicBlock, ResNet, resnet18, resnet20
from snn.models.vgg import VGG, VGG_CONFIGS, vgg11_bn, vgg16_bn

__all__ = ["ConvSNN", "MLPSNN", "PRESETS", "Preset", "build_model", "make_neuron", "NEURONS",
           "VGG", "VGG_CONFIGS", "vgg11_bn", "vgg16_bn", "ResNet", "BasicBlock", "resnet18", "resnet20"]
