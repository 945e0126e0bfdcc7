"""Dynamic Confidence on a live stream: one timestep at a time, the same rule as the batched runner."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from snn.latency.batch_state import select_batch
from snn.latency.dynamic import DCResult, DynamicConfidence, _Decisions, _free_T
from snn.neurons import check_sequence
from snn.state import stateful

__all__ = ["ConfidenceStream", "StreamStatus"]


@dataclass
class StreamStatus:
    """Where a stream of ``B`` samples stands after a step.

    Attributes:
        t: timesteps seen so far.
        done: bool ``[B]``, decided (frozen) samples.
        prediction: int64 ``[B]``, the decision of finished samples, -1 for the others.
        latency: int64 ``[B]``, decision timestep of finished samples, 0 for the others.
        confidence: float64 ``[B]``, ``c`` at the decision (0 for the others).
    """

    t: int
    done: Tensor
    prediction: Tensor
    latency: Tensor
    confidence: Tensor

    @property
    def all_done(self) -> bool:
        """Whether every one of the ``B`` streams has decided."""
        return bool(self.done.all())


class ConfidenceStream:
    """Step-driven Dynamic Confidence over a live input stream (e.g. event frames as they are binned).

    Feed one timestep ``x_t [B, ...]`` of ``B`` independent streams per :meth:`step`. Samples
    whose confidence exceeds θ (or that reach ``max_T``) are decided and frozen; from the next
    step on their rows of ``x_t`` are ignored and their state is dropped from the network
    (:func:`snn.latency.select_batch`), so only undecided streams cost compute. Once all are
    decided, :meth:`step` returns at once without running the model. Use as a context manager:
    the model's state is carried inside and reset on exit.

    Args:
        dc: the :class:`DynamicConfidence` settings (model, θ, ``max_T``, scale, readout).

    Raises:
        ValueError: ``x_t`` changes its batch size or feature shape, or contains NaN;
            :meth:`step` outside the ``with`` block; :meth:`result` before every stream decided.

    Examples:
        >>> with ConfidenceStream(DynamicConfidence(model, 0.9, max_T=100)) as s:
        ...     for x_t in frames:                    # [B, 2, 34, 34] per step
        ...         status = s.step(x_t)
        ...         if status.all_done:
        ...             break
        >>> status.prediction, status.latency
    """

    def __init__(self, dc: DynamicConfidence) -> None:
        self.dc = dc
        self._stack: Optional[contextlib.ExitStack] = None
        self._dec: Optional[_Decisions] = None
        self._shape: Optional[tuple[int, ...]] = None

    def __enter__(self) -> "ConfidenceStream":
        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        stack.enter_context(_free_T(self.dc.model))
        stack.enter_context(stateful(self.dc.model))
        was_training = self.dc.model.training
        self.dc.model.eval()
        stack.callback(self.dc.model.train, was_training)
        self._stack, self._dec, self._shape = stack, None, None
        return self

    def __exit__(self, *exc) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack = None

    def _status(self) -> StreamStatus:
        d = self._dec
        assert d is not None
        return StreamStatus(d.t, d.latency > 0, d.prediction.clone(), d.latency.clone(), d.confidence.clone())

    def step(self, x_t: Tensor) -> StreamStatus:
        """Advance every undecided stream by one timestep with ``x_t [B, ...]``.

        Raises:
            TypeError: ``x_t`` is not a tensor.
            ValueError: called outside the ``with`` block; ``x_t`` is 0-d, holds NaN (on
                CPU) or changes shape from the first step; the model output is not ``[1, B', C]``.
        """
        if self._stack is None:
            raise ValueError("ConfidenceStream.step must be called inside `with ConfidenceStream(...) as s:`")
        check_sequence(x_t, "x_t", min_dim=1, time_first=False)
        if self._dec is None:
            self._dec = _Decisions(x_t.shape[0], self.dc.threshold, self.dc.scale, self.dc.readout, self.dc.max_T)
            self._shape = tuple(x_t.shape)
        elif tuple(x_t.shape) != self._shape:
            raise ValueError(f"x_t has shape {tuple(x_t.shape)} but this stream started with {self._shape}; "
                             "open a new stream for another batch")
        d = self._dec
        if d.done:
            return self._status()
        dev = self.dc._device()
        x = x_t.to(dev).index_select(0, d.active.to(dev)).unsqueeze(0)
        y = self.dc._check_out(self.dc.model(x), 1, int(d.active.numel()))
        keep = d.update(y)
        if not d.done and not bool(keep.all()):
            select_batch(self.dc.model, keep)
        return self._status()

    def result(self) -> DCResult:
        """The decisions as a :class:`DCResult` (every stream must be decided).

        Raises:
            ValueError: some streams are still undecided.
        """
        d = self._dec
        if d is None or not d.done:
            raise ValueError("not every stream has decided yet: keep stepping (at most max_T steps)")
        return DCResult(d.prediction, d.latency, d.confidence, d.scores, d.steps_run, self.dc.max_T)
