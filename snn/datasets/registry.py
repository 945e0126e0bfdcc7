"""Open public event datasets by name, through tonic's own dataset classes and downloads.

``open_dataset("nmnist", root="~/data", download=True)`` is ``tonic.datasets.NMNIST(...)``
with three differences: nothing is downloaded unless ``download=True`` (a missing dataset raises
:class:`FileNotFoundError` saying where the files go), a failed download raises
:class:`~snn.datasets.errors.DatasetDownloadError` naming the URL, and labels are always ints.
"""
from __future__ import annotations

import http.client
import os
from pathlib import Path
from typing import Any

import tonic.datasets

from snn.datasets.errors import DatasetDownloadError

__all__ = ["DATASETS", "open_dataset", "sensor_size_of", "default_root", "has_test_split"]

# name -> (tonic class name, how the train/test choice is passed: "train" bool, "split" str, "none")
_TONIC: dict[str, tuple[str, str]] = {
    "nmnist": ("NMNIST", "train"),
    "shd": ("SHD", "train"),
    "ssc": ("SSC", "split"),
    "dvsgesture": ("DVSGesture", "train"),
    "cifar10dvs": ("CIFAR10DVS", "none"),
    "pokerdvs": ("POKERDVS", "train"),
    "ncaltech101": ("NCALTECH101", "none"),
    "asldvs": ("ASLDVS", "none"),
}
_DIGITS = "digits-events"

DATASETS: tuple[str, ...] = (*_TONIC, _DIGITS)
"""Names accepted by :func:`open_dataset`."""


def default_root() -> Path:
    """Where datasets live when ``root`` is not given: ``$SNN_DATA``, else ``~/.cache/snn/datasets``."""
    return Path(os.environ.get("SNN_DATA", "~/.cache/snn/datasets")).expanduser()


def _check_name(name: str) -> str:
    key = name.lower() if isinstance(name, str) else None
    if key not in DATASETS:
        raise ValueError(f"unknown dataset name={name!r}; valid names: {', '.join(DATASETS)}")
    return key


def has_test_split(name: str) -> bool:
    """Whether dataset ``name`` has an official test split (``open_dataset(name, train=False)``).
    False for "cifar10dvs", "ncaltech101" and "asldvs": hold out part of the training set
    (:func:`snn.datasets.train_val_split`) to test on.

    Raises:
        ValueError: unknown ``name`` (lists the valid names).
    """
    key = _check_name(name)
    return key == _DIGITS or _TONIC[key][1] != "none"


def sensor_size_of(name: str) -> tuple[int, int, int] | None:
    """tonic sensor size ``(W, H, P)`` of dataset ``name`` (e.g. ``(34, 34, 2)`` for "nmnist",
    ``(700, 1, 1)`` for "shd"), without opening it. ``None`` where samples differ in size
    ("ncaltech101"): give FrameDataset an explicit ``sensor_size`` there.

    Raises:
        ValueError: unknown ``name`` (lists the valid names).
    """
    key = _check_name(name)
    if key == _DIGITS:
        from snn.datasets.digits import DigitsEvents  # lazy: written separately, may pull extra deps
        return tuple(DigitsEvents.sensor_size)
    size = getattr(getattr(tonic.datasets, _TONIC[key][0]), "sensor_size", None)
    return None if size is None else tuple(size)


def open_dataset(name: str, root: str | os.PathLike | None = None, train: bool = True,
                 download: bool = False, **kw: Any) -> Any:
    """Open a public event dataset by name.

    Args:
        name: one of :data:`DATASETS` (case-insensitive): "nmnist", "shd", "ssc",
            "dvsgesture", "cifar10dvs", "pokerdvs", "ncaltech101", "asldvs" (tonic 1.7 classes
            of the same names), or "digits-events" (:class:`snn.datasets.digits.DigitsEvents`).
        root: folder holding the datasets; tonic keeps each in ``root/<TonicClassName>/``.
            Default :func:`default_root`. Not used by "digits-events" (must be None).
        train: training split if True, else the test split. "ssc" maps it to
            ``split="train"/"test"`` (pass ``split="valid"`` for the validation split).
            "cifar10dvs", "ncaltech101" and "asldvs" have no official split: use
            ``train=True`` and :func:`snn.datasets.train_val_split`.
        download: let tonic download (and extract) missing files. Never implied.
        **kw: passed to the dataset class (``transform=``, ``first_saccade_only=``, ...).

    Returns:
        the tonic dataset (``ds[i] -> (events, label)``, events a structured array with t in
        µs, ``ds.sensor_size`` the tonic ``(W, H, P)``), or a ``DigitsEvents``. For
        "ncaltech101" the string class names are mapped to ints (sorted names → 0, 1, ...)
        unless a ``target_transform`` is given.

    Raises:
        ValueError: unknown ``name`` (lists the valid names); ``train=False`` for a dataset
            without a test split; ``root``/``download`` given for "digits-events".
        FileNotFoundError: the files are missing and ``download`` is False; the message names
            the folder tonic looks in, the file it expects and how to get it.
        DatasetDownloadError: ``download`` is True and the download failed (no network, an
            unreachable URL, a corrupt archive); the message names the URL and the folder.
    """
    key = _check_name(name)
    if key == _DIGITS:
        if root is not None or download:
            raise ValueError("digits-events is generated in memory: root and download do not apply")
        from snn.datasets.digits import DigitsEvents  # lazy on purpose
        return DigitsEvents(train=train, **kw)

    cls_name, split_style = _TONIC[key]
    cls = getattr(tonic.datasets, cls_name)
    if split_style == "train":
        kw["train"] = bool(train)
    elif split_style == "split":
        kw.setdefault("split", "train" if train else "test")
    elif not train:
        raise ValueError(f"{key} has no official train/test split, so train=False is undefined; "
                         "open it with train=True and split it with snn.datasets.train_val_split")
    root = Path(root).expanduser() if root is not None else default_root()
    guarded = type(cls.__name__, (cls,), {"_check_exists": _guarded_check(cls, key, root, download),
                                          "download": _guarded_download(cls, key),
                                          "__module__": cls.__module__, "__qualname__": cls.__qualname__})
    ds = guarded(os.fspath(root), **kw)
    ds.__class__ = cls  # the guard is only needed inside __init__; keep the dataset picklable
    if key == "ncaltech101" and kw.get("target_transform") is None:
        classes = sorted(set(ds.targets))
        ds.target_transform = {c: i for i, c in enumerate(classes)}.__getitem__
        ds.class_names = classes
    return ds


def _bundled(cls: type, filename: object) -> bool:
    """Whether tonic ships ``filename`` beside ``cls``'s module (what it copies for POKERDVS)."""
    import inspect
    return isinstance(filename, str) and (Path(inspect.getfile(cls)).parent / filename).is_file()


#: where to get the datasets tonic cannot download
_HOMEPAGES = {"pokerdvs": "http://www2.imse-cnm.csic.es/caviar/POKERDVS.html"}


def _guarded_check(cls: type, key: str, root: Path, download: bool):
    """A ``_check_exists`` that raises instead of letting tonic download when ``download`` is False."""

    def _check_exists(self) -> bool:
        ok = cls._check_exists(self)
        url = getattr(self, "url", None)
        if not ok and url is None and not _bundled(cls, getattr(self, "filename", None)):
            # e.g. POKERDVS: tonic copies it from its own package folder, where pip's tonic has no copy
            where = Path(self.location_on_system)
            folder = getattr(self, "folder_name", None)
            missing_root = "" if root.is_dir() else f" (root {root} does not exist)"
            raise FileNotFoundError(
                f"{key}: dataset files not found in {where}{missing_root}, and tonic {tonic.__version__} has no download for "
                f"{cls.__name__} (it copies {getattr(self, 'filename', 'its archive')} from its own package "
                f"folder, which this install lacks); get the recordings from {_HOMEPAGES.get(key, 'the dataset site')}"
                f" and place {f'the extracted folder {folder!r}' if folder else 'the extracted files'} in {where}")
        if not ok and not download:
            where = Path(self.location_on_system)
            expected = getattr(self, "filename", None) or getattr(self, "data_filename", "its files")
            missing_root = "" if root.is_dir() else f" (root {root} does not exist)"
            raise FileNotFoundError(
                f"{key}: dataset files not found in {where}{missing_root}; tonic's {cls.__name__} "
                f"expects {expected!s} and its extracted contents there. Pass download=True to "
                f"fetch it{f' from {url}' if url else ''}, or place the files in {where}.")
        return ok

    return _check_exists


def _guarded_download(cls: type, key: str):
    """A ``download`` that turns tonic's network and archive errors into one
    :class:`DatasetDownloadError` naming the URL, and removes the partial file it leaves."""

    def download(self) -> None:
        url = getattr(self, "url", None)
        where = Path(self.location_on_system)
        target = where / self.filename if isinstance(getattr(self, "filename", None), str) else None
        before = _stat(target)
        try:
            cls.download(self)
        except (OSError, http.client.HTTPException, RuntimeError, EOFError) as e:
            if target is not None and _stat(target) not in (None, before):
                target.unlink(missing_ok=True)  # tonic writes the download in place: drop the partial file
            cause = getattr(e, "reason", None) or e
            raise DatasetDownloadError(
                f"{key}: could not download {url or 'the dataset'} into {where} ({type(e).__name__}: {cause}); "
                f"check the network connection (or proxy settings), or download the file by hand into {where}",
                url) from e

    return download


def _stat(path: Path | None) -> tuple[int, int] | None:
    try:
        st = path.stat() if path is not None else None
    except OSError:
        return None
    return None if st is None else (st.st_size, st.st_mtime_ns)
