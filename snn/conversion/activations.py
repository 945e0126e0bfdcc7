"""Conversion-friendly ANN activations: QCFS (quantisation-clip-floor-shift) and a clipped ReLU.

Train the ANN with one of these in place of ReLU and its converted SNN reaches the ANN's
accuracy in far fewer timesteps: the activation already is what an integrate-and-fire
neuron with threshold θ = λ computes over ``L`` timesteps.
"""
from __future__ import annotations

import numbers
from typing import Callable, Optional, Union

import torch
from torch import Tensor, nn

__all__ = ["QCFS", "ClipReLU", "floor_ste", "make_activation", "ActivationLike"]

ActivationLike = Union[str, Callable[[], nn.Module]]


def floor_ste(x: Tensor) -> Tensor:
    """``floor(x)`` forward, identity gradient backward (straight-through estimator,
    Bengio et al. 2013, arXiv:1308.3432)."""
    return x + (torch.floor(x) - x).detach()


def _check_clip(clip: float, name: str = "clip") -> float:
    if not (isinstance(clip, numbers.Real) and not isinstance(clip, bool) and clip > 0):
        raise ValueError(f"{name} must be a positive number (the activation's upper bound λ), got {clip!r}")
    return float(clip)


def _register_clip(module: nn.Module, clip: float, learn: bool) -> None:
    """``module.clip`` = λ as a trainable parameter or a buffer (saved in the state dict either way)."""
    t = torch.tensor(_check_clip(clip))
    if learn:
        module.clip = nn.Parameter(t)
    else:
        module.register_buffer("clip", t)


class QCFS(nn.Module):
    r"""Quantisation-clip-floor-shift activation with a learnable clip λ.

    .. math::
        \hat h(z) = \frac{\lambda}{L}\,
            \mathrm{clip}\!\left(\left\lfloor \frac{z L}{\lambda} + \varphi \right\rfloor, 0, L\right)

    Bu, Fang, Ding, Dai, Yu & Huang, "Optimal ANN-SNN Conversion for High-accuracy and
    Ultra-low-latency Spiking Neural Networks", ICLR 2022, Eq. (19) (shift φ = 1/2, their
    Theorem 2). The floor has a straight-through gradient; λ receives the gradient of the
    clip, as in the paper. An IF neuron with soft reset, threshold θ = λ and initial membrane
    φ·θ fed a constant current ``z`` for ``T = L`` steps emits exactly ``ĥ(z)·L/λ`` spikes, so
    :func:`snn.convert` maps this activation to ``IF(v_threshold=λ, v_init=φ·λ)`` without any
    calibration.

    Args:
        levels: quantisation steps ``L`` (≥ 1); the SNN is exact for constant inputs at ``T = L``.
        clip: initial λ (> 0), in the units of the layer's pre-activation.
        shift: φ, 0.5 for the conversion-optimal shift (0 gives floor quantisation).
        learn_clip: make λ a trainable parameter (stored as ``clip``).

    Shape:
        any ``[B, *]`` → same shape; values in ``{0, λ/L, …, λ}``.

    Raises:
        ValueError: ``levels`` not a positive int, ``clip`` not positive, ``shift`` outside [0, 1).

    Examples:
        >>> act = QCFS(levels=4, clip=1.0)
        >>> act(torch.tensor([-1.0, 0.1, 0.2, 0.6, 3.0])).tolist()
        [0.0, 0.0, 0.25, 0.5, 1.0]
    """

    def __init__(self, levels: int = 8, clip: float = 8.0, shift: float = 0.5, learn_clip: bool = True) -> None:
        super().__init__()
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels must be a positive int (quantisation steps L), got {levels!r}")
        if not 0.0 <= shift < 1.0:
            raise ValueError(f"shift must lie in [0, 1), got {shift!r}")
        self.levels, self.shift = levels, float(shift)
        _register_clip(self, clip, learn_clip)

    def forward(self, x: Tensor) -> Tensor:
        lam = self.clip
        u = torch.clamp(x / lam, 0.0, 1.0)
        return floor_ste(u * self.levels + self.shift) * (lam / self.levels)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, clip={float(self.clip.detach()):.4g}, shift={self.shift:g}"


class ClipReLU(nn.Module):
    r"""ReLU clipped at λ: :math:`\min(\max(z, 0), \lambda)`, λ optionally trainable.

    The trainable clipping layer of Ho & Chang, "TCL: an ANN-to-SNN Conversion with Trainable
    Clipping Layers", DAC 2021 (Eq. 3); converted with threshold ``min(λ, calibrated value)``.

    Args:
        clip: λ (> 0).
        learn_clip: make λ trainable (stored as ``clip``).

    Shape:
        any ``[B, *]`` → same shape, values in ``[0, λ]``.

    Raises:
        ValueError: ``clip`` not positive.
    """

    def __init__(self, clip: float = 1.0, learn_clip: bool = False) -> None:
        super().__init__()
        _register_clip(self, clip, learn_clip)

    def forward(self, x: Tensor) -> Tensor:
        return torch.minimum(torch.relu(x), self.clip)

    def extra_repr(self) -> str:
        return f"clip={float(self.clip.detach()):.4g}"


def make_activation(spec: Optional[ActivationLike] = "relu") -> nn.Module:
    """Build an activation module from a name or a zero-argument factory.

    Names: ``"relu"``, ``"relu6"``, ``"qcfs"`` (L = 8, λ = 8), ``"qcfs:L"`` or ``"qcfs:L:λ"``
    (e.g. ``"qcfs:4:2"``: L = 4, initial λ = 2), ``"clip"`` (λ = 1) or ``"clip:λ"``. Used by
    the reference CNNs (:mod:`snn.models.vgg`, :mod:`snn.models.resnet`), so a QCFS variant is
    ``vgg16_bn(activation="qcfs:4")``.

    Raises:
        ValueError: unknown name or bad parameter (lists the valid names).
        TypeError: ``spec`` is neither a string nor a callable returning an ``nn.Module``.
    """
    if spec is None:
        spec = "relu"
    if callable(spec) and not isinstance(spec, str):
        m = spec()
        if not isinstance(m, nn.Module):
            raise TypeError(f"activation factory must return an nn.Module, got {type(m).__name__}")
        return m
    if not isinstance(spec, str):
        raise TypeError(f"activation must be a name or a callable, got {type(spec).__name__}")
    name, _, arg = spec.lower().partition(":")
    try:
        if name == "relu" and not arg:
            return nn.ReLU()
        if name == "relu6" and not arg:
            return nn.ReLU6()
        if name == "qcfs":
            levels, _, lam = arg.partition(":")
            return QCFS(levels=int(levels) if levels else 8, clip=float(lam) if lam else 8.0)
        if name == "clip":
            return ClipReLU(clip=float(arg) if arg else 1.0)
    except ValueError as e:
        raise ValueError(f"activation {spec!r}: {e}") from None
    raise ValueError(f"unknown activation {spec!r}; valid: 'relu', 'relu6', 'qcfs', 'qcfs:L', 'qcfs:L:λ', "
                     "'clip', 'clip:λ' "
                     "or a callable returning an nn.Module")
