"""The run folder of an IIR compression: stage checkpoints, mid-stage progress, resume."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from torch import nn

from snn.train.checkpoint import load_checkpoint

log = logging.getLogger("snn")

__all__ = ["PROGRESS", "stage_file", "restore"]

PROGRESS = "progress.pt"


def stage_file(index: int, T: int) -> str:
    """File name of the checkpoint of stage ``index`` (0-based) at ``T`` timesteps."""
    return f"stage{index + 1}_T{T}.pt"


def restore(model: nn.Module, out_dir: Optional[Path], sched: list[int], config: dict, resume: bool
            ) -> tuple[list[dict], int, Optional[dict]]:
    """Load what a run folder holds: ``(finished stage results, index of the next stage, mid-stage
    progress checkpoint or None)``; the model gets the last finished stage's weights.

    Raises:
        FileExistsError: the folder holds a run and ``resume`` is off.
        ValueError: ``resume`` without a folder; stage files that are not a prefix of the
            schedule; settings that differ from the stored run (names them).
    """
    if out_dir is None:
        if resume:
            raise ValueError("resume=True needs out, the run folder to continue")
        return [], 0, None
    found = [i for i, T in enumerate(sched) if (out_dir / stage_file(i, T)).exists()]
    has_progress = (out_dir / PROGRESS).exists()
    if not resume:
        if found or has_progress:
            raise FileExistsError(f"{out_dir} already holds an IIR run: pass resume=True (--resume) to continue it "
                                  "or choose another folder")
        return [], 0, None
    if found != list(range(len(found))):
        raise ValueError(f"{out_dir}: stage checkpoints {found} are not the first stages of the schedule {sched}")
    stages: list[dict] = []
    last = None
    for i in found:
        last = load_checkpoint(out_dir / stage_file(i, sched[i]))
        _same_config(last["config"], config, out_dir / stage_file(i, sched[i]))
        stages.append(last["result"])
    if last is not None:
        model.load_state_dict(last["model"])
    progress_ck = None
    if has_progress:
        progress_ck = load_checkpoint(out_dir / PROGRESS)
        _same_config(progress_ck["config"], config, out_dir / PROGRESS)
        if progress_ck["stage"] != len(found):
            progress_ck = None
    if found or progress_ck is not None:
        log.info("resuming %s: %d of %d stages done", out_dir, len(found), len(sched))
    return stages, len(found), progress_ck


def _same_config(stored: dict, config: dict, path: Path) -> None:
    diff = [k for k in config if k != "readout" and stored.get(k) != config[k]]
    if diff:
        raise ValueError(f"{path} was written with other settings: " +
                         ", ".join(f"{k}={stored.get(k)!r} (now {config[k]!r})" for k in diff) +
                         "; resume with the same settings or start a new run folder")
