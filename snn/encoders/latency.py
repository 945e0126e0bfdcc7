"""Latency (time-to-first-spike) coding: one spike per element, earlier for larger values."""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from ._checks import check_steps, check_tensor, check_unit_range

__all__ = ["latency", "latency_times", "LatencyEncoder"]

Method = Literal["linear", "log"]


def _check_params(method: str, threshold: float, tau: float, epsilon: float, normalize: bool) -> None:
    if method not in ("linear", "log"):
        raise ValueError(f"method must be 'linear' or 'log', got {method!r}")
    if method == "linear" and not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must lie in [0, 1) for method='linear', got {threshold!r}")
    if method == "log":
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1) for method='log', got {threshold!r}")
        if not tau > 0.0:
            raise ValueError(f"tau must be > 0 timesteps, got {tau!r}")
        if normalize and not (epsilon > 0.0 and threshold + epsilon < 1.0):
            raise ValueError(
                f"epsilon must be > 0 with threshold + epsilon < 1 for normalize=True, "
                f"got epsilon={epsilon!r}, threshold={threshold!r}"
            )


def latency_times(
    x: torch.Tensor,
    T: int,
    method: Method = "linear",
    threshold: float = 0.01,
    tau: float = 1.0,
    normalize: bool = False,
    epsilon: float = 0.01,
) -> torch.Tensor:
    r"""Spike step of each element under latency coding, ``inf`` where it never spikes.

    With :math:`\theta` = ``threshold`` and :math:`[\cdot]` rounding half up
    (``floor(t + 0.5)``):

    - ``method="linear"`` (intensity-to-latency; Thorpe & Gautrais 1998, "Rank order
      coding", Computational Neuroscience: Trends in Research):
      :math:`t = [(1 - x)(T - 1)]` for :math:`x \ge \theta`. With ``normalize=True``,
      :math:`t = [(1 - x)(T - 1) / (1 - \theta)]`, so :math:`x = \theta` fires at
      :math:`T - 1` and :math:`x = 1` at 0.
    - ``method="log"`` (RC-circuit latency: an RC membrane charged towards :math:`x`
      reaches :math:`\theta` after :math:`\tau \ln(x / (x - \theta))`):
      :math:`t = [\tau \ln(x / (x - \theta))]` for :math:`x > \theta`, ``tau`` in timesteps.
      With ``normalize=True`` (``tau`` unused), the RC latency is mapped affinely so that
      :math:`x = 1` fires at 0 and :math:`x = \theta + \epsilon` at :math:`T - 1`:
      :math:`t = [(T - 1)(L(x) - L(1)) / (L(\theta + \epsilon) - L(1))]`,
      :math:`L(x) = \ln(x / (x - \theta))`.

    Elements below threshold (linear: :math:`x < \theta`; log: :math:`x \le \theta`)
    and elements whose step lands at or after ``T`` never spike. Larger inputs never
    spike later than smaller ones. Such single-spike codes are used for TTFS training,
    e.g. Kheradpisheh & Masquelier 2020, "Temporal backpropagation for spiking neural
    networks with one spike per neuron", Int. J. Neural Syst. 30(6).

    Args:
        x: static input in [0, 1] (any real dtype).
        T: number of timesteps, a positive integer.
        method: ``"linear"`` or ``"log"``.
        threshold: input below which an element stays silent, in [0, 1) (linear) or
            (0, 1) (log).
        tau: RC time constant in timesteps (log, ``normalize=False`` only).
        normalize: stretch the latencies over the full window ``[0, T - 1]``.
        epsilon: for ``method="log", normalize=True``: the input ``threshold + epsilon``
            is given the last step ``T - 1``.

    Shape:
        - x: ``[B, *]``
        - output: ``[B, *]``

    Returns:
        float32 tensor of integer-valued spike steps in ``[0, T - 1]``, ``inf`` for none.

    Raises:
        ValueError: if ``x`` leaves [0, 1] (observed range in the message) or contains NaN,
            ``T`` is not a positive integer, or a parameter is out of its range.
        TypeError: if ``x`` is not a real-valued tensor.

    Examples:
        >>> latency_times(torch.tensor([1.0, 0.5, 0.0]), T=5)
        tensor([0., 2., inf])
    """
    T = check_steps(T)
    x = check_tensor(x)
    _check_params(method, threshold, tau, epsilon, normalize)
    xf = x.to(torch.float64)
    check_unit_range(xf, "x")
    # threshold tests in x's own precision, so x == threshold holds for float32 inputs too
    xc = x if x.is_floating_point() else xf
    if method == "linear":
        fires = xc >= threshold
        scale = (T - 1) / (1.0 - threshold) if normalize else float(T - 1)
        t = (1.0 - xf) * scale
    else:
        fires = (xc > threshold) & (xf > threshold)
        safe = torch.where(fires, xf, torch.ones_like(xf))
        lat = torch.log(safe / (safe - threshold))
        if normalize:
            l_one = math.log(1.0 / (1.0 - threshold))
            l_late = math.log((threshold + epsilon) / epsilon)
            t = (T - 1) * (lat - l_one) / (l_late - l_one)
        else:
            t = tau * lat
    step = torch.floor(t + 0.5)
    fires = fires & (step <= T - 1)
    inf = torch.full_like(step, math.inf)
    return torch.where(fires, step, inf).to(torch.float32)


def latency(
    x: torch.Tensor,
    T: int,
    method: Method = "linear",
    threshold: float = 0.01,
    tau: float = 1.0,
    normalize: bool = False,
    epsilon: float = 0.01,
) -> torch.Tensor:
    r"""Time-to-first-spike coding: at most one spike per element, at :func:`latency_times`.

    .. math::
        s[t] = \mathbb{1}[t = t_x], \qquad t = 0, \dots, T - 1

    with :math:`t_x` from :func:`latency_times` (see there for the linear and log/RC
    formulas, ``normalize`` and the sources). Deterministic.

    Args:
        x: static input in [0, 1] (any real dtype).
        T: number of timesteps, a positive integer.
        method: ``"linear"`` or ``"log"``.
        threshold: input below which an element stays silent.
        tau: RC time constant in timesteps (log, ``normalize=False`` only).
        normalize: stretch the latencies over the full window ``[0, T - 1]``.
        epsilon: for ``method="log", normalize=True``: input ``threshold + epsilon`` fires at ``T - 1``.

    Shape:
        - x: ``[B, *]``
        - output: ``[T, B, *]``

    Returns:
        float32 tensor of 0./1. spikes on ``x``'s device; each element's time slice sums to 0 or 1.

    Raises:
        ValueError: as :func:`latency_times`.
        TypeError: if ``x`` is not a real-valued tensor.

    Examples:
        >>> latency(torch.tensor([[1.0, 0.5, 0.0]]), T=3)[:, 0]
        tensor([[1., 0., 0.],
                [0., 1., 0.],
                [0., 0., 0.]])
    """
    T = check_steps(T)
    t = latency_times(x, T, method, threshold, tau, normalize, epsilon)
    fires = torch.isfinite(t)
    idx = torch.where(fires, t, torch.zeros_like(t)).to(torch.long).unsqueeze(0)
    out = torch.zeros((T, *t.shape), dtype=torch.float32, device=t.device)
    return out.scatter_(0, idx, fires.to(torch.float32).unsqueeze(0))


class LatencyEncoder(nn.Module):
    r"""Module form of :func:`latency` (time-to-first-spike coding over ``T`` timesteps).

    Args:
        T: number of timesteps, a positive integer.
        method: ``"linear"`` or ``"log"``.
        threshold: input below which an element stays silent.
        tau: RC time constant in timesteps (log, ``normalize=False`` only).
        normalize: stretch the latencies over the full window ``[0, T - 1]``.
        epsilon: for ``method="log", normalize=True``: input ``threshold + epsilon`` fires at ``T - 1``.

    Shape:
        - input: ``[B, *]`` in [0, 1]
        - output: ``[T, B, *]``, float32 0./1., at most one spike per element.

    Raises:
        ValueError: for a bad ``T`` or parameter (construction) or input range (forward).

    Examples:
        >>> enc = LatencyEncoder(T=10, method="log", normalize=True)
        >>> enc(torch.rand(4, 784)).sum(0).max() <= 1
        tensor(True)
    """

    def __init__(
        self,
        T: int,
        method: Method = "linear",
        threshold: float = 0.01,
        tau: float = 1.0,
        normalize: bool = False,
        epsilon: float = 0.01,
    ) -> None:
        super().__init__()
        self.T = check_steps(T)
        _check_params(method, threshold, tau, epsilon, normalize)
        self.method = method
        self.threshold = float(threshold)
        self.tau = float(tau)
        self.normalize = bool(normalize)
        self.epsilon = float(epsilon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return latency(x, self.T, self.method, self.threshold, self.tau, self.normalize, self.epsilon)

    def extra_repr(self) -> str:
        return (
            f"T={self.T}, method={self.method!r}, threshold={self.threshold}, tau={self.tau}, "
            f"normalize={self.normalize}, epsilon={self.epsilon}"
        )
