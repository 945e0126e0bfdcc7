"""digits-events: split, determinism, event format and range, and that the events carry the digit."""
import numpy as np
import pytest
import tonic
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from snn.datasets.digits import DigitsEvents
from snn.encoders import EventCameraEmulator


@pytest.fixture(scope="module")
def splits():
    train, test = DigitsEvents(train=True), DigitsEvents(train=False)
    return train, test, [train[i][0] for i in range(len(train))], [test[i][0] for i in range(len(test))]


def count_image(events):
    """Per-polarity event counts in 2x2-pixel bins: ``[2 * 17 * 17]``."""
    img = np.zeros((2, 17, 17))
    np.add.at(img, (events["p"].astype(int), events["y"] // 2, events["x"] // 2), 1)
    return img.ravel()


def test_metadata():
    assert DigitsEvents.sensor_size == (34, 34, 2)
    assert DigitsEvents.ordering == "xytp"
    assert len(DigitsEvents.classes) == 10 and DigitsEvents.classes[3] == "3 - three"
    assert DigitsEvents.dtype == np.dtype(tonic.io.events_struct)


def test_split_sizes_disjoint_and_stratified(splits):
    train, test, _, _ = splits
    assert len(train) + len(test) == 1797
    assert np.intersect1d(train.indices, test.indices).size == 0
    assert np.array_equal(np.union1d(train.indices, test.indices), np.arange(1797))
    per_class = np.bincount(load_digits().target)
    assert np.array_equal(np.bincount(test.targets, minlength=10), np.round(0.2 * per_class).astype(int))
    assert np.array_equal(np.bincount(train.targets) + np.bincount(test.targets), per_class)
    assert np.array_equal(train.targets, load_digits().target[train.indices])


def test_labels_are_python_ints(splits):
    train, test, _, _ = splits
    for ds in (train, test):
        events, label = ds[0]
        assert type(label) is int and label == ds.targets[0]


def test_events_format_range_and_balance(splits):
    _, _, train_ev, test_ev = splits
    counts, on_frac = [], []
    for ev in train_ev + test_ev:
        assert ev.dtype == np.dtype(tonic.io.events_struct)
        assert ev["x"].min() >= 0 and ev["x"].max() < 34 and ev["y"].min() >= 0 and ev["y"].max() < 34
        assert ev["t"].min() >= 0 and ev["t"].max() <= 300_000 and np.all(np.diff(ev["t"]) >= 0)
        counts.append(ev.size)
        on_frac.append(ev["p"].mean())
    assert 300 <= min(counts) and max(counts) <= 5000
    assert 0.3 <= min(on_frac) and max(on_frac) <= 0.7


def test_tonic_frames_keep_the_events(splits):
    # tonic bins [start, end): a burst of events at the last timestamp would be dropped
    _, _, _, test_ev = splits
    to_frame = tonic.transforms.ToFrame(sensor_size=DigitsEvents.sensor_size, n_time_bins=10)
    for ev in test_ev[:20]:
        frames = to_frame(ev)
        assert frames.shape == (10, 2, 34, 34)
        assert frames.sum() >= 0.99 * ev.size
        assert np.all(frames.sum(axis=(1, 2, 3)) > 0)  # activity throughout the 300 ms


def test_deterministic_for_a_seed_and_seed_changes_split(splits):
    _, test, _, test_ev = splits
    again = DigitsEvents(train=False, seed=0)
    assert np.array_equal(again.indices, test.indices)
    for i in (0, 17, len(again) - 1):
        assert np.array_equal(again[i][0], test_ev[i])
    other = DigitsEvents(train=False, seed=1)
    assert not np.array_equal(other.indices, test.indices)


def test_transforms_are_applied():
    ds = DigitsEvents(train=False, transform=lambda ev: ev.size, target_transform=lambda y: -y - 1)
    n, y = ds[1]
    assert n > 0 and y == -int(ds.targets[1]) - 1


def test_custom_emulator_is_used():
    coarse = DigitsEvents(train=False, emulator=EventCameraEmulator(contrast_threshold=0.6, log_eps=0.3))
    default = DigitsEvents(train=False)
    assert coarse[0][0].size < default[0][0].size


def test_bad_arguments():
    for frac in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="test_fraction"):
            DigitsEvents(test_fraction=frac)
    with pytest.raises(TypeError, match="emulator"):
        DigitsEvents(emulator="dvs")


def test_events_carry_the_digit(splits):
    # logistic regression on per-polarity event-count images: 300 training samples, whole test split
    train, test, train_ev, test_ev = splits
    x_train = np.log1p([count_image(ev) for ev in train_ev[:300]])
    x_test = np.log1p([count_image(ev) for ev in test_ev])
    with threadpool_limits(1):  # a tiny fit: BLAS threads only oversubscribe shared cores
        clf = LogisticRegression(max_iter=1000).fit(x_train, train.targets[:300])
        accuracy = clf.score(x_test, test.targets)
    assert accuracy > 0.7, accuracy  # chance is 0.1
