"""Rate (Bernoulli / discrete-time Poisson) coding of static inputs."""
from __future__ import annotations

import torch
from torch import nn

from ._checks import check_finite_real, check_generator, check_steps, check_tensor, check_unit_range

__all__ = ["rate", "RateEncoder"]


def rate(
    x: torch.Tensor,
    T: int,
    generator: torch.Generator | None = None,
    gain: float = 1.0,
) -> torch.Tensor:
    r"""Bernoulli rate coding: each element spikes independently with probability ``gain * x``.

    .. math::
        s[t] \sim \mathrm{Bernoulli}(p), \quad p = \mathrm{gain} \cdot x,
        \qquad t = 0, \dots, T - 1,

    i.i.d. over time and elements, so the expected firing rate (spikes per element per
    timestep) is ``p``. This is the discrete-time approximation of a Poisson spike train
    with rate ``p / dt`` (Diehl et al. 2015, "Fast-classifying, high-accuracy spiking deep
    networks through weight and threshold balancing", IJCNN; Gerstner et al. 2014,
    "Neuronal Dynamics", ch. 7). Implemented as ``U < p`` with ``U ~ Uniform[0, 1)``,
    so ``p = 0`` never spikes and ``p = 1`` always spikes.

    Args:
        x: static input of probabilities (any real dtype); ``gain * x`` must lie in [0, 1].
        T: number of timesteps, a positive integer.
        generator: ``torch.Generator`` the uniforms are drawn from. With one, the output
            is a deterministic function of its state and the global RNG is not touched
            (if it lives on another device than ``x``, the draw happens there and is
            moved). ``None`` draws from the global torch RNG.
        gain: factor applied to ``x`` before sampling (dimensionless), a finite real number
            such that ``gain * x`` lies in [0, 1].

    Shape:
        - x: ``[B, *]``
        - output: ``[T, B, *]``

    Returns:
        float32 tensor of 0./1. spikes on ``x``'s device.

    Raises:
        ValueError: if ``gain * x`` leaves [0, 1] (the message names ``x`` and the observed
            range), ``gain`` is NaN or infinite, ``x`` contains NaN, or ``T`` is not a
            positive integer.
        TypeError: if ``x`` is not a real-valued tensor, ``gain`` is not a real number, or
            ``generator`` is neither a ``torch.Generator`` nor ``None``.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> s = rate(torch.full((2, 3), 0.5), T=100, generator=g)
        >>> s.shape, s.dtype
        (torch.Size([100, 2, 3]), torch.float32)
    """
    T = check_steps(T)
    x = check_tensor(x)
    gain = check_finite_real(gain, "gain")
    check_generator(generator)
    p = x.to(torch.float32) * gain
    check_unit_range(p, f"x * gain (gain={gain!r})")
    shape = (T, *x.shape)
    if generator is None:
        u = torch.rand(shape, device=x.device, dtype=torch.float32)
    else:
        u = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float32)
        u = u.to(x.device)
    return (u < p).to(torch.float32)


class RateEncoder(nn.Module):
    r"""Module form of :func:`rate` (Bernoulli rate coding over ``T`` timesteps).

    Args:
        T: number of timesteps, a positive integer.
        gain: factor applied to the input before sampling, a finite real number; ``gain * x``
            must lie in [0, 1].

    Shape:
        - input: ``[B, *]``
        - output: ``[T, B, *]``, float32 0./1.

    Raises:
        ValueError: if ``T`` is not a positive integer or ``gain`` is NaN or infinite
            (construction), or ``gain * x`` leaves [0, 1] (forward; other input errors as
            :func:`rate`).
        TypeError: if ``gain`` is not a real number (construction).

    Examples:
        >>> enc = RateEncoder(T=16, gain=0.5)
        >>> enc(torch.rand(8, 10), generator=torch.Generator().manual_seed(1)).shape
        torch.Size([16, 8, 10])
    """

    def __init__(self, T: int, gain: float = 1.0) -> None:
        super().__init__()
        self.T = check_steps(T)
        self.gain = check_finite_real(gain, "gain")

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return rate(x, self.T, generator=generator, gain=self.gain)

    def extra_repr(self) -> str:
        return f"T={self.T}, gain={self.gain}"
