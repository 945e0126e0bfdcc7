"""Shared machinery of the integrate-and-fire neuron modules: parameters, input checks,
state handling and backend dispatch. Subclasses only say how the decay factor is made."""
from __future__ import annotations

import logging
import math
from typing import Optional

import torch
from torch import Tensor, nn

from snn.backend_registry import values_unreadable
from snn.neurons.backends import resolve_backend
from snn.neurons.functional import NeuronSpec, neuron_step
from snn.state import StatefulModule
from snn.surrogate import SurrogateLike, get_surrogate

log = logging.getLogger("snn")
_DTYPE_WARNED: set[tuple[str, torch.dtype]] = set()  # (backend, dtype) warned about once

__all__ = ["BaseNeuron", "check_sequence", "check_no_nan_membrane", "nan_checks_enabled"]


def nan_checks_enabled(x: Tensor) -> bool:
    """Whether the layers test ``x`` for NaN: always for CPU tensors, and on other devices
    (CUDA) only under ``torch.autograd.detect_anomaly()``.

    A test's answer has to reach the host to raise, which on a GPU waits for every kernel
    queued before it; one such wait per layer would stall the asynchronous launch queue
    that keeps the GPU busy, so GPU runs test only when anomaly detection asks for it (the
    trainer still stops on a non-finite loss, :func:`snn.train.loop.train_epoch`). Code being
    compiled by ``torch.compile`` does not test either: reading the answer would break the
    graph at every layer; nor does code under a ``torch.func`` transform, where ``vmap``
    cannot read values (:func:`snn.backend_registry.values_unreadable`).
    """
    if values_unreadable():
        return False
    return x.device.type == "cpu" or torch.is_anomaly_enabled()


def check_sequence(x: Tensor, name: str = "x", min_dim: int = 2, T: Optional[int] = None,
                   check_nan: bool = True, time_first: bool = True) -> None:
    """Validate a time-first input ``[T, B, ...]`` (``time_first=False``: one step ``[B, ...]``).

    ``check_nan=False`` skips the full pass over ``x``; neuron layers use it and test their
    final membrane instead (:func:`check_no_nan_membrane`), which costs 1/T as much. The NaN
    test runs where :func:`nan_checks_enabled` says (CPU, or CUDA under anomaly detection).

    Raises:
        TypeError: ``x`` is not a tensor.
        ValueError: fewer than ``min_dim`` dimensions, no timesteps (``T = 0``), ``T``
            mismatch, or NaN values.
    """
    if not isinstance(x, Tensor):
        shape = "[T, B, ...]" if time_first else "[B, ...]"
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape}, got {type(x).__name__}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must be time-first with at least {min_dim} dimensions [T, B, ...]; "
                         f"got shape {tuple(x.shape)}" if time_first else
                         f"{name} must have at least {min_dim} dimensions [B, ...]; got shape {tuple(x.shape)}")
    if time_first and x.shape[0] == 0:
        raise ValueError(f"{name} has no timesteps: T=0 in dim 0 of shape {tuple(x.shape)}")
    if T is not None and x.shape[0] != T:
        raise ValueError(f"{name} has T={x.shape[0]} timesteps (dim 0) but T={T} was expected")
    if check_nan and x.numel() and x.is_floating_point() and nan_checks_enabled(x) and torch.isnan(x).any():
        raise ValueError(f"{name} contains NaN values")


NAN_MESSAGE = "{} contains NaN values, or ±inf ones that made the membrane NaN"  # .format(input name)


def as_real_float(x: Tensor, name: str, dtype: torch.dtype) -> Tensor:
    """``x`` as floating point: a floating ``x`` as it is, integer or bool ``x`` (spike counts,
    ``uint8`` event frames) converted to ``dtype``, so that the state never integrates in an
    integer type (which would truncate ``v_init`` or a leak, or overflow).

    Raises:
        TypeError: ``x`` is complex.
    """
    if x.is_floating_point():
        return x
    if x.is_complex():
        raise TypeError(f"{name} must be real (floating, integer or bool), got {x.dtype}")
    return x.to(dtype)


def check_no_nan_membrane(v_last: Tensor, name: str = "x") -> None:
    """Raise ``ValueError`` if the final membrane ``[B, ...]`` holds NaN.

    A NaN anywhere in the input makes the membrane NaN from that step on (no reset or decay
    can clear it: ``Θ(NaN) = 0`` and ``β·NaN = NaN``), so testing the last state detects NaN
    inputs without reading the whole ``[T, B, ...]`` input again. One sum (no temporary) is
    tested first; only a non-finite sum, which any NaN makes, is looked at element-wise.
    Runs where :func:`nan_checks_enabled` says (CPU, or CUDA under anomaly detection).
    """
    if not (v_last.is_floating_point() and nan_checks_enabled(v_last)):
        return
    if not bool(torch.isfinite(v_last.sum())) and bool(torch.isnan(v_last).any()):
        raise ValueError(NAN_MESSAGE.format(name))


class BaseNeuron(StatefulModule):
    """Spiking neuron layer of the integrate-and-fire family (see :mod:`snn.neurons.functional`).

    Args:
        v_threshold: firing threshold (finite, > 0), in the units of the input current.
        v_reset: hard-reset potential (< ``v_threshold``), or ``None`` for soft (subtractive) reset.
        surrogate: surrogate gradient, an instance or a name (:mod:`snn.surrogate`).
        detach_reset: exclude the reset from the gradient.
        learn_threshold: make ``v_threshold`` a trainable parameter.
        num_channels: if given, threshold (and time constant) are per channel, shape ``[C]``,
            applied along dim 2 of ``[T, B, C, ...]`` (dim 1 of a ``step`` input).
        backend: ``"auto"``, ``"torch"`` or a registered fused backend (:mod:`snn.neurons.backends`).
        record_v: keep the membrane sequence of the last forward in ``v_seq``.
        v_init: membrane potential at rest / at the start of every sequence (default 0; ANN→SNN
            conversion starts at half the threshold, Rueckauer et al. 2017, Bu et al. 2022).
        device, dtype: factory arguments for the threshold/``v_init`` buffers (and the
            subclasses' decay parameters); ``dtype`` defaults to ``torch.get_default_dtype()``.

    Shape:
        forward: ``[T, B, *feature] → [T, B, *feature]`` spikes (0./1., input dtype; integer
        or bool input is first converted to the layer's dtype, that of ``v_init``; complex
        input is a ``TypeError``).
        step: ``[B, *feature] → [B, *feature]``, the same dtypes.

    Attributes:
        v: carried membrane potential ``[B, *feature]`` (``None`` at rest).
        v_seq: membrane after reset ``[T, B, *feature]`` of the last forward when ``record_v``.
        backend_used: name of the backend that ran the last forward.

    Raises:
        ValueError: ``v_threshold`` not finite and > 0, ``v_reset ≥ v_threshold``,
            ``num_channels < 1``, or an unknown surrogate name (``TypeError`` for a
            surrogate that is neither a name nor a :class:`~snn.surrogate.Surrogate`).
    """

    def __init__(self, v_threshold: float = 1.0, v_reset: Optional[float] = 0.0,
                 surrogate: SurrogateLike = "atan", detach_reset: bool = False,
                 learn_threshold: bool = False, num_channels: Optional[int] = None,
                 backend: str = "auto", record_v: bool = False, v_init: float = 0.0,
                 device: Optional[torch.device | str] = None, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        if not (v_threshold > 0 and math.isfinite(v_threshold)):
            raise ValueError(f"v_threshold must be a finite number > 0, got {v_threshold}")
        if v_reset is not None and not v_reset < v_threshold:
            raise ValueError(f"v_reset must be below v_threshold ({v_threshold}), got {v_reset}")
        if num_channels is not None and num_channels < 1:
            raise ValueError(f"num_channels must be a positive int or None, got {num_channels}")
        self.surrogate = get_surrogate(surrogate)
        self.v_reset = None if v_reset is None else float(v_reset)
        self.detach_reset = bool(detach_reset)
        self.num_channels = num_channels
        self.backend = backend
        self.record_v = record_v
        self._factory = {"device": device, "dtype": dtype or torch.get_default_dtype()}
        th = torch.full((num_channels or 1,) if num_channels else (), float(v_threshold), **self._factory)
        if learn_threshold:
            self.v_threshold = nn.Parameter(th)
        else:
            self.register_buffer("v_threshold", th)
        shape = (num_channels,) if num_channels else ()
        self.register_buffer("v_init", torch.full(shape, float(v_init), **self._factory))
        self.v: Optional[Tensor] = None
        self.v_seq: Optional[Tensor] = None
        self.backend_used: Optional[str] = None

    # -- what subclasses provide -------------------------------------------------------
    def decay(self) -> Optional[Tensor]:
        """Decay factor β (0-d or ``[C]``), or ``None`` for no leak (IF)."""
        return None

    decay_input: bool = False

    # -- parameters as the update sees them ------------------------------------------
    def _per_channel(self, p: Optional[Tensor], step_ndim: int) -> Optional[Tensor]:
        if p is None or p.dim() == 0:
            return p
        return p.view(p.shape[0], *([1] * (step_ndim - 2)))

    def spec(self, step_ndim: int) -> NeuronSpec:
        """The :class:`NeuronSpec` for step inputs with ``step_ndim`` dims ``[B, *feature]``."""
        return NeuronSpec(beta=self._per_channel(self.decay(), step_ndim),
                          v_threshold=self._per_channel(self.v_threshold, step_ndim),
                          v_reset=self.v_reset, surrogate=self.surrogate,
                          decay_input=self.decay_input, detach_reset=self.detach_reset)

    def _check_channels(self, x: Tensor, channel_dim: int, name: str) -> None:
        if self.num_channels is not None and (x.dim() <= channel_dim or x.shape[channel_dim] != self.num_channels):
            raise ValueError(f"{name}: this layer has num_channels={self.num_channels} along dim {channel_dim}, "
                             f"got shape {tuple(x.shape)}")

    def _rest(self, like: Tensor) -> Tensor:
        """Membrane at rest, ``[B, *feature]``: zeros plus ``v_init``."""
        return torch.empty_like(like).copy_(self._rest_view(like))

    def _rest_view(self, like: Tensor) -> Tensor:
        """The rest state as a broadcast view of ``v_init`` (no ``[B, *feature]`` memory, which
        fused kernels then need not read)."""
        return torch.broadcast_to(self._per_channel(self.v_init, like.dim()).to(like.dtype), like.shape)

    def _initial_v(self, like: Tensor) -> Tensor:
        if self._stateful_v_ok(like):
            return self.v  # type: ignore[return-value]
        return self._rest(like)

    def _stateful_v_ok(self, like: Tensor) -> bool:
        if self.v is None:
            return False
        if self.v.shape != like.shape:
            raise ValueError(f"carried state has shape {tuple(self.v.shape)} but the input step has shape "
                             f"{tuple(like.shape)} (batch or feature size changed); call snn.reset(model) "
                             "before feeding a new stream")
        return True

    # -- execution --------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Run the whole sequence ``x [T, B, *feature]`` from rest (or, inside
        :func:`snn.stateful`, from the carried state) and return the spikes, same shape.

        Raises:
            TypeError: ``x`` is not a tensor.
            ValueError: fewer than 2 dims or ``T = 0``; ``x.shape[2] != num_channels``; a
                carried state whose shape differs from ``x[0]``; a NaN membrane (checked
                where :func:`nan_checks_enabled`); an unknown or unusable ``backend``
                (``RuntimeError`` when its package is missing; see
                :func:`~snn.neurons.backends.resolve_backend`).
        """
        check_sequence(x, "x", min_dim=2, check_nan=False)
        self._check_channels(x, 2, "x")
        x = as_real_float(x, "x", self.v_init.dtype)
        x0 = x[0].detach()
        v0 = self._initial_v(x0) if self._stateful else self._rest_view(x0)
        spec = self.spec(x.dim() - 1)
        impl = resolve_backend(self.backend, x.device.type, spec, x.dtype)
        used = impl.name if impl.covers(x.dtype) else "torch"  # the kernels hand other dtypes to torch
        # no logging in a compiled graph, and no guard on backend_used (a recompile once it is set)
        if not torch.compiler.is_compiling() and used != self.backend_used:
            if used != impl.name and (impl.name, x.dtype) not in _DTYPE_WARNED:
                _DTYPE_WARNED.add((impl.name, x.dtype))
                log.warning("backend %r has no kernels for %s inputs; running the torch reference",
                            impl.name, x.dtype)
            log.debug("%s: running backend %r on %s", type(self).__name__, used, x.device.type)
        self.backend_used = used
        spikes, v_last, v_seq = impl.run(x, v0, spec, self.record_v)
        if not impl.checks_nan:  # fused backends test inside their kernels
            check_no_nan_membrane(v_last)
        self.v_seq = v_seq
        if self._stateful:
            self.v = v_last
        return spikes

    def step(self, x_t: Tensor) -> Tensor:
        """Advance one timestep with ``x_t`` of shape ``[B, *feature]``; the state stays on the module.

        Always runs the ``torch`` reference update (no fused backend). Returns the spikes
        ``[B, *feature]`` (0./1., ``x_t``'s dtype).

        Raises:
            TypeError: ``x_t`` is not a tensor.
            ValueError: ``x_t`` is 0-d or holds NaN (where :func:`nan_checks_enabled`),
                ``x_t.shape[1] != num_channels``, or the carried state's shape differs.
        """
        check_sequence(x_t, "x_t", min_dim=1, time_first=False)
        self._check_channels(x_t, 1, "x_t")
        x_t = as_real_float(x_t, "x_t", self.v_init.dtype)
        v = self._initial_v(x_t)
        s, self.v = neuron_step(x_t, v, self.spec(x_t.dim()))
        return s

    def reset_state(self) -> None:
        self.v = None
        self.v_seq = None

    def detach_state(self) -> None:
        if self.v is not None:
            self.v = self.v.detach()

    def extra_repr(self) -> str:
        th = self.v_threshold
        th_s = f"{th.item():g}" if th.dim() == 0 else f"[{th.shape[0]}]"
        parts = [f"v_threshold={th_s}", f"v_reset={self.v_reset}", f"surrogate={self.surrogate}"]
        if self.detach_reset:
            parts.append("detach_reset=True")
        if isinstance(self.v_threshold, nn.Parameter):
            parts.append("learn_threshold=True")
        if self.num_channels:
            parts.append(f"num_channels={self.num_channels}")
        parts.append(f"backend={self.backend!r}")
        return ", ".join(parts)
