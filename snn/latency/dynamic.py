r"""Dynamic Confidence: batched early-stopping inference in which finished samples leave the batch.

Li, Jones & Furber, "Unleashing the Potential of Spiking Neural Networks with Dynamic
Confidence", ICCV 2023: each sample stops at the first timestep whose confidence
:math:`c_t = \max \operatorname{softmax}(O_t)` exceeds θ (rule in :mod:`snn.latency.rule`).
Here the batch really shrinks: after every step (or chunk of steps) the finished samples are
removed from the input *and* from every layer's carried state
(:func:`snn.latency.select_batch`), so the remaining steps cost only what the unfinished
samples need.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import torch
from torch import Tensor, nn

from snn.latency.batch_state import select_batch
from snn.latency.counting import UpdateCounter
from snn.latency.data import Encoder, iter_labelled
from snn.latency.rule import accumulate, check_readout, confidence, first_crossing
from snn.neurons import check_sequence
from snn.state import stateful
from snn.validation import is_positive_int

__all__ = ["DynamicConfidence", "DCResult"]


@dataclass
class DCResult:
    """Decisions of a Dynamic-Confidence run over ``N`` samples.

    Attributes:
        prediction: int64 ``[N]``, ``argmax O_{t*}``.
        latency: int64 ``[N]``, the decision timestep ``t* ∈ [1, max_T]``.
        confidence: float64 ``[N]``, ``c_{t*}``.
        scores: float32 ``[N, C]``, ``O_{t*}`` (already divided by the scale).
        steps_run: int64 ``[N]``, timesteps actually simulated per sample (``≥ latency``; equal
            with ``chunk=1``).
        max_T: the timestep budget.
        neuron_updates: membrane updates simulated (all spiking layers), ``None`` if not counted.
        full_neuron_updates: what running every sample for ``max_T`` steps costs, ``None`` if not counted.
        wall_time_s: seconds spent in the runs (inputs on the device, outputs on the CPU),
            including update counting and first-call warm-up; to compare with running all
            ``T``, time both ways with :func:`snn.latency.compare_wall_time`.
        labels: int64 ``[N]`` if known.
        extra: further JSON-ready entries merged into :meth:`to_dict` (not kept by :meth:`concat`).
    """

    prediction: Tensor
    latency: Tensor
    confidence: Tensor
    scores: Tensor
    steps_run: Tensor
    max_T: int
    neuron_updates: Optional[int] = None
    full_neuron_updates: Optional[int] = None
    wall_time_s: float = 0.0
    labels: Optional[Tensor] = None
    extra: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of samples ``N``."""
        return int(self.prediction.numel())

    @property
    def mean_latency(self) -> float:
        """Mean decision timestep."""
        return float(self.latency.double().mean())

    @property
    def accuracy(self) -> Optional[float]:
        """Top-1 accuracy if labels are known."""
        return None if self.labels is None else float((self.prediction == self.labels).double().mean())

    @staticmethod
    def concat(parts: list["DCResult"]) -> "DCResult":
        """Join the results of consecutive batches (``max_T`` of the first; ``extra`` dropped).

        Raises:
            ValueError: ``parts`` is empty.
        """
        if not parts:
            raise ValueError("DCResult.concat: no results")
        cat = lambda name: torch.cat([getattr(p, name) for p in parts])  # noqa: E731
        counted = all(p.neuron_updates is not None for p in parts)
        labels = cat("labels") if all(p.labels is not None for p in parts) else None
        return DCResult(cat("prediction"), cat("latency"), cat("confidence"), cat("scores"), cat("steps_run"),
                        parts[0].max_T, sum(p.neuron_updates for p in parts) if counted else None,
                        sum(p.full_neuron_updates for p in parts) if counted else None,
                        sum(p.wall_time_s for p in parts), labels)

    def to_dict(self, per_sample: bool = False) -> dict[str, Any]:
        """JSON-ready summary (``per_sample`` adds the latency, prediction and confidence lists)."""
        d: dict[str, Any] = {
            "n": self.n, "max_T": self.max_T, "accuracy": self.accuracy, "mean_latency": self.mean_latency,
            "timestep_reduction": 1 - self.mean_latency / self.max_T,
            "mean_steps_run": float(self.steps_run.double().mean()),
            "latency_histogram": torch.bincount(self.latency, minlength=self.max_T + 1)[1:].tolist(),
            "neuron_updates": self.neuron_updates, "full_neuron_updates": self.full_neuron_updates,
            "wall_ms_per_sample": 1e3 * self.wall_time_s / self.n if self.n else None, **self.extra}
        if per_sample:
            d.update(latency=self.latency.tolist(), prediction=self.prediction.tolist(),
                     confidence=self.confidence.tolist())
        return d


class _Decisions:
    """Bookkeeping of one batch under the rule: the accumulated outputs of the samples still
    running (``active``: their rows in the original batch) and the decisions of the finished."""

    def __init__(self, batch: int, threshold: float, scale: float, readout: str, max_T: int) -> None:
        self.threshold, self.scale, self.readout, self.max_T = threshold, scale, readout, max_T
        self.t = 0
        self.active = torch.arange(batch)
        self.acc: Optional[Tensor] = None
        self.prediction = torch.full((batch,), -1, dtype=torch.long)
        self.latency = torch.zeros(batch, dtype=torch.long)
        self.steps_run = torch.zeros(batch, dtype=torch.long)
        self.confidence = torch.zeros(batch, dtype=torch.float64)
        self.scores: Optional[Tensor] = None

    @property
    def done(self) -> bool:
        return self.active.numel() == 0

    def update(self, y: Tensor) -> Tensor:
        """Take the outputs ``[k, B_active, C]`` of the next ``k`` steps; decide; return the keep
        mask ``[B_active]`` (True = still running)."""
        k = y.shape[0]
        if self.t + k > self.max_T:
            raise ValueError(f"{self.t + k} timesteps exceed max_T={self.max_T}")
        acc = accumulate(y, self.acc, self.readout)
        conf, pred = confidence(acc, self.scale)
        stopped, first = first_crossing(conf, self.threshold, force_last=self.t + k == self.max_T)
        rows = self.active[stopped.cpu()]
        if rows.numel():
            j = first[stopped]
            cols = stopped.nonzero().flatten()
            if self.scores is None:
                self.scores = torch.zeros(len(self.prediction), y.shape[-1], dtype=torch.float32)
            self.prediction[rows] = pred[j, cols].cpu()
            self.confidence[rows] = conf[j, cols].cpu()
            self.latency[rows] = (self.t + 1 + j).cpu()
            self.scores[rows] = (acc[j, cols] / self.scale).float().cpu()
        self.t += k
        self.steps_run[self.active] = self.t
        keep = ~stopped
        self.acc = acc[-1][keep]
        self.active = self.active[keep.cpu()]
        return keep


@contextlib.contextmanager
def _free_T(model: nn.Module) -> Iterator[None]:
    """Lift the fixed-``T`` input check of :mod:`snn.models` networks while they run step by step."""
    from snn.models import ConvSNN, MLPSNN
    from snn.models.shd import DelaySNN
    fixed = [(m, m.T) for m in model.modules() if isinstance(m, (ConvSNN, MLPSNN, DelaySNN)) and m.T is not None]
    for m, _ in fixed:
        m.T = None
    try:
        yield
    finally:
        for m, T in fixed:
            m.T = T


class DynamicConfidence:
    r"""Early-stopping inference with Dynamic Confidence (Li, Jones & Furber, ICCV 2023).

    .. math::
        O_t = \frac{1}{s}\sum_{\tau \le t} z_\tau,\quad c_t = \max\operatorname{softmax}(O_t),\quad
        t^\star = \min\{t : c_t > \theta\} \text{ (else } T_{\max}),\quad \hat y = \arg\max O_{t^\star}

    (:mod:`snn.latency.rule`). The batch is run ``chunk`` steps at a time with the model's
    state carried (:func:`snn.stateful`); after each chunk the samples that decided leave the
    batch — their input rows and every layer's carried state are dropped
    (:func:`snn.latency.select_batch`) — so compute and wall time fall with the mean latency.
    Decisions do not depend on ``chunk`` (the network is causal); ``chunk > 1`` trades a
    little wasted compute (up to ``chunk − 1`` steps per sample) for fewer Python-level steps.
    On the CPU, step-by-step runs are fastest with ``backend="torch"`` neurons or ``chunk ≥ 4``
    (a fused kernel called for one step at a time pays its launch cost every step).

    Args:
        model: a network ``[T, B, ...] → [T, B, C]`` built from :mod:`snn` stateful layers
            (:mod:`snn.models`, converted networks, users' models).
        threshold: θ ∈ [0, 1]; ``c > θ`` stops a sample (θ = 1: never before ``max_T``).
        max_T: timestep budget (a positive int).
        scale: the fixed divisor ``s`` (> 0); default ``max_T`` (then ``O_{max_T}`` is the
            mean-over-time training score).
        readout: ``"auto"``, ``"sum"`` or ``"cumulative"`` (:func:`snn.latency.rule.detect_readout`).
        chunk: timesteps run between two batch reductions (≥ 1).
        count_updates: count membrane updates (:class:`snn.latency.UpdateCounter`; a small
            overhead, turn off for timing).

    Shape:
        :meth:`run`: ``x [T ≥ max_T, B, ...]``; :meth:`run_static`: ``x [B, ...]`` presented
        at every step (direct encoding without copies). Both return a :class:`DCResult` of ``B``.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: θ outside [0, 1], ``max_T``/``chunk`` not positive ints, ``scale ≤ 0``,
            unknown ``readout``; at run time, inputs with fewer than ``max_T`` steps or NaN,
            or a model output that is not ``[k, B, C]``.

    Examples:
        >>> dc = DynamicConfidence(converted, threshold=0.9, max_T=64)
        >>> res = dc.run_static(images)           # images [B, 2, 34, 34]
        >>> res.prediction, res.latency           # per sample
    """

    def __init__(self, model: nn.Module, threshold: float, max_T: int, *, scale: Optional[float] = None,
                 readout: str = "auto", chunk: int = 1, count_updates: bool = True) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not (isinstance(threshold, numbers.Real) and 0.0 <= threshold <= 1.0):
            raise ValueError(f"threshold must be a confidence in [0, 1], got {threshold!r}")
        for name, v in (("max_T", max_T), ("chunk", chunk)):
            if not is_positive_int(v):
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        s = float(max_T) if scale is None else scale
        if not (isinstance(s, numbers.Real) and 0 < s < math.inf):
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        self.model, self.threshold, self.max_T, self.scale = model, float(threshold), int(max_T), float(s)
        self.readout = check_readout(readout, model)
        self.chunk, self.count_updates = int(chunk), count_updates

    def __repr__(self) -> str:
        return (f"DynamicConfidence(threshold={self.threshold:g}, max_T={self.max_T}, scale={self.scale:g}, "
                f"readout={self.readout!r}, chunk={self.chunk})")

    def stream(self) -> "ConfidenceStream":  # noqa: F821
        """A step-driven :class:`snn.latency.ConfidenceStream` with these settings (live input)."""
        from snn.latency.stream import ConfidenceStream
        return ConfidenceStream(self)

    # -- running -------------------------------------------------------------------------
    def _device(self) -> torch.device:
        return next((p.device for p in self.model.parameters()), torch.device("cpu"))

    def _check_out(self, y: Any, k: int, b: int) -> Tensor:
        if not isinstance(y, Tensor) or y.dim() != 3 or y.shape[:2] != (k, b):
            shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ValueError(f"the model must map [k, B, ...] to class scores [k, B, C]; for k={k}, B={b} it "
                             f"returned {shape}")
        return y

    @torch.no_grad()
    def _run(self, batch: int, steps) -> DCResult:
        """``steps(t, k, active) -> x [k, B_active, ...]`` gives the input of steps ``t+1 … t+k``."""
        dev = self._device()
        dec = _Decisions(batch, self.threshold, self.scale, self.readout, self.max_T)
        counter = UpdateCounter(self.model) if self.count_updates else contextlib.nullcontext()
        was_training = self.model.training
        self.model.eval()
        full_updates = None
        try:
            with counter, _free_T(self.model), stateful(self.model):
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                t0 = time.perf_counter()
                active_dev = torch.arange(batch, device=dev)
                while not dec.done:
                    k = min(self.chunk, self.max_T - dec.t)
                    x = steps(dec.t, k, active_dev)
                    if dec.t == 0 and self.count_updates:
                        before = counter.updates
                    y = self._check_out(self.model(x), k, int(active_dev.numel()))
                    if dec.t == 0 and self.count_updates:
                        full_updates = (counter.updates - before) // k * self.max_T
                    keep = dec.update(y)
                    if not dec.done and not bool(keep.all()):
                        select_batch(self.model, keep)
                        active_dev = active_dev[keep]
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                wall = time.perf_counter() - t0
        finally:
            self.model.train(was_training)
        return DCResult(dec.prediction, dec.latency, dec.confidence, dec.scores, dec.steps_run, self.max_T,
                        counter.updates if self.count_updates else None, full_updates, wall)

    def run(self, x: Tensor) -> DCResult:
        """Run a time-first batch ``x [T, B, ...]`` (``T ≥ max_T``; steps after ``max_T`` are ignored).

        Raises:
            TypeError: ``x`` is not a tensor.
            ValueError: ``x`` has fewer than 2 dims, fewer than ``max_T`` steps or NaN (on CPU),
                or the model output is not ``[k, B, C]``.
        """
        check_sequence(x, "x", min_dim=2)
        if x.shape[0] < self.max_T:
            raise ValueError(f"x has T={x.shape[0]} timesteps (dim 0) but max_T={self.max_T} are needed")
        x = x.to(self._device())
        return self._run(x.shape[1], lambda t, k, active: x[t:t + k].index_select(1, active))

    def run_static(self, x: Tensor) -> DCResult:
        """Run a static batch ``x [B, ...]`` presented at every step (direct encoding, Rueckauer et al. 2017).

        Raises:
            TypeError: ``x`` is not a tensor.
            ValueError: ``x`` is 0-d or holds NaN (on CPU), or the model output is not ``[k, B, C]``.
        """
        check_sequence(x, "x", min_dim=1, time_first=False)
        x = x.to(self._device())
        return self._run(x.shape[0],
                         lambda t, k, active: x.index_select(0, active).unsqueeze(0).expand(k, -1, *x.shape[1:]))

    def evaluate(self, data: Any, *, batch_size: int = 64, encode: Optional[Encoder | str] = None,
                 max_samples: Optional[int] = None) -> DCResult:
        """Run labelled data batch by batch; the result has ``labels`` (so ``accuracy``).

        Args:
            data: time-first samples ``([T, ...], y)`` (Dataset, DataLoader, ``(x [T, N, ...], y)``),
                or static samples ``([...], y)`` with ``encode``.
            encode: ``None`` (time-first data), ``"direct"`` (static data, repeated at every step
                without copies), or an encoder ``(x [B, ...], T) → [T, B, ...]`` (e.g.
                :func:`snn.encoders.rate` with a generator).
            batch_size, max_samples: samples per batch; stop after this many samples (``None``: all).

        Raises:
            ValueError: no samples at all (:meth:`DCResult.concat`), or as :meth:`run`.
        """
        parts = []
        for x, y in iter_labelled(data, batch_size, time_first=encode is None, max_samples=max_samples):
            if encode == "direct":
                r = self.run_static(x)
            elif encode is None:
                r = self.run(x)
            else:
                r = self.run(encode(x, self.max_T))
            r.labels = y.long().cpu()
            parts.append(r)
        return DCResult.concat(parts)
