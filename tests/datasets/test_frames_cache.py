"""FrameDataset and its HDF5 cache: equality with tonic, reuse, corrupt/stale rebuilds, atomicity."""
from __future__ import annotations

import contextlib
import os
import warnings

import h5py
import numpy as np
import pytest
import tonic
import torch

from snn.datasets import EventFolder, FrameDataset, FrameSpec
from snn.datasets.cache import FORMAT_VERSION
from snn.datasets.readers import EVENTS_DTYPE

NMNIST = (34, 34, 2)


class ListDataset:
    """In-memory ``(events, label)`` dataset with a sensor size."""

    def __init__(self, samples, sensor_size, fail_at=None):
        self.samples, self.sensor_size, self.fail_at = samples, sensor_size, fail_at

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        if i == self.fail_at:
            raise RuntimeError(f"boom at {i}")
        return self.samples[i]


def _events(n, w, h, t_max, seed, polarities=2):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=EVENTS_DTYPE)
    ev["x"], ev["y"] = rng.integers(0, w, n), rng.integers(0, h, n)
    ev["t"] = np.sort(rng.integers(0, t_max, n))
    ev["p"] = rng.integers(0, polarities, n)
    return ev


def _toy(n=6, size=(8, 6, 2), seed=0, **kw):
    return ListDataset([(_events(40 + i, size[0], size[1], 10_000, seed + i), i % 3) for i in range(n)], size, **kw)


@contextlib.contextmanager
def _no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _tonic_keeping_last(events, sensor_size, T):
    """tonic's ToFrame(n_time_bins=T) plus the events at the last timestamp, which tonic drops
    and FrameSpec counts in the last bin (an independent reference for our own binning)."""
    ref = tonic.transforms.ToFrame(sensor_size=sensor_size, n_time_bins=T)(events.copy()).astype(np.int64)
    last = events[events["t"] == events["t"].max()]
    for e in last:
        y = int(e["y"]) if "y" in events.dtype.names else 0
        p = int(e["p"]) if sensor_size[2] > 1 else 0
        if ref.ndim == 4:
            ref[-1, p, y, int(e["x"])] += 1
        else:  # 1-D sensors: [T, P, W]
            ref[-1, p, int(e["x"])] += 1
    return ref


@pytest.fixture
def nmnist30(nmnist_small_dir, nmnist_labels30):
    return EventFolder(nmnist_small_dir, nmnist_labels30, sensor_size=NMNIST)


# ------------------------------------------------------------------ equality with tonic, reuse
def test_round_trip_equals_tonic_and_reopens_without_rebuild(nmnist30, tmp_path):
    cache = tmp_path / "cache"
    fd = FrameDataset(nmnist30, n_time_bins=6, cache_dir=cache, progress=False)
    assert len(fd) == 30 and fd.T == 6 and fd.frames_shape == (6, 2, 34, 34) and fd.sensor_size == NMNIST
    assert fd.labels.dtype == np.int64 and fd.labels.tolist() == nmnist30.targets
    files = list(cache.iterdir())
    assert files == [fd.cache_path] and fd.cache_path.suffix == ".h5"
    for i in (0, 7, 29):
        frames, label = fd[i]
        assert frames.dtype == torch.float32 and label == nmnist30.targets[i]
        events = nmnist30[i][0]
        np.testing.assert_array_equal(frames.numpy(), _tonic_keeping_last(events, NMNIST, 6))
        assert frames.sum() == len(events)  # every event counted
    mtime = fd.cache_path.stat().st_mtime_ns
    with _no_warnings():
        again = FrameDataset(nmnist30, n_time_bins=6, cache_dir=cache, progress=False)
    assert fd.cache_path.stat().st_mtime_ns == mtime  # reused, not rewritten
    assert torch.equal(again.counts, fd.counts)
    with h5py.File(fd.cache_path) as f:
        assert f.attrs["complete"] and f.attrs["format_version"] == FORMAT_VERSION and len(f.attrs["key"]) == 64
        assert f["frames"].dtype == np.uint16 and f["frames"].chunks == (1, 6, 2, 34, 34)
        assert f["labels"].dtype == np.int64


@pytest.mark.parametrize("T", [5, 30])  # crop (recordings ~300 ms) and zero-pad
def test_time_window_pads_or_crops_like_tonic(nmnist30, tmp_path, T):
    fd = FrameDataset(nmnist30, time_window=20_000, T=T, cache_dir=tmp_path, progress=False)
    assert fd.frames_shape == (T, 2, 34, 34)
    events = nmnist30[4][0]
    ref = tonic.transforms.ToFrame(sensor_size=NMNIST, time_window=20_000, include_incomplete=True)(events)
    ref = ref[:T] if len(ref) >= T else np.concatenate([ref, np.zeros((T - len(ref), *ref.shape[1:]))])
    np.testing.assert_array_equal(fd[4][0].numpy(), ref)
    if T == 30:
        assert fd[4][0][-1].sum() == 0 and fd[4][0].sum() == len(events)


def test_downsample_and_merge_polarities(nmnist30, tmp_path):
    fd = FrameDataset(nmnist30, n_time_bins=4, downsample=0.5, merge_polarities=True, cache_dir=tmp_path,
                      progress=False)
    assert fd.sensor_size == (17, 17, 1) and fd.frames_shape == (4, 1, 17, 17)
    events = nmnist30[3][0]
    small = tonic.transforms.Downsample(spatial_factor=0.5)(events)
    ref = _tonic_keeping_last(small, (17, 17, 2), 4).sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(fd[3][0].numpy(), ref)


def test_cache_false_matches_cached(tmp_path):
    ds = _toy()
    cached = FrameDataset(ds, n_time_bins=3, cache_dir=tmp_path, progress=False)
    mem = FrameDataset(ds, n_time_bins=3, cache=False, progress=False)
    assert mem.cache_path is None and torch.equal(mem.counts, cached.counts)
    np.testing.assert_array_equal(mem.labels, cached.labels)


def test_default_cache_dir_is_snn_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SNN_CACHE", os.fspath(tmp_path / "env"))
    fd = FrameDataset(_toy(), n_time_bins=2, progress=False)
    assert fd.cache_path.parent == tmp_path / "env" and fd.cache_path.is_file()


# ------------------------------------------------------------------ invalid caches are rebuilt
def _build(ds, cache, **kw):
    return FrameDataset(ds, n_time_bins=3, cache_dir=cache, progress=False, **kw)


@pytest.mark.parametrize("damage", ["garbage", "truncate", "flip_complete", "drop_key", "bad_shape"])
def test_corrupt_cache_is_rebuilt_with_warning(tmp_path, damage):
    ds = _toy()
    good = _build(ds, tmp_path)
    path = good.cache_path
    if damage == "garbage":
        path.write_bytes(b"\x00not an hdf5 file" * 100)
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "flip_complete":
        with h5py.File(path, "r+") as f:
            f.attrs["complete"] = False
    elif damage == "drop_key":
        with h5py.File(path, "r+") as f:
            del f.attrs["key"]
    else:
        with h5py.File(path, "r+") as f:
            del f["frames"]
            f["frames"] = np.zeros((6, 2, 2, 6, 8), dtype=np.uint16)
    with pytest.warns(UserWarning, match=rf"{path.name}.*invalid.*rebuilding"):
        rebuilt = _build(ds, tmp_path)
    assert torch.equal(rebuilt.counts, good.counts)
    with _no_warnings():  # the rebuilt file is valid again
        _build(ds, tmp_path)


def test_corrupted_chunk_is_caught_by_checksum(tmp_path):
    ds = _toy()
    good = _build(ds, tmp_path)
    with h5py.File(good.cache_path) as f:
        offset = f["frames"].id.get_chunk_info(2).byte_offset
    raw = bytearray(good.cache_path.read_bytes())
    raw[offset + 3] ^= 0xFF
    good.cache_path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match=rf"{good.cache_path.name}.*invalid"):
        rebuilt = _build(ds, tmp_path)
    assert torch.equal(rebuilt.counts, good.counts)


def test_corrupted_label_is_caught_by_checksum(tmp_path):
    ds = _toy()
    good = _build(ds, tmp_path)
    with h5py.File(good.cache_path) as f:
        offset = f["labels"].id.get_offset()      # contiguous int64 labels
    raw = bytearray(good.cache_path.read_bytes())
    raw[offset + 8] ^= 0x03                       # label of sample 1: 1 -> 2, frames untouched
    good.cache_path.write_bytes(bytes(raw))
    with h5py.File(good.cache_path) as f:
        assert f["labels"][1] == 2                # the damage is real and readable
    with pytest.warns(UserWarning, match=rf"{good.cache_path.name}.*invalid.*labels checksum"):
        rebuilt = _build(ds, tmp_path)
    assert rebuilt.labels.tolist() == [i % 3 for i in range(6)]
    with _no_warnings():
        assert _build(ds, tmp_path).labels.tolist() == rebuilt.labels.tolist()


def test_cache_of_an_older_format_is_rebuilt_with_a_readable_warning(tmp_path):
    ds = _toy()
    good = _build(ds, tmp_path)
    with h5py.File(good.cache_path, "r+") as f:
        f.attrs["format_version"] = FORMAT_VERSION - 1
    with pytest.warns(UserWarning, match=rf"cache format {FORMAT_VERSION - 1}, this snn writes format "
                                         rf"{FORMAT_VERSION}\); rebuilding"):
        _build(ds, tmp_path)


def test_changed_parameters_use_a_different_file(tmp_path):
    ds = _toy()
    a = FrameDataset(ds, n_time_bins=3, cache_dir=tmp_path, progress=False)
    with _no_warnings():
        b = FrameDataset(ds, n_time_bins=4, cache_dir=tmp_path, progress=False)
        c = FrameDataset(ds, n_time_bins=3, merge_polarities=True, cache_dir=tmp_path, progress=False)
    assert len({a.cache_path, b.cache_path, c.cache_path}) == 3 and b.T == 4
    assert c.frames_shape == (3, 1, 6, 8)


def test_changed_source_file_makes_cache_stale(tmp_path, write_atis):
    root = tmp_path / "data"
    (root / "c").mkdir(parents=True)
    path = write_atis(root / "c" / "a.bs2", [1, 2, 3], [1, 1, 1], [0, 10, 20], [1, 1, 0])
    fd = _build(EventFolder(root, sensor_size=(4, 4, 2)), tmp_path / "cache")
    assert fd[0][0].sum() == 3  # every event counted (tonic would drop the last one)
    write_atis(path, [1, 2, 3, 3], [1, 1, 1, 2], [0, 10, 20, 30], [1, 1, 0, 0])
    with pytest.warns(UserWarning, match=rf"{fd.cache_path.name}.*stale"):
        fresh = _build(EventFolder(root, sensor_size=(4, 4, 2)), tmp_path / "cache")
    assert fresh.cache_path == fd.cache_path and fresh[0][0].sum() == 4


def test_changed_in_memory_content_makes_cache_stale(tmp_path):
    old = _build(_toy(seed=0), tmp_path)
    with pytest.warns(UserWarning, match="stale"):
        new = _build(_toy(seed=100), tmp_path)
    assert new.cache_path == old.cache_path and not torch.equal(new.counts, old.counts)


def test_different_folders_get_different_files(tmp_path, write_atis):
    paths = []
    for name in ("one", "two"):
        (tmp_path / name / "c").mkdir(parents=True)
        write_atis(tmp_path / name / "c" / "a.bs2", [1, 2], [1, 1], [0, 10], [1, 1])
        paths.append(_build(EventFolder(tmp_path / name, sensor_size=(4, 4, 2)), tmp_path / "cache").cache_path)
    assert paths[0] != paths[1]


def test_failure_midway_leaves_no_file(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="boom at 4"):
        _build(_toy(fail_at=4), cache)
    assert list(cache.iterdir()) == []  # neither the final file nor a temp file


def test_failed_rebuild_keeps_the_old_file(tmp_path):
    good = _build(_toy(), tmp_path)
    before = good.cache_path.read_bytes()
    with pytest.warns(UserWarning, match="stale"), pytest.raises(RuntimeError, match="boom"):
        _build(_toy(seed=9, fail_at=4), tmp_path)  # not a probed sample (0, 3, 5)
    assert good.cache_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [good.cache_path.name]


# ------------------------------------------------------------------ empty, 1-D, errors
@pytest.mark.parametrize("kw", [{"n_time_bins": 4}, {"time_window": 1000, "T": 4}])
def test_empty_events_give_zero_frames(tmp_path, kw):
    empty = np.zeros(0, dtype=EVENTS_DTYPE)
    ds = ListDataset([(empty, 1), (_events(30, 8, 6, 5000, 1), 0)], (8, 6, 2))
    fd = FrameDataset(ds, cache_dir=tmp_path, progress=False, **kw)
    frames, label = fd[0]
    assert frames.shape == (4, 2, 6, 8) and frames.sum() == 0 and label == 1
    assert fd[1][0].sum() > 0


def test_one_dimensional_sensor_gives_T_by_N(tmp_path):
    dtype = np.dtype([("t", np.int64), ("x", np.int64), ("p", np.int64)])  # SHD-style, no y
    ev = np.zeros(50, dtype=dtype)
    ev["t"], ev["x"], ev["p"] = np.arange(50) * 100, np.arange(50) % 20, 1
    empty = np.zeros(0, dtype=dtype)
    fd = FrameDataset(ListDataset([(ev, 2), (empty, 0)], (20, 1, 1)), n_time_bins=5, cache=False, progress=False)
    assert fd.frames_shape == (5, 20)
    ref = _tonic_keeping_last(ev, (20, 1, 1), 5)
    np.testing.assert_array_equal(fd[0][0].numpy(), ref.reshape(5, 20))
    assert fd[1][0].shape == (5, 20) and fd[1][0].sum() == 0


def test_unsorted_events_are_binned_in_time_order():
    ev = _events(60, 8, 6, 9000, 3)
    spec = FrameSpec((8, 6, 2), n_time_bins=3)
    np.testing.assert_array_equal(spec(ev[::-1].copy()), spec(ev))


def test_events_outside_sensor_name_the_sample(tmp_path):
    ds = _toy()
    ds.samples[2] = (_events(10, 12, 6, 100, 0), 0)
    with pytest.raises(ValueError, match=r"sample 2 .*outside sensor_size=\(8, 6, 2\).*x in"):
        FrameDataset(ds, n_time_bins=2, cache=False, progress=False)


def test_non_integer_label_is_rejected():
    ds = ListDataset([(_events(5, 4, 4, 100, 0), "cat")], (4, 4, 2))
    with pytest.raises(ValueError, match=r"sample 0: label must be an integer, got 'cat'"):
        FrameDataset(ds, n_time_bins=2, cache=False, progress=False)


@pytest.mark.parametrize("kw, message", [
    ({}, "exactly one of n_time_bins and time_window"),
    ({"n_time_bins": 3, "time_window": 10.0}, "exactly one"),
    ({"n_time_bins": 0}, "n_time_bins must be a positive int"),
    ({"n_time_bins": 3, "T": 4}, "T=4 disagrees"),
    ({"time_window": 1000}, r"T \(number of frames\)"),
    ({"time_window": -1, "T": 3}, "time_window must be a positive finite number of µs"),
    ({"time_window": float("inf"), "T": 3}, "time_window must be a positive finite number of µs, got inf"),
    ({"time_window": float("nan"), "T": 3}, "time_window must be a positive finite number of µs, got nan"),
    ({"time_window": 0, "T": 3}, "time_window must be a positive finite number of µs"),
    ({"time_window": True, "T": 3}, "time_window must be a positive finite number of µs"),
    ({"n_time_bins": 3, "downsample": 2.0}, r"downsample must be a factor in \(0, 1\]"),
])
def test_bad_parameters_are_named(kw, message):
    with pytest.raises(ValueError, match=message):
        FrameDataset(_toy(), cache=False, progress=False, **kw)


def test_missing_sensor_size_is_explained():
    ds = ListDataset([(_events(5, 4, 4, 100, 0), 0)], None)
    with pytest.raises(ValueError, match="no sensor_size attribute; pass sensor_size="):
        FrameDataset(ds, n_time_bins=2, cache=False, progress=False)
    fd = FrameDataset(ds, n_time_bins=2, sensor_size=(4, 4, 2), cache=False, progress=False)
    assert fd.frames_shape == (2, 2, 4, 4)


def test_subset_of_folder_finds_sensor_size_and_goes_stale_with_its_files(tmp_path, write_atis):
    from snn.datasets import train_val_split

    root = tmp_path / "data"
    (root / "c").mkdir(parents=True)
    for i in range(4):
        write_atis(root / "c" / f"{i}.bs2", [1, 2, 3], [1, 1, 1], [0, 10, 20 + i], [1, 1, 0])
    train, val = train_val_split(EventFolder(root, sensor_size=(4, 4, 2)), 0.5, seed=0)
    fd = _build(train, tmp_path / "cache")
    assert len(fd) == 2 and fd.sensor_size == (4, 4, 2)
    other = _build(val, tmp_path / "cache")
    assert other.cache_path != fd.cache_path
    untouched = next(i for i in range(4) if i not in train.indices)
    write_atis(root / "c" / f"{untouched}.bs2", [1], [1], [0], [1])  # a base file changes
    with pytest.warns(UserWarning, match="stale"):
        _build(train, tmp_path / "cache")


def test_events_at_the_last_timestamp_are_kept():
    """tonic 1.7's ToFrame(n_time_bins) drops them; a recording whose events share one
    timestamp must not become an all-zero frame."""
    ev = np.zeros(3, dtype=tonic.io.events_struct)
    ev["x"], ev["y"], ev["t"], ev["p"] = [1, 2, 3], [0, 1, 2], [0, 100, 100], [True, False, True]
    frames = FrameSpec((4, 4, 2), n_time_bins=2)(ev)
    assert frames.sum() == 3 and frames[1].sum() == 2 and frames[0, 1, 0, 1] == 1
    same = ev.copy()
    same["t"] = 5
    assert FrameSpec((4, 4, 2), n_time_bins=3)(same)[0].sum() == 3


def _spec_events(dtype, **fields):
    ev = np.zeros(len(next(iter(fields.values()))), dtype=dtype)
    for k, v in fields.items():
        ev[k] = v
    return ev


_INT_FIELDS = {"x": "<i2", "y": "<i2", "t": "<i8", "p": "<i2"}


@pytest.mark.parametrize("field", ["x", "y", "t", "p"])
@pytest.mark.parametrize("kw", [{"n_time_bins": 2}, {"time_window": 0.5, "T": 2}])
def test_float_event_fields_are_rejected_naming_field_and_dtype(field, kw):
    # a float t used to be truncated into wrong bins, a float x gave an IndexError with time_window
    dtype = [(f, "<f8" if f == field else d) for f, d in _INT_FIELDS.items()]
    ev = _spec_events(dtype, x=[0, 1, 2, 3], y=[0, 0, 1, 1], t=[0, 0.25, 0.5, 1.0], p=[0, 1, 0, 1])
    with pytest.raises(ValueError, match=rf"field '{field}' has dtype float64; expected an integer or bool"):
        FrameSpec((34, 34, 2), **kw)(ev)
    with pytest.raises(ValueError, match=rf"field '{field}' has dtype float64"):
        FrameSpec((34, 34, 2), **kw)(ev[:0])              # even when empty
    ok = ev.astype([(f, d) for f, d in _INT_FIELDS.items()])
    assert FrameSpec((34, 34, 2), n_time_bins=2)(ok).sum() == 4


def test_uint64_timestamps_beyond_int64_are_rejected():
    ev = _spec_events([("x", "<i2"), ("y", "<i2"), ("t", "<u8"), ("p", "?")], x=[0, 1], y=[0, 0], t=[0, 2**63], p=[0, 1])
    with pytest.raises(ValueError, match=r"field 't' \(uint64\) holds 9223372036854775808 µs, beyond the int64"):
        FrameSpec((4, 4, 2), n_time_bins=2)(ev)
    ev["t"] = [0, 2**62]
    assert FrameSpec((4, 4, 2), n_time_bins=2)(ev)[:, :, 0].reshape(2, -1).sum(1).tolist() == [1, 1]


@pytest.mark.parametrize("kw", [{"n_time_bins": 1}, {"time_window": 10, "T": 1}, {"n_time_bins": 1, "downsample": 0.5}])
def test_more_than_two_polarity_channels_keep_the_polarity_value(kw):
    # p == 2 on a P == 3 sensor used to land in channel 1 (p > 0)
    ev = _spec_events(list(_INT_FIELDS.items()), x=[0, 1, 2, 3, 3], y=[0, 0, 0, 0, 1], t=[0, 1, 2, 3, 4],
                      p=[0, 1, 2, 2, 2])
    frames = FrameSpec((4, 4, 3), **kw)(ev)
    assert frames.shape[:2] == (1, 3)
    assert frames.reshape(3, -1).sum(1).tolist() == [1, 1, 3]
    merged = FrameSpec((4, 4, 3), merge_polarities=True, **kw)(ev)
    assert merged.shape[:2] == (1, 1) and merged.sum() == 5


@pytest.mark.parametrize("p", [[0, 3], [-1, 2]])
def test_polarity_outside_the_channels_of_a_multi_channel_sensor_is_rejected(p):
    ev = _spec_events(list(_INT_FIELDS.items()), x=[0, 1], y=[0, 0], t=[0, 1], p=p)
    with pytest.raises(ValueError, match=r"outside sensor_size=\(4, 4, 3\): p in .* expected \[0, 2\]"):
        FrameSpec((4, 4, 3), n_time_bins=1)(ev)


def test_two_and_one_polarity_sensors_keep_their_mapping():
    ev = _spec_events(list(_INT_FIELDS.items()), x=[0, 1, 2, 3], y=[0, 0, 0, 0], t=[0, 1, 2, 3], p=[-1, 1, 0, 1])
    assert FrameSpec((4, 4, 2), n_time_bins=1)(ev).reshape(2, -1).sum(1).tolist() == [2, 2]   # -1/0 → 0, 1 → 1
    assert FrameSpec((4, 4, 1), n_time_bins=1)(ev).sum() == 4
    assert FrameSpec((4, 4, 2), n_time_bins=1, merge_polarities=True)(ev).sum() == 4
    ev["p"][0] = 2
    with pytest.raises(ValueError, match=r"p in \[0, 2\], expected \[-1, 1\]"):
        FrameSpec((4, 4, 2), n_time_bins=1)(ev)


def test_numpy_time_window_is_accepted_and_stored_as_a_python_number():
    spec = FrameSpec((8, 6, 2), time_window=np.float32(1000.0), T=3)
    assert type(spec.time_window) is float and spec.time_window == 1000.0
    ev = _events(60, 8, 6, 3000, 2)
    np.testing.assert_array_equal(spec(ev), FrameSpec((8, 6, 2), time_window=1000.0, T=3)(ev))


@pytest.mark.parametrize("index", [slice(0, 2), 1.0, [0, 1], True, None])
def test_frame_dataset_index_must_be_an_int(index):
    # fd[0:2] used to fail with "only 0-dimensional arrays can be converted to Python scalars"
    fd = FrameDataset(_toy(), n_time_bins=2, cache=False, progress=False)
    with pytest.raises(TypeError, match="FrameDataset index must be an int"):
        fd[index]


def test_frame_dataset_int_like_indices():
    fd = FrameDataset(_toy(), n_time_bins=2, cache=False, progress=False)
    for i in (np.int64(4), torch.tensor(4), -2):
        x, y = fd[i]
        assert torch.equal(x, fd.counts[4].float()) and y == 4 % 3
    with pytest.raises(IndexError, match="index 6 is out of range for 6 samples"):
        fd[6]
    with pytest.raises(IndexError, match="out of range"):
        fd[-7]


def test_multi_channel_polarity_mapping_has_its_own_cache_key():
    # caches built when p == 2 still went to channel 1 must not be reused
    assert "polarity_channels" in FrameSpec((4, 4, 3), n_time_bins=1).params()
    for spec in (FrameSpec((4, 4, 2), n_time_bins=1), FrameSpec((4, 4, 3), n_time_bins=1, merge_polarities=True)):
        assert "polarity_channels" not in spec.params()       # unchanged binning keeps its key
