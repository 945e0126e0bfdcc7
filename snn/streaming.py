"""Streaming inference on live event streams: packets of events → one frame per timestep → a
trained model stepped with carried state, optionally stopped by Dynamic Confidence.

A live sensor delivers events in packets (a driver callback, a socket, successive slices of a
recording). :class:`StreamingClassifier` bins each packet into one count frame with the same
:class:`snn.datasets.FrameSpec` transform as training (downsampling, polarity merging), feeds
it to the model as one timestep under :func:`snn.stateful` (membranes carried between
packets), and keeps the accumulated output ``O_t = Σ_{τ≤t} z_τ``. Its decision rule is the one
of :class:`snn.latency.DynamicConfidence` (Li, Jones & Furber, ICCV 2023): with a
``threshold`` θ the stream is decided at the first step with ``max softmax(O_t / s) > θ``
(then further packets are ignored, no compute is spent); without one it never stops early and
the current prediction ``argmax O_t`` is available after every packet.

For the model to see what it was trained on, use packets as long as one training time bin
(``--time-window`` of ``snn train``; or the recording span / T for ``n_time_bins`` training).

Example::

    from snn.streaming import StreamingClassifier, slice_events
    with StreamingClassifier(model, sensor_size=(34, 34, 2), threshold=0.9, max_steps=100) as clf:
        for packet in slice_events(events, time_window=10_000):     # or packets from a driver
            d = clf.feed(packet)
            if d.decided:
                break
    print(d.prediction, d.step, d.confidence)
"""
from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn

from snn.datasets.frames import FrameSpec
from snn.latency.dynamic import _free_T
from snn.latency.rule import accumulate, check_readout, confidence
from snn.state import stateful
from snn.validation import is_positive_finite, is_positive_int

__all__ = ["slice_events", "StreamDecision", "StreamingClassifier", "classify_stream"]


def slice_events(events: np.ndarray, time_window: float, start: Optional[float] = None) -> Iterator[np.ndarray]:
    """Successive packets of ``time_window`` µs of a recorded event array, as a live sensor
    would deliver them: ``[start + k·w, start + (k+1)·w)`` for ``k = 0, 1, ...`` up to the last
    event; a silent window yields an empty packet (time still passes).

    Args:
        events: structured array with a ``t`` field (µs), tonic's layout, in time order.
        time_window: packet length ``w`` in µs, a positive finite number.
        start: time of the first packet's start (default: the first event's ``t``).

    Raises:
        ValueError: no ``t`` field, timestamps out of order, or a ``time_window`` that is not a
            positive finite number (``0``, negative, ``inf``, NaN, a bool).
    """
    if not is_positive_finite(time_window):
        raise ValueError(f"time_window must be a positive finite number of µs, got {time_window!r}")
    names = getattr(getattr(events, "dtype", None), "names", None) or ()
    if "t" not in names:
        raise ValueError(f"events must be a structured array with a t field (µs), got fields {names}")
    if len(events) == 0:
        return
    t = events["t"].astype(np.float64)
    if np.any(np.diff(t) < 0):
        raise ValueError("event timestamps must be in time order to be streamed")
    t0 = float(t[0]) if start is None else float(start)
    n = int((t[-1] - t0) // time_window) + 1
    edges = np.searchsorted(t, t0 + time_window * np.arange(n + 1), side="left")
    for k in range(n):
        yield events[edges[k]:edges[k + 1]]


@dataclass
class StreamDecision:
    """Where a stream stands after a packet.

    Attributes:
        step: timesteps (packets) processed so far.
        prediction: ``argmax O_t`` now (the decision once ``decided``); -1 before the first step.
        confidence: ``max softmax(O_t / s)`` now (at the decision once ``decided``).
        decided: the threshold was passed or ``max_steps`` reached; later packets are ignored.
        scores: float32 ``[C]``, ``O_t / s``.
    """

    step: int
    prediction: int
    confidence: float
    decided: bool
    scores: Optional[Tensor]


class StreamingClassifier:
    """Step a trained model over a live event stream, one packet per timestep, state carried.

    Args:
        model: a network ``[T, B, ...] → [T, B, C]`` built from snn layers (``snn.models``
            presets, converted networks, your own), in the input layout of its training frames.
        sensor_size: tonic ``(W, H, P)`` of the incoming events.
        downsample, merge_polarities: as the :class:`snn.datasets.FrameSpec` used in training.
        threshold: Dynamic-Confidence θ in [0, 1]; ``None``: never stop early.
        max_steps: decide at this step at the latest (``None``: no limit; needs no threshold).
        scale: the fixed divisor ``s`` of the accumulated output, a positive finite number
            (default: ``max_steps``, or 1).
        readout: ``"auto"``, ``"sum"`` (outputs are per-step scores, summed) or ``"cumulative"``
            (the output already accumulates, e.g. a converted network).
        input_scale: multiplies the count frames (as in training, e.g. 0.1).
        device: where the model runs (default: its parameters' device).

    Shape:
        :meth:`feed`: a packet of events (structured array, any length, empty allowed) or a
        ready frame tensor ``[*frame]`` (one sample, no time or batch dim).

    Raises:
        ValueError: a threshold outside [0, 1]; ``max_steps`` not a positive int; ``scale`` not a
            positive finite number (``0``, negative, ``inf``, NaN), nor ``input_scale``; an unknown
            ``readout``; bad ``sensor_size``/``downsample`` (as :class:`snn.datasets.FrameSpec`);
            :meth:`feed` outside the ``with`` block, events outside ``sensor_size``, a frame of
            the wrong shape, or a model output that is not ``[1, 1, C]`` for one step.
    """

    def __init__(self, model: nn.Module, sensor_size: tuple[int, int, int], *,
                 downsample: Optional[float | tuple[float, float]] = None, merge_polarities: bool = False,
                 threshold: Optional[float] = None, max_steps: Optional[int] = None, scale: Optional[float] = None,
                 readout: str = "auto", input_scale: float = 1.0,
                 device: Optional[torch.device | str] = None) -> None:
        if threshold is not None and not (isinstance(threshold, numbers.Real) and 0.0 <= threshold <= 1.0):
            raise ValueError(f"threshold must be a confidence in [0, 1] or None, got {threshold!r}")
        if max_steps is not None and not is_positive_int(max_steps):
            raise ValueError(f"max_steps must be a positive int or None, got {max_steps!r}")
        self.model, self.threshold = model, threshold
        self.max_steps = None if max_steps is None else int(max_steps)
        self.spec = FrameSpec(sensor_size, n_time_bins=1, downsample=downsample, merge_polarities=merge_polarities)
        if scale is not None and not is_positive_finite(scale):
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        self.scale = float(scale if scale is not None else (max_steps or 1))
        self.readout = check_readout(readout, model)
        if not is_positive_finite(input_scale):
            raise ValueError(f"input_scale must be a positive finite number, got {input_scale!r}")
        self.input_scale = float(input_scale)
        p = next(model.parameters(), None)
        self.device = torch.device(device) if device is not None else (p.device if p is not None else torch.device("cpu"))
        self._stack: Optional[contextlib.ExitStack] = None
        self._reset_decision()

    def _reset_decision(self) -> None:
        self._acc: Optional[Tensor] = None
        self._decision = StreamDecision(0, -1, 0.0, False, None)

    def __enter__(self) -> "StreamingClassifier":
        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        stack.enter_context(_free_T(self.model))
        stack.enter_context(stateful(self.model))      # fresh state now, carried between packets, reset on exit
        stack.callback(self.model.train, self.model.training)
        self.model.eval()
        self._stack = stack
        self._reset_decision()
        return self

    def __exit__(self, *exc) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack = None

    def frame(self, packet: np.ndarray) -> Tensor:
        """One float32 count frame ``[*frame_shape]`` of a packet (all its events in one bin)."""
        return torch.from_numpy(self.spec(packet)[0].astype(np.float32)) * self.input_scale

    def feed(self, packet: np.ndarray | Tensor) -> StreamDecision:
        """Run one timestep on the next packet (or frame) and return the decision so far.

        Args:
            packet: structured event array (tonic layout, ``t`` in µs) binned with
                :meth:`frame`, or a ready frame tensor ``[*frame_shape]`` (cast to float32 on
                :attr:`device`; ``input_scale`` is not applied to it).

        Returns:
            The current :class:`StreamDecision` (unchanged, and the packet ignored, once decided).

        Raises:
            ValueError: called outside the ``with`` block, a frame of the wrong shape, events
                outside ``sensor_size``, or a model output that is not ``[1, 1, C]``.
        """
        if self._stack is None:
            raise ValueError("StreamingClassifier.feed must be called inside `with StreamingClassifier(...) as c:`")
        d = self._decision
        if d.decided:
            return d
        x = packet if isinstance(packet, Tensor) else self.frame(packet)
        want = self.spec.frame_shape[1:]
        if tuple(x.shape) != tuple(want):
            raise ValueError(f"a frame must have shape {tuple(want)} (one sample, no time or batch dim), "
                             f"got {tuple(x.shape)}")
        y = self.model(x.to(self.device, torch.float32)[None, None])      # [1, 1, C]
        if y.dim() != 3 or y.shape[:2] != (1, 1):
            raise ValueError(f"the model must map [T, B, ...] to [T, B, C]; got output {tuple(y.shape)} for [1, 1, ...]")
        self._acc = accumulate(y, self._acc, self.readout)[-1]
        c, pred = confidence(self._acc[None], self.scale)
        step = d.step + 1
        decided = ((self.threshold is not None and float(c[0, 0]) > self.threshold)
                   or (self.max_steps is not None and step >= self.max_steps))
        self._decision = StreamDecision(step, int(pred[0, 0]), float(c[0, 0]), decided,
                                        (self._acc[0] / self.scale).float().cpu())
        return self._decision


def classify_stream(model: nn.Module, packets: Iterable[np.ndarray | Tensor], sensor_size: tuple[int, int, int],
                    **kwargs: Any) -> StreamDecision:
    """Feed ``packets`` (an iterator of event packets, e.g. :func:`slice_events` or a live
    driver) to a :class:`StreamingClassifier` (``kwargs``) until it decides or the stream ends.

    Returns:
        The last :class:`StreamDecision` (``step == 0``, ``prediction == -1`` for an empty stream).

    Raises:
        ValueError: as :class:`StreamingClassifier` and its :meth:`~StreamingClassifier.feed`.
    """
    d = StreamDecision(0, -1, 0.0, False, None)
    with StreamingClassifier(model, sensor_size, **kwargs) as clf:
        for packet in packets:
            d = clf.feed(packet)
            if d.decided:
                break
    return d
