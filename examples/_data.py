"""Data and the small CNN the examples share: the real N-MNIST recordings where present
(``$SNN_SHARED_DATA/nmnist_small``, default ``../shared/data`` beside the checkout), else the
embedded digits-events dataset (with a printed note)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from torch import nn

from snn.latency import static_images
from snn.train import DataSpec, build_datasets

REPO = Path(__file__).resolve().parents[1]
FALLBACK = "note: N-MNIST recordings not found at {root}; using the embedded digits-events instead"


def nmnist_root(given: Optional[str] = None) -> Path:
    """``given``, else ``$SNN_SHARED_DATA/nmnist_small``."""
    return Path(given) if given else Path(os.environ.get("SNN_SHARED_DATA", REPO.parent / "shared" / "data")) / "nmnist_small"


def frame_spec(T: int, data: Optional[str] = None, **kwargs) -> DataSpec:
    """A :class:`snn.train.DataSpec` of ``T`` frames: N-MNIST (1,000 train / 100 test), else digits-events.

    Raises:
        FileNotFoundError: ``data`` was given but holds no ``train1K.txt``.
    """
    root = nmnist_root(data)
    if (root / "train1K.txt").is_file():
        return DataSpec(data=str(root), labels=str(root / "train1K.txt"), test_data=str(root),
                        test_labels=str(root / "test100.txt"), sensor_size=(34, 34, 2), T=T, progress=False, **kwargs)
    if data:
        raise FileNotFoundError(f"--data {root} holds no train1K.txt")
    print(FALLBACK.format(root=root))
    return DataSpec(dataset="digits-events", T=T, progress=False, **kwargs)


def frames(T: int, data: Optional[str] = None, **kwargs):
    """``(train, test, info)``: frame datasets ``([T, ...], label)`` of :func:`frame_spec` (cached)."""
    return build_datasets(frame_spec(T, data, **kwargs))


def count_images(data: Optional[str] = None, scale: float = 1.0):
    """``(train, test, name)``: datasets of ``([2, 34, 34] event counts × scale, label)``."""
    spec = frame_spec(1, data)
    train, test, _ = build_datasets(spec)
    return static_images(train, scale), static_images(test, scale), ("N-MNIST" if spec.data else "digits-events")


def make_cnn(num_classes: int = 10) -> nn.Sequential:
    """Conv(16)-BN-ReLU-AvgPool → Conv(32)-BN-ReLU-AvgPool → FC(128)-ReLU → FC, for ``[B, 2, 34, 34]``."""
    return nn.Sequential(nn.Conv2d(2, 16, 5, padding=2), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(2),
                         nn.Conv2d(16, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.AvgPool2d(2),
                         nn.Flatten(), nn.Dropout(0.3), nn.Linear(32 * 8 * 8, 128), nn.ReLU(),
                         nn.Linear(128, num_classes))
