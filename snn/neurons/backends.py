"""Backend registry: one place that maps ``backend=`` names to multi-step implementations.

A backend implements the whole time loop of :func:`snn.neurons.functional.multistep` with
the same signature ``run(x, v0, spec, record_v) -> (spikes, v_last, v_seq | None)`` and the
same results. ``"torch"`` (the pure-PyTorch reference) is always registered for every
device; fused kernels (``snn.cuda``) register themselves under their own names.

``backend="auto"`` picks, for the input's device type, the available backend with the
highest priority that supports the neuron's options, and the module records the choice in
its ``backend_used`` attribute (and a DEBUG log line on the ``snn`` logger).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import Tensor

from snn.backend_registry import BackendRegistry, requirement_reason
from snn.neurons.functional import NeuronSpec, multistep

__all__ = ["Backend", "register_backend", "resolve_backend", "available_backends", "backend_names"]

log = logging.getLogger("snn")

RunFn = Callable[[Tensor, Tensor, NeuronSpec, bool], "tuple[Tensor, Tensor, Optional[Tensor]]"]


@dataclass(frozen=True)
class Backend:
    """A multi-step neuron implementation for one device type.

    Attributes:
        name: the ``backend=`` name users pass (several device types may share a name).
        device_type: ``"cpu"`` or ``"cuda"``.
        run: the implementation (see module docstring).
        priority: higher wins under ``"auto"``.
        requires: import name of the package it needs (``None`` for none).
        install_hint: what to run when that package is missing.
        supports: predicate on a :class:`NeuronSpec`; options it cannot fuse make ``auto``
            fall back to the next backend.
        available: optional runtime check returning ``None`` when usable, else the reason.
        dtypes: input dtypes it computes in (``None``: every dtype). ``"auto"`` skips it for
            other inputs; asked for by name, it hands them to the ``torch`` reference.
        checks_nan: ``run`` itself raises ``ValueError`` for a NaN last membrane where
            :func:`snn.neurons.base.nan_checks_enabled` says (else the layer tests it).
    """

    name: str
    device_type: str
    run: RunFn
    priority: int = 0
    requires: Optional[str] = None
    install_hint: str = ""
    supports: Callable[[NeuronSpec], bool] = field(default=lambda spec: True)
    available: Optional[Callable[[], Optional[str]]] = None
    dtypes: Optional[tuple[torch.dtype, ...]] = None
    checks_nan: bool = False

    def covers(self, dtype: torch.dtype) -> bool:
        """Whether inputs of ``dtype`` run in this backend's own kernels."""
        return self.dtypes is None or dtype in self.dtypes

    def unavailable_reason(self) -> Optional[str]:
        """``None`` if the backend can run here, else a sentence saying why and how to fix it."""
        return requirement_reason(self)


_BACKENDS: BackendRegistry[Backend] = BackendRegistry("backend")
_REGISTRY = _BACKENDS.entries
_warned: set[tuple[str, str]] = set()


def register_backend(backend: Backend) -> None:
    """Add (or replace) a backend under ``(backend.name, backend.device_type)``.

    Raises:
        ValueError: ``backend.name == "auto"`` (reserved).
    """
    _BACKENDS.register(backend)


def backend_names() -> list[str]:
    """All names accepted by ``backend=`` (``"auto"`` included)."""
    return _BACKENDS.names()


def available_backends(device_type: str) -> list[str]:
    """Names usable for ``device_type`` now, highest priority first."""
    return [b.name for b in _BACKENDS.by_priority(device_type) if b.unavailable_reason() is None]


def resolve_backend(name: str, device_type: str, spec: NeuronSpec, dtype: Optional[torch.dtype] = None) -> Backend:
    """Pick the implementation for ``name`` on ``device_type`` (and, under ``"auto"``, one
    that covers inputs of ``dtype`` when given).

    Under a ``torch.func`` transform or forward-mode AD (:func:`snn.backend_registry.reference_only`)
    every name resolves to the ``torch`` reference, which the transforms can differentiate and
    batch; the first such call says so at INFO level.

    Raises:
        ValueError: unknown name (lists the valid ones), or a backend that does not run on
            this device type, or one that does not support the neuron's options.
        RuntimeError: the backend exists but cannot run here (names the missing package and
            the command that installs it).
    """
    ref = _BACKENDS.reference_if_required(name, device_type)
    if ref is not None:
        return ref
    if name == "auto":
        for b in _BACKENDS.by_priority(device_type):
            if b.unavailable_reason() is not None or (dtype is not None and not b.covers(dtype)):
                continue
            if not b.supports(spec):
                key = (b.name, device_type)
                if key not in _warned:
                    _warned.add(key)
                    log.warning("backend %r does not support these neuron options (%s); "
                                "'auto' falls back to the next backend", b.name, spec)
                continue
            return b
        return _BACKENDS.reference("torch", device_type)
    b = _BACKENDS.lookup(name, device_type)
    if not b.supports(spec):
        raise ValueError(f"backend {name!r} does not support these neuron options: {spec}; use backend='torch'")
    return b


for _dev in ("cpu", "cuda", "mps", "xpu"):
    register_backend(Backend(name="torch", device_type=_dev, run=multistep, priority=0))
