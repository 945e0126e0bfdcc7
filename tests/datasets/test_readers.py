"""read_events: real N-MNIST recordings, synthetic ATIS/AEDAT/npy files, every error path."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import tonic

from snn.datasets import READERS, EventFileError, read_events, register_reader
from snn.datasets.readers import EVENTS_DTYPE

NMNIST = (34, 34, 2)
REAL_IDS = ["1", "2", "500", "1000", "60001", "60100"]


# ------------------------------------------------------------------ real recordings
@pytest.mark.parametrize("sample_id", REAL_IDS)
def test_real_nmnist_matches_measured_facts_and_tonic(nmnist_small_dir, sample_id):
    path = nmnist_small_dir / f"{sample_id}.bs2"
    ev = read_events(path, NMNIST)
    assert ev.dtype == EVENTS_DTYPE
    assert 1069 <= len(ev) <= 7152
    assert ev["x"].min() >= 0 and ev["x"].max() <= 33
    assert ev["y"].min() >= 0 and ev["y"].max() <= 33
    assert set(np.unique(ev["p"]).tolist()) == {False, True}
    assert np.all(np.diff(ev["t"]) >= 0) and 0 <= ev["t"].min() and ev["t"].max() <= 336_040
    ref = tonic.io.read_mnist_file(str(path), dtype=np.dtype([(f, int) for f in "xytp"]))
    for f in "xytp":
        np.testing.assert_array_equal(ev[f].astype(np.int64), ref[f])


def test_real_nmnist_rejects_too_small_sensor(nmnist_small_dir):
    path = nmnist_small_dir / "1.bs2"
    with pytest.raises(EventFileError, match=r"1\.bs2.*x max 33.*sensor_size=\(20, 34, 2\)"):
        read_events(path, (20, 34, 2))
    with pytest.raises(EventFileError, match=r"1\.bs2.*y max 33.*sensor_size=\(34, 10, 2\)"):
        read_events(path, (34, 10, 2))


def test_truncated_copy_of_real_file(nmnist_small_dir, tmp_path):
    data = (nmnist_small_dir / "2.bs2").read_bytes()
    bad = tmp_path / "cut.bs2"
    bad.write_bytes(data[:-2])
    with pytest.raises(EventFileError, match=r"cut\.bs2.*truncated"):
        read_events(bad)


# ------------------------------------------------------------------ synthetic ATIS
def test_atis_round_trip_with_overflow_marker(tmp_path, write_atis):
    # event 2 is an overflow marker (y == 240): later timestamps gain 2**13 µs
    x, y, t, p = [1, 0, 5, 7], [2, 240, 3, 4], [10, 8000, 20, 8191], [1, 0, 0, 1]
    ev = read_events(write_atis(tmp_path / "a.bin", x, y, t, p), (8, 8, 2))
    assert ev.dtype == EVENTS_DTYPE
    np.testing.assert_array_equal(ev["x"], [1, 5, 7])
    np.testing.assert_array_equal(ev["y"], [2, 3, 4])
    np.testing.assert_array_equal(ev["t"], [10, 20 + 8192, 8191 + 8192])
    np.testing.assert_array_equal(ev["p"], [True, False, True])


def test_garbage_bin_is_rejected(tmp_path):
    rng = np.random.default_rng(0)
    bad = tmp_path / "noise.bin"
    bad.write_bytes(rng.integers(0, 256, 5 * 200, dtype=np.uint8).tobytes())
    with pytest.raises(EventFileError, match=r"noise\.bin.*timestamps decrease"):
        read_events(bad)


def test_text_file_with_bin_extension_is_rejected(tmp_path):
    bad = tmp_path / "notes.bin"
    bad.write_text("hello, these are not events\n")
    with pytest.raises(EventFileError, match=r"notes\.bin.*truncated"):
        read_events(bad)


@pytest.mark.parametrize("ext", [".bin", ".bs2"])
def test_empty_atis_file_gives_empty_events(tmp_path, ext):
    path = tmp_path / f"empty{ext}"
    path.write_bytes(b"")
    ev = read_events(path, NMNIST)
    assert ev.dtype == EVENTS_DTYPE and ev.shape == (0,)


# ------------------------------------------------------------------ AEDAT 2.0
def test_aedat2_decodes_dvs128_addresses(tmp_path, write_aedat):
    x, y, t, p = [0, 127, 64, 3], [5, 0, 127, 9], [100, 200, 200, 4_000_000_000], [1, 0, 1, 0]
    ev = read_events(write_aedat(tmp_path / "rec.aedat", x, y, t, p), (128, 128, 2))
    assert ev.dtype == EVENTS_DTYPE
    np.testing.assert_array_equal(ev["x"], x)
    np.testing.assert_array_equal(ev["y"], y)
    np.testing.assert_array_equal(ev["t"], t)
    np.testing.assert_array_equal(ev["p"], np.array(p, bool))


def test_aedat2_timestamp_wraparound_is_unwrapped(tmp_path, write_aedat):
    t = [2**32 - 10, 5]
    ev = read_events(write_aedat(tmp_path / "wrap.aedat", [1, 2], [1, 2], t, [0, 1]))
    np.testing.assert_array_equal(ev["t"], [2**32 - 10, 2**32 + 5])


def test_aedat_header_only_gives_empty_events(tmp_path, write_aedat):
    ev = read_events(write_aedat(tmp_path / "h.aedat", [], [], [], []))
    assert ev.dtype == EVENTS_DTYPE and len(ev) == 0


def test_aedat_without_header_is_rejected(tmp_path):
    path = tmp_path / "nohdr.aedat"
    path.write_bytes(np.zeros(8, ">u4").tobytes())
    with pytest.raises(EventFileError, match=r"nohdr\.aedat.*#!AER-DAT"):
        read_events(path)


def test_empty_aedat_file_is_rejected_for_lack_of_header(tmp_path):
    path = tmp_path / "zero.aedat"
    path.write_bytes(b"")
    with pytest.raises(EventFileError, match=r"zero\.aedat.*#!AER-DAT"):
        read_events(path)


def test_aedat_data_not_multiple_of_8_is_rejected(tmp_path, write_aedat):
    path = write_aedat(tmp_path / "cut.aedat", [1, 2], [1, 2], [1, 2], [0, 1])
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(EventFileError, match=r"cut\.aedat.*13 bytes.*not a multiple of 8"):
        read_events(path)


def test_aedat_other_version_is_rejected(tmp_path, write_aedat):
    path = write_aedat(tmp_path / "v3.aedat", [1], [1], [1], [0], header=b"#!AER-DAT3.1\r\n")
    with pytest.raises(EventFileError, match=r"v3\.aedat.*version 3\.1.*2\.x"):
        read_events(path)


def test_aedat_events_outside_sensor(tmp_path, write_aedat):
    path = write_aedat(tmp_path / "big.aedat", [100], [3], [1], [0])
    with pytest.raises(EventFileError, match=r"big\.aedat.*x max 100.*sensor_size=\(64, 64, 2\)"):
        read_events(path, (64, 64, 2))


# ------------------------------------------------------------------ .npy
def _npy(tmp_path, name, arr):
    path = tmp_path / name
    np.save(path, arr, allow_pickle=False)
    return path


def test_npy_structured_any_int_dtypes_and_pm1_polarity(tmp_path):
    arr = np.zeros(3, dtype=[("t", "<u4"), ("x", "<i4"), ("y", "u1"), ("p", "i1"), ("extra", "f4")])
    arr["t"], arr["x"], arr["y"], arr["p"] = [5, 6, 7], [1, 2, 3], [4, 5, 6], [-1, 1, -1]
    ev = read_events(_npy(tmp_path, "ev.npy", arr), (10, 10, 2))
    assert ev.dtype == EVENTS_DTYPE
    np.testing.assert_array_equal(ev["x"], [1, 2, 3])
    np.testing.assert_array_equal(ev["y"], [4, 5, 6])
    np.testing.assert_array_equal(ev["t"], [5, 6, 7])
    np.testing.assert_array_equal(ev["p"], [False, True, False])


def test_single_polarity_sensor_merges_polarities(tmp_path):
    arr = np.zeros(4, dtype=[(f, "<i8") for f in "xytp"])
    arr["p"] = [0, 1, 1, 0]
    ev = read_events(_npy(tmp_path, "ev.npy", arr), (4, 4, 1))
    assert not ev["p"].any()
    assert read_events(_npy(tmp_path, "ev.npy", arr), (4, 4, 2))["p"].sum() == 2


def test_npy_empty_structured_gives_empty_events(tmp_path):
    ev = read_events(_npy(tmp_path, "e.npy", np.zeros(0, dtype=[(f, "<i4") for f in "xytp"])), NMNIST)
    assert ev.dtype == EVENTS_DTYPE and len(ev) == 0


@pytest.mark.parametrize("arr, message", [
    (np.zeros((5, 4), dtype=np.int64), "structured"),
    (np.zeros(3, dtype=[("x", "i4"), ("y", "i4"), ("t", "i8")]), r"lacks field\(s\) \['p'\]"),
    (np.zeros(3, dtype=[("x", "f4"), ("y", "i4"), ("t", "i8"), ("p", "i1")]), "field 'x' has dtype float32"),
    (np.zeros((2, 2), dtype=[(f, "i4") for f in "xytp"]), "1-D"),
])
def test_npy_wrong_content_is_rejected(tmp_path, arr, message):
    with pytest.raises(EventFileError, match=rf"bad\.npy.*{message}"):
        read_events(_npy(tmp_path, "bad.npy", arr))


@pytest.mark.parametrize("content", [b"", b"\x93NUMPY garbage", pickle.dumps({"x": 1})])
def test_npy_unreadable_bytes_are_rejected(tmp_path, content):
    path = tmp_path / "junk.npy"
    path.write_bytes(content)
    with pytest.raises(EventFileError, match=r"junk\.npy.*not a readable \.npy"):
        read_events(path)


def test_npy_pickled_object_array_is_refused(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(EventFileError, match=r"obj\.npy"):
        read_events(path)


def test_polarity_beyond_sensor_is_rejected(tmp_path):
    arr = np.zeros(3, dtype=[(f, "<i4") for f in "xytp"])
    arr["p"] = [0, 1, 2]
    with pytest.raises(EventFileError, match=r"pol\.npy.*p max 2.*sensor_size=\(4, 4, 2\)"):
        read_events(_npy(tmp_path, "pol.npy", arr), (4, 4, 2))


def test_uint64_timestamps_beyond_int64_are_rejected(tmp_path):
    # 2**63 + 5 µs used to wrap to a negative time
    arr = np.zeros(3, dtype=[("x", "<i4"), ("y", "<i4"), ("t", "<u8"), ("p", "<i4")])
    arr["t"] = [0, 2**63 + 5, 2**64 - 1]
    with pytest.raises(EventFileError, match=r"big\.npy.*field 't' \(uint64\) holds 18446744073709551615.*int64"):
        read_events(_npy(tmp_path, "big.npy", arr))
    arr["t"] = [0, 5, 2**63 - 1]                 # the int64 range itself is fine
    assert read_events(_npy(tmp_path, "ok.npy", arr))["t"].tolist() == [0, 5, 2**63 - 1]


def test_negative_coordinates_are_rejected(tmp_path):
    arr = np.zeros(2, dtype=[(f, "<i4") for f in "xytp"])
    arr["y"] = [0, -3]
    with pytest.raises(EventFileError, match=r"neg\.npy.*negative y.*-3"):
        read_events(_npy(tmp_path, "neg.npy", arr))


# ------------------------------------------------------------------ dispatch and registry
def test_unknown_extension_lists_supported(tmp_path):
    path = tmp_path / "rec.dat"
    path.write_bytes(b"1234")
    with pytest.raises(EventFileError, match=r"rec\.dat.*'\.dat'.*\.aedat.*\.bin.*\.bs2.*\.npy"):
        read_events(path)


def test_extension_is_case_insensitive(tmp_path, write_atis):
    ev = read_events(write_atis(tmp_path / "UP.BS2", [1], [1], [1], [1]))
    assert len(ev) == 1


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.bs2"):
        read_events(tmp_path / "nothere.bs2")


@pytest.mark.parametrize("bad", [(34, 34), (34, 0, 2), (34.5, 34, 2), "34x34"])
def test_bad_sensor_size_is_named(tmp_path, write_atis, bad):
    path = write_atis(tmp_path / "a.bs2", [1], [1], [1], [1])
    with pytest.raises(ValueError, match="sensor_size"):
        read_events(path, bad)


def test_register_reader_adds_a_format(tmp_path, monkeypatch):
    monkeypatch.setattr("snn.datasets.readers.READERS", dict(READERS))
    from snn.datasets import readers

    def read_csv(path):
        rows = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
        out = np.zeros(len(rows), dtype=[(f, np.int64) for f in "xytp"])
        for i, f in enumerate("xytp"):
            out[f] = rows[:, i]
        return out

    register_reader("CSV", read_csv)
    assert ".csv" in readers.READERS and ".csv" not in READERS
    path = tmp_path / "e.csv"
    path.write_text("1,2,30,1\n3,4,40,0\n")
    ev = read_events(path, (8, 8, 2))
    np.testing.assert_array_equal(ev["t"], [30, 40])
    with pytest.raises(ValueError, match="overwrite=True"):
        register_reader(".csv", read_csv)
    register_reader(".csv", read_csv, overwrite=True)
    with pytest.raises(TypeError, match="callable"):
        register_reader(".x", "not a function")


def test_event_file_error_pickles_with_path():
    err = pickle.loads(pickle.dumps(EventFileError("/d/f.bs2", "truncated")))
    assert isinstance(err, ValueError) and err.path == "/d/f.bs2" and str(err) == "/d/f.bs2: truncated"
