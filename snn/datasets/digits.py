"""digits-events: the embedded default event dataset (scikit-learn digits → emulated saccade events)."""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import ndimage
from torch.utils.data import Dataset

from snn.encoders.emulator import EVENTS_DTYPE, EventCameraEmulator

__all__ = ["DigitsEvents", "DIGITS_EMULATOR"]

#: Emulator used by :class:`DigitsEvents` unless one is given: threshold 0.3 in log units, a
#: dim-screen offset of 0.3 (black is 0.3, white 1.3) and 3 % per-pixel threshold mismatch
#: (v2e's default; it also keeps pixels that return exactly to their start value at the end
#: of the closed saccade path from all firing at t = 300 ms): about 900-1,850 events per digit.
DIGITS_EMULATOR = EventCameraEmulator(contrast_threshold=0.3, log_eps=0.3, threshold_sigma=0.03)


def _upsample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` matrix of 1-D cubic-spline zoom (zero outside), so 2-D zoom is ``A X A^T``."""
    return ndimage.zoom(np.eye(n_in), (n_out / n_in, 1), order=3, grid_mode=True, mode="grid-constant")


@lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The scikit-learn digits as read-only ``(images [1797, 8, 8] in [0, 1], labels [1797] int64)``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.images / 16.0, digits.target.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


class DigitsEvents(Dataset):
    r"""digits-events: 1,797 real handwritten digits turned into N-MNIST-style event streams.

    Source images: the UCI "Optical Recognition of Handwritten Digits" test set as shipped
    with scikit-learn (``sklearn.datasets.load_digits``: 1,797 samples, 8x8 pixels, 17 grey
    levels, 10 classes, about 180 per class), E. Alpaydin & C. Kaynak 1998, UCI Machine
    Learning Repository, doi:10.24432/C50P49. Available offline wherever scikit-learn is.

    Conversion, following the N-MNIST recording protocol (Orchard et al. 2015, "Converting
    static image datasets to spiking neuromorphic datasets using saccades", Front. Neurosci.
    9:437): each image (grey level / 16, in [0, 1]) is upsampled 8x8 → 24x24 by cubic-spline
    interpolation (clipped to [0, 1]), centred in a black 34x34 field and moved along three
    straight saccades forming a triangle (3 px sides, 100 ms each, 300 ms in all), and an
    :class:`~snn.encoders.EventCameraEmulator` (by default :data:`DIGITS_EMULATOR`) turns the
    moving image into events. Same sensor size, event format and duration as N-MNIST, so
    N-MNIST models and transforms run on it. With the default emulator each sample has about
    900-1,850 events (median ~1,400; real N-MNIST has ~4,000), 49-53 % of them ON.

    The split is stratified and deterministic: per class, a ``numpy.random.Generator``
    seeded with ``seed`` permutes the samples and the first ``round(test_fraction * n_c)``
    go to the test set. The emulator's randomness (the threshold-mismatch map, shared by
    both splits: one camera; noise, if any) is drawn from a generator seeded with ``seed``. The events of a split are generated (vectorised, a few seconds for
    all 1,797) on first access and kept in memory by the instance.

    Args:
        train: the training split (True) or the test split (False).
        test_fraction: fraction of each class in the test split, in (0, 1).
        seed: seed of the split (and of the emulator's randomness, if it has any).
        emulator: the :class:`~snn.encoders.EventCameraEmulator` to use; ``None`` for
            :data:`DIGITS_EMULATOR`.
        transform: optional callable applied to the events (e.g. a ``tonic.transforms`` one).
        target_transform: optional callable applied to the label.

    Attributes:
        sensor_size: ``(34, 34, 2)`` (W, H, polarities).
        classes: the 10 class names, index = label.
        ordering: ``"xytp"``.
        dtype: ``tonic.io.events_struct``.
        indices: ``[N]`` int64 indices into ``load_digits()`` of this split's samples.
        targets: ``[N]`` int64 labels of this split.

    Shape:
        - events: ``[E]`` structured array (x, y: int16 pixels; t: int64 µs in [0, 300000];
          p: bool, True = ON), sorted by t.

    Returns:
        ``dataset[i]`` is ``(events, label)`` with ``label`` an ``int`` in 0..9 (after the
        optional transforms).

    Raises:
        ValueError: if ``test_fraction`` is not in (0, 1).
        TypeError: if ``emulator`` is not an ``EventCameraEmulator``.

    Examples:
        >>> train, test = DigitsEvents(train=True), DigitsEvents(train=False)
        >>> len(train) + len(test)
        1797
        >>> events, label = test[0]
        >>> events.dtype == tonic.io.events_struct, label in range(10)
        (True, True)
    """

    sensor_size = (34, 34, 2)
    classes = [f"{i} - {w}" for i, w in enumerate("zero one two three four five six seven eight nine".split())]
    ordering = "xytp"
    dtype = EVENTS_DTYPE
    image_size = 24
    saccades = 3
    duration_us = 300_000
    frames_per_saccade = 8
    amplitude_px = 3.0

    def __init__(
        self,
        train: bool = True,
        test_fraction: float = 0.2,
        seed: int = 0,
        emulator: EventCameraEmulator | None = None,
        transform: Callable[[np.ndarray], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
    ) -> None:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
        if emulator is not None and not isinstance(emulator, EventCameraEmulator):
            raise TypeError(f"emulator must be an EventCameraEmulator or None, got {type(emulator).__name__}")
        images, labels = _load_digits()
        rng = np.random.default_rng(seed)
        test_mask = np.zeros(labels.shape[0], dtype=bool)
        for c in range(len(self.classes)):
            members = rng.permutation(np.flatnonzero(labels == c))
            test_mask[members[: int(round(test_fraction * members.size))]] = True
        self.train = bool(train)
        self.test_fraction = float(test_fraction)
        self.seed = int(seed)
        self.emulator = DIGITS_EMULATOR if emulator is None else emulator
        self.transform = transform
        self.target_transform = target_transform
        self.indices = np.flatnonzero(~test_mask if train else test_mask)
        self.targets = labels[self.indices]
        self._images = images[self.indices]
        self._events: list[np.ndarray] | None = None

    def _generate(self) -> list[np.ndarray]:
        a = _upsample_matrix(self._images.shape[1], self.image_size)
        images = np.clip(a @ self._images @ a.T, 0.0, 1.0)
        return self.emulator.from_images(
            images,
            sensor_size=self.sensor_size,
            saccades=self.saccades,
            duration_us=self.duration_us,
            frames_per_saccade=self.frames_per_saccade,
            amplitude_px=self.amplitude_px,
            rng=np.random.default_rng(self.seed),
        )

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        if self._events is None:
            self._events = self._generate()
        events, target = self._events[index], int(self.targets[index])
        if self.transform is not None:
            events = self.transform(events)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return events, target

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"{type(self).__name__}({split}, {len(self)} samples, test_fraction={self.test_fraction}, seed={self.seed})"
