"""Fixtures for snn.datasets tests: writers of synthetic event files, a small N-MNIST subset."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _write_atis(path: Path, x, y, t, p) -> Path:
    """N-MNIST/ATIS 40-bit events: x, y bytes; p in bit 7 of byte 2; t in the low 23 bits."""
    x, y, t, p = (np.asarray(v, dtype=np.int64) for v in (x, y, t, p))
    raw = np.zeros((len(x), 5), dtype=np.uint8)
    raw[:, 0] = x
    raw[:, 1] = y
    raw[:, 2] = (p << 7) | ((t >> 16) & 0x7F)
    raw[:, 3] = (t >> 8) & 0xFF
    raw[:, 4] = t & 0xFF
    path.write_bytes(raw.tobytes())
    return path


def _write_aedat(path: Path, x, y, t, p, header: bytes | None = None) -> Path:
    """jAER AEDAT 2.0 DVS128: '#' header lines, then big-endian (address, timestamp) uint32 pairs."""
    if header is None:
        header = (b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n"
                  b"# Data format is int32 address, int32 timestamp (8 bytes total)\r\n"
                  b"# Creation time: Thu Jan 01 00:00:00 UTC 2015\r\n")
    x, y, t, p = (np.asarray(v, dtype=np.int64) for v in (x, y, t, p))
    body = np.zeros((len(x), 2), dtype=">u4")
    body[:, 0] = (x << 8) | (y << 1) | p
    body[:, 1] = t
    path.write_bytes(header + body.tobytes())
    return path


@pytest.fixture
def write_atis():
    return _write_atis


@pytest.fixture
def write_aedat():
    return _write_aedat


@pytest.fixture
def nmnist_labels30(nmnist_small_dir: Path, tmp_path: Path) -> Path:
    """A label-list file (header + the first 30 train entries) for the real recordings."""
    lines = (nmnist_small_dir / "train1K.txt").read_text().splitlines()
    assert lines[0].startswith("#")
    path = tmp_path / "train30.txt"
    path.write_text("\n".join(lines[:31]) + "\n")
    return path
