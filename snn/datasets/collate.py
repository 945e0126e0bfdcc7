"""Batch samples time-first for a DataLoader."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["collate_time_first"]


def collate_time_first(batch: Sequence[tuple[Any, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(frames, label)`` samples into a time-first batch.

    Use as ``DataLoader(frame_dataset, batch_size=B, collate_fn=collate_time_first)``.

    Args:
        batch: samples ``(frames, label)`` with frames a tensor or array of shape ``[T, ...]``
            (all the same shape) and an integer label (an int, bool, numpy integer, one-element
            integer tensor, or a float holding an exact integer such as ``2.0``).

    Returns:
        ``(x, y)``: ``x`` of shape ``[T, B, ...]`` (the samples' dtype; float32 for
        :class:`~snn.datasets.FrameDataset`), ``y`` a ``torch.int64`` tensor ``[B]``.

    Raises:
        ValueError: an empty batch, a sample that is not a pair, a frame without a time axis,
            samples of different shapes (names the first mismatching sample), or a label that
            is not one integer (e.g. ``1.7``, NaN, or several values; names the sample).
        TypeError: a label that is not a number (e.g. a string; names the sample).
    """
    if len(batch) == 0:
        raise ValueError("collate_time_first: batch is empty")
    frames, labels = [], []
    for i, sample in enumerate(batch):
        if not isinstance(sample, (tuple, list)) or len(sample) != 2:
            raise ValueError(f"collate_time_first: sample {i} must be a (frames, label) pair, "
                             f"got {type(sample).__name__}")
        x = torch.as_tensor(sample[0])
        if x.dim() < 1:
            raise ValueError(f"collate_time_first: sample {i} frames must be [T, ...], got a scalar")
        if frames and x.shape != frames[0].shape:
            raise ValueError(f"collate_time_first: sample {i} has shape {tuple(x.shape)} but sample 0 has "
                             f"{tuple(frames[0].shape)}; use a fixed T (FrameDataset n_time_bins or T)")
        frames.append(x)
        labels.append(_int_label(sample[1], i))
    return torch.stack(frames, dim=1), torch.tensor(labels, dtype=torch.int64)


def _int_label(label: Any, i: int) -> int:
    """``label`` as an int: integer/bool scalars, or floats that hold an exact integer."""
    if torch.is_tensor(label):
        t = label.detach().cpu()
        arr = (t.double() if t.is_floating_point() else t).numpy()   # numpy has no bfloat16
    else:
        arr = np.asarray(label)
    if arr.size == 1:
        arr = arr.reshape(())
    if arr.dtype.kind not in "iubf":
        raise TypeError(f"collate_time_first: sample {i} label must be an integer class index, "
                        f"got {type(label).__name__} {label!r}")
    if arr.ndim != 0:
        raise ValueError(f"collate_time_first: sample {i} label must be one integer class index, "
                         f"got shape {arr.shape}")
    if arr.dtype.kind == "f" and not (np.isfinite(arr) and float(arr).is_integer()):
        raise ValueError(f"collate_time_first: sample {i} label must be an integer class index, "
                         f"got {label!r} (a float that is not a whole number)")
    return int(arr)
