"""One HDF5 file of dense frames per (dataset, transform parameters), written atomically.

File layout (h5py)::

    /frames   uint16 [N, *frame_shape]   event counts, one chunk per sample, lzf + fletcher32
    /labels   int64  [N]
    attrs: format_version, key, params (JSON), identity (JSON), n_samples, frame_shape,
           labels_sha256 (SHA-256 of the labels' little-endian int64 bytes), complete

``key`` is a SHA-256 over the transform parameters and the source identity (see
:func:`dataset_identity`); a file whose attributes, shapes or checksums do not match is
rejected by :func:`load_cache` with :class:`CacheInvalid` and rebuilt by the caller.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from torch.utils.data import Subset

__all__ = ["FORMAT_VERSION", "CacheInvalid", "default_cache_dir", "dataset_identity",
           "cache_file", "load_cache", "write_cache"]

FORMAT_VERSION = 3  # 2: n_time_bins frames keep the events at the last timestamp; 3: labels checksum
"""Bumped whenever the file layout or the frame conversion changes meaning."""


class CacheInvalid(Exception):
    """A cache file is missing, stale, truncated or corrupt; the message says which."""


def default_cache_dir() -> Path:
    """``$SNN_CACHE`` if set, else ``~/.cache/snn``."""
    return Path(os.environ.get("SNN_CACHE", "~/.cache/snn")).expanduser()


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _source_files(dataset: Any) -> list[str]:
    """Files a dataset reads: ``source_files()``, else tonic's ``data`` list of paths, else
    tonic's single-file datasets (``location_on_system``/``data_filename``)."""
    if callable(getattr(dataset, "source_files", None)):
        return [os.fspath(f) for f in dataset.source_files()]
    data = getattr(dataset, "data", None)
    if isinstance(data, list) and data and all(isinstance(d, (str, os.PathLike)) for d in data):
        return [os.fspath(d) for d in data]
    location, name = getattr(dataset, "location_on_system", None), getattr(dataset, "data_filename", None)
    if isinstance(location, str) and isinstance(name, str):
        return [os.path.join(location, name)]
    return []


def _probe(dataset: Any, n: int) -> str:
    """Hash of the first, middle and last samples (events bytes + label): catches in-memory
    datasets that changed content without changing length."""
    h = hashlib.sha256()
    for i in sorted({0, n // 2, n - 1}) if n else []:
        events, label = dataset[i]
        arr = np.ascontiguousarray(events)
        h.update(str(arr.dtype).encode() + str(arr.shape).encode() + arr.tobytes() + repr(label).encode())
    return h.hexdigest()


def dataset_identity(dataset: Any, name: str | None = None) -> tuple[dict, dict]:
    """Describe a dataset for the cache.

    Returns:
        ``(coarse, full)``: ``coarse`` (name, class, length, source file paths, the dataset's
        optional ``cache_identity`` attribute) picks the cache *file*; ``full`` adds the files'
        sizes and mtimes and a hash of three samples, and must match for the file to be *used*.
    """
    n = len(dataset)
    cls = type(dataset)
    coarse: dict[str, Any] = {"name": name or getattr(dataset, "name", None) or cls.__name__,
                              "class": f"{cls.__module__}.{cls.__qualname__}", "len": n}
    extra = getattr(dataset, "cache_identity", None)
    if extra is not None:
        coarse["extra"] = extra() if callable(extra) else extra
    base_full = None
    if isinstance(dataset, Subset):
        coarse["indices"] = _sha([int(i) for i in dataset.indices])
        coarse["base"], base_full = dataset_identity(dataset.dataset)
    files = _source_files(dataset)
    full = dict(coarse)
    if base_full is not None:
        full["base"] = base_full
    if files:
        coarse["files"] = _sha(files)
        stats = []
        for f in files:
            try:
                st = os.stat(f)
                stats.append((f, st.st_size, st.st_mtime_ns))
            except OSError:
                stats.append((f, None, None))
        full["files"] = coarse["files"]
        full["file_stats"] = _sha(stats)
    full["probe"] = _probe(dataset, n)
    return coarse, full


def _labels_sha(labels: np.ndarray) -> str:
    """SHA-256 of int64 labels (little-endian bytes): /frames has fletcher32 chunk checksums,
    /labels this one, so a corrupt label is caught like a corrupt frame."""
    return hashlib.sha256(np.ascontiguousarray(labels, dtype="<i8").tobytes()).hexdigest()


def cache_file(cache_dir: Path, coarse: dict, params: dict) -> Path:
    """``cache_dir/<name>-<16 hex>.h5`` for a dataset's coarse identity and the parameters."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(coarse["name"]))[:64] or "dataset"
    return Path(cache_dir) / f"{stem}-{_sha([coarse, params])[:16]}.h5"


def cache_key(params: dict, full: dict) -> str:
    """The key stored in (and required of) the file."""
    return _sha({"format_version": FORMAT_VERSION, "params": params, "identity": full})


def load_cache(path: Path, key: str, n: int, frame_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate a cache file.

    Returns:
        ``(counts uint16 [n, *frame_shape], labels int64 [n])``.

    Raises:
        CacheInvalid: missing file, unreadable/truncated HDF5, checksum error (frames or
            labels), missing or mismatched attributes (stale), or wrong shapes/dtypes. The
            message gives the reason.
    """
    if not path.is_file():
        raise CacheInvalid("missing")
    try:
        with h5py.File(path, "r") as f:
            attrs = f.attrs
            version = attrs.get("format_version")
            if version != FORMAT_VERSION:
                shown = int(version) if isinstance(version, (int, np.integer)) else repr(version)
                raise CacheInvalid(f"cache format {shown}, this snn writes format {FORMAT_VERSION}")
            if not bool(attrs.get("complete", False)):
                raise CacheInvalid("not marked complete")
            if attrs.get("key") != key:
                raise CacheInvalid("stale: its key does not match the dataset and transform parameters")
            frames, labels = f["frames"], f["labels"]
            want = (n, *frame_shape)
            if frames.shape != want or frames.dtype != np.uint16:
                raise CacheInvalid(f"frames are {frames.dtype} {frames.shape}, expected uint16 {want}")
            if labels.shape != (n,) or labels.dtype != np.int64:
                raise CacheInvalid(f"labels are {labels.dtype} {labels.shape}, expected int64 ({n},)")
            label_values = labels[...]
            if attrs.get("labels_sha256") != _labels_sha(label_values):
                raise CacheInvalid("labels checksum mismatch (corrupt labels)")
            return frames[...], label_values
    except CacheInvalid:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        raise CacheInvalid(f"unreadable ({type(e).__name__}: {e})") from None


def write_cache(path: Path, key: str, params: dict, identity: dict, n: int, frame_shape: tuple[int, ...],
                samples: Iterator[tuple[np.ndarray, int]],
                on_sample: Callable[[int, np.ndarray, int], None] | None = None) -> None:
    """Write ``n`` samples to ``path`` atomically: a temp file in the same folder, then
    ``os.replace``. If anything raises, the temp file is removed and ``path`` is untouched.

    Args:
        samples: yields ``(counts uint16 [*frame_shape], label int)``, ``n`` times.
        on_sample: called as ``on_sample(i, counts, label)`` after each sample is written.

    Raises:
        ValueError: ``samples`` yields fewer than ``n`` items, or a wrong shape.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({"format_version": FORMAT_VERSION, "key": key, "complete": False,
                            "params": json.dumps(params, sort_keys=True, default=str),
                            "identity": json.dumps(identity, sort_keys=True, default=str),
                            "n_samples": n, "frame_shape": np.asarray(frame_shape, dtype=np.int64)})
            frames = f.create_dataset("frames", shape=(n, *frame_shape), dtype=np.uint16,
                                      chunks=(1, *frame_shape) if n else None,
                                      compression="lzf" if n else None, fletcher32=bool(n))
            labels = np.zeros(n, dtype=np.int64)
            written = 0
            for i, (counts, label) in zip(range(n), samples):
                if counts.shape != tuple(frame_shape):
                    raise ValueError(f"sample {i}: frame shape {counts.shape}, expected {tuple(frame_shape)}")
                frames[i] = counts
                labels[i] = label
                written += 1
                if on_sample is not None:
                    on_sample(i, counts, label)
            if written != n:
                raise ValueError(f"the dataset yielded {written} samples, expected {n}")
            f.create_dataset("labels", data=labels)
            f.attrs["labels_sha256"] = _labels_sha(labels)
            f.attrs["complete"] = True
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
