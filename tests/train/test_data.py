"""build_datasets: class numbering of test folders, named datasets without an official test split."""
from pathlib import Path

import numpy as np
import pytest
import tonic

import snn.train.data as data
from snn.train import DataSpec, build_datasets

CLASSES = ["cat", "dog", "emu"]


def _events(rng: np.random.Generator, k: int, n: int = 60) -> np.ndarray:
    """Class ``k``: events in columns 5k to 5k+4 of a 16×16 sensor."""
    ev = np.zeros(n, dtype=tonic.io.events_struct)
    ev["x"], ev["y"] = rng.integers(5 * k, 5 * k + 5, n), rng.integers(0, 16, n)
    ev["t"], ev["p"] = np.sort(rng.integers(0, 10_000, n)), rng.integers(0, 2, n).astype(bool)
    ev["x"][0] = ev["y"][0] = 15                     # every folder spans the whole sensor
    return ev


def _folder(root: Path, classes, per: int = 4) -> Path:
    rng = np.random.default_rng(len(classes))
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per):
            np.save(root / c / f"{i}.npy", _events(rng, CLASSES.index(c) if c in CLASSES else 2))
    return root


def test_test_folder_lacking_a_class_keeps_the_training_numbering(tmp_path):
    train_dir, test_dir = _folder(tmp_path / "train", CLASSES), _folder(tmp_path / "test", ["dog", "emu"])
    spec = DataSpec(data=str(train_dir), test_data=str(test_dir), T=2, cache_dir=str(tmp_path / "c"), progress=False)
    train, test, info = build_datasets(spec)
    assert info["classes"] == CLASSES and info["num_classes"] == 3 and info["test_split"] == "test folder"
    assert sorted(set(test.labels.tolist())) == [1, 2]      # dog, emu: not renumbered 0, 1
    # the same folder numbered by a run's classes (as `snn evaluate` does), or by its own names
    spec = DataSpec(data=str(test_dir), test_data=str(test_dir), T=2, cache_dir=str(tmp_path / "c"), progress=False,
                    classes=CLASSES)
    assert sorted(set(build_datasets(spec)[1].labels.tolist())) == [1, 2]
    spec.classes = None
    assert sorted(set(build_datasets(spec)[1].labels.tolist())) == [0, 1]


def test_test_folder_with_an_unknown_class_is_an_error_naming_it(tmp_path):
    train_dir, test_dir = _folder(tmp_path / "train", ["cat", "dog"]), _folder(tmp_path / "test", ["dog", "emu"])
    spec = DataSpec(data=str(train_dir), test_data=str(test_dir), T=2, cache_dir=str(tmp_path / "c"), progress=False)
    with pytest.raises(ValueError, match=r"class folder 'emu' of .*test is not among the 2 known classes "
                                         r"\['cat', 'dog'\]"):
        build_datasets(spec)


class _NoSplit:
    """Stands in for a tonic dataset without an official split whose samples differ in size
    (tonic's NCALTECH101: ``sensor_size`` None)."""

    sensor_size = None

    def __init__(self, n: int = 30):
        rng = np.random.default_rng(0)
        self.samples = [(_events(rng, i % 3), i % 3) for i in range(n)]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


@pytest.mark.parametrize("name", ["cifar10dvs", "ncaltech101", "asldvs"])
def test_dataset_without_official_split_holds_out_a_seeded_fraction(tmp_path, monkeypatch, name):
    calls = []

    def fake_open(dataset, train=True, **kw):
        calls.append((dataset, train))
        return _NoSplit()
    monkeypatch.setattr(data, "open_dataset", fake_open)
    spec = DataSpec(dataset=name, root=str(tmp_path), sensor_size=(16, 16, 2), T=2, val_fraction=0.2, seed=3,
                    cache_dir=str(tmp_path / "c"), progress=False)
    train, test, info = build_datasets(spec)
    assert calls == [(name, True)]                   # never the (absent) test split
    assert (len(train), len(test)) == (24, 6) and not set(train.indices) & set(test.indices)
    assert sorted(np.bincount([test[i][1] for i in range(6)]).tolist()) == [2, 2, 2]   # stratified
    assert info["sensor_size"] == [16, 16, 2]        # --sensor-size reaches the frames
    assert info["test_split"] == "20% held out (seed 3, stratified)" and "no official test split" in info["source"]
    assert build_datasets(spec)[1].indices == test.indices            # the same hold-out every time
