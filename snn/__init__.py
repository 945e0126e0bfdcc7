"""snn: spiking neural networks on PyTorch.

Time-first tensors ``[T, B, ...]`` everywhere; see the README for the conventions.
"""
from snn import surrogate
from snn.layers import TimeDistributed
from snn.neurons import IF, LIF, PLIF, LeakyIntegrator, ParametricLIF
from snn.state import detach_state, reset, stateful
from snn.conversion import convert  # ANN → SNN conversion

__version__ = "0.1.0"

# subpackages reachable as attributes (``snn.energy.profile``) without importing them all at once
_SUBPACKAGES = ("conversion", "cuda", "datasets", "delays", "encoders", "energy", "latency", "layers", "models",
                "neurons", "nir", "state", "streaming", "surrogate", "train")


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        import importlib
        return importlib.import_module(f"snn.{name}")
    raise AttributeError(f"module 'snn' has no attribute {name!r}")

__all__ = ["IF", "LIF", "PLIF", "ParametricLIF", "LeakyIntegrator", "TimeDistributed", "reset",
           "stateful", "detach_state", "surrogate", "convert", "__version__"]
