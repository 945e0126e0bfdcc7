"""snn: spiking neural networks on PyTorch.

Time-first tensors ``[T, B, ...]`` everywhere; see the README for the conventions.
"""
from snn import surrogate
from snn.layers import TimeDistributed
from snn.neurons import IF, LIF, PLIF, LeakyIntegrator, ParametricLIF
from snn.state import detach_state, reset, stateful
from snn.conversion import convert  # ANN → SNN conversion

__version__ = "0.1.0"

__all__ = ["IF", "LIF", "PLIF", "ParametricLIF", "LeakyIntegrator", "TimeDistributed", "reset",
           "stateful", "detach_state", "surrogate", "__version__"]
