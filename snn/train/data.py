"""Build the train/test frame datasets that a training run or evaluation asks for."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from torch.utils.data import Dataset, Subset

from snn.datasets import EventFolder, FrameDataset, has_test_split, open_dataset, read_events, train_val_split

log = logging.getLogger("snn")

__all__ = ["DataSpec", "build_datasets", "held_out_split", "infer_sensor_size"]


@dataclass
class DataSpec:
    """Where the events come from and how they become frames.

    Either ``dataset`` (a name of :data:`snn.datasets.DATASETS`, default ``"digits-events"``)
    or ``data`` (a folder of the user's own recordings, see :class:`snn.datasets.EventFolder`)
    with optional ``labels`` file, and optional ``test_data``/``test_labels`` (otherwise a
    seeded ``val_fraction`` of the training set is held out for testing). A named dataset
    without an official test split ("cifar10dvs", "ncaltech101", "asldvs") is split the same
    way. ``sensor_size`` overrides the data's own (needed by "ncaltech101").

    ``classes`` (class names in label order) numbers the classes of ``data``/``test_data``
    folders; ``None`` numbers them by the training folder's sorted names, and ``test_data``
    always follows the training folder's numbering. ``snn evaluate`` sets it to the training
    run's ``info["classes"]``, so a test folder lacking a class keeps the run's labels.
    """

    dataset: str = "digits-events"
    data: Optional[str] = None
    labels: Optional[str] = None
    test_data: Optional[str] = None
    test_labels: Optional[str] = None
    root: Optional[str] = None
    download: bool = False
    sensor_size: Optional[tuple[int, int, int]] = None
    T: int = 10
    time_window: Optional[float] = None
    downsample: Optional[float] = None
    val_fraction: float = 0.2
    seed: int = 0
    cache_dir: Optional[str] = None
    progress: bool = True
    classes: Optional[list[str]] = None


def infer_sensor_size(folder: EventFolder) -> tuple[int, int, int]:
    """Smallest ``(W, H, 2)`` holding every event of the folder's files (read once).

    Raises:
        ValueError: the folder's files hold no events at all.
    """
    w = h = 0
    for f in folder.files:
        ev = read_events(f)
        if len(ev):
            w, h = max(w, int(ev["x"].max()) + 1), max(h, int(ev["y"].max()) + 1)
    if w == 0:
        raise ValueError(f"cannot infer the sensor size: no events in {folder.root}; pass sensor_size")
    return (w, h, 2)


def _folder(data: str, labels: Optional[str], sensor_size, classes: Optional[list[str]] = None) -> EventFolder:
    if sensor_size is None:
        probe = EventFolder(data, labels, sensor_size=(2**15 - 1, 2**15 - 1, 2), classes=classes)
        sensor_size = infer_sensor_size(probe)
        log.info("inferred sensor size %s from %d files in %s", sensor_size, len(probe), data)
    return EventFolder(data, labels, sensor_size=tuple(sensor_size), classes=classes)


def _frames(events: Dataset, spec: DataSpec, name: str, sensor_size=None) -> FrameDataset:
    kw = dict(n_time_bins=spec.T) if spec.time_window is None else dict(time_window=spec.time_window, T=spec.T)
    return FrameDataset(events, downsample=spec.downsample, cache_dir=spec.cache_dir, name=name,
                        progress=spec.progress, sensor_size=None if sensor_size is None else tuple(sensor_size),
                        **kw)


def held_out_split(dataset: Dataset, spec: DataSpec) -> tuple[Subset, Subset]:
    """``(train, test)`` of a ``--data`` folder given without ``--test-data``, or of a named
    dataset without an official test split: the seeded, stratified ``spec.val_fraction``
    hold-out that :func:`build_datasets` tests on. Any dataset with the same recordings in the
    same order (its frames, or its raw events) gets the same indices.

    Raises:
        ValueError: ``spec.val_fraction`` outside ``(0, 1)``, or a split leaving a side empty.
    """
    return train_val_split(dataset, spec.val_fraction, seed=spec.seed, stratify=True)


def build_datasets(spec: DataSpec) -> tuple[Dataset, Dataset, dict]:
    """Return ``(train, test, info)``: frame datasets yielding ``(float32 [T, ...], label)``.

    ``info`` holds ``sensor_size``, ``frame_shape`` (``[T, ...]`` per sample), ``num_classes``,
    ``classes`` (the class names of a folder, in label order; ``None`` for named datasets), a
    ``source`` description and ``test_split`` (``"test folder"``, ``"official"``, or the
    held-out fraction).

    Raises:
        FileNotFoundError: missing folder or dataset root (from the readers / registry).
        ValueError: unknown dataset name, bad labels, a test folder class (or label) that the
            training folder (or ``spec.classes``) lacks, events outside the sensor size.
        snn.datasets.DatasetDownloadError: ``spec.download`` and the download failed.
    """
    held_out = f"{100 * spec.val_fraction:g}% held out (seed {spec.seed}, stratified)"
    if spec.data is not None:
        train_ev = _folder(spec.data, spec.labels, spec.sensor_size, spec.classes)
        sensor = train_ev.sensor_size
        train = _frames(train_ev, spec, f"folder:{Path(spec.data).name}")
        if spec.test_data is not None:
            test_ev = _folder(spec.test_data, spec.test_labels, sensor, train_ev.classes)
            test = _frames(test_ev, spec, f"folder:{Path(spec.test_data).name}")
            split = "test folder"
        else:
            train, test = held_out_split(train, spec)
            split = held_out
        source = f"folder {spec.data}" + (f" (test: {spec.test_data})" if spec.test_data else "")
        classes: Optional[list[str]] = list(train_ev.classes)
    else:
        kw = {} if spec.dataset == "digits-events" else dict(root=spec.root, download=spec.download)
        train = _frames(open_dataset(spec.dataset, train=True, **kw), spec, spec.dataset, spec.sensor_size)
        if has_test_split(spec.dataset):
            test = _frames(open_dataset(spec.dataset, train=False, **kw), spec, spec.dataset, spec.sensor_size)
            split = "official"
            source = f"dataset {spec.dataset}"
        else:
            train, test = held_out_split(train, spec)
            split = held_out
            source = f"dataset {spec.dataset} (no official test split: {held_out} for testing)"
            log.info("%s has no official test split: %s for testing", spec.dataset, held_out)
        classes = None
    base = train.dataset if isinstance(train, Subset) else train
    labels = np.asarray(base.labels)
    names = getattr(base, "classes", None)
    num_classes = len(names) if names is not None and len(names) else int(labels.max()) + 1
    info = {"sensor_size": list(base.sensor_size), "frame_shape": list(base.frames_shape),
            "num_classes": num_classes, "classes": classes, "source": source, "test_split": split,
            "n_train": len(train), "n_test": len(test)}
    return train, test, info
