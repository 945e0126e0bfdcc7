"""The shared data-form reader: every accepted form yields the same batches; bad forms raise."""
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from snn.datasets.batches import StaticFrames, as_dataset, iter_batches

X, Y = torch.arange(10 * 3, dtype=torch.float32).reshape(10, 3), torch.arange(10)


def _cat(batches):
    xs, ys = zip(*batches)
    return torch.cat(xs), (None if ys[0] is None else torch.cat(ys)), [len(x) for x in xs]


@pytest.mark.parametrize("form", ["tensor", "pair", "dataset", "loader", "list"])
def test_every_form_yields_the_same_samples(form):
    data = {"tensor": X, "pair": (X, Y), "dataset": TensorDataset(X, Y),
            "loader": DataLoader(TensorDataset(X, Y), batch_size=4), "list": [(X[:4], Y[:4]), (X[4:], Y[4:])]}[form]
    x, y, sizes = _cat(iter_batches(data, 4))
    assert torch.equal(x, X)
    assert (y is None) == (form == "tensor") and (y is None or torch.equal(y, Y))
    assert sizes[0] == 4 and sum(sizes) == 10


def test_time_first_batches_split_dim_1_and_max_samples_cuts_mid_batch():
    seq = torch.randn(5, 10, 2)                               # [T, N, F]
    batches = list(iter_batches((seq, Y), 4, time_first=True, max_samples=7))
    assert [tuple(x.shape) for x, _ in batches] == [(5, 4, 2), (5, 3, 2)]
    assert torch.equal(torch.cat([x for x, _ in batches], 1), seq[:, :7])
    assert torch.equal(torch.cat([y for _, y in batches]), Y[:7])


def test_errors_name_the_data():
    with pytest.raises(ValueError, match="calib.*labels"):
        list(iter_batches(X, 4, need_labels=True, name="calib"))
    with pytest.raises(ValueError, match="10 inputs .* but 9 labels"):
        list(iter_batches((X, Y[:9]), 4))
    with pytest.raises(ValueError, match="holds no samples"):
        list(iter_batches([], 4, name="val"))
    with pytest.raises(TypeError, match="val must be"):
        list(iter_batches(3.0, 4, name="val"))
    with pytest.raises(TypeError, match="yield tensors or"):
        list(iter_batches(["a"], 4))
    with pytest.raises(ValueError, match="max_samples"):
        list(iter_batches(X, 4, max_samples=0))
    with pytest.raises(TypeError, match="train_data must be"):
        as_dataset([1, 2], "train_data")
    assert len(as_dataset((X, Y))) == 10


def test_static_frames_sum_time_and_scale():
    frames = TensorDataset(torch.ones(3, 4, 2, 5, 5), torch.tensor([0, 1, 2]))   # 3 samples of [T=4, 2, 5, 5]
    ds = StaticFrames(frames, scale=0.5)
    x, y = ds[1]
    assert x.shape == (2, 5, 5) and torch.all(x == 2.0) and y == 1 and len(ds) == 3
    for bad in (0, -1.0, float("inf"), "1"):
        with pytest.raises(ValueError, match="scale"):
            StaticFrames(frames, scale=bad)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, None, True, "4"])
def test_batch_size_must_be_a_positive_int_and_is_checked_at_the_call(batch_size):
    # 0 used to fail with "range() arg 3 must not be zero", -1 with "holds no samples"
    for data in (X, (X, Y), TensorDataset(X, Y)):
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            iter_batches(data, batch_size)          # no need to start iterating


@pytest.mark.parametrize("max_samples", [0, -3, 2.5, True, "5"])
def test_max_samples_must_be_a_positive_int_or_none(max_samples):
    with pytest.raises(ValueError, match="max_samples must be a positive int or None"):
        iter_batches(X, 4, max_samples=max_samples)


def test_numpy_ints_are_accepted_as_batch_size_and_max_samples():
    import numpy as np
    x, _, sizes = _cat(iter_batches(X, np.int64(4), max_samples=np.int32(6)))
    assert torch.equal(x, X[:6]) and sizes == [4, 2]
