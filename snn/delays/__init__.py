"""Synapses with learnable per-synapse delays (DCLS; Hammouamri et al., ICLR 2024).

* :class:`DelayLinear` — fully connected synapses ``[T, B, N_in] → [T, B, N_out]`` with a
  weight and a real-valued delay per synapse, Gaussian or linear interpolation, fixed random
  or no delays as baselines, rounding to exact integer delays for inference.
* :mod:`snn.delays.training` — σ schedule, parameter groups with a separate position
  learning rate, clamping and rounding hooks.
* :func:`delay_conv` — the operation itself on windowed taps (:mod:`snn.delays.taps`), with a
  dense ``conv1d`` reference (``backend="torch"``) and fused kernels that never build the dense
  ``[N_out, N_in, D + 1]`` kernel (``"numba"``: CPU and numba.cuda).
"""
from snn.delays.backends import FUSED_MAX_FRACTION, delay_backend_names, resolve_delay_backend
from snn.delays.dcls import dcls_sigma, from_dcls1d
from snn.delays.functional import delay_conv, dense_delay_conv
from snn.delays.layer import DELAY_MODES, INTERPOLATIONS, DelayLinear
from snn.delays.taps import Taps, gaussian_taps, gaussian_width, integer_taps, linear_taps, taps_to_dense
from snn.delays.training import (DelayTrainingMixin, SigmaSchedule, clamp_delays, delay_layers,
                                 delay_param_groups, round_delays, set_sigma)

__all__ = ["DelayLinear", "DELAY_MODES", "INTERPOLATIONS", "delay_conv", "dense_delay_conv", "Taps",
           "gaussian_taps", "linear_taps", "integer_taps", "gaussian_width", "taps_to_dense", "SigmaSchedule",
           "delay_param_groups", "set_sigma", "clamp_delays", "round_delays", "delay_layers",
           "DelayTrainingMixin", "from_dcls1d", "dcls_sigma", "delay_backend_names", "resolve_delay_backend",
           "FUSED_MAX_FRACTION"]
