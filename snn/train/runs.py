"""Run folders: claimed atomically, so that no two runs ever share one."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["create_run_folder", "remove_if_empty"]

_MAX_SUFFIX = 10_000


def create_run_folder(path: str | os.PathLike, *, unique: bool = False) -> Path:
    """Create the run folder ``path`` with ``os.mkdir``, which fails if it exists, so that of
    two runs started at once only one gets a given folder (no check-then-create race).
    Parent folders are created as needed.

    Args:
        path: the folder to create.
        unique: if ``path`` exists, create ``<path>-2``, ``<path>-3``, ... instead (for
            default names such as ``runs/<data>-<date>-<time>``, which two runs started in
            the same second share).

    Returns:
        the folder created (``path`` or its suffixed variant).

    Raises:
        FileExistsError: ``path`` exists and ``unique`` is False (or no free suffix was found);
            the message names the folder and suggests ``--resume`` or another ``--out``.
        OSError: the folder cannot be created (permissions, a file in the way, ...).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    candidates = [p] + ([p.with_name(f"{p.name}-{k}") for k in range(2, _MAX_SUFFIX)] if unique else [])
    for candidate in candidates:
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        return candidate
    what = "holds a run" if (p / "checkpoint.pt").exists() else "already exists"
    raise FileExistsError(f"{p} {what}: pass --resume to continue that run, or choose another --out"
                          + (f" (no free name {p.name}-2 ... -{_MAX_SUFFIX - 1} either)" if unique else ""))


def remove_if_empty(path: str | os.PathLike) -> bool:
    """Remove the folder ``path`` if it is empty (a run that failed before writing anything),
    so that the same command can be run again. Returns whether it was removed; never raises."""
    try:
        os.rmdir(path)
    except OSError:
        return False
    return True
