"""Encoders: static tensors → spike trains ``[T, B, ...]``; frames / images → DVS events.

- :func:`direct` / :class:`DirectEncoder`: the analog input repeated over time.
- :func:`rate` / :class:`RateEncoder`: Bernoulli (discrete Poisson) rate coding.
- :func:`latency` / :class:`LatencyEncoder` (+ :func:`latency_times`): time-to-first-spike coding.
- :class:`EventCameraEmulator`: a DVS pixel model producing tonic-format events from
  intensity frames or from a static image moved in N-MNIST-style saccades.
"""
from .direct import DirectEncoder, direct
from .emulator import EVENTS_DTYPE, EventCameraEmulator
from .latency import LatencyEncoder, latency, latency_times
from .rate import RateEncoder, rate
from .saccades import place_in_sensor, saccade_path, shift_bilinear

__all__ = [
    "direct",
    "DirectEncoder",
    "rate",
    "RateEncoder",
    "latency",
    "latency_times",
    "LatencyEncoder",
    "EventCameraEmulator",
    "EVENTS_DTYPE",
    "saccade_path",
    "place_in_sensor",
    "shift_bilinear",
]
