"""Low latency: IIR timestep compression (T = 5 → 1) and Dynamic-Confidence early stopping.

* :func:`compress_timesteps` — IIR-SNN (Chowdhury, Rathi & Roy 2021): retrain at ever fewer
  timesteps, each stage initialised from the last, with learnable per-layer thresholds and
  leaks (:func:`prepare_for_iir`) and soft reset; per-stage checkpoints (resumable), table,
  JSON and figure (:class:`CompressionResult`). On the command line: ``snn compress``.
* :class:`DynamicConfidence` — Li, Jones & Furber (ICCV 2023): each sample stops at the first
  step whose confidence ``max softmax(O_t)`` exceeds θ; finished samples leave the batch
  (input rows and carried state, :func:`select_batch`), so compute and wall time fall.
  :func:`calibrate_threshold` sweeps θ on validation data (Pareto front, oracle bound, plots);
  :class:`ConfidenceStream` applies the same rule step by step to a live stream.
"""
from snn.latency.batch_state import STATE_RULES, register_state_rule, select_batch
from snn.latency.calibrate import (Calibration, ConfidenceTrace, calibrate, calibrate_threshold, pareto_front,
                                   record_trace)
from snn.latency.counting import UpdateCounter
from snn.latency.data import iter_labelled, static_images
from snn.latency.dynamic import DCResult, DynamicConfidence
from snn.latency.iir import compress_timesteps, set_timesteps
from snn.latency.prepare import neuron_parameters, prepare_for_iir
from snn.latency.report import CompressionResult
from snn.latency.rule import detect_readout, readout_scores
from snn.latency.stream import ConfidenceStream, StreamStatus
from snn.latency.thresholds import match_firing_rates, rescale_thresholds, scale_thresholds
from snn.latency.timing import compare_wall_time

__all__ = ["compress_timesteps", "CompressionResult", "prepare_for_iir", "neuron_parameters", "set_timesteps",
           "rescale_thresholds", "scale_thresholds", "match_firing_rates", "DynamicConfidence", "DCResult",
           "ConfidenceStream", "StreamStatus", "calibrate_threshold", "calibrate", "record_trace",
           "ConfidenceTrace", "Calibration", "pareto_front", "select_batch", "register_state_rule", "STATE_RULES",
           "UpdateCounter", "static_images", "iter_labelled", "detect_readout", "readout_scores",
           "compare_wall_time"]
