"""Honest wall-time comparison: every sample for all ``max_T`` steps versus Dynamic Confidence."""
from __future__ import annotations

import time
from typing import Any, Optional

import torch

from snn.encoders import direct
from snn.latency.data import Encoder, iter_labelled
from snn.latency.dynamic import DynamicConfidence
from snn.latency.rule import readout_scores
from snn.state import reset

__all__ = ["compare_wall_time"]


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


@torch.no_grad()
def compare_wall_time(dc: DynamicConfidence, data: Any, *, encode: Optional[Encoder | str] = None,
                      batch_size: int = 64, repeats: int = 3, max_samples: Optional[int] = None,
                      stepwise_baseline: bool = True) -> dict[str, Any]:
    """Time full-length inference and Dynamic Confidence on the same inputs, same machine.

    For every batch, in ``repeats`` interleaved rounds (after one untimed warm-up round):

    * **full**: the usual whole-sequence forward ``model(x[:max_T])`` — all ``T·B`` rows of the
      stateless layers at once, the fastest way to run every sample for ``max_T`` steps
      (static inputs are direct-encoded inside the timed region);
    * **dc**: :meth:`DynamicConfidence.run` / ``run_static`` with membrane-update counting off;
    * **stepwise** (optional): the same runner with θ = 1 (nobody stops early), isolating the
      cost of stepping from the saving of early stopping.

    The minimum over rounds is kept per batch (least disturbed by other processes) and summed.

    Args:
        dc: the Dynamic-Confidence settings; its model is used for all three.
        data, encode, batch_size, max_samples: as :meth:`DynamicConfidence.evaluate`.
        repeats: timed rounds per batch (≥ 1).
        stepwise_baseline: also time the θ = 1 runner.

    Returns:
        ``n``, ``full_ms_per_sample``, ``dc_ms_per_sample``, ``stepwise_ms_per_sample``,
        ``wall_time_reduction`` (``1 − dc / full``), ``mean_latency``, ``timestep_reduction``,
        ``full_accuracy``, ``dc_accuracy``, ``accuracy_drop``, and the settings.

    Raises:
        ValueError: ``repeats < 1``; as :meth:`DynamicConfidence.evaluate`.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1, got {repeats}")
    model, T = dc.model, dc.max_T
    runner = DynamicConfidence(model, dc.threshold, T, scale=dc.scale, readout=dc.readout, chunk=dc.chunk,
                               count_updates=False)
    stepper = DynamicConfidence(model, 1.0, T, scale=dc.scale, readout=dc.readout, chunk=dc.chunk,
                                count_updates=False)
    dev = dc._device()
    was_training = model.training
    model.eval()
    static = encode is not None
    tot = {"full": 0.0, "dc": 0.0, "stepwise": 0.0}
    n = full_correct = dc_correct = 0
    lat_sum = 0
    try:
        for x, y in iter_labelled(data, batch_size, time_first=not static, max_samples=max_samples):
            x = x.to(dev)
            if static and encode != "direct":
                x, static_b = encode(x, T), False
            else:
                static_b = static

            def full():
                reset(model)
                xs = direct(x, T) if static_b else x[:T]
                out = model(xs)
                reset(model)
                return readout_scores(out, dc.readout).argmax(1)

            def run(r: DynamicConfidence):
                return r.run_static(x) if static_b else r.run(x)

            jobs = {"full": full, "dc": lambda: run(runner)}
            if stepwise_baseline:
                jobs["stepwise"] = lambda: run(stepper)
            best = {k: float("inf") for k in jobs}
            outs: dict[str, Any] = {}
            for rnd in range(repeats + 1):
                for k, job in jobs.items():
                    _sync(dev)
                    t0 = time.perf_counter()
                    outs[k] = job()
                    _sync(dev)
                    if rnd:  # round 0 warms up (JIT compilation, allocator)
                        best[k] = min(best[k], time.perf_counter() - t0)
            for k in best:
                tot[k] += best[k]
            yc = y.to(torch.long)
            full_correct += int((outs["full"].cpu() == yc).sum())
            dc_correct += int((outs["dc"].prediction == yc).sum())
            lat_sum += int(outs["dc"].latency.sum())
            n += len(y)
    finally:
        model.train(was_training)
    res = {"n": n, "max_T": T, "threshold": dc.threshold, "chunk": dc.chunk, "batch_size": batch_size,
           "repeats": repeats, "device": str(dev), "torch_threads": torch.get_num_threads(),
           "full_ms_per_sample": 1e3 * tot["full"] / n, "dc_ms_per_sample": 1e3 * tot["dc"] / n,
           "stepwise_ms_per_sample": 1e3 * tot["stepwise"] / n if stepwise_baseline else None,
           "mean_latency": lat_sum / n, "full_accuracy": full_correct / n, "dc_accuracy": dc_correct / n}
    res["wall_time_reduction"] = 1 - tot["dc"] / tot["full"]
    res["timestep_reduction"] = 1 - res["mean_latency"] / T
    res["accuracy_drop"] = res["full_accuracy"] - res["dc_accuracy"]
    return res
