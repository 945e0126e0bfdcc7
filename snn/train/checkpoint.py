"""Atomic checkpoint files that load without executing code (``torch.load(weights_only=True)``)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["save_checkpoint", "load_checkpoint", "load_train_checkpoint", "atomic_write_text", "CheckpointError"]

TRAIN_ENTRIES = ("config", "model_kwargs", "model")
"""Entries of every checkpoint that ``snn train`` writes (besides optimizer, history, ...)."""

_KINDS = {"snn.latency.iir-stage": "a `snn compress` stage checkpoint",
          "snn.latency.iir-progress": "a `snn compress` progress file (an unfinished stage)"}


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
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``;
    ``path`` is the file or a run folder holding ``checkpoint.pt``.

    Raises:
        FileNotFoundError: no file at ``path`` (nor ``path/checkpoint.pt`` for a folder).
        CheckpointError: the file is truncated, corrupt, or holds something other than an
            snn checkpoint dict (message names the file).
    """
    p = Path(path)
    if p.is_dir():  # a run folder: its checkpoint
        if not (p / "checkpoint.pt").is_file():
            raise FileNotFoundError(f"checkpoint not found: {p} is a folder without checkpoint.pt")
        p = p / "checkpoint.pt"
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for corrupt archives
        raise CheckpointError(f"{p}: not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{p}: not an snn checkpoint (expected a dict with a 'model' entry)")
    return state


def load_train_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by ``snn train`` (:func:`snn.train.train`): as
    :func:`load_checkpoint`, and it must hold the run's ``config`` (with the model preset),
    ``model_kwargs`` and ``model`` weights.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: not a readable snn checkpoint, or one written by something else (a
            ``snn compress`` stage file, an ANN checkpoint, ...); the message names the file,
            says what it is and what was expected.
    """
    p = Path(path)
    state = load_checkpoint(p, map_location)
    config = state.get("config")
    missing = [k for k in TRAIN_ENTRIES if k not in state]
    if not missing and isinstance(config, dict) and isinstance(config.get("model"), str) \
            and isinstance(state["model_kwargs"], dict):
        return state
    kind = state.get("kind")
    if kind in _KINDS:
        what = _KINDS[kind]
        if "T" in state:
            what += f" (stage {int(state.get('stage', -1)) + 1}, T={state['T']}; its test accuracy and energy " \
                    "are in compress.json beside it)"
    else:
        held = ", ".join(repr(k) for k in sorted(map(str, state))[:8])
        what = (f"kind {kind!r}, " if kind is not None else "") + f"with entries {held}" + \
            (f" but no {', '.join(map(repr, missing))}" if missing else " but no model preset in 'config'")
    raise CheckpointError(f"{p}: not a `snn train` checkpoint ({what}); expected a checkpoint.pt written by "
                          f"`snn train`, with entries {', '.join(map(repr, TRAIN_ENTRIES))}")


def atomic_write_text(text: str, path: str | os.PathLike) -> None:
    """Write a text file atomically (temp file + rename)."""
    _atomic(Path(path), lambda f: f.write(text.encode()))


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_text(json.dumps(obj, indent=2) + "\n", path)
