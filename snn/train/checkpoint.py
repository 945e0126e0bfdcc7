"""Atomic checkpoint files that load without executing code (``torch.load(weights_only=True)``)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["save_checkpoint", "load_checkpoint", "atomic_write_text", "CheckpointError"]


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated or not an snn checkpoint (message names the file)."""


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically:
    a temp file in the same folder, fsync, then rename — an interrupted save never leaves a
    partial file at ``path``."""
    _atomic(Path(path), lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is truncated, corrupt, or holds something other than an
            snn checkpoint dict (message names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for corrupt archives
        raise CheckpointError(f"{p}: not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{p}: not an snn checkpoint (expected a dict with a 'model' entry)")
    return state


def atomic_write_text(text: str, path: str | os.PathLike) -> None:
    """Write a text file atomically (temp file + rename)."""
    _atomic(Path(path), lambda f: f.write(text.encode()))


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_text(json.dumps(obj, indent=2) + "\n", path)
