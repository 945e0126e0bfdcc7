"""The data the latency tools read: labelled batches, time-first or static (then encoded)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable, Optional

from torch import Tensor
from torch.utils.data import Dataset

from snn.datasets.batches import StaticFrames, as_dataset, iter_batches

__all__ = ["Encoder", "iter_labelled", "as_dataset", "static_images"]

#: ``encode(x [B, ...], T) -> [T, B, ...]``, e.g. :func:`snn.encoders.direct`.
Encoder = Callable[[Tensor, int], Tensor]


def iter_labelled(data: Any, batch_size: int, *, time_first: bool, name: str = "data",
                  max_samples: Optional[int] = None) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield labelled batches ``(x, y)``: :func:`snn.datasets.batches.iter_batches` with labels required.

    ``x`` is ``[T, B, ...]`` if ``time_first`` else ``[B, ...]``.

    Raises:
        TypeError: an unsupported type or a batch that is not an ``(x, y)`` pair.
        ValueError: no samples, or no labels.
    """
    yield from iter_batches(data, batch_size, need_labels=True, time_first=time_first, max_samples=max_samples,
                            name=name)  # type: ignore[misc]


def static_images(frames: Dataset, scale: float = 1.0) -> Dataset:
    """Event frames ``([T, ...], y)`` → static images ``(scale · Σ_t frames[t], y)``, the input of
    IIR compression (direct encoding repeats it at every step; Chowdhury et al. 2021).

    With a :class:`snn.datasets.FrameDataset` of ``n_time_bins=1`` this is the event-count image,
    e.g. ``[2, 34, 34]`` for N-MNIST and digits-events. Same as :class:`snn.datasets.batches.StaticFrames`.

    Raises:
        ValueError: ``scale`` is not a positive finite number.
    """
    return StaticFrames(frames, scale)
