"""Tiny event-folder datasets written by the tests themselves."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tonic


def _events(rng: np.random.Generator, label: int, n: int = 300) -> np.ndarray:
    """Class 0: events in the left half of a 16×16 sensor, class 1: right half; ON/OFF mixed."""
    ev = np.zeros(n, dtype=tonic.io.events_struct)
    ev["x"] = rng.integers(0, 8, n) + 8 * label
    ev["y"] = rng.integers(0, 16, n)
    ev["t"] = np.sort(rng.integers(0, 100_000, n))
    ev["p"] = rng.integers(0, 2, n).astype(bool)
    return ev


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    """``root/<class>/<i>.npy`` with 2 classes × 24 recordings on a (16, 16, 2) sensor."""
    rng = np.random.default_rng(0)
    root = tmp_path / "tiny"
    for label in (0, 1):
        (root / f"c{label}").mkdir(parents=True)
        for i in range(24):
            np.save(root / f"c{label}" / f"{i}.npy", _events(rng, label))
    return root
