"""Reference SNN architectures and named presets."""
from snn.models.blocks import NEURONS, make_neuron
from snn.models.conv import ConvSNN
from snn.models.mlp import MLPSNN
from snn.models.registry import PRESETS, Preset, build_model

__all__ = ["ConvSNN", "MLPSNN", "PRESETS", "Preset", "build_model", "make_neuron", "NEURONS"]
