"""Deterministic train/validation splits."""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Subset

__all__ = ["train_val_split"]


def train_val_split(dataset: Any, val_fraction: float, seed: int = 0,
                    stratify: bool | Sequence[int] | np.ndarray = False) -> tuple[Subset, Subset]:
    """Split a map-style dataset into train and validation subsets, deterministically.

    The permutation comes from ``numpy.random.default_rng(seed)``: the same seed, length (and
    labels, when stratified) give the same split on every machine; no global RNG is touched.

    Args:
        dataset: any map-style dataset with ``len``.
        val_fraction: fraction in ``(0, 1)`` held out for validation; the validation set gets
            ``round(n * val_fraction)`` samples, at least 1 and at most ``n - 1``.
        seed: seed of the numpy Generator.
        stratify: False for a plain random split; True to keep class proportions using the
            dataset's ``labels`` or ``targets`` attribute (else labels are read from
            ``dataset[i][1]``); or the labels themselves (length ``n``). Each class ``c`` then
            gives ``round(n_c * val_fraction)`` samples to validation.

    Returns:
        ``(train, val)``: two ``torch.utils.data.Subset`` with sorted, disjoint indices
        covering ``range(n)``.

    Raises:
        ValueError: ``val_fraction`` outside ``(0, 1)``; fewer than 2 samples; labels of the
            wrong length; a stratified split leaving either side empty.
    """
    if not (isinstance(val_fraction, numbers.Real) and 0 < val_fraction < 1):
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    n = len(dataset)
    if n < 2:
        raise ValueError(f"train_val_split needs at least 2 samples, the dataset has {n}")
    rng = np.random.default_rng(seed)
    if stratify is False:
        n_val = min(max(round(n * val_fraction), 1), n - 1)
        val = rng.permutation(n)[:n_val]
    else:
        labels = _labels(dataset, n) if stratify is True else np.asarray(stratify)
        if labels.shape != (n,):
            raise ValueError(f"stratify labels have shape {labels.shape}, expected ({n},)")
        parts = []
        for c in np.unique(labels):  # sorted classes: the draw order is fixed
            members = np.flatnonzero(labels == c)
            parts.append(rng.permutation(members)[: round(len(members) * val_fraction)])
        val = np.concatenate(parts)
        if len(val) in (0, n):
            raise ValueError(f"stratified split with val_fraction={val_fraction} leaves "
                             f"{'no validation' if len(val) == 0 else 'no training'} samples; "
                             "use a different val_fraction or stratify=False")
    mask = np.zeros(n, dtype=bool)
    mask[val] = True
    return Subset(dataset, np.flatnonzero(~mask).tolist()), Subset(dataset, np.flatnonzero(mask).tolist())


def _labels(dataset: Any, n: int) -> np.ndarray:
    for attr in ("labels", "targets"):
        labels = getattr(dataset, attr, None)
        if labels is not None and not callable(labels) and len(labels) == n:
            return np.asarray(labels)
    return np.asarray([dataset[i][1] for i in range(n)])
