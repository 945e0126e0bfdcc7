"""The data forms the library's tools accept, read one way: tensors, tensor pairs, Datasets,
DataLoaders or any iterable of batches (used by conversion, calibration and the latency tools)."""
from __future__ import annotations

import numbers
from collections.abc import Iterable, Iterator
from typing import Any, Optional

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset

from snn.datasets.collate import collate_time_first
from snn.validation import is_positive_int

__all__ = ["DataLike", "iter_batches", "check_batching", "as_dataset", "StaticFrames"]

DataLike = Any
"""``Tensor | (inputs, labels) | Dataset | DataLoader | iterable of batches``."""


def _is_pair(data: Any) -> bool:
    return isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(d, Tensor) for d in data)


def as_dataset(data: DataLike, name: str = "data") -> Dataset:
    """A map-style dataset from a Dataset or an ``(inputs [N, ...], labels [N])`` tensor pair.

    Raises:
        TypeError: anything else (the message names ``name``).
        ValueError: the pair's lengths differ.
    """
    if isinstance(data, Dataset):
        return data
    if _is_pair(data):
        if len(data[0]) != len(data[1]):
            raise ValueError(f"{name}: {len(data[0])} inputs but {len(data[1])} labels")
        return TensorDataset(data[0], data[1])
    raise TypeError(f"{name} must be a Dataset or an (inputs, labels) pair of tensors, got {type(data).__name__}")


def _split(batch: Any, need_labels: bool, name: str) -> tuple[Tensor, Optional[Tensor]]:
    if isinstance(batch, Tensor):
        if need_labels:
            raise ValueError(f"{name} must yield (inputs, labels) pairs, got unlabelled tensors")
        return batch, None
    if isinstance(batch, (tuple, list)) and len(batch) >= 1 and isinstance(batch[0], Tensor):
        y = torch.as_tensor(batch[1]).reshape(-1) if len(batch) > 1 else None
        if need_labels and y is None:
            raise ValueError(f"{name} must yield (inputs, labels) pairs, got 1-element batches")
        return batch[0], y
    raise TypeError(f"{name} must yield tensors or (inputs, labels) pairs, got {type(batch).__name__}")


def _slice(parts: tuple[Tensor, ...], bdim: int, start: int, length: int) -> tuple[Tensor, ...]:
    return (parts[0].narrow(bdim, start, length),) + tuple(p[start:start + length] for p in parts[1:])


def iter_batches(data: DataLike, batch_size: int = 64, *, need_labels: bool = False, time_first: bool = False,
                 max_samples: Optional[int] = None, name: str = "data") -> Iterator[tuple[Tensor, Optional[Tensor]]]:
    """Yield ``(x, y)`` batches from any accepted form; ``y [B]`` or None when unlabelled.

    Args:
        data: a tensor of inputs; an ``(inputs, labels [N])`` pair; a map-style Dataset of
            ``(x, label)`` (or of tensors); a DataLoader or any iterable of batches (tensors or
            ``(x, y)`` pairs, used as they come).
        batch_size: for tensors, pairs and Datasets, a positive int (checked for every form).
        need_labels: raise if a batch has no labels.
        time_first: samples are ``[T, ...]`` and batches ``[T, B, ...]`` (the batch is dim 1;
            Datasets are collated with :func:`snn.datasets.collate_time_first`); otherwise
            batches are ``[B, ...]``.
        max_samples: stop after this many samples (a positive int, or None for all).

    Raises:
        TypeError: an unsupported type, or batches that are neither tensors nor pairs.
        ValueError: ``batch_size`` not a positive int or ``max_samples`` neither a positive int
            nor None (both raised at the call, before any data is read); ``need_labels`` and
            the data has no labels; mismatched lengths; inputs without a batch dimension; no
            samples.
    """
    batch_size, max_samples = check_batching(batch_size, max_samples)
    return _iter_batches(data, batch_size, need_labels, time_first, max_samples, name)


def check_batching(batch_size: Any, max_samples: Any = None) -> tuple[int, Optional[int]]:
    """Validate ``batch_size`` (a positive int) and ``max_samples`` (a positive int or None).

    Returns:
        both as Python ints (``max_samples`` may stay None).

    Raises:
        ValueError: either is out of range or not an integer (bools refused); names it.
    """
    if not is_positive_int(batch_size):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if max_samples is not None and not is_positive_int(max_samples):
        raise ValueError(f"max_samples must be a positive int or None, got {max_samples!r}")
    return int(batch_size), None if max_samples is None else int(max_samples)


def _iter_batches(data: DataLike, batch_size: int, need_labels: bool, time_first: bool,
                  max_samples: Optional[int], name: str) -> Iterator[tuple[Tensor, Optional[Tensor]]]:
    bdim = 1 if time_first else 0
    if isinstance(data, Tensor) or _is_pair(data):
        parts = (data,) if isinstance(data, Tensor) else tuple(data)
        total = parts[0].shape[bdim]
        if len(parts) == 2 and total != len(parts[1]):
            raise ValueError(f"{name}: {total} inputs (dim {bdim}) but {len(parts[1])} labels")
        source: Iterable = (_slice(parts, bdim, i, min(batch_size, total - i)) for i in range(0, total, batch_size))
    elif isinstance(data, Dataset) and hasattr(data, "__len__") and not isinstance(data, Iterable):
        source = DataLoader(data, batch_size=batch_size, collate_fn=collate_time_first if time_first else None)
    elif isinstance(data, Iterable):
        source = data
    else:
        raise TypeError(f"{name} must be a tensor, an (inputs, labels) pair, a Dataset or an iterable of "
                        f"batches, got {type(data).__name__}")
    seen = 0
    for batch in source:
        x, y = _split(batch, need_labels, name)
        if x.dim() <= bdim:
            raise ValueError(f"{name}: inputs must be {'[T, B, ...]' if time_first else '[B, ...]'}; got shape "
                             f"{tuple(x.shape)}")
        n = x.shape[bdim]
        if max_samples is not None and seen + n > max_samples:
            keep = max_samples - seen
            x, y, n = x.narrow(bdim, 0, keep), (None if y is None else y[:keep]), keep
        if n:
            yield x, y
        seen += n
        if max_samples is not None and seen >= max_samples:
            break
    if seen == 0:
        raise ValueError(f"{name} holds no samples")


class StaticFrames(Dataset):
    """Accumulated event frames as static inputs: ``(frames [T, ...], y) → (scale · Σ_t frames[t], y)``.

    Wrap a :class:`snn.datasets.FrameDataset` (typically ``n_time_bins=1``) so each sample is
    one event-count image, e.g. ``[2, 34, 34]`` for N-MNIST: the input an ANN for conversion
    is trained on, and the input direct encoding repeats at every step (IIR compression).

    Args:
        frames: dataset of ``(float32 [T, ...], label)``.
        scale: multiplies the counts (e.g. ``0.1``); a positive finite number.

    Shape:
        ``__getitem__`` → ``(float32 [...], int)``: the time axis summed away.

    Raises:
        ValueError: ``scale`` is not a positive finite number.
    """

    def __init__(self, frames: Dataset, scale: float = 1.0) -> None:
        if not (isinstance(scale, numbers.Real) and 0 < scale < float("inf")):
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        self.frames, self.scale = frames, float(scale)
        base = getattr(frames, "dataset", frames)
        self.classes = getattr(base, "classes", None)

    def __len__(self) -> int:
        return len(self.frames)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        x, y = self.frames[i]
        return torch.as_tensor(x, dtype=torch.float32).sum(0) * self.scale, int(y)
