"""Multi-step spiking neuron layers on time-first ``[T, B, ...]`` tensors."""
from snn.neurons.backends import Backend, available_backends, backend_names, register_backend, resolve_backend
from snn.neurons.base import BaseNeuron, check_sequence
from snn.neurons.functional import NeuronSpec, multistep, neuron_step
from snn.neurons.if_ import IF
from snn.neurons.lif import LIF, beta_to_tau, tau_to_beta
from snn.neurons.plif import PLIF, ParametricLIF
from snn.neurons.readout import LeakyIntegrator

__all__ = ["IF", "LIF", "ParametricLIF", "PLIF", "LeakyIntegrator", "BaseNeuron", "NeuronSpec",
           "neuron_step", "multistep", "check_sequence", "tau_to_beta", "beta_to_tau", "Backend",
           "register_backend", "resolve_backend", "available_backends", "backend_names"]

import snn.cuda.backends  # noqa: E402,F401  (registers the fused "numba"/"cupy" backends)
