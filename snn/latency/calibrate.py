r"""Choosing θ for Dynamic Confidence on validation data: sweep, Pareto front, oracle bound.

Li, Jones & Furber (ICCV 2023, Sec. 3-4) pick the confidence threshold from the
accuracy-vs-latency Pareto front measured on validation data, and bound what any stopping
rule could achieve by the network's *potential*: every sample stopping at the best moment.
A full-length run of the network records ``c_t`` and ``ŷ_t`` for every step
(:class:`ConfidenceTrace`); every θ is then evaluated offline with exactly the rule the
runner uses (:func:`snn.latency.rule.first_crossing`), so the sweep costs one inference pass.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import torch
from torch import Tensor, nn

from snn.latency.data import Encoder, iter_labelled
from snn.latency.rule import accumulate, check_readout, confidence, first_crossing

if TYPE_CHECKING:
    from snn.latency.dynamic import DynamicConfidence

__all__ = ["ConfidenceTrace", "record_trace", "calibrate", "calibrate_threshold", "pareto_front", "Calibration"]

ORACLE_MODES = ("stays_correct", "first_correct")


@dataclass
class ConfidenceTrace:
    """Confidence and prediction of every sample at every step of a full-length run.

    Attributes:
        confidence: float64 ``[T, N]``, ``c_t``.
        prediction: int64 ``[T, N]``, ``argmax O_t``.
        labels: int64 ``[N]``.
        scale, readout: the rule's settings (:mod:`snn.latency.rule`).
    """

    confidence: Tensor
    prediction: Tensor
    labels: Tensor
    scale: float
    readout: str

    @property
    def T(self) -> int:
        """Timesteps recorded (``max_T``)."""
        return int(self.confidence.shape[0])

    @property
    def n(self) -> int:
        """Number of samples ``N``."""
        return int(self.confidence.shape[1])

    def decide(self, threshold: float) -> tuple[Tensor, Tensor]:
        """``(prediction [N], latency [N])`` under θ, offline (same rule as the runner)."""
        _, first = first_crossing(self.confidence, threshold, force_last=True)
        return self.prediction.gather(0, first[None])[0], first + 1

    def accuracy_per_step(self) -> Tensor:
        """Accuracy if every sample stopped after ``t = 1 … T`` steps, float64 ``[T]``."""
        return (self.prediction == self.labels[None]).double().mean(1)

    def oracle(self, mode: str = "stays_correct") -> tuple[Tensor, Tensor]:
        """The potential of the network: ``(latency [N], correct [N])`` of an oracle stopping rule.

        ``"stays_correct"``: each sample stops at the earliest step from which its prediction
        is correct at every later step up to ``T`` (samples wrong at ``T`` run to ``T``); same
        accuracy as the full run. ``"first_correct"``: the earliest step at which it is correct
        at all (the looser bound plotted as "potential" by Li et al.; can exceed the full run's
        accuracy). Either way the latency never exceeds ``T``.

        Raises:
            ValueError: unknown ``mode``.
        """
        if mode not in ORACLE_MODES:
            raise ValueError(f"mode must be one of {ORACLE_MODES}, got {mode!r}")
        ok = self.prediction == self.labels[None]
        if mode == "stays_correct":
            ok = ok.flip(0).to(torch.uint8).cumprod(0).flip(0).bool()  # correct from t to T
        found = ok.any(0)
        latency = torch.where(found, ok.to(torch.uint8).argmax(0) + 1, torch.full_like(found, self.T, dtype=torch.long))
        return latency, found


@torch.no_grad()
def record_trace(model: nn.Module, data: Any, max_T: int, *, scale: Optional[float] = None, readout: str = "auto",
                 encode: Optional[Encoder | str] = None, batch_size: int = 64,
                 max_samples: Optional[int] = None) -> ConfidenceTrace:
    """Run ``model`` for ``max_T`` steps on labelled ``data`` and record ``c_t``, ``ŷ_t`` for every step.

    Args:
        model: ``[T, B, ...] → [T, B, C]``; run in eval mode, whole sequences at once.
        data, encode, batch_size, max_samples: as :meth:`snn.latency.DynamicConfidence.evaluate`.
        max_T: steps (time-first inputs must have at least this many; later steps are ignored).
        scale: the rule's fixed divisor (default ``max_T``); readout: ``"auto"``, ``"sum"``, ``"cumulative"``.

    Raises:
        ValueError: inputs shorter than ``max_T``; bad ``scale``/``readout``; no samples.
    """
    from snn.encoders import direct
    from snn.state import reset
    readout = check_readout(readout, model)
    s = float(max_T if scale is None else scale)
    if not s > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    confs, preds, labels = [], [], []
    try:
        for x, y in iter_labelled(data, batch_size, time_first=encode is None, max_samples=max_samples):
            if encode is None:
                if x.shape[0] < max_T:
                    raise ValueError(f"inputs have T={x.shape[0]} timesteps but max_T={max_T} are needed")
                x = x[:max_T]
            else:
                x = direct(x, max_T) if encode == "direct" else encode(x, max_T)
            reset(model)
            out = model(x.to(dev))
            reset(model)
            c, p = confidence(accumulate(out, None, readout), s)
            confs.append(c.cpu())
            preds.append(p.cpu())
            labels.append(y.long().cpu())
    finally:
        model.train(was_training)
    return ConfidenceTrace(torch.cat(confs, 1), torch.cat(preds, 1), torch.cat(labels), s, readout)


def pareto_front(points: Sequence[dict]) -> list[dict]:
    """The points not dominated in (lower ``mean_latency``, higher ``accuracy``), by increasing latency."""
    front: list[dict] = []
    for p in sorted(points, key=lambda p: (p["mean_latency"], -p["accuracy"])):
        if not front or p["accuracy"] > front[-1]["accuracy"]:
            front.append(p)
    return front


def _default_thresholds(trace: ConfidenceTrace, n: int = 256) -> list[float]:
    c = trace.confidence.flatten()
    if c.numel() > 4_000_000:
        c = c[torch.linspace(0, c.numel() - 1, 4_000_000).long()]
    q = torch.quantile(c, torch.linspace(0, 1, n + 1, dtype=torch.float64))
    return sorted(set([0.0, 1.0] + q.tolist()))


@dataclass
class Calibration:
    """The outcome of :func:`calibrate`: the chosen θ, the sweep, its Pareto front and the oracle.

    Attributes:
        threshold: chosen θ (the smallest mean latency that meets the criterion, see :func:`calibrate`).
        accuracy, mean_latency, agreement: of the chosen θ on the calibration data (agreement =
            fraction deciding as after all ``T`` steps).
        full_accuracy: accuracy after all ``T`` steps; T: the budget ``max_T``.
        max_accuracy_drop: the allowed drop (fraction, e.g. 0.005 = 0.5 %).
        sweep: ``[{threshold, accuracy, mean_latency}]`` for every θ tried; front: its Pareto front.
        oracle: ``{mode: {accuracy, mean_latency, histogram}}`` for both oracle modes.
        trace: the recorded :class:`ConfidenceTrace`.
        criterion, robust: how θ was chosen.
    """

    threshold: float
    accuracy: float
    mean_latency: float
    full_accuracy: float
    T: int
    max_accuracy_drop: float
    sweep: list[dict]
    front: list[dict]
    oracle: dict[str, dict]
    trace: ConfidenceTrace = field(repr=False)
    criterion: str = "agreement"
    robust: bool = True
    agreement: float = 1.0

    def latency(self) -> Tensor:
        """Per-sample decision step at the chosen θ, int64 ``[N]``."""
        return self.trace.decide(self.threshold)[1]

    def dynamic_confidence(self, model: nn.Module, **kwargs: Any) -> DynamicConfidence:
        """A :class:`snn.latency.DynamicConfidence` with this θ, ``max_T``, scale and readout."""
        from snn.latency.dynamic import DynamicConfidence
        return DynamicConfidence(model, self.threshold, self.T, scale=self.trace.scale,
                                 readout=self.trace.readout, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content (the trace is reduced to accuracy per step and histograms)."""
        lat = self.latency()
        return {"method": "Dynamic Confidence (Li, Jones & Furber, ICCV 2023)", "threshold": self.threshold,
                "accuracy": self.accuracy, "mean_latency": self.mean_latency, "full_accuracy": self.full_accuracy,
                "T": self.T, "timestep_reduction": 1 - self.mean_latency / self.T,
                "agreement": self.agreement, "criterion": self.criterion, "robust": self.robust,
                "max_accuracy_drop": self.max_accuracy_drop, "n": self.trace.n, "scale": self.trace.scale,
                "readout": self.trace.readout,
                "latency_histogram": torch.bincount(lat, minlength=self.T + 1)[1:].tolist(),
                "accuracy_per_step": self.trace.accuracy_per_step().tolist(), "oracle": self.oracle,
                "front": self.front, "sweep": self.sweep}

    def save(self, out_dir: str | os.PathLike, prefix: str = "dc") -> list[Path]:
        """Write ``{prefix}_calibration.json``, ``{prefix}_pareto.png`` and ``{prefix}_latency.png``
        (atomically); returns the paths."""
        from snn.latency.plots import plot_latency_histogram, plot_pareto
        from snn.train.checkpoint import write_json
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        paths = [d / f"{prefix}_calibration.json", d / f"{prefix}_pareto.png", d / f"{prefix}_latency.png"]
        write_json(self.to_dict(), paths[0])
        plot_pareto(self, paths[1])
        plot_latency_histogram(self, paths[2])
        return paths


CRITERIA = ("agreement", "accuracy")


def calibrate(trace: ConfidenceTrace, max_accuracy_drop: float = 0.005,
              thresholds: Optional[Sequence[float]] = None, *, criterion: str = "agreement",
              robust: bool = True) -> Calibration:
    """Sweep θ on a recorded trace and pick the fastest θ within the allowed accuracy drop.

    Criteria (on the calibration data):

    * ``"agreement"`` (default): at most a fraction ``max_accuracy_drop`` of the samples may
      decide differently than after all ``T`` steps. This bounds the accuracy drop there
      (``acc_DC ≥ acc_T − disagreement``) without letting new errors be cancelled by lucky
      corrections, and needs no labels.
    * ``"accuracy"``: accuracy ≥ full accuracy − ``max_accuracy_drop`` (Li et al.'s reading
      of the Pareto front).

    With ``robust`` (ours, for small calibration sets) the criterion must also hold for every
    larger θ of the sweep: the chosen θ is the lowest of the run of feasible thresholds that
    ends at θ = 1, so a lucky dip of the curve below a violating region is not chosen.
    (Mean latency never decreases with θ, so the lowest feasible θ is the fastest.)

    Args:
        trace: from :func:`record_trace` (validation data, not the test set).
        max_accuracy_drop: allowed loss versus running all ``T`` steps (fraction ≥ 0).
        thresholds: θ values to try (default: 0, 1 and 257 quantiles of the recorded confidences:
            decisions only change where θ crosses a recorded ``c_t``).
        criterion: ``"agreement"`` or ``"accuracy"``.
        robust: require the criterion at every larger θ too.

    Raises:
        ValueError: negative ``max_accuracy_drop``; a θ outside [0, 1]; unknown ``criterion``.
    """
    if not max_accuracy_drop >= 0:
        raise ValueError(f"max_accuracy_drop must be ≥ 0, got {max_accuracy_drop!r}")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    grid = sorted(set(float(t) for t in thresholds) | {1.0}) if thresholds is not None else _default_thresholds(trace)
    if any(not 0 <= t <= 1 for t in grid):
        raise ValueError(f"thresholds must lie in [0, 1], got {[t for t in grid if not 0 <= t <= 1][:3]}")
    final = trace.prediction[-1]
    full = float((final == trace.labels).double().mean())
    sweep = []
    for th in grid:
        pred, lat = trace.decide(th)
        sweep.append({"threshold": th, "accuracy": float((pred == trace.labels).double().mean()),
                      "agreement": float((pred == final).double().mean()), "mean_latency": float(lat.double().mean())})

    def feasible(p: dict) -> bool:
        if criterion == "accuracy":
            return p["accuracy"] >= full - max_accuracy_drop - 1e-12
        return 1.0 - p["agreement"] <= max_accuracy_drop + 1e-12

    if robust:
        ok = []
        for p in reversed(sweep):  # from θ = 1 (always feasible: everyone runs to T) downwards
            if not feasible(p):
                break
            ok.append(p)
    else:
        ok = [p for p in sweep if feasible(p)]
    best = min(ok, key=lambda p: (p["mean_latency"], -p["accuracy"], -p["threshold"]))
    oracle = {}
    for mode in ORACLE_MODES:
        lat, correct = trace.oracle(mode)
        oracle[mode] = {"accuracy": float(correct.double().mean()), "mean_latency": float(lat.double().mean()),
                        "histogram": torch.bincount(lat, minlength=trace.T + 1)[1:].tolist()}
    return Calibration(best["threshold"], best["accuracy"], best["mean_latency"], full, trace.T,
                       float(max_accuracy_drop), sweep, pareto_front(sweep), oracle, trace, criterion, robust,
                       best["agreement"])


def calibrate_threshold(model: nn.Module, data: Any, max_T: int, *, max_accuracy_drop: float = 0.005,
                        thresholds: Optional[Sequence[float]] = None, scale: Optional[float] = None,
                        readout: str = "auto", encode: Optional[Encoder | str] = None, batch_size: int = 64,
                        max_samples: Optional[int] = None, criterion: str = "agreement",
                        robust: bool = True) -> Calibration:
    """:func:`record_trace` on validation ``data``, then :func:`calibrate` (``criterion``, ``robust``).

    Examples:
        >>> cal = calibrate_threshold(snn_model, val_set, max_T=64, encode="direct", max_accuracy_drop=0.005)
        >>> cal.threshold, cal.mean_latency, cal.oracle["stays_correct"]["mean_latency"]
        >>> dc = cal.dynamic_confidence(snn_model)     # then dc.evaluate(test_set, encode="direct")
        >>> cal.save("runs/dc")                        # JSON + Pareto front + latency histogram
    """
    trace = record_trace(model, data, max_T, scale=scale, readout=readout, encode=encode, batch_size=batch_size,
                         max_samples=max_samples)
    return calibrate(trace, max_accuracy_drop, thresholds, criterion=criterion, robust=robust)
