"""Training recipe of learnable delays (Hammouamri et al., ICLR 2024, sec. 3.2 and 4):
σ schedule, a separate learning rate for positions, clamping, and rounding at the end.

A training loop drives a model through four optional hooks (:class:`DelayTrainingMixin`
provides them for models made of :class:`DelayLinear` layers):

* ``param_groups(lr, weight_decay)`` → optimizer parameter groups (positions at ``100×`` lr,
  without weight decay);
* ``on_epoch_start(epoch, epochs)`` → sets σ from the schedule;
* ``after_optimizer_step()`` → clamps the positions to ``[0, max_delay]``;
* ``on_train_end()`` → rounds the positions: exact integer delays from then on.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Optional

from torch import nn

from snn.delays.layer import DelayLinear

__all__ = ["SigmaSchedule", "delay_layers", "set_sigma", "clamp_delays", "round_delays", "delay_param_groups",
           "DelayTrainingMixin"]


@dataclass(frozen=True)
class SigmaSchedule:
    r"""Exponential decay of the Gaussian σ over the first ``fraction`` of the epochs.

    .. math::
        \sigma(e) = \sigma_0 \left(\sigma_1 / \sigma_0\right)^{\min(e, E) / E},\quad
        E = \max(1, \lfloor \text{fraction} \cdot \text{epochs} \rfloor)

    The paper (Hammouamri et al., ICLR 2024, sec. 3.2) multiplies DCLS's ``SIG`` by a constant
    each epoch from ``max_delay // 2`` to 0.23 over the first quarter of training; DCLS's
    Gaussian has ``σ = SIG + 0.27``, so in σ units that is ``≈ max_delay / 2 → 0.5``, the default here.

    Args:
        start: σ at epoch 0 (timesteps, > 0), typically ``max_delay / 2``.
        end: final σ (timesteps, > 0).
        fraction: share of the epochs over which σ decays, in (0, 1].

    Raises:
        ValueError: non-positive σ, ``fraction`` outside (0, 1]; in ``__call__``, a negative
            ``epoch`` or ``epochs < 1``.

    Examples:
        >>> s = SigmaSchedule(start=12.5, end=0.5)
        >>> s(0, 100), s(25, 100), s(99, 100)
        (12.5, 0.5, 0.5)
    """

    start: float
    end: float = 0.5
    fraction: float = 0.25

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            v = getattr(self, name)
            if not (isinstance(v, numbers.Real) and math.isfinite(v) and v > 0):
                raise ValueError(f"SigmaSchedule.{name} must be a positive number of timesteps, got {v!r}")
        if not (isinstance(self.fraction, (int, float)) and 0 < self.fraction <= 1):
            raise ValueError(f"SigmaSchedule.fraction must be in (0, 1], got {self.fraction!r}")

    def __call__(self, epoch: int, epochs: int) -> float:
        """σ for (0-based) ``epoch`` of ``epochs``."""
        if epoch < 0 or epochs < 1:
            raise ValueError(f"need epoch >= 0 and epochs >= 1, got epoch={epoch!r}, epochs={epochs!r}")
        E = max(1, math.floor(self.fraction * epochs))
        return float(self.start * (self.end / self.start) ** (min(epoch, E) / E))


def delay_layers(model: nn.Module) -> list[DelayLinear]:
    """Every :class:`DelayLinear` inside ``model`` (in module order)."""
    return [m for m in model.modules() if isinstance(m, DelayLinear)]


def set_sigma(model: nn.Module, sigma: float) -> None:
    """Set σ (timesteps) of every Gaussian delay layer in ``model``."""
    for m in delay_layers(model):
        m.set_sigma(sigma)


def clamp_delays(model: nn.Module) -> None:
    """Clamp every delay position in ``model`` to its layer's ``[0, max_delay]`` (in place)."""
    for m in delay_layers(model):
        m.clamp_delays_()


def round_delays(model: nn.Module) -> nn.Module:
    """Round every learned delay in ``model`` to an integer and switch the layers to exact
    integer delays (inference mode, fused gather/shift kernel); returns ``model``."""
    for m in delay_layers(model):
        m.round_delays_()
    return model


def delay_param_groups(model: nn.Module, lr: float, position_lr: Optional[float] = None,
                       position_lr_factor: float = 100.0, weight_decay: float = 0.0) -> list[dict]:
    """Optimizer parameter groups with a separate learning rate for delay positions.

    The paper trains positions with ``100×`` the weights' learning rate and no weight decay
    (Hammouamri et al., ICLR 2024, sec. 4: lr 1e-3 for weights, 1e-1 for positions).

    Args:
        model: any module; the ``delay`` parameters of its :class:`DelayLinear` layers form the
            second group, every other trainable parameter the first.
        lr: learning rate of the weights (and every other parameter).
        position_lr: learning rate of the positions (default ``position_lr_factor · lr``).
        weight_decay: weight decay of the first group (positions get none).

    Returns:
        ``[{"name": "weights", ...}, {"name": "delays", ...}]`` (empty groups left out), for
        ``torch.optim.Adam(groups)``.

    Raises:
        ValueError: non-positive learning rates.
    """
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    plr = position_lr if position_lr is not None else position_lr_factor * lr
    if not plr > 0:
        raise ValueError(f"position learning rate must be > 0, got {plr!r}")
    pos = {id(m.delay): m.delay for m in delay_layers(model) if m.delay.requires_grad}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in pos]
    groups = [{"name": "weights", "params": rest, "lr": lr, "weight_decay": weight_decay},
              {"name": "delays", "params": list(pos.values()), "lr": plr, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


class DelayTrainingMixin:
    """Training-loop hooks for models built from :class:`DelayLinear` layers.

    The model class sets ``sigma_schedule`` (a :class:`SigmaSchedule` or None: σ stays
    fixed), ``position_lr_factor`` and ``round_at_end``.
    """

    sigma_schedule: Optional[SigmaSchedule] = None
    position_lr_factor: float = 100.0
    round_at_end: bool = True

    def param_groups(self, lr: float, weight_decay: float = 0.0) -> list[dict]:
        """Parameter groups: positions at ``position_lr_factor · lr`` (see :func:`delay_param_groups`)."""
        return delay_param_groups(self, lr, position_lr_factor=self.position_lr_factor,  # type: ignore[arg-type]
                                  weight_decay=weight_decay)

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Set σ for this (0-based) epoch."""
        if self.sigma_schedule is not None:
            set_sigma(self, self.sigma_schedule(epoch, epochs))  # type: ignore[arg-type]

    def after_optimizer_step(self) -> None:
        """Clamp the positions to range."""
        clamp_delays(self)  # type: ignore[arg-type]

    def on_train_end(self) -> None:
        """Round the positions to integer delays (if ``round_at_end``)."""
        if self.round_at_end:
            round_delays(self)  # type: ignore[arg-type]
