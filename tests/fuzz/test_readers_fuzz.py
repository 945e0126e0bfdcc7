"""Hypothesis fuzzing of every event reader and the frame conversion.

Valid generated files must read back exactly; truncated, mutated, garbage, empty files and
files with huge coordinates, negative or out-of-order timestamps must end in
``EventFileError``/``ValueError`` or a documented repair (out-of-order timestamps are sorted
before binning; an empty recording is an all-zero frame), never a crash, a hang or frames that
lose or invent events.
"""
import io
import itertools

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from snn.datasets import EventFileError, FrameSpec, read_events
from snn.datasets.readers import EVENTS_DTYPE

from fuzz_helpers import FUZZ, encode_aedat2, encode_atis, no_hang

SENSOR = (34, 34, 2)
_counter = itertools.count()


@st.composite
def events(draw, max_xy=33, sorted_t=True, t_max=2**23 - 1, min_size=0):
    n = draw(st.integers(min_size, 60))
    ev = np.zeros(n, EVENTS_DTYPE)
    ints = st.lists(st.integers(0, max_xy), min_size=n, max_size=n)
    ev["x"], ev["y"] = draw(ints), draw(ints)
    ev["p"] = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    t = np.array(draw(st.lists(st.integers(0, t_max), min_size=n, max_size=n)), np.int64)
    ev["t"] = np.sort(t) if sorted_t else t
    return ev


def _write(d, ext: str, data: bytes):
    p = d / f"f{next(_counter)}{ext}"
    p.write_bytes(data)
    return p


def _npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _check_outcome(path, sensor=SENSOR):
    """Read + frame ``path``: a clear error, or events inside the sensor whose frames count
    every event exactly once."""
    with no_hang():
        try:
            ev = read_events(path, sensor)
        except (EventFileError, ValueError) as e:
            assert str(e), "errors must have a message"
            return None
        assert ev.dtype == EVENTS_DTYPE and ev.ndim == 1
        if len(ev):
            assert ev["x"].min() >= 0 and ev["x"].max() < sensor[0]
            assert ev["y"].min() >= 0 and ev["y"].max() < sensor[1]
        try:
            frames = FrameSpec(sensor, n_time_bins=4)(ev)
        except ValueError as e:
            assert str(e)
            return ev
        assert frames.shape == (4, sensor[2], sensor[1], sensor[0]) and frames.dtype == np.uint16
        assert int(frames.sum(dtype=np.int64)) == len(ev), "frames lost or invented events"
        return ev


def _same(a, b):
    for f in ("x", "y", "t", "p"):
        np.testing.assert_array_equal(a[f], b[f])


@FUZZ
@given(ev=events())
def test_valid_files_read_back_exactly(fuzz_dir, ev):
    _same(_check_outcome(_write(fuzz_dir, ".bin", encode_atis(ev))), ev)
    t32 = ev.copy()
    _same(_check_outcome(_write(fuzz_dir, ".aedat", encode_aedat2(t32))), t32)
    _same(_check_outcome(_write(fuzz_dir, ".npy", _npy_bytes(ev))), ev)


mutations = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 400)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("header"), st.binary(max_size=24)),
)


def _mutate(data: bytes, m) -> bytes:
    kind, arg = m
    if kind == "truncate":
        return data[: min(arg, max(len(data) - 1, 0))]
    if kind == "append":
        return data + arg
    if kind == "header":
        return arg + data[len(arg):]
    b = bytearray(data)
    for pos, val in arg:
        if b:
            b[pos % len(b)] = val
    return bytes(b)


@FUZZ
@given(ev=events(min_size=1), m=mutations, ext=st.sampled_from([".bin", ".bs2", ".aedat", ".npy"]))
def test_mutated_files_error_or_stay_valid(fuzz_dir, ev, m, ext):
    data = {".bin": encode_atis, ".bs2": encode_atis, ".aedat": encode_aedat2, ".npy": _npy_bytes}[ext](ev)
    _check_outcome(_write(fuzz_dir, ext, _mutate(data, m)))


@FUZZ
@given(data=st.binary(max_size=2000), ext=st.sampled_from([".bin", ".bs2", ".aedat", ".npy", ".xyz"]))
def test_garbage_and_empty_files(fuzz_dir, data, ext):
    ev = _check_outcome(_write(fuzz_dir, ext, data))
    if ev is not None and len(data) == 0:
        assert len(ev) == 0  # an empty file of a valid format is an empty recording


@FUZZ
@given(n=st.integers(0, 40), data=st.data(), neg_t=st.booleans(),
       field_dtype=st.sampled_from(["<i8", "<i4", "<u2", "<f8"]))
def test_npy_huge_coordinates_negative_and_unsorted_times(fuzz_dir, n, data, neg_t, field_dtype):
    lo, hi = (0, 2**16 - 1) if field_dtype == "<u2" else (-(2**31), 2**31 - 1)
    coord = st.lists(st.one_of(st.integers(0, 33), st.integers(lo, hi)), min_size=n, max_size=n)
    arr = np.zeros(n, [("x", field_dtype), ("y", field_dtype), ("t", "<i8"), ("p", "<i8")])
    arr["x"], arr["y"] = data.draw(coord), data.draw(coord)
    t = np.array(data.draw(st.lists(st.integers(0, 2**40), min_size=n, max_size=n)), np.int64)
    arr["t"] = -t if neg_t else t
    arr["p"] = data.draw(st.lists(st.integers(-1, 1), min_size=n, max_size=n))
    out = _check_outcome(_write(fuzz_dir, ".npy", _npy_bytes(arr)))
    if field_dtype == "<f8" and n:
        assert out is None  # float coordinates are refused, not truncated
    if out is not None and n:  # accepted only when every event lies inside the sensor, unchanged
        np.testing.assert_array_equal(out["x"], arr["x"])
        np.testing.assert_array_equal(out["y"], arr["y"])
        np.testing.assert_array_equal(out["t"], arr["t"])


def test_pickled_npy_is_refused(fuzz_dir):
    path = _write(fuzz_dir, ".npy", _npy_bytes(np.array([{"x": 1}], dtype=object)))
    with pytest.raises(EventFileError, match="pickle|readable|structured"):
        read_events(path, SENSOR)


def test_out_of_order_times_are_sorted_before_binning():
    ev = np.zeros(3, EVENTS_DTYPE)
    ev["t"] = [300, 0, 100]
    ev["x"] = [2, 0, 1]
    frames = FrameSpec((3, 1, 1), n_time_bins=3)(ev)
    f = frames.reshape(3, 3)   # [bin, x]
    assert f[:, 0].tolist() == [1, 0, 0] and f[:, 1].tolist() == [0, 1, 0] and f[:, 2].tolist() == [0, 0, 1]


@FUZZ
@given(ev=events(min_size=1))
def test_frames_count_every_event(ev):
    frames = FrameSpec(SENSOR, n_time_bins=4)(ev)
    assert int(frames.sum(dtype=np.int64)) == len(ev)
