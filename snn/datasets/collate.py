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
            (all the same shape) and an integer label.

    Returns:
        ``(x, y)``: ``x`` of shape ``[T, B, ...]`` (the samples' dtype; float32 for
        :class:`~snn.datasets.FrameDataset`), ``y`` a ``torch.int64`` tensor ``[B]``.

    Raises:
        ValueError: an empty batch, a sample that is not a pair, a frame without a time axis,
            or samples of different shapes (names the first mismatching sample).
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
        labels.append(int(np.asarray(sample[1].item() if torch.is_tensor(sample[1]) else sample[1])))
    return torch.stack(frames, dim=1), torch.tensor(labels, dtype=torch.int64)
