"""collate_time_first and train_val_split."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from snn.datasets import collate_time_first, train_val_split


class Frames:
    def __init__(self, n=10, T=3, labels=None):
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(n, T, 2, 4, 5, generator=g)
        self.labels = np.asarray(labels if labels is not None else np.arange(n) % 3)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], int(self.labels[i])


# ------------------------------------------------------------------ collate
def test_collate_is_time_first():
    ds = Frames()
    x, y = collate_time_first([ds[4], ds[1], ds[7]])
    assert x.shape == (3, 3, 2, 4, 5) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.tolist() == [1, 1, 1]
    assert torch.equal(x[:, 0], ds.x[4]) and torch.equal(x[:, 2], ds.x[7])


def test_collate_in_dataloader_and_numpy_inputs():
    loader = DataLoader(Frames(n=5), batch_size=4, collate_fn=collate_time_first)
    shapes = [tuple(x.shape) for x, _ in loader]
    assert shapes == [(3, 4, 2, 4, 5), (3, 1, 2, 4, 5)]
    x, y = collate_time_first([(np.zeros((2, 6), np.float32), np.int64(3))])
    assert x.shape == (2, 1, 6) and y.tolist() == [3]


def test_collate_shape_mismatch_names_the_sample():
    a = (torch.zeros(3, 4), 0)
    b = (torch.zeros(5, 4), 1)
    with pytest.raises(ValueError, match=r"sample 2 has shape \(5, 4\) but sample 0 has \(3, 4\)"):
        collate_time_first([a, a, b])


@pytest.mark.parametrize("batch, message", [
    ([], "batch is empty"),
    ([torch.zeros(3)], "sample 0 must be a \\(frames, label\\) pair"),
    ([(torch.tensor(1.0), 0)], "sample 0 frames must be \\[T, ...\\]"),
])
def test_collate_bad_batches(batch, message):
    with pytest.raises(ValueError, match=message):
        collate_time_first(batch)


@pytest.mark.parametrize("label", [2, 2.0, np.float32(2.0), np.int64(2), torch.tensor(2), torch.tensor([2]),
                                   torch.tensor(2.0), np.array(2, np.uint8)])
def test_collate_accepts_integer_labels_and_whole_floats(label):
    assert collate_time_first([(torch.zeros(2, 3), label)])[1].tolist() == [2]


@pytest.mark.parametrize("label", [1.7, -0.5, float("nan"), float("inf"), torch.tensor(1.7), np.float64(2.5)])
def test_collate_rejects_fractional_labels(label):
    # 1.7 used to become the class 1 silently
    with pytest.raises(ValueError, match="sample 0 label must be an integer class index"):
        collate_time_first([(torch.zeros(2, 3), label)])


@pytest.mark.parametrize("label, error", [("a", TypeError), (None, TypeError), ([1, 2], ValueError),
                                          (torch.tensor([1, 2]), ValueError)])
def test_collate_rejects_non_numeric_or_multiple_labels(label, error):
    with pytest.raises(error, match="sample 1 label must be"):
        collate_time_first([(torch.zeros(2, 3), 0), (torch.zeros(2, 3), label)])


# ------------------------------------------------------------------ splits
def _indices(subsets):
    return [list(s.indices) for s in subsets]


def test_split_is_deterministic_disjoint_and_complete():
    ds = Frames(n=50)
    a = _indices(train_val_split(ds, 0.2, seed=7))
    b = _indices(train_val_split(ds, 0.2, seed=7))
    c = _indices(train_val_split(ds, 0.2, seed=8))
    assert a == b and a != c
    train, val = a
    assert len(val) == 10 and len(train) == 40
    assert sorted(train + val) == list(range(50)) and not set(train) & set(val)
    assert train == sorted(train) and val == sorted(val)


def test_split_is_fixed_across_versions():
    # the exact split for a seed is part of the contract (numpy's PCG64 stream is stable)
    val = _indices(train_val_split(Frames(n=10), 0.3, seed=0))[1]
    expected = np.sort(np.random.default_rng(0).permutation(10)[:3]).tolist()
    assert val == expected


def test_split_does_not_touch_global_rng():
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    train_val_split(Frames(n=20), 0.5, seed=1)
    assert np.random.random() == before


def test_stratified_split_keeps_class_proportions():
    labels = [0] * 50 + [1] * 30 + [2] * 20
    ds = Frames(n=100, labels=labels)
    train, val = train_val_split(ds, 0.1, seed=3, stratify=True)
    assert Counter(ds.labels[val.indices].tolist()) == {0: 5, 1: 3, 2: 2}
    assert Counter(ds.labels[train.indices].tolist()) == {0: 45, 1: 27, 2: 18}
    again = train_val_split(ds, 0.1, seed=3, stratify=labels)  # explicit labels, same result
    assert _indices(again) == _indices((train, val))


def test_stratified_reads_labels_from_samples_when_no_attribute():
    class Plain:
        def __len__(self):
            return 20

        def __getitem__(self, i):
            return None, int(i < 10)

    train, val = train_val_split(Plain(), 0.2, seed=0, stratify=True)
    assert sorted(int(i < 10) for i in val.indices) == [0, 0, 1, 1]


def test_subsets_return_samples():
    ds = Frames(n=6)
    train, val = train_val_split(ds, 0.5, seed=0)
    x, y = val[0]
    assert torch.equal(x, ds.x[val.indices[0]]) and y == ds.labels[val.indices[0]]


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, "0.2"])
def test_bad_val_fraction_is_named(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(Frames(), fraction, seed=0)


def test_split_errors():
    with pytest.raises(ValueError, match="at least 2 samples"):
        train_val_split(Frames(n=1), 0.5, seed=0)
    with pytest.raises(ValueError, match=r"stratify labels have shape \(3,\), expected \(10,\)"):
        train_val_split(Frames(n=10), 0.5, seed=0, stratify=[0, 1, 2])
    with pytest.raises(ValueError, match="leaves no validation samples"):
        train_val_split(Frames(n=10, labels=range(10)), 0.2, seed=0, stratify=True)
