"""Shared fixtures: the real recorded event data beside the checkout (../shared/data)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SNN_SHARED_DATA", _REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def nmnist_small_dir() -> Path:
    """Folder of the 1,100 real N-MNIST recordings (`*.bs2`, `train1K.txt`, `test100.txt`).

    Skips (with the reason) where ../shared/data is absent, e.g. on a user's machine; CI has it.
    """
    d = SHARED_DATA / "nmnist_small"
    if not (d / "train1K.txt").is_file():
        pytest.skip(f"real N-MNIST recordings not found at {d} (set SNN_SHARED_DATA)")
    return d
