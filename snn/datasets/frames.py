"""Event streams → dense, time-first frames with tonic transforms, cached once in HDF5."""
from __future__ import annotations

import numbers
import operator
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tonic
import torch
from torch.utils.data import Dataset, Subset
from tqdm.auto import tqdm

from snn.datasets.cache import (CacheInvalid, cache_file, cache_key, dataset_identity,
                                default_cache_dir, load_cache, write_cache)
from snn.datasets.readers import check_sensor_size
from snn.validation import is_positive_finite, is_positive_int

__all__ = ["FrameSpec", "FrameDataset"]

_INT16_MAX = np.iinfo(np.int16).max


@dataclass(frozen=True)
class FrameSpec:
    """How one event stream becomes a frame tensor (a pure, frozen transform).

    Events are binned with ``tonic.transforms.ToFrame`` (counts per pixel, polarity and bin):

    * ``n_time_bins=T``: the span from the first to the last event is cut into ``T`` equal bins
      (tonic's ``SliceByTimeBins``).
    * ``time_window=w`` (µs) with ``T``: bins ``[t0 + k w, t0 + (k+1) w)``, ``k < T``, from the
      first event's time ``t0``; shorter recordings are padded with zero frames, longer ones cropped.

    Polarities become channels: with ``merge_polarities`` (or ``P == 1``) every event goes to
    channel 0; with ``P == 2``, ``p`` in ``{-1, 0}`` → channel 0 and ``p == 1`` → channel 1 (both
    ``{0, 1}`` and ``{-1, 1}`` encodings); with ``P > 2`` the polarity value is the channel
    (``0 <= p < P``). Before binning, the pixel grid is shrunk by
    ``tonic.transforms.Downsample(spatial_factor=downsample)`` (coordinates multiplied and
    truncated: new size ``int((W - 1) * f) + 1``).

    Args:
        sensor_size: tonic ``(W, H, P)`` of the events.
        n_time_bins, time_window: exactly one of them: a positive int number of bins, or a
            positive finite bin length in µs.
        T: number of frames; required with ``time_window``, equal to ``n_time_bins`` otherwise.
        downsample: spatial factor in ``(0, 1]``, or ``(fx, fy)``.
        merge_polarities: sum all polarity channels into one.

    Shape:
        ``__call__`` returns uint16 counts of shape :attr:`frame_shape`: ``[T, P', H', W']``, or
        ``[T, P' * W']`` for 1-D sensors (``H == 1``, e.g. SHD ``(700, 1, 1)`` → ``[T, 700]``).
        No events → all zeros.

    Raises:
        ValueError: bad parameters (named; e.g. a ``time_window`` that is not a positive finite
            number); in ``__call__``: events without ``x``, ``t``, ``p`` fields (or without
            ``y`` when ``H > 1``), an ``x``/``y``/``t``/``p`` field that is not integer or bool
            (e.g. float timestamps; names the field and its dtype), unsigned ``t`` values beyond
            the int64 range, events outside ``sensor_size`` (``x``, ``y``, or a polarity outside
            ``[-1, 1]`` for ``P <= 2`` and outside ``[0, P)`` for ``P > 2``), or too many events
            in one pixel and bin (more than 32767 with ``time_window``, where tonic's int16
            frames would overflow; more than 65535 with ``n_time_bins``).
    """

    sensor_size: tuple[int, int, int]
    n_time_bins: int | None = None
    time_window: float | None = None
    T: int | None = None
    downsample: tuple[float, float] | None = None
    merge_polarities: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "sensor_size", check_sensor_size(self.sensor_size))
        if (self.n_time_bins is None) == (self.time_window is None):
            raise ValueError("give exactly one of n_time_bins and time_window, got "
                             f"n_time_bins={self.n_time_bins!r}, time_window={self.time_window!r}")
        if self.n_time_bins is not None:
            if not is_positive_int(self.n_time_bins):
                raise ValueError(f"n_time_bins must be a positive int, got {self.n_time_bins!r}")
            if self.T is not None and self.T != self.n_time_bins:
                raise ValueError(f"T={self.T!r} disagrees with n_time_bins={self.n_time_bins!r}")
            object.__setattr__(self, "T", int(self.n_time_bins))
        else:
            tw = self.time_window
            if not is_positive_finite(tw):
                raise ValueError(f"time_window must be a positive finite number of µs, got {tw!r}")
            if isinstance(tw, np.generic):  # plain Python number in params() / the cache key
                object.__setattr__(self, "time_window", tw.item())
            if not is_positive_int(self.T):
                raise ValueError(f"T (number of frames) must be a positive int with time_window, got {self.T!r}")
        if self.downsample is not None:
            f = self.downsample
            f = (f, f) if isinstance(f, numbers.Real) else tuple(f)
            if len(f) != 2 or not all(isinstance(v, numbers.Real) and 0 < v <= 1 for v in f):
                raise ValueError(f"downsample must be a factor in (0, 1] or a pair (fx, fy), got {self.downsample!r}")
            object.__setattr__(self, "downsample", (float(f[0]), float(f[1])))

    @property
    def out_sensor_size(self) -> tuple[int, int, int]:
        """``(W', H', P')`` of the frames after downsampling and polarity merging."""
        w, h, p = self.sensor_size
        if self.downsample is not None:
            w = int((w - 1) * self.downsample[0]) + 1
            h = int((h - 1) * self.downsample[1]) + 1
        return (w, h, 1 if self.merge_polarities else p)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one sample's frames: ``(T, P', H', W')``, or ``(T, P'·W')`` when ``H' == 1``."""
        w, h, p = self.out_sensor_size
        return (self.T, p * w) if h == 1 else (self.T, p, h, w)

    def params(self) -> dict[str, Any]:
        """JSON-able parameters (plus the tonic version), hashed into the cache key."""
        out = {**asdict(self), "tonic": tonic.__version__}
        if self.sensor_size[2] > 2 and not self.merge_polarities:
            # polarity value = channel since this release (was p > 0): a new key, so caches
            # built with the old mapping are not reused
            out["polarity_channels"] = "value"
        return out

    def __call__(self, events: np.ndarray) -> np.ndarray:
        """Bin a structured event array (``t`` in µs) into uint16 counts of shape :attr:`frame_shape`."""
        names = getattr(getattr(events, "dtype", None), "names", None) or ()
        if not {"x", "t", "p"} <= set(names):
            raise ValueError(f"events must be a structured array with fields x, t, p (and y), got {names}")
        for field in ("x", "y", "t", "p"):
            if field in names and events.dtype[field].kind not in "iub":
                raise ValueError(f"events field {field!r} has dtype {events.dtype[field]}; expected an integer "
                                 "or bool dtype (t in integer µs, x/y pixel indices, p polarity)")
        if len(events) == 0:
            return np.zeros(self.frame_shape, dtype=np.uint16)
        w, h, p = self.sensor_size
        if h > 1 and "y" not in names:
            raise ValueError(f"events have no y field but sensor_size={self.sensor_size} has H={h} > 1")
        for field, limit in (("x", w), ("y", h)):
            if field in names and (events[field].min() < 0 or events[field].max() >= limit):
                raise ValueError(f"events outside sensor_size={self.sensor_size}: {field} in "
                                 f"[{events[field].min()}, {events[field].max()}], expected [0, {limit - 1}]")
        if events.dtype["t"].kind == "u" and events["t"].max() > np.iinfo(np.int64).max:
            raise ValueError(f"events field 't' ({events.dtype['t']}) holds {events['t'].max()} µs, beyond the "
                             f"int64 range (max {np.iinfo(np.int64).max})")
        pol = events["p"].astype(np.int64)
        lo, hi = (-1, 1) if p <= 2 else (0, p - 1)   # P <= 2: {-1, 0, 1}; P > 2: channel indices
        if pol.min() < lo or pol.max() > hi:
            raise ValueError(f"events outside sensor_size={self.sensor_size}: p in [{pol.min()}, {pol.max()}], "
                             f"expected [{lo}, {hi}]")
        events = events.copy()
        if self.merge_polarities or p == 1:
            events["p"] = 0
        elif p == 2:
            events["p"] = pol > 0                    # -1/0 → channel 0, 1 → channel 1
        # P > 2: the polarity value is the channel (kept as is)
        if np.any(np.diff(events["t"].astype(np.int64)) < 0):  # tonic's slicers assume time order
            events = events[np.argsort(events["t"], kind="stable")]
        if self.downsample is not None:
            events = tonic.transforms.Downsample(spatial_factor=self.downsample)(events)
        size = self.out_sensor_size
        if self.n_time_bins is not None:
            return _bin_counts(events, size, self.n_time_bins).reshape(self.frame_shape)
        t0 = events["t"][0]
        to_frame = tonic.transforms.ToFrame(sensor_size=size, time_window=self.time_window,
                                            include_incomplete=True, start_time=t0,
                                            end_time=t0 + self.T * self.time_window)
        frames = np.asarray(to_frame(events))
        if frames.min() < 0:
            raise ValueError(f"more than {_INT16_MAX} events fell in one pixel and bin: tonic's int16 "
                             "frames overflowed; use more time bins or a shorter time_window")
        if frames.shape[0] != self.T:  # float rounding in tonic's slice count: pad/crop to T
            frames = np.concatenate([frames[: self.T], np.zeros((max(self.T - frames.shape[0], 0),
                                                                 *frames.shape[1:]), frames.dtype)])
        return frames.reshape(self.frame_shape).astype(np.uint16)


def _bin_counts(events: np.ndarray, size: tuple[int, int, int], T: int) -> np.ndarray:
    """Event counts ``[T, P, H, W]`` (uint16) in ``T`` equal bins spanning first to last event.

    Bin ``b = floor((t − t0)·T / (t1 − t0))``, clipped to ``T − 1``: tonic's bin edges
    (``SliceByTimeBins``), except that the events at the last timestamp ``t1`` fall in the last
    bin — tonic 1.7's ``ToFrame(n_time_bins=T)`` drops them (and every event of a recording
    whose events share one timestamp), which silently loses data. Integer arithmetic, no
    rounding. Raises ``ValueError`` if a count exceeds the uint16 range.
    """
    w, h, p = size
    t = events["t"].astype(np.int64)
    t0, span = t.min(), t.max() - t.min()
    if span == 0:
        b = np.zeros(len(t), np.int64)
    elif span <= np.iinfo(np.int64).max // T:
        b = np.minimum((t - t0) * T // span, T - 1)
    else:  # (t - t0) * T would overflow int64: exact Python-int arithmetic (spans of ~2**63 / T µs)
        b = np.minimum(((t - t0).astype(object) * T // int(span)).astype(np.int64), T - 1)
    y = events["y"].astype(np.int64) if "y" in (events.dtype.names or ()) else 0
    idx = ((b * p + events["p"].astype(np.int64)) * h + y) * w + events["x"].astype(np.int64)
    counts = np.bincount(idx, minlength=T * p * h * w)
    if counts.max(initial=0) > np.iinfo(np.uint16).max:
        raise ValueError(f"more than {np.iinfo(np.uint16).max} events fell in one pixel and bin; "
                         "use more time bins")
    return counts.astype(np.uint16).reshape(T, p, h, w)


class FrameDataset(Dataset):
    """Dense frames of an event dataset, converted once and cached in one HDF5 file.

    ``dataset[i]`` must give ``(events, label)`` with tonic-style structured events (t in µs)
    and an integer label; its ``sensor_size`` attribute (or the ``sensor_size`` argument)
    gives ``(W, H, P)``. Every sample is converted with :class:`FrameSpec` and the result is
    stored under ``cache_dir`` in ``<name>-<hash>.h5`` (one file per dataset identity and
    parameters; layout in :mod:`snn.datasets.cache`), written to a temp file and renamed.
    On reopen the file's format version, key (parameters + source identity: name, length,
    source files with sizes and mtimes, and a hash of three samples), completeness, shapes,
    the frames' chunk checksums and the labels' checksum are checked; a stale or corrupt file
    is rebuilt with a warning that names it. All frames are then held in memory (uint16), so
    indexing is cheap.

    Args:
        dataset: map-style dataset of ``(events, label)``.
        n_time_bins, time_window, T, downsample, merge_polarities: see :class:`FrameSpec`.
        sensor_size: overrides ``dataset.sensor_size`` (looked up through ``Subset`` wrappers).
        cache_dir: folder for the cache (default ``$SNN_CACHE`` or ``~/.cache/snn``).
        cache: False converts in memory without touching the disk.
        name: name used in the cache file name and identity (default: ``dataset.name`` or its
            class name). Give distinct names to in-memory datasets that are not file-backed.
        progress: show a tqdm bar while converting.

    Returns (``__getitem__``):
        ``(frames, label)``: frames ``torch.float32`` of shape :attr:`frames_shape`,
        ``[T, P, H, W]`` (``[T, N]`` for 1-D sensors), event counts; label an int.

    Attributes:
        sensor_size: ``(W', H', P')`` of the frames (after downsampling/merging).
        T (int), frames_shape (tuple), labels (np.ndarray int64 [N]),
        counts (torch.uint16 [N, *frames_shape]), cache_path (Path | None), spec (FrameSpec),
        classes (the source's ``classes`` if it has them).

    Raises:
        ValueError: no sensor size; bad parameters; a sample with events outside the sensor,
            a non-integer label, or a frame overflow (names the sample index).
        TypeError: from ``__getitem__``, an index that is not an int (e.g. a slice).
    """

    def __init__(self, dataset: Any, *, n_time_bins: int | None = None, time_window: float | None = None,
                 T: int | None = None, downsample: float | tuple[float, float] | None = None,
                 merge_polarities: bool = False, sensor_size: tuple[int, int, int] | None = None,
                 cache_dir: str | os.PathLike | None = None, cache: bool = True, name: str | None = None,
                 progress: bool = True) -> None:
        size = sensor_size if sensor_size is not None else _find_sensor_size(dataset)
        if size is None:
            raise ValueError(f"{type(dataset).__name__} has no sensor_size attribute; pass sensor_size=(W, H, P)")
        self.spec = FrameSpec(check_sensor_size(size), n_time_bins, time_window, T, downsample, merge_polarities)
        self.source = dataset
        self.sensor_size = self.spec.out_sensor_size
        self.T: int = self.spec.T  # type: ignore[assignment]
        self.frames_shape = self.spec.frame_shape
        self.classes = getattr(dataset, "classes", None)
        self.progress = progress
        n = len(dataset)
        self.cache_path: Path | None = None
        if cache:
            coarse, full = dataset_identity(dataset, name)
            params = self.spec.params()
            self.cache_path = cache_file(Path(cache_dir).expanduser() if cache_dir is not None
                                         else default_cache_dir(), coarse, params)
            key = cache_key(params, full)
            try:
                counts, labels = load_cache(self.cache_path, key, n, self.frames_shape)
            except CacheInvalid as e:
                if str(e) != "missing":
                    warnings.warn(f"frame cache {self.cache_path} is invalid ({e}); rebuilding it",
                                  stacklevel=2)
                counts = np.zeros((n, *self.frames_shape), dtype=np.uint16)
                labels = np.zeros(n, dtype=np.int64)

                def keep(i: int, c: np.ndarray, label: int) -> None:
                    counts[i], labels[i] = c, label

                write_cache(self.cache_path, key, params, full, n, self.frames_shape,
                            self._convert_all(n), on_sample=keep)
        else:
            pairs = list(self._convert_all(n))
            counts = np.stack([c for c, _ in pairs]) if pairs else np.zeros((0, *self.frames_shape), np.uint16)
            labels = np.asarray([lab for _, lab in pairs], dtype=np.int64)
        self.counts = torch.from_numpy(counts)
        self.labels = labels

    def _convert_all(self, n: int):
        desc = f"frames {self.cache_path.name if self.cache_path else type(self.source).__name__}"
        for i in tqdm(range(n), desc=desc, disable=not self.progress, leave=False):
            events, label = self.source[i]
            try:
                frames = self.spec(events)
            except ValueError as e:
                raise ValueError(f"sample {i} of {type(self.source).__name__}: {e}") from e
            yield frames, _as_label(label, i)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """Sample ``index`` (an int, negative counts from the end) as ``(frames, label)``.

        Raises:
            TypeError: ``index`` is not an integer (a slice, a float, a list...; take batches
                with a DataLoader, subsets with ``torch.utils.data.Subset``).
            IndexError: ``index`` is out of range.
        """
        if isinstance(index, bool):
            i = None
        else:
            try:
                i = operator.index(index)
            except TypeError:
                i = None
        if i is None:
            raise TypeError(f"FrameDataset index must be an int, got {type(index).__name__} {index!r}; "
                            "use a DataLoader for batches or torch.utils.data.Subset for subsets")
        n = len(self.labels)
        if not -n <= i < n:
            raise IndexError(f"FrameDataset index {i} is out of range for {n} samples")
        return self.counts[i].to(torch.float32), int(self.labels[i])

    def __repr__(self) -> str:
        return (f"FrameDataset(n={len(self)}, frames_shape={self.frames_shape}, spec={self.spec}, "
                f"cache={os.fspath(self.cache_path) if self.cache_path else None})")


def _find_sensor_size(dataset: Any) -> Any:
    """``dataset.sensor_size``, looking through ``torch.utils.data.Subset`` wrappers."""
    while getattr(dataset, "sensor_size", None) is None and isinstance(dataset, Subset):
        dataset = dataset.dataset
    return getattr(dataset, "sensor_size", None)


def _as_label(label: Any, index: int) -> int:
    arr = np.asarray(label.item() if isinstance(label, torch.Tensor) else label)
    if arr.ndim != 0 or arr.dtype.kind not in "iub":
        raise ValueError(f"sample {index}: label must be an integer, got {label!r}")
    return int(arr)
