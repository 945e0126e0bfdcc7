"""Spike marks through data movement: a concatenation of spike trains is a spike train.

A converted IF layer emits ``θ·s`` (:mod:`snn.conversion`), which the profiler recognises as
spikes by a *mark* on the output's storage (:meth:`snn.energy.registry.RuleContext.mark_spikes`),
so views and reshapes of it count as spikes too. Operations that copy elements without
arithmetic — ``torch.cat``/``stack`` of Inception- or DenseNet-style branches, padding with
zeros (or by reflection/replication), indexing, ``contiguous``, ``clone``, ``flip``, ``repeat``,
dtype casts — allocate new storage;
:class:`SpikeFlow` (a ``torch.overrides.TorchFunctionMode`` active while a
:class:`snn.energy.Profiler` is) marks their result when every data input is spikes (marked, or
all values in {−1, 0, 1}) and at least one of them is marked. Arithmetic (``+``, ``*``,
pooling, convolution) never propagates a mark: its result is a graded current, counted as MACs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

if TYPE_CHECKING:  # pragma: no cover
    from snn.energy.profiler import Profiler

__all__ = ["SpikeFlow", "DATA_MOVEMENT"]

#: Operations whose output elements are input elements (or zeros): spikes in, spikes out.
#: Views (``view``, ``permute``, ``transpose``, ``squeeze``, ``expand``, ...) share the input's
#: storage and are covered by the storage mark without being listed.
DATA_MOVEMENT: frozenset[Callable[..., Any]] = frozenset({
    torch.cat, torch.concat, torch.concatenate, torch.stack, torch.hstack, torch.vstack, torch.dstack,
    torch.flatten, torch.reshape, torch.clone, torch.flip, torch.roll, torch.tile, torch.repeat_interleave,
    torch.index_select, torch.gather,
    Tensor.__getitem__, Tensor.contiguous, Tensor.reshape, Tensor.flatten, Tensor.clone, Tensor.repeat,
    Tensor.repeat_interleave, Tensor.tile, Tensor.flip, Tensor.roll, Tensor.index_select, Tensor.gather,
    Tensor.to, Tensor.float, Tensor.double, Tensor.half, Tensor.type_as,
    F.pad,
})


def _sources(func: Callable[..., Any], args: tuple, kwargs: dict) -> Optional[list[Tensor]]:
    """The data inputs of a data-movement call (not its indices), or ``None`` if it can create
    values that were not in its inputs (padding with a nonzero constant, another pad mode)."""
    first = args[0] if args else kwargs.get("tensors", kwargs.get("input"))
    if func is F.pad:  # reflect / replicate / circular copy input values; constant adds `value`
        mode = kwargs.get("mode", args[2] if len(args) > 2 else "constant")
        value = kwargs.get("value", args[3] if len(args) > 3 else None)
        if mode not in ("constant", "reflect", "replicate", "circular") or (mode == "constant"
                                                                            and value not in (None, 0)):
            return None
    if isinstance(first, Tensor):
        return [first]
    if isinstance(first, (list, tuple)) and first and all(isinstance(t, Tensor) for t in first):
        return list(first)
    return None


class SpikeFlow(TorchFunctionMode):
    """Marks the result of a :data:`DATA_MOVEMENT` call as spikes when its inputs are.

    Pushed by :meth:`snn.energy.Profiler.__enter__` and popped by its ``__exit__``; it only
    looks at calls while the profiler is enabled and some tensor is marked, and it never
    changes what a call computes.

    Args:
        profiler: the :class:`snn.energy.Profiler` whose marks are read and extended.
    """

    def __init__(self, profiler: "Profiler") -> None:
        super().__init__()
        self.profiler = profiler

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        prof = self.profiler
        if prof._spike_storages and prof.enabled and func in DATA_MOVEMENT and isinstance(out, Tensor) \
                and not prof._is_marked(out):
            src = _sources(func, args, kwargs)
            if src and any(prof._is_marked(t) for t in src) and all(prof._is_spikes(t) for t in src):
                prof._mark_spikes(out)
        return out
