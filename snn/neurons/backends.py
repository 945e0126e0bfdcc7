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

import importlib.util
import logging
from dataclasses import dataclass, field
from typing import Callable, Optional

from torch import Tensor

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
    """

    name: str
    device_type: str
    run: RunFn
    priority: int = 0
    requires: Optional[str] = None
    install_hint: str = ""
    supports: Callable[[NeuronSpec], bool] = field(default=lambda spec: True)
    available: Optional[Callable[[], Optional[str]]] = None

    def unavailable_reason(self) -> Optional[str]:
        """``None`` if the backend can run here, else a sentence saying why and how to fix it."""
        if self.requires is not None and importlib.util.find_spec(self.requires) is None:
            return (f"backend {self.name!r} needs the package {self.requires!r}, which is not installed"
                    + (f"; install it with `{self.install_hint}`" if self.install_hint else ""))
        if self.available is not None:
            return self.available()
        return None


_REGISTRY: dict[tuple[str, str], Backend] = {}
_warned: set[tuple[str, str]] = set()


def register_backend(backend: Backend) -> None:
    """Add (or replace) a backend under ``(backend.name, backend.device_type)``."""
    if backend.name == "auto":
        raise ValueError("'auto' is reserved for automatic selection")
    _REGISTRY[(backend.name, backend.device_type)] = backend


def backend_names() -> list[str]:
    """All names accepted by ``backend=`` (``"auto"`` included)."""
    return ["auto"] + sorted({name for name, _ in _REGISTRY})


def available_backends(device_type: str) -> list[str]:
    """Names usable for ``device_type`` now, highest priority first."""
    cands = sorted((b for (n, d), b in _REGISTRY.items() if d == device_type), key=lambda b: -b.priority)
    return [b.name for b in cands if b.unavailable_reason() is None]


def resolve_backend(name: str, device_type: str, spec: NeuronSpec) -> Backend:
    """Pick the implementation for ``name`` on ``device_type``.

    Raises:
        ValueError: unknown name (lists the valid ones), or a backend that does not run on
            this device type, or one that does not support the neuron's options.
        RuntimeError: the backend exists but cannot run here (names the missing package and
            the command that installs it).
    """
    if name == "auto":
        cands = sorted((b for (n, d), b in _REGISTRY.items() if d == device_type), key=lambda b: -b.priority)
        for b in cands:
            if b.unavailable_reason() is not None:
                continue
            if not b.supports(spec):
                key = (b.name, device_type)
                if key not in _warned:
                    _warned.add(key)
                    log.warning("backend %r does not support these neuron options (%s); "
                                "'auto' falls back to the next backend", b.name, spec)
                continue
            return b
        return _REGISTRY[("torch", device_type if ("torch", device_type) in _REGISTRY else "cpu")]
    if name not in {n for n, _ in _REGISTRY}:
        raise ValueError(f"unknown backend {name!r}; valid backends: {backend_names()}")
    b = _REGISTRY.get((name, device_type))
    if b is None:
        devices = sorted(d for n, d in _REGISTRY if n == name)
        raise ValueError(f"backend {name!r} runs on {devices} tensors, but the input is on {device_type!r}")
    reason = b.unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)
    if not b.supports(spec):
        raise ValueError(f"backend {name!r} does not support these neuron options: {spec}; use backend='torch'")
    return b


for _dev in ("cpu", "cuda", "mps", "xpu"):
    register_backend(Backend(name="torch", device_type=_dev, run=multistep, priority=0))
