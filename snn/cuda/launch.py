"""Launch geometry of the one-thread-per-neuron GPU kernels (CuPy and numba.cuda backends).

Each thread runs one neuron's whole time loop, so a layer of ``N`` neurons is ``N`` threads.
Blocks of 128 threads keep a large layer's grid short; a small layer (fewer blocks than the
GPU has streaming multiprocessors) gets narrower blocks, down to one warp, so that its
threads spread over every SM instead of crowding a few.
"""
from __future__ import annotations

import functools
import warnings
from contextlib import contextmanager
from typing import Iterator

__all__ = ["WIDEST", "NARROWEST", "threads_per_block", "grid_blocks", "sm_count", "quiet_occupancy_warning"]

WIDEST = 128
NARROWEST = 32  # one warp


def threads_per_block(n: int, sms: int) -> int:
    """Threads per block for ``n`` threads on a GPU with ``sms`` SMs: 128, halved while the
    grid would have fewer blocks than SMs, never below 32.

    Raises:
        ValueError: ``n`` or ``sms`` is not positive.
    """
    if n < 1 or sms < 1:
        raise ValueError(f"expected a positive thread count and SM count, got n={n}, sms={sms}")
    t = WIDEST
    while t > NARROWEST and grid_blocks(n, t) < sms:
        t //= 2
    return t


def grid_blocks(n: int, threads: int) -> int:
    """Blocks of ``threads`` covering ``n`` threads."""
    return (n + threads - 1) // threads


@functools.lru_cache(maxsize=None)
def sm_count(device_index: int) -> int:
    """Streaming multiprocessors of CUDA device ``device_index`` (asked once)."""
    import torch
    return torch.cuda.get_device_properties(device_index).multi_processor_count


@contextmanager
def quiet_occupancy_warning() -> Iterator[None]:
    """Silence numba.cuda's "Grid size N will likely result in GPU under-utilization" warning,
    which it gives for any grid under 128 blocks: a small layer's grid is small on purpose."""
    with warnings.catch_warnings():
        # numba prefixes its warnings with terminal colour codes
        warnings.filterwarnings("ignore", message=r".*Grid size \d+ will likely result in GPU under-utilization")
        yield
