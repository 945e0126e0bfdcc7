"""Slicing the carried state of a running network when samples leave the batch.

Early-stopping inference (Dynamic Confidence) drops finished samples from the batch between
timesteps. The stateful layers carry per-sample state (membrane potentials, max-pool
accumulators, delay-line histories) that must shrink with the batch, or the next step fails
with a batch-size mismatch (modules never silently re-initialise, see :mod:`snn.state`).

Which attributes are per-sample state, and along which dim the batch lies, is declared per
module type in :data:`STATE_RULES` (one entry per type; a new stateful layer registers one
rule with :func:`register_state_rule`, or defines ``select_state(index)`` itself).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from snn.neurons import BaseNeuron, LeakyIntegrator
from snn.state import StatefulModule

__all__ = ["select_batch", "register_state_rule", "state_rule", "STATE_RULES"]

#: ``{module type: ((attribute, batch dim), ...)}``: the carried per-sample tensors of each type.
STATE_RULES: dict[type, tuple[tuple[str, int], ...]] = {
    BaseNeuron: (("v", 0), ("v_seq", 1)),      # v [B, ...]; v_seq [T, B, ...] (record_v)
    LeakyIntegrator: (("v", 0),),
}


def register_state_rule(cls: type, attributes: tuple[tuple[str, int], ...]) -> None:
    """Declare the carried per-sample tensors of a :class:`snn.state.StatefulModule` type.

    Args:
        cls: the module type (subclasses inherit the rule unless they register their own).
        attributes: ``(attribute name, batch dim)`` pairs; ``None`` attributes are skipped.

    Raises:
        TypeError: ``cls`` is not a StatefulModule type.
    """
    if not (isinstance(cls, type) and issubclass(cls, StatefulModule)):
        raise TypeError(f"cls must be a StatefulModule subclass, got {cls!r}")
    STATE_RULES[cls] = tuple((str(a), int(d)) for a, d in attributes)


def _optional_rules() -> None:
    """Rules of the layers of optional subpackages, registered when those import."""
    try:
        from snn.conversion.spiking import SpikingMaxPool
        STATE_RULES.setdefault(SpikingMaxPool, (("acc", 0),))
    except ImportError:  # pragma: no cover - subpackage absent
        pass
    try:
        from snn.delays.layer import DelayLinear
        STATE_RULES.setdefault(DelayLinear, (("_history", 1),))
    except ImportError:  # pragma: no cover
        pass


_optional_rules()


def state_rule(module: nn.Module) -> Optional[tuple[tuple[str, int], ...]]:
    """The rule of ``module``'s type (most specific registered base class), or ``None``."""
    for cls in type(module).__mro__:
        if cls in STATE_RULES:
            return STATE_RULES[cls]
    return None


def _fallback(module: nn.Module, batch_size: Optional[int]) -> tuple[tuple[str, int], ...]:
    """Unregistered module: its plain tensor attributes whose dim 0 is the batch."""
    tensors = [(k, v) for k, v in vars(module).items() if isinstance(v, Tensor) and v.dim() >= 1]
    if tensors and batch_size is None:
        raise ValueError(f"{type(module).__name__} has no state rule (register_state_rule) and the batch size is "
                         "unknown: pass a boolean keep mask instead of an index tensor")
    return tuple((k, 0) for k, v in tensors if v.shape[0] == batch_size)


def select_batch(model: nn.Module, keep: Tensor) -> nn.Module:
    """Keep only some samples in the carried state of every stateful module of ``model``.

    After this call, the next ``step`` / stateful forward must receive the kept samples only,
    in the order given. Per module, in order of preference: its own ``select_state(index)``
    method; the rule of its type in :data:`STATE_RULES`; otherwise every plain tensor
    attribute whose first dim equals the old batch size (needs a boolean ``keep``).

    Args:
        model: the network (its modules hold the state of a ``[B, ...]`` batch).
        keep: boolean mask ``[B]`` (``True`` = stays) or int64 indices into the batch.

    Returns:
        ``model`` (modified in place).

    Raises:
        ValueError: ``keep`` is not 1-D bool/integer; a carried tensor's batch dim does not
            match the mask length (names the module and attribute).

    Examples:
        >>> with snn.stateful(model):
        ...     model(x[0:1])                  # [1, 4, ...]: 4 samples
        ...     select_batch(model, torch.tensor([True, False, True, True]))
        ...     model(x[1:2, [0, 2, 3]])       # continue with the 3 that stay
    """
    if not isinstance(keep, Tensor) or keep.dim() != 1 or keep.is_floating_point() or keep.is_complex():
        raise ValueError(f"keep must be a 1-D boolean mask or int64 index tensor, got "
                         f"{type(keep).__name__}{'' if not isinstance(keep, Tensor) else tuple(keep.shape)}")
    batch_size = keep.numel() if keep.dtype == torch.bool else None
    index = keep.nonzero().flatten() if keep.dtype == torch.bool else keep.long()
    for name, m in model.named_modules():
        if not isinstance(m, StatefulModule):
            continue
        own: Optional[Callable] = getattr(m, "select_state", None)
        if callable(own):
            own(index)
            continue
        rule = state_rule(m)
        for attr, dim in (rule if rule is not None else _fallback(m, batch_size)):
            value = getattr(m, attr, None)
            if value is None:
                continue
            if batch_size is not None and value.shape[dim] != batch_size:
                raise ValueError(f"{name or type(m).__name__}.{attr} has batch size {value.shape[dim]} (dim {dim}) "
                                 f"but keep has {batch_size} entries")
            setattr(m, attr, value.index_select(dim, index.to(value.device)))
    return model
