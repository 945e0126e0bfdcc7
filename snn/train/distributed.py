"""Multi-process data-parallel training with ``torch.distributed`` (DistributedDataParallel).

Start one process per device with ``torchrun`` (or ``snn train --nproc N``, which runs it)::

    torchrun --nproc-per-node 2 -m snn train --model conv --batch-size 32      # 2 CPU processes, gloo
    torchrun --nproc-per-node 4 -m snn train --device cuda ...                  # 4 GPUs, NCCL

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_distributed` reads them and joins the process group (gloo on the CPU, NCCL on
CUDA). ``--batch-size`` is per process: N processes with batch b train like one process with
batch N·b on the same sample order (the trainer always draws its order from a
:class:`torch.utils.data.DistributedSampler`, with one replica when run alone). Only rank 0
logs, evaluates and writes checkpoints, metrics and plots; every rank resumes from the same
checkpoint.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistInfo", "init_distributed", "device_for", "wrap_model", "sync_batchnorm", "barrier",
           "any_process", "sum_over_processes", "launched_by_torchrun"]

log = logging.getLogger("snn")


@dataclass(frozen=True)
class DistInfo:
    """This process's place: ``rank`` of ``world_size`` (``local_rank`` on its machine)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes files."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """Whether the environment of ``torchrun`` (``RANK`` and ``WORLD_SIZE``) is set."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: torch.device, backend: Optional[str] = None) -> DistInfo:
    """Join the process group described by torchrun's environment, once; a no-op (rank 0 of 1)
    when not launched by torchrun.

    Args:
        device: this process's device; a CUDA device is replaced by ``cuda:LOCAL_RANK``.
        backend: ``"gloo"``/``"nccl"``; default NCCL for CUDA, gloo otherwise.

    Raises:
        ValueError: ``WORLD_SIZE``/``RANK`` are not integers or out of range.
    """
    if not launched_by_torchrun():
        return DistInfo()
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError as e:
        raise ValueError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers (set by torchrun): {e}") from None
    if not (world >= 1 and 0 <= rank < world):
        raise ValueError(f"RANK={rank} must be in [0, WORLD_SIZE={world})")
    if world == 1:
        return DistInfo()
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend or ("nccl" if device.type == "cuda" else "gloo"))
    log.debug("process %d of %d joined the %s process group", rank, world, dist.get_backend())
    return DistInfo(rank, world, local)


def device_for(device: torch.device, info: DistInfo) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` for CUDA runs, ``device`` otherwise."""
    return torch.device("cuda", info.local_rank) if device.type == "cuda" and info.distributed else device


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with its batch norms made :class:`torch.nn.SyncBatchNorm` on CUDA, so N
    processes normalise with the statistics of the whole N·b batch, as one process would.

    PyTorch's ``SyncBatchNorm`` runs on GPUs only; on the CPU (gloo) every process keeps
    normalising its own part of the batch (DistributedDataParallel's default), so presets
    with batch norm train slightly differently from one process with the whole batch. The
    converted layers reuse the original parameters and buffers (an optimizer made before
    stays valid).
    """
    if device.type != "cuda":
        return model
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap_model(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(model)`` when distributed (batch norms synchronised on CUDA,
    :func:`sync_batchnorm`), else ``model`` itself."""
    if not info.distributed:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(sync_batchnorm(model, device), device_ids=ids)


def _multi_process() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def any_process(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` holds in any process (``flag`` itself when not distributed). A
    collective: every process must call it at the same point."""
    if not _multi_process():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)  # NCCL reduces device tensors only
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def sum_over_processes(values: list[float], device: torch.device) -> list[float]:
    """``values`` summed element-wise over all processes (unchanged when not distributed);
    float64. A collective: every process must call it at the same point."""
    if not _multi_process():
        return list(values)
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op when not distributed)."""
    if info.distributed and dist.is_initialized():
        dist.barrier()
