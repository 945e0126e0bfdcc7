"""Read one event file into tonic's structured event array, choosing the reader by extension.

Every reader returns events in tonic's format, ``tonic.io.events_struct``::

    [("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")]     # t in µs, p in {0, 1}

Supported formats (see :data:`READERS`; add more with :func:`register_reader`):

* ``.bin`` / ``.bs2`` -- the N-MNIST / N-Caltech101 ATIS format of Orchard et al. 2015
  (Front. Neurosci. 9:437): 40 bits per event, x (8 bit), y (8 bit), p (1 bit), t (23 bit, µs);
  events with ``y == 240`` are timestamp-overflow markers adding ``2**13`` µs to all later
  events. Decoded by ``tonic.io.read_mnist_file`` after checking the file.
* ``.aedat`` -- jAER AEDAT 2.0 (DVS128): ``#``-comment header starting with ``#!AER-DAT2.x``,
  then big-endian ``uint32`` address and ``uint32`` timestamp (µs) per event, with
  ``x = (addr >> 8) & 0x7F``, ``y = (addr >> 1) & 0x7F``, ``p = addr & 1``.
* ``.npy`` -- a 1-D numpy structured array with (at least) integer or bool fields x, y, t, p.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tonic.io

from snn.datasets.errors import EventFileError

__all__ = ["READERS", "EVENTS_DTYPE", "read_events", "register_reader", "read_atis_bin",
           "read_aedat2", "read_npy_events", "check_sensor_size", "empty_events"]

EVENTS_DTYPE: np.dtype = np.dtype(tonic.io.events_struct)
"""tonic's event dtype: x, y int16; t int64 (µs); p bool."""

Reader = Callable[[Path], np.ndarray]
"""A reader takes a path and returns a structured array with integer/bool fields x, y, t, p."""

READERS: dict[str, Reader] = {}
"""Extension (lower case, with the dot) → reader. Filled below; extend with :func:`register_reader`."""

_FIELDS = ("x", "y", "t", "p")
_INT16_MAX = np.iinfo(np.int16).max
_INT64_MAX = np.iinfo(np.int64).max


def register_reader(ext: str, fn: Reader, *, overwrite: bool = False) -> None:
    """Register ``fn`` as the reader of files ending in ``ext``.

    Args:
        ext: extension such as ``".bin"`` or ``"bin"`` (case-insensitive).
        fn: ``fn(path: pathlib.Path) -> np.ndarray``, a 1-D structured array with integer or bool
            fields ``x, y, t, p`` (t in µs). It should raise :class:`EventFileError` for a bad file;
            :func:`read_events` does the sensor-size checks and the conversion to tonic's dtype.
        overwrite: allow replacing an existing reader.

    Raises:
        TypeError: ``fn`` is not callable or ``ext`` is not a string.
        ValueError: ``ext`` is empty, or already registered and ``overwrite`` is False.
    """
    if not isinstance(ext, str):
        raise TypeError(f"register_reader: ext must be a str such as '.bin', got {type(ext).__name__}")
    if not callable(fn):
        raise TypeError(f"register_reader: fn must be callable, got {type(fn).__name__}")
    key = ext.lower() if ext.startswith(".") else "." + ext.lower()
    if key == ".":
        raise ValueError("register_reader: ext must not be empty")
    if key in READERS and not overwrite:
        raise ValueError(f"register_reader: a reader for {key!r} exists already; pass overwrite=True")
    READERS[key] = fn


def empty_events() -> np.ndarray:
    """An empty event array of dtype :data:`EVENTS_DTYPE` (shape ``[0]``)."""
    return np.zeros(0, dtype=EVENTS_DTYPE)


def check_sensor_size(sensor_size: object, name: str = "sensor_size") -> tuple[int, int, int]:
    """Validate a tonic sensor size ``(W, H, P)`` of positive ints and return it as a tuple.

    Raises:
        ValueError: not three positive integers (the message names ``name``).
    """
    try:
        size = tuple(int(s) for s in sensor_size)  # type: ignore[union-attr]
        ok = len(size) == 3 and all(s > 0 for s in size) and all(
            float(s) == int(s) for s in sensor_size)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a tuple (W, H, P) of three positive ints, got {sensor_size!r}")
    return size  # type: ignore[return-value]


# --------------------------------------------------------------------------- readers

def read_atis_bin(path: Path) -> np.ndarray:
    """Read an N-MNIST / N-Caltech101 ATIS ``.bin``/``.bs2`` file (format in the module docstring).

    Returns:
        structured array with int64 fields x, y, t (µs), p, overflow markers removed.

    Raises:
        EventFileError: the size is not a multiple of 5 bytes (truncated), or the decoded
            timestamps decrease (the file is not in this format; real recordings are
            non-decreasing in time).
    """
    size = os.path.getsize(path)
    if size % 5:
        raise EventFileError(path, f"truncated: {size} bytes is not a multiple of 5 "
                                   "(one N-MNIST/ATIS event is 40 bits)")
    raw_dtype = np.dtype([(f, np.int64) for f in _FIELDS])
    if size == 0:
        return np.zeros(0, dtype=raw_dtype)
    # Validate before decoding: garbage has many y == 240 "overflow" bytes, and tonic applies
    # each overflow with a Python loop over the rest of the file (quadratic).
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 5).astype(np.int64)
    overflow = raw[:, 1] == 240
    t = ((raw[:, 2] & 127) << 16 | raw[:, 3] << 8 | raw[:, 4]) + (np.cumsum(overflow) << 13)
    t = t[~overflow]
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        i = int(back[0])
        raise EventFileError(
            path, f"not an N-MNIST/ATIS event file: timestamps decrease at event {i + 1} "
                  f"({int(t[i])} -> {int(t[i + 1])} µs); expected non-decreasing 23-bit µs timestamps")
    return tonic.io.read_mnist_file(os.fspath(path), dtype=raw_dtype)


_AEDAT_MAGIC = b"#!AER-DAT"


def read_aedat2(path: Path) -> np.ndarray:
    """Read a jAER AEDAT 2.0 DVS128 file (format in the module docstring).

    The header is parsed here (tonic 1.7's header reader crashes on files without a version
    line); the data section is decoded by ``tonic.io.get_aer_events_from_file``. Timestamps
    that wrap around ``2**32`` µs are unwrapped.

    Returns:
        structured array with int64 fields x, y, t (µs), p.

    Raises:
        EventFileError: no ``#!AER-DAT`` first line, a version other than 2.x, or a data
            section whose length is not a multiple of 8 bytes.
    """
    with open(path, "rb") as f:
        first = f.readline()
        if not first.startswith(_AEDAT_MAGIC):
            raise EventFileError(path, f"missing '#!AER-DAT' header line (file starts with "
                                       f"{first[:16]!r}); expected a jAER AEDAT 2.0 file")
        m = re.match(rb"#!AER-DAT(\d+)\.(\d+)", first)
        if m is None:
            raise EventFileError(path, f"unreadable AEDAT version in header line {first.strip()!r}")
        if int(m.group(1)) != 2:
            version = m.group(0)[len(_AEDAT_MAGIC):].decode()
            raise EventFileError(path, f"AEDAT version {version} is not supported; expected 2.x")
        while True:  # the header is every line starting with '#'
            data_start = f.tell()
            if not f.readline().startswith(b"#"):
                break
    n_bytes = os.path.getsize(path) - data_start
    if n_bytes % 8:
        raise EventFileError(path, f"data section of {n_bytes} bytes (after a {data_start}-byte "
                                   "header) is not a multiple of 8: truncated, or not AEDAT 2.0 "
                                   "(big-endian uint32 address + uint32 timestamp per event)")
    out = np.zeros(n_bytes // 8, dtype=[(f, np.int64) for f in _FIELDS])
    if n_bytes == 0:
        return out
    raw = tonic.io.get_aer_events_from_file(os.fspath(path), 2.0, data_start)
    addr = raw["address"].astype(np.int64)
    t = raw["timeStamp"].astype(np.int64)
    wraps = np.concatenate([[0], np.cumsum(np.diff(t) < -(2**31))])
    out["x"] = (addr >> 8) & 0x7F
    out["y"] = (addr >> 1) & 0x7F
    out["p"] = addr & 1
    out["t"] = t + wraps * 2**32
    return out


def read_npy_events(path: Path) -> np.ndarray:
    """Read a ``.npy`` file holding a 1-D structured array with fields x, y, t (µs), p.

    Raises:
        EventFileError: not a readable ``.npy`` (pickles are refused), not structured, not 1-D,
            a field missing, or a field that is not integer/bool.
    """
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:  # numpy's header parser also raises SyntaxError / tokenize.TokenError
        raise EventFileError(path, f"not a readable .npy array ({e})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.names is None:
        dtype = getattr(arr, "dtype", type(arr).__name__)
        raise EventFileError(path, f"expected a structured array with fields x, y, t, p; got dtype {dtype}")
    missing = [f for f in _FIELDS if f not in arr.dtype.names]
    if missing:
        raise EventFileError(path, f"structured array lacks field(s) {missing}; expected x, y, t, p "
                                   f"(has {list(arr.dtype.names)})")
    if arr.ndim != 1:
        raise EventFileError(path, f"expected a 1-D array of events, got shape {arr.shape}")
    for f in _FIELDS:
        if arr.dtype[f].kind not in "iub":
            raise EventFileError(path, f"field {f!r} has dtype {arr.dtype[f]}; expected an integer or bool dtype")
    return arr


register_reader(".bin", read_atis_bin)
register_reader(".bs2", read_atis_bin)
register_reader(".aedat", read_aedat2)
register_reader(".npy", read_npy_events)


# --------------------------------------------------------------------------- front door

def read_events(path: str | os.PathLike, sensor_size: tuple[int, int, int] | None = None) -> np.ndarray:
    """Read one event file, picking the reader from :data:`READERS` by its extension.

    Args:
        path: the event file.
        sensor_size: tonic ``(W, H, P)``. When given, every event must satisfy ``0 <= x < W``
            and ``0 <= y < H``; with ``P == 1`` all polarities are merged to 0.

    Returns:
        1-D array of dtype ``tonic.io.events_struct`` (x, y int16; t int64 in µs; p bool),
        in file order. Polarities ``{-1, 1}`` and ``{0, 1}`` both map to ``{0, 1}``. An empty
        file of a valid format gives an empty array.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        EventFileError: unknown extension (lists the supported ones); a bad or truncated file
            (see each reader); unsigned values beyond the int64 range (e.g. a uint64 ``t`` of
            ``2**63`` µs or more); negative coordinates; polarity outside ``{-1, 0, 1}``; with
            ``sensor_size``, an event outside the sensor (names the offending maximum and
            the sensor size). Every message starts with the file's path.
        ValueError: ``sensor_size`` is not three positive ints.
    """
    path = Path(path)
    size = None if sensor_size is None else check_sensor_size(sensor_size)
    if not path.is_file():
        raise FileNotFoundError(f"event file {path} does not exist")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise EventFileError(path, f"unknown extension {path.suffix!r}; supported: {sorted(READERS)}")
    return _to_events_struct(reader(path), path, size)


def _to_events_struct(raw: np.ndarray, path: Path, sensor_size: tuple[int, int, int] | None) -> np.ndarray:
    names = raw.dtype.names or ()
    if any(f not in names for f in _FIELDS):
        raise EventFileError(path, f"reader returned fields {list(names)}; expected x, y, t, p")
    for f in _FIELDS:  # uint64 values >= 2**63 would wrap to negative int64
        if raw.dtype[f].kind == "u" and len(raw) and raw[f].max() > _INT64_MAX:
            raise EventFileError(path, f"field {f!r} ({raw.dtype[f]}) holds {raw[f].max()}, beyond the int64 "
                                       f"range of tonic's events (max {_INT64_MAX}"
                                       f"{' µs' if f == 't' else ''})")
    x = raw["x"].astype(np.int64)
    y = raw["y"].astype(np.int64)
    p = raw["p"].astype(np.int64)
    out = np.zeros(len(raw), dtype=EVENTS_DTYPE)
    if len(raw) == 0:
        return out
    for name, v in (("x", x), ("y", y)):
        if v.min() < 0:
            raise EventFileError(path, f"negative {name} coordinate (min {int(v.min())})")
        limit = _INT16_MAX + 1 if sensor_size is None else sensor_size[0 if name == "x" else 1]
        if v.max() >= limit:
            what = ("int16 range" if sensor_size is None
                    else f"sensor {'width W' if name == 'x' else 'height H'}={limit} "
                         f"(sensor_size={sensor_size})")
            raise EventFileError(path, f"{name} max {int(v.max())} is outside the {what}")
    bad_p = (p < -1) | (p > 1)
    if bad_p.any():
        where = "" if sensor_size is None else f" (sensor_size={sensor_size})"
        raise EventFileError(path, f"p max {int(p.max())}, min {int(p.min())}: polarity values "
                                   f"{np.unique(p[bad_p]).tolist()} are outside {{-1, 0, 1}}{where}")
    out["x"] = x
    out["y"] = y
    out["t"] = raw["t"].astype(np.int64)
    out["p"] = p > 0 if sensor_size is None or sensor_size[2] > 1 else False
    return out
