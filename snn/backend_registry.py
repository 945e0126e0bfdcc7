"""The registry behind every ``backend=`` argument (neurons, delay synapses): implementations
keyed by ``(name, device_type)``, with priorities for ``"auto"`` and availability checks that
say what to install."""
from __future__ import annotations

import importlib.util
import logging
from typing import Callable, Generic, Optional, Protocol, TypeVar

import torch
from torch.autograd import forward_ad

__all__ = ["BackendLike", "BackendRegistry", "requirement_reason", "functorch_active", "forward_ad_active",
           "reference_only", "values_unreadable"]

log = logging.getLogger("snn")


class BackendLike(Protocol):
    name: str
    device_type: str
    priority: int
    requires: Optional[str]
    install_hint: str
    available: Optional[Callable[[], Optional[str]]]


_INSTALLED: dict[str, bool] = {}


def _installed(package: str) -> bool:
    # a plain dict, not functools.lru_cache, which torch.compile warns about when it traces a forward
    if package not in _INSTALLED:
        _INSTALLED[package] = importlib.util.find_spec(package) is not None
    return _INSTALLED[package]


@torch.compiler.assume_constant_result
def requirement_reason(backend: BackendLike, kind: str = "backend") -> Optional[str]:
    """``None`` if ``backend`` can run here, else a sentence saying why and how to fix it
    (the missing package and the command that installs it, or the runtime check's reason).

    The answer holds for the process (the checks cache what they find), so ``torch.compile``
    takes it as a constant: Dynamo calls this once while tracing instead of tracing into the
    checks, which import packages and probe the GPU (a graph break, or an error under
    ``fullgraph=True``)."""
    if backend.requires is not None and not _installed(backend.requires):
        return (f"{kind} {backend.name!r} needs the package {backend.requires!r}, which is not installed"
                + (f"; install it with `{backend.install_hint}`" if backend.install_hint else ""))
    return backend.available() if backend.available is not None else None


def functorch_active() -> bool:
    """Whether a ``torch.func`` transform (``grad``, ``vmap``, ``jacrev``, ``functional_call``
    under ``vmap``, ...) is running around this call.

    The fused kernels cannot run under these transforms: PyTorch supports neither an
    ``autograd.Function`` without ``setup_context`` nor a custom operator's autograd formula
    there, and kernels read raw memory, which ``vmap``'s batched tensors do not have. Backend
    resolution therefore picks the ``torch`` reference under a transform, and value tests (NaN
    checks, which ``vmap`` cannot answer) are skipped. Always ``False`` while ``torch.compile``
    traces (Dynamo handles the transforms itself)."""
    return not torch.compiler.is_compiling() and torch._C._are_functorch_transforms_active()


def forward_ad_active() -> bool:
    """Whether a ``torch.autograd.forward_ad.dual_level()`` is open (forward-mode AD with dual
    tensors), where the fused kernels' autograd Functions, which have no ``jvp``, cannot run.
    Always ``False`` while ``torch.compile`` traces."""
    return not torch.compiler.is_compiling() and forward_ad._current_level >= 0


def values_unreadable() -> bool:
    """Whether code cannot read tensor values here: while ``torch.compile`` traces (a graph
    break) or under a ``torch.func`` transform (``vmap`` cannot answer). Value checks and
    value-dependent shortcuts are skipped there."""
    return torch.compiler.is_compiling() or functorch_active()


def reference_only() -> bool:
    """Whether layers must run their pure-torch reference: under a ``torch.func`` transform
    (:func:`functorch_active`) or forward-mode AD (:func:`forward_ad_active`), which neither
    the fused kernels nor the hand-written autograd Functions support. Backend resolution
    (neurons and delay synapses) then picks the ``torch`` reference."""
    return functorch_active() or forward_ad_active()


B = TypeVar("B", bound=BackendLike)


class BackendRegistry(Generic[B]):
    """Backends of one kind (``kind`` names them in messages, e.g. ``"delay backend"``).

    Attributes:
        entries: ``{(name, device_type): backend}``.
        noted_reference_only: whether the INFO line of :meth:`reference_if_required` was logged.
    """

    def __init__(self, kind: str = "backend") -> None:
        self.kind = kind
        self.entries: dict[tuple[str, str], B] = {}
        self.noted_reference_only = False

    def register(self, backend: B) -> None:
        """Add or replace ``backend`` under ``(name, device_type)``.

        Raises:
            ValueError: the name ``"auto"`` (reserved for automatic selection).
        """
        if backend.name == "auto":
            raise ValueError("'auto' is reserved for automatic selection")
        self.entries[(backend.name, backend.device_type)] = backend

    def names(self) -> list[str]:
        """Every name accepted by ``backend=`` (``"auto"`` included)."""
        return ["auto"] + sorted({n for n, _ in self.entries})

    def by_priority(self, device_type: str) -> list[B]:
        """The backends for ``device_type``, highest priority first."""
        return sorted((b for (_, d), b in self.entries.items() if d == device_type), key=lambda b: -b.priority)

    def reference(self, name: str, device_type: str) -> B:
        """Backend ``name`` for ``device_type``, or its CPU entry when there is none for that device."""
        return self.entries.get((name, device_type)) or self.entries[(name, "cpu")]

    def reference_if_required(self, name: str, device_type: str) -> Optional[B]:
        """The ``torch`` reference for ``device_type`` where layers must run it
        (:func:`reference_only`: a ``torch.func`` transform or forward-mode AD), whatever
        ``name`` asks for; else ``None``. The first time a fused backend is overridden it says
        so at INFO level.

        Raises:
            ValueError, RuntimeError: as :meth:`lookup` for a name that is unknown or cannot
                run here, under a transform too.
        """
        if not reference_only():
            return None
        if name not in ("auto", "torch"):
            self.lookup(name, device_type)
        if name != "torch" and not self.noted_reference_only:
            self.noted_reference_only = True
            log.info("fused kernels do not run under torch.func transforms or forward-mode AD; %s %r runs the "
                     "torch reference there", self.kind, name)
        return self.reference("torch", device_type)

    def lookup(self, name: str, device_type: str) -> B:
        """The backend a user asked for by name, checked to run here.

        Raises:
            ValueError: unknown name (lists the valid ones) or no entry for this device type.
            RuntimeError: it cannot run here (names the missing package / reason).
        """
        if name not in {n for n, _ in self.entries}:
            raise ValueError(f"unknown {self.kind} {name!r}; valid backends: {self.names()}")
        b = self.entries.get((name, device_type))
        if b is None:
            devices = sorted(d for n, d in self.entries if n == name)
            raise ValueError(f"{self.kind} {name!r} runs on {devices} tensors, but the input is on {device_type!r}")
        reason = requirement_reason(b, self.kind)
        if reason is not None:
            raise RuntimeError(reason)
        return b
