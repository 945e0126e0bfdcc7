"""GPU backend ``"cupy"``: the CUDA C kernels of ``csrc/neuron.cu`` through CuPy.

The module is compiled once per process and device from the source files with
``cupy.RawModule`` (NVRTC; CuPy also caches the binary on disk), instantiating
``snn::neuron_forward<T>``/``snn::neuron_backward<T>`` for T = float, ``snn::f16`` and
``snn::bf16`` (the raw bits of float16/bfloat16, converted in ``neuron.cuh`` so that no CUDA
header is needed), so half-precision inputs are read and written natively with float32 state.
Launches go to PyTorch's current stream; tensors are passed as raw device pointers.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from snn.cuda.launch import grid_blocks, sm_count, threads_per_block
from snn.cuda.params import KernelConfig

__all__ = ["CupyLauncher", "SOURCE_DIR", "COMPILE_OPTIONS", "KERNEL_TYPES", "load_module", "kernel_name", "blocks"]

SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
KERNEL_TYPES = {torch.float32: "float", torch.float16: "snn::f16", torch.bfloat16: "snn::bf16"}
THREADS = 128  # per block for large layers (snn.cuda.launch narrows them for small ones)
#: NVRTC options of the module (CuPy adds the target architecture and ``-ftz=true``); the
#: include path is the source folder alone: the kernels need no CUDA header.
COMPILE_OPTIONS = ("-std=c++17", f"-I{SOURCE_DIR}")


def kernel_name(kernel: str, dtype: torch.dtype) -> str:
    """The name expression of ``kernel``'s instance for ``dtype`` inputs, e.g. ``snn::neuron_forward<snn::f16>``."""
    return f"snn::{kernel}<{KERNEL_TYPES[dtype]}>"


def blocks(N: int, threads: int = THREADS) -> int:
    """Thread blocks of ``threads`` for ``N`` neurons (one thread each)."""
    return grid_blocks(N, threads)


def _names(kernel: str) -> list[str]:
    return [kernel_name(kernel, dtype) for dtype in KERNEL_TYPES]


@functools.lru_cache(maxsize=None)
def load_module(device_index: int) -> Any:
    """The compiled ``cupy.RawModule`` for one device (compiled on first use, then cached).

    Raises:
        ImportError: CuPy is not installed (``pip install "snn[cuda]"``).
    """
    import cupy

    src = (SOURCE_DIR / "neuron.cu").read_text()
    with cupy.cuda.Device(device_index):
        mod = cupy.RawModule(code=src, options=COMPILE_OPTIONS,
                             name_expressions=_names("neuron_forward") + _names("neuron_backward"))
        mod.compile()
    return mod


@functools.lru_cache(maxsize=None)
def _kernel(device_index: int, kernel: str, dtype: torch.dtype):
    return load_module(device_index).get_function(kernel_name(kernel, dtype))


def _ptr(t: torch.Tensor) -> np.uint64:
    return np.uint64(t.data_ptr())


class CupyLauncher:
    """:class:`snn.cuda.autograd.Launcher` for CUDA tensors (float32, float16, bfloat16)."""

    def _launch(self, device: torch.device, kernel: str, dtype: torch.dtype, N: int, args: tuple) -> None:
        import cupy

        index = device.index if device.index is not None else torch.cuda.current_device()
        threads = threads_per_block(N, sm_count(index))
        with cupy.cuda.Device(index):  # the module is loaded into this device's context
            fn = _kernel(index, kernel, dtype)
            stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(device).cuda_stream)
            with stream:
                fn((blocks(N, threads),), (threads,), args)

    def forward(self, x: Tensor, v0: Tensor, beta: Tensor, omb: Tensor, theta: Tensor, S: int,
                cfg: KernelConfig, spikes: Tensor, h: Tensor, store_h: bool, v_seq: Tensor,
                record_v: bool, v_last: Tensor) -> None:
        T, N = x.shape
        f, i32, i64 = np.float32, np.int32, np.int64
        args = (_ptr(x), _ptr(v0), _ptr(beta), _ptr(omb), _ptr(theta), i32(beta.shape[0]), i64(S),
                i32(T), i64(N), i32(cfg.charge_mode), f(cfg.v_reset), f(cfg.hard), _ptr(spikes),
                _ptr(h), i32(store_h), _ptr(v_seq), i32(record_v), _ptr(v_last))
        self._launch(x.device, "neuron_forward", x.dtype, N, args)

    def backward(self, grad_s: Tensor, has_gs: bool, grad_vseq: Tensor, has_gvseq: bool,
                 grad_vlast: Tensor, h: Tensor, v0: Tensor, x: Tensor, beta: Tensor, omb: Tensor,
                 theta: Tensor, S: int, cfg: KernelConfig, grad_x: Tensor, grad_v0: Tensor,
                 dbeta: Tensor, need_dbeta: bool, dtheta: Tensor) -> None:
        T, N = h.shape
        f, i32, i64 = np.float32, np.int32, np.int64
        args = (_ptr(grad_s), i32(has_gs), _ptr(grad_vseq), i32(has_gvseq), _ptr(grad_vlast), _ptr(h),
                _ptr(v0), _ptr(x), i32(x.shape[0] == T), _ptr(beta), _ptr(omb), _ptr(theta),
                i32(beta.shape[0]), i64(S), i32(T), i64(N), i32(cfg.charge_mode), f(cfg.v_reset),
                f(cfg.hard), f(cfg.keep_reset), i32(cfg.kind), f(cfg.sa), f(cfg.sb), i32(need_dbeta),
                _ptr(grad_x), _ptr(grad_v0), _ptr(dbeta), _ptr(dtheta))
        self._launch(h.device, "neuron_backward", grad_x.dtype, N, args)
