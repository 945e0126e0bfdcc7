"""State semantics shared by every stateful module (neurons, readouts, delay lines).

* ``module(x)`` with ``x`` of shape ``[T, B, ...]`` processes one whole sequence and starts
  from rest: nothing is carried over from the previous batch.
* ``module.step(x_t)`` with ``x_t`` of shape ``[B, ...]`` advances one timestep and keeps the
  state on the module, for streaming / online inference. Call :func:`reset` before the
  next stream.
* Inside ``with stateful(model):`` multi-step calls also continue from, and leave behind,
  the carried state (process a long stream chunk by chunk).
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from torch import Tensor, nn

__all__ = ["StatefulModule", "InputHistoryModule", "reset", "stateful", "detach_state"]


class StatefulModule(nn.Module):
    """Base class of modules that carry state between :meth:`step` calls."""

    def __init__(self) -> None:
        super().__init__()
        self._stateful = False

    def reset_state(self) -> None:
        """Return to rest (drop the carried state).

        Raises:
            NotImplementedError: subclasses must override it.
        """
        raise NotImplementedError

    def __getstate__(self) -> dict:
        """The module's attributes for ``copy.deepcopy`` and pickling, with carried state
        tensors (membranes, recorded ``v_seq``, input histories) detached from their autograd
        graph: a non-leaf tensor cannot be deep-copied, so without this ``copy.deepcopy`` of a
        model fails after any forward that needed gradients (e.g. a best-model snapshot or an
        EMA copy taken during training). The copy carries the same values."""
        state = super().__getstate__()
        for k, v in state.items():
            if isinstance(v, Tensor) and v.grad_fn is not None:
                state[k] = v.detach()
        return state

    def detach_state(self) -> None:
        """Cut the autograd graph of the carried state (truncated BPTT on streams)."""


class InputHistoryModule(StatefulModule):
    """A :class:`StatefulModule` whose state is its last inputs (delay lines): ``_history``
    ``[D, B, *feature]`` or ``None`` at rest."""

    def __init__(self) -> None:
        super().__init__()
        self._history: Optional[Tensor] = None

    def _carried(self, x: Tensor) -> Optional[Tensor]:
        """The carried history for the input ``x [T, B, *feature]``, or ``None`` at rest.

        Raises:
            ValueError: the history's batch/feature shape differs from ``x``'s.
        """
        h = self._history
        if h is not None and h.shape[1:] != x.shape[1:]:
            raise ValueError(f"carried input history has shape {tuple(h.shape)} but the input has batch/features "
                             f"{tuple(x.shape[1:])}; call snn.reset(model) before feeding a new stream")
        return h

    def reset_state(self) -> None:
        self._history = None

    def detach_state(self) -> None:
        if self._history is not None:
            self._history = self._history.detach()


def _stateful_modules(model: nn.Module) -> Iterator[StatefulModule]:
    return (m for m in model.modules() if isinstance(m, StatefulModule))


def reset(model: nn.Module) -> nn.Module:
    """Reset every stateful module inside ``model`` to rest; returns ``model``."""
    for m in _stateful_modules(model):
        m.reset_state()
    return model


def detach_state(model: nn.Module) -> nn.Module:
    """Detach the carried state of every stateful module from the autograd graph."""
    for m in _stateful_modules(model):
        m.detach_state()
    return model


@contextlib.contextmanager
def stateful(model: nn.Module, reset_on_exit: bool = True) -> Iterator[nn.Module]:
    """Context in which multi-step calls carry state from one call to the next.

    The state starts from rest on entry and is reset on exit (unless ``reset_on_exit=False``).
    """
    mods = list(_stateful_modules(model))
    reset(model)
    for m in mods:
        m._stateful = True
    try:
        yield model
    finally:
        for m in mods:
            m._stateful = False
        if reset_on_exit:
            reset(model)
