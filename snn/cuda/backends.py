"""Registration of the fused neuron backends with :mod:`snn.neurons.backends`.

Importing this module registers ``"numba"`` (CPU), ``"numba"`` (CUDA) and ``"cupy"``
(CUDA), and defines their operators (:mod:`snn.cuda.autograd`). It imports neither Numba nor
CuPy: kernels, and the packages they need, load on the first forward that uses them, and the
availability checks run once per process.
"""
from __future__ import annotations

import functools
import importlib
import logging
from typing import Callable, Optional

import torch
from torch import Tensor

from snn.neurons.backends import Backend, register_backend
from snn.neurons.functional import NeuronSpec

__all__ = ["CUDA_INSTALL_HINT", "numba_cuda_reason", "register_neuron_backends"]

log = logging.getLogger("snn")

CUDA_INSTALL_HINT = 'pip install "snn[cuda]"'
CPU_DTYPES = (torch.float32, torch.float64)
GPU_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _supports(spec: NeuronSpec) -> bool:
    from snn.cuda.params import supports
    return supports(spec)


def _fused_run(module: str, launcher: str, dtypes: tuple[torch.dtype, ...], recomputes_h: bool = False,
               optional_state: bool = False) -> Callable[[Tensor, Tensor, NeuronSpec, bool], tuple]:
    """The registry ``run`` over the fused operators (:mod:`snn.cuda.autograd`) with
    ``module.launcher``, which (with Numba or CuPy) loads inside the first operator call."""
    from snn.cuda.autograd import FusedKernels, make_run
    return make_run(FusedKernels(key=f"{module}.{launcher}", dtypes=dtypes, recomputes_h=recomputes_h,
                                 optional_state=optional_state,
                                 load=lambda: getattr(importlib.import_module(module), launcher)()))


@functools.lru_cache(maxsize=None)
def _torch_cuda_reason() -> Optional[str]:
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible to PyTorch (torch.cuda.is_available() is False)"
    return None


@functools.lru_cache(maxsize=None)
def _cupy_reason() -> Optional[str]:
    reason = _torch_cuda_reason()
    if reason is not None:
        return f"backend 'cupy' needs a GPU: {reason}"
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # broken wheel, CUDA version mismatch, no driver
        return (f"backend 'cupy' cannot use the GPU ({type(err).__name__}: {err}); install the CuPy "
                f"wheel matching your CUDA version, e.g. `{CUDA_INSTALL_HINT}`")
    try:  # CuPy imports without NVRTC, its runtime compiler: compile the kernels now
        from snn.cuda.cupy_gpu import load_module
        load_module(torch.cuda.current_device())
    except Exception as err:
        reason = (f"backend 'cupy' cannot compile snn's CUDA kernels ({type(err).__name__}: {err}); CuPy "
                  f"needs NVRTC, e.g. `pip install nvidia-cuda-nvrtc-cu12` for CUDA 12")
        log.warning("%s; 'auto' uses the next CUDA backend", reason)
        return reason
    return None


@functools.lru_cache(maxsize=None)
def numba_cuda_reason(kind: str = "backend") -> Optional[str]:
    """``None`` if numba.cuda can run kernels on the GPU PyTorch uses, else why and what to install.

    ``kind`` names the backend family in the message (``"backend"``, ``"delay backend"``).
    """
    reason = _torch_cuda_reason()
    if reason is not None:
        return f"{kind} 'numba' on CUDA needs a GPU: {reason}"
    try:
        from numba import cuda
        ok = cuda.is_available()
    except Exception as err:  # broken install, no driver
        return f"numba.cuda cannot be imported ({type(err).__name__}: {err}); try `{CUDA_INSTALL_HINT}`"
    if not ok:
        return f"numba.cuda finds no usable GPU or CUDA driver; try `{CUDA_INSTALL_HINT}`"
    try:  # the driver alone is not enough: numba.cuda compiles through NVVM, often missing
        cuda.compile_ptx_for_current_device(_nvvm_probe, (), device=True)
    except Exception as err:
        return (f"numba.cuda cannot compile kernels ({type(err).__name__}: {err}); it needs NVVM from the "
                f"CUDA toolkit, e.g. `{CUDA_INSTALL_HINT}` (numba-cuda[cu12])")
    return None


def _nvvm_probe():  # pragma: no cover - compiled, never run
    """The smallest device function: :func:`numba_cuda_reason` compiles it to check NVVM."""
    return None


def register_neuron_backends() -> None:
    """(Re-)register the fused backends; called on import."""
    register_backend(Backend(
        name="numba", device_type="cpu", priority=10, requires="numba", install_hint="pip install numba",
        run=_fused_run("snn.cuda.cpu", "CpuLauncher", CPU_DTYPES, recomputes_h=True, optional_state=True),
        supports=_supports, dtypes=CPU_DTYPES, checks_nan=True))
    register_backend(Backend(
        name="cupy", device_type="cuda", priority=20, requires="cupy", install_hint=CUDA_INSTALL_HINT,
        run=_fused_run("snn.cuda.cupy_gpu", "CupyLauncher", GPU_DTYPES), supports=_supports,
        available=_cupy_reason, dtypes=GPU_DTYPES, checks_nan=True))
    register_backend(Backend(
        name="numba", device_type="cuda", priority=10, requires="numba", install_hint=CUDA_INSTALL_HINT,
        run=_fused_run("snn.cuda.numba_gpu", "NumbaCudaLauncher", GPU_DTYPES), supports=_supports,
        available=numba_cuda_reason, dtypes=GPU_DTYPES, checks_nan=True))


register_neuron_backends()
