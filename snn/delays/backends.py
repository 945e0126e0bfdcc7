"""Backends of :func:`snn.delays.delay_conv`: one registry, one dispatch point.

============  ======  ==============================================  ======================
name          device  implementation                                  ``auto`` uses it when
============  ======  ==============================================  ======================
``"numba"``   cpu     :mod:`snn.delays.cpu` (``@njit(parallel=True)``)  float32/64, ``W ≤ 0.5·(D+1)``
``"numba"``   cuda    :mod:`snn.delays.numba_gpu` (``numba.cuda``)     never (ask for it by name)
``"torch"``   any     dense kernel + ``conv1d`` (reference)             otherwise
============  ======  ==============================================  ======================

The fused kernels cost ``∝ W`` taps per synapse and the dense convolution ``∝ D + 1`` (at a
higher throughput per tap), so ``"auto"`` uses the fused kernel only for narrow windows
(:data:`FUSED_MAX_FRACTION`, measured by ``benchmarks/delays.py``): integer delays (``W = 1``),
linear interpolation (``W = 2``) and a Gaussian once ``σ`` has decayed. On CUDA, ``"auto"``
keeps cuDNN's dense convolution (the numba.cuda kernels are correct but were not tuned on a GPU).
Under a ``torch.func`` transform (``grad``, ``vmap``, ...) every name runs the ``"torch"``
reference (:func:`resolve_delay_backend`).

The ``"numba"`` backends run the operators ``snn::fused_delay_forward`` and
``snn::fused_delay_backward`` (:mod:`snn.delays.autograd`, launchers named
:data:`CPU_LAUNCHER` and :data:`CUDA_LAUNCHER`): ``torch.compile`` traces a delay layer
without a graph break, and Numba is imported by the first operator call, not by this module.
"""
from __future__ import annotations

import functools
import importlib
import logging
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

from snn.backend_registry import BackendRegistry, requirement_reason
from snn.cuda.backends import CUDA_INSTALL_HINT, numba_cuda_reason
from snn.delays.autograd import fused_delay_conv, register_delay_launcher
from snn.delays.functional import dense_delay_conv
from snn.delays.taps import Taps

__all__ = ["DelayBackend", "register_delay_backend", "resolve_delay_backend", "delay_backend_names",
           "FUSED_MAX_FRACTION", "CPU_LAUNCHER", "CUDA_LAUNCHER"]

log = logging.getLogger("snn")

FUSED_MAX_FRACTION = 0.5
"""``auto`` picks the fused CPU kernel when ``W ≤ FUSED_MAX_FRACTION · (D + 1)``."""

RunFn = Callable[[Tensor, Taps, Optional[Tensor]], Tensor]


@dataclass(frozen=True)
class DelayBackend:
    """A :func:`delay_conv` implementation for one device type.

    Attributes:
        name: the ``backend=`` name; device_type: ``"cpu"``/``"cuda"``/...;
        run: ``run(x, taps, history) → y``; priority: higher wins under ``"auto"``;
        dtypes: input dtypes it handles (others fall back to ``"torch"``);
        auto: whether ``"auto"`` may pick it; requires / install_hint: package it needs;
        available: runtime check returning None when usable, else the reason.
    """

    name: str
    device_type: str
    run: RunFn
    priority: int = 0
    dtypes: tuple = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    auto: bool = True
    requires: Optional[str] = None
    install_hint: str = ""
    available: Optional[Callable[[], Optional[str]]] = None

    def unavailable_reason(self) -> Optional[str]:
        return requirement_reason(self, "delay backend")


_BACKENDS: BackendRegistry[DelayBackend] = BackendRegistry("delay backend")
_REGISTRY = _BACKENDS.entries


def register_delay_backend(backend: DelayBackend) -> None:
    """Add or replace a backend under ``(name, device_type)``."""
    _BACKENDS.register(backend)


def delay_backend_names() -> list[str]:
    """Every name accepted by ``backend=`` (``"auto"`` included)."""
    return _BACKENDS.names()


def resolve_delay_backend(name: str, x: Tensor, width: int, max_delay: int) -> DelayBackend:
    """The backend that runs ``delay_conv`` for input ``x`` and windows of ``width`` taps.

    Under a ``torch.func`` transform or forward-mode AD (:func:`snn.backend_registry.reference_only`) every
    name resolves to the ``torch`` reference (dense kernel + ``conv1d``), which the transforms
    can differentiate and batch: the fused operators have no functorch rules and their kernels
    read raw memory. The first such call says so at INFO level.

    Raises:
        ValueError: unknown name (lists the valid ones) or a backend for another device type.
        RuntimeError: the backend cannot run here (names the missing package / reason); under
            a transform too, as outside one.
    """
    dev = x.device.type
    ref = _BACKENDS.reference_if_required(name, dev)
    if ref is not None:
        return ref
    if name == "auto":
        if width <= FUSED_MAX_FRACTION * (max_delay + 1):
            for b in _BACKENDS.by_priority(dev):
                if b.auto and b.name != "torch" and x.dtype in b.dtypes and b.unavailable_reason() is None:
                    return b
        return _BACKENDS.reference("torch", dev)
    b = _BACKENDS.lookup(name, dev)
    if x.dtype not in b.dtypes:
        log.debug("delay backend %r does not take %s inputs; running the torch reference", name, x.dtype)
        return _BACKENDS.reference("torch", dev)
    return b


CPU_LAUNCHER = "snn.delays.cpu.CpuDelayLauncher"
"""Key of the CPU launcher (:class:`snn.delays.cpu.CpuDelayLauncher`) for the operators."""
CUDA_LAUNCHER = "snn.delays.numba_gpu.NumbaCudaDelayLauncher"
"""Key of the numba.cuda launcher (:class:`snn.delays.numba_gpu.NumbaCudaDelayLauncher`)."""


def _fused(key: str) -> RunFn:
    """The registry ``run`` over the fused operators (:mod:`snn.delays.autograd`) with the
    launcher class ``key`` (``module.Class``), which (with Numba) loads inside the first
    operator call. Traceable by Dynamo: ``torch.compile`` sees each layer as the operators."""
    module, cls = key.rsplit(".", 1)
    register_delay_launcher(key, lambda: getattr(importlib.import_module(module), cls)())

    def run(x: Tensor, taps: Taps, history: Optional[Tensor]) -> Tensor:
        if x.shape[0] == 0 or x.shape[1] == 0:
            return dense_delay_conv(x, taps, history)
        return fused_delay_conv(key, x, taps.values, taps.start, taps.max_delay, history, taps.inert_zeros)
    return run


for _dev in ("cpu", "cuda", "mps", "xpu"):
    register_delay_backend(DelayBackend("torch", _dev, dense_delay_conv, priority=0))
register_delay_backend(DelayBackend("numba", "cpu", _fused(CPU_LAUNCHER), priority=10,
                                    dtypes=(torch.float32, torch.float64), requires="numba",
                                    install_hint="pip install numba"))
register_delay_backend(DelayBackend("numba", "cuda", _fused(CUDA_LAUNCHER),
                                    priority=10, dtypes=(torch.float32,), auto=False, requires="numba",
                                    install_hint=CUDA_INSTALL_HINT,
                                    available=functools.partial(numba_cuda_reason, "delay backend")))
