"""open_dataset / sensor_size_of: names, error paths (no network), fake tonic dataset folders."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tonic

from snn.datasets import DATASETS, DatasetDownloadError, FrameDataset, has_test_split, open_dataset, sensor_size_of
from snn.datasets.registry import default_root

TONIC_NAMES = [n for n in DATASETS if n != "digits-events"]
REPO = Path(__file__).resolve().parents[2]


def test_required_names_are_listed():
    for name in ("nmnist", "shd", "ssc", "dvsgesture", "cifar10dvs", "pokerdvs", "ncaltech101",
                 "digits-events"):
        assert name in DATASETS


@pytest.mark.parametrize("call", [open_dataset, sensor_size_of])
def test_unknown_name_lists_valid_names(call):
    with pytest.raises(ValueError, match=r"name='mnist-dvs'.*nmnist.*shd.*digits-events"):
        call("mnist-dvs")


@pytest.mark.parametrize("name", TONIC_NAMES)
def test_missing_files_without_download_explain_what_to_do(tmp_path, name):
    root = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as info:
        open_dataset(name, root=root)
    msg = str(info.value)
    if name == "pokerdvs":  # tonic has no download for it: say where to get it instead
        assert "no download" in msg and "imse-cnm.csic.es" in msg and "download=True" not in msg
        assert os.fspath(root) in msg and "pips_train" in msg
        with pytest.raises(FileNotFoundError, match="no download"):  # not tonic's bare "Local data file"
            open_dataset(name, root=root, download=True)
    else:
        assert name in msg and "download=True" in msg and os.fspath(root) in msg
    assert "does not exist" in msg  # the root itself is missing
    assert not root.exists()  # nothing created, nothing downloaded


def test_missing_files_in_existing_root_name_the_expected_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"NMNIST.*train\.zip.*download=True"):
        open_dataset("NMNIST", root=tmp_path)


def test_default_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SNN_DATA", os.fspath(tmp_path))
    assert default_root() == tmp_path
    with pytest.raises(FileNotFoundError, match=os.fspath(tmp_path / "SHD")):
        open_dataset("shd")


@pytest.mark.parametrize("name", ["cifar10dvs", "ncaltech101", "asldvs"])
def test_train_false_without_official_split(tmp_path, name):
    with pytest.raises(ValueError, match=rf"{name} has no official train/test split.*train_val_split"):
        open_dataset(name, root=tmp_path, train=False)


def test_has_test_split():
    assert [n for n in DATASETS if not has_test_split(n)] == ["cifar10dvs", "ncaltech101", "asldvs"]
    assert has_test_split("NMNIST") and has_test_split("digits-events")
    with pytest.raises(ValueError, match="valid names"):
        has_test_split("mnist-dvs")


class _Response:
    """What ``urllib.request.urlopen`` returns for tonic's redirect check (no redirect)."""

    def __init__(self, url):
        self.url = url

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_failed_download_names_the_url_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request
    calls = []

    def offline(request, *a, **k):
        calls.append(request.full_url)
        if len(calls) == 1:
            return _Response(request.full_url)       # the redirect check passes, the download fails
        raise urllib.error.URLError("[Errno -2] Name or service not known")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DatasetDownloadError) as info:
        open_dataset("nmnist", root=tmp_path, train=True, download=True)
    url = tonic.datasets.NMNIST.train_url
    msg = str(info.value)
    assert info.value.url == url and msg.startswith(f"nmnist: could not download {url} into ")
    assert "Name or service not known" in msg and "network" in msg
    assert len(calls) >= 2                           # it did get as far as downloading
    folder = tmp_path / "NMNIST"
    assert not any(folder.iterdir())                 # tonic's half-written file is gone
    assert isinstance(info.value, RuntimeError)      # the CLI prints it as one line


def test_sensor_sizes():
    assert sensor_size_of("nmnist") == (34, 34, 2)
    assert sensor_size_of("shd") == (700, 1, 1)
    assert sensor_size_of("DVSGesture") == (128, 128, 2)
    assert sensor_size_of("pokerdvs") == (35, 35, 2)
    assert sensor_size_of("ncaltech101") is None


def test_digits_events_rejects_root():
    with pytest.raises(ValueError, match="digits-events.*root"):
        open_dataset("digits-events", root="/tmp")


def test_digits_events_opens_lazily():
    pytest.importorskip("snn.datasets.digits")
    ds = open_dataset("digits-events", train=False)
    assert tuple(ds.sensor_size) == (34, 34, 2) == sensor_size_of("digits-events")
    events, label = ds[0]
    assert {"x", "y", "t", "p"} <= set(events.dtype.names) and int(label) == label


def test_package_import_does_not_import_digits():
    code = "import sys, snn.datasets; assert 'snn.datasets.digits' not in sys.modules, 'eager'"
    env = {**os.environ, "PYTHONPATH": os.fspath(REPO)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)


# ------------------------------------------------------------------ fake tonic folders
def _fake_pokerdvs(root: Path) -> None:
    base = root / "POKERDVS"
    (base / "pips_train").mkdir(parents=True)
    (base / "pips_train.tar.gz").write_bytes(b"")  # tonic checks the archive is present
    rng = np.random.default_rng(0)
    for k, cls in enumerate(["cl", "di", "he", "sp"] * 5):
        (base / "pips_train" / cls).mkdir(exist_ok=True)
        n = 10 + k
        ev = np.stack([np.sort(rng.integers(0, 1000, n)), rng.integers(0, 35, n),
                       rng.integers(0, 35, n), rng.integers(0, 2, n)], axis=1)  # t, x, y, p
        np.save(base / "pips_train" / cls / f"{k}.npy", ev)


def test_fake_pokerdvs_opens_through_tonic(tmp_path):
    _fake_pokerdvs(tmp_path)
    ds = open_dataset("pokerdvs", root=tmp_path, train=True)
    assert type(ds) is tonic.datasets.POKERDVS  # the download guard is gone after __init__
    assert len(ds) == 20 and ds.sensor_size == (35, 35, 2)
    events, label = ds[0]
    assert {"x", "y", "t", "p"} <= set(events.dtype.names) and label in range(4)
    assert len(pickle.loads(pickle.dumps(ds))) == 20  # DataLoader workers can receive it
    with pytest.raises(FileNotFoundError, match="pokerdvs"):  # the test split is absent
        open_dataset("pokerdvs", root=tmp_path, train=False)


def _fake_shd(root: Path, n: int = 6) -> None:
    base = root / "SHD"
    base.mkdir(parents=True)
    (base / "shd_train.h5.zip").write_bytes(b"")
    rng = np.random.default_rng(1)
    with h5py.File(base / "shd_train.h5", "w") as f:
        times = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
        for i in range(n):
            k = 0 if i == 1 else 50 + i  # sample 1 has no spikes at all
            times[i] = np.sort(rng.uniform(0, 0.5, k)).astype(np.float32)
            units[i] = rng.integers(0, 700, k).astype(np.uint16)
        f["labels"] = np.arange(n, dtype=np.uint8) % 3
        f["extra/keys"] = np.array([b"a", b"b", b"c"])
        f["extra/speaker"] = np.zeros(n, dtype=np.uint8)


def test_fake_shd_gives_one_dimensional_frames(tmp_path):
    _fake_shd(tmp_path / "data")
    ds = open_dataset("shd", root=tmp_path / "data")
    assert len(ds) == 6
    fd = FrameDataset(ds, n_time_bins=8, cache_dir=tmp_path / "cache", progress=False)
    assert fd.frames_shape == (8, 700)
    frames, label = fd[0]
    assert frames.shape == (8, 700) and label == 0
    events, _ = ds[0]
    assert frames.sum() == len(events)  # every spike counted
    t = events["t"].astype(np.int64)
    bins = np.minimum((t - t.min()) * 8 // (t.max() - t.min()), 7)  # equal bins, last spike in the last bin
    ref = np.zeros((8, 700))
    np.add.at(ref, (bins, events["x"].astype(np.int64)), 1)
    np.testing.assert_array_equal(frames.numpy(), ref)
    assert fd[1][0].sum() == 0  # the empty sample
